"""The history and cost ledger end to end: the installed imgen against the test server, then
imgen log and imgen cost reading what it wrote."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from conftest import API_KEY, IMGEN


def rows(imgen, *args) -> list[dict]:
    res = imgen("log", "--json", "-n", "1000", *args)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def ledger_path(imgen) -> Path:
    res = imgen("log", "path")
    assert res.returncode == 0, res.stderr
    return Path(res.stdout.strip())


@pytest.fixture
def priced(imgen):
    """The catalog's prices cached, as `imgen models --remote` leaves them."""
    assert imgen("models", "--remote").returncode == 0


def test_a_run_is_one_row_with_its_files_and_its_cost(imgen, server, outdir, priced):
    res = imgen("generate", "-m", "dall-e-3", "-s", "1792x1024", "a red fox in snow", "-o", str(outdir))
    assert res.returncode == 0, res.stderr
    (row,) = rows(imgen)
    assert (row["model"], row["prompt"], row["status"], row["exit_code"], row["kind"]) == ("dall-e-3", "a red fox in snow", "ok", 0, "generate")
    assert row["host"] == server.base_url.split("//", 1)[1] and row["profile"] == "cometapi" and row["fields"] == {"size": "1792x1024"}
    assert (row["cost_usd"], row["cost_basis"]) == (0.04, "estimated")
    (image,) = row["images"]
    path = Path(res.lines[0])
    assert image["path"] == str(path) and image["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert image["bytes"] == path.stat().st_size and image["format"] == "png" and image["width"] > 0
    assert API_KEY not in ledger_path(imgen).read_bytes().decode("latin-1")


def test_token_priced_runs_are_billed_from_their_usage(imgen, server, outdir, priced):
    res = imgen("generate", "-m", "gpt-image-1", "-Q", "low", "a paper boat", "-o", str(outdir), "--json")
    assert res.returncode == 0, res.stderr
    usage = json.loads(res.stdout)["usage"]
    (row,) = rows(imgen)
    assert row["cost_basis"] == "billed" and row["usage"] == usage
    # The catalog prices gpt-image-1 at $5 input and $40 output per million tokens.
    assert row["cost_usd"] == pytest.approx((usage["input_tokens"] * 5 + usage["output_tokens"] * 40) / 1e6)


def test_failures_and_partial_successes_are_rows_too(imgen, server, outdir):
    server.fault("moderation")
    refused = imgen("generate", "-m", "dall-e-3", "something refused", "-o", str(outdir))
    assert refused.returncode == 5
    server.fault("item_error", index=1)
    partial = imgen("generate", "-m", "dall-e-2", "-n", "2", "two boats", "-o", str(outdir))
    assert partial.returncode == 10, partial.stderr
    newest, oldest = rows(imgen)
    assert (oldest["status"], oldest["exit_code"], oldest["cost_basis"]) == ("failed", 5, "unknown") and oldest["error"]
    assert (newest["status"], newest["exit_code"], len(newest["images"])) == ("partial", 10, 1)
    assert [r["prompt"] for r in rows(imgen, "--failed")] == ["two boats", "something refused"]


def test_batches_under_load_lose_no_row(imgen, server, tmp_path):
    def batch(name: str) -> Path:
        path = tmp_path / f"{name}.txt"
        path.write_text("".join(f"{name} prompt {i}\n" for i in range(40)))
        return path

    env = {**os.environ, "IMGEN_BASE_URL": server.base_url, "COMETAPI_KEY": API_KEY}
    procs = [subprocess.Popen([IMGEN, "generate", "--batch", str(batch(name)), "-m", "dall-e-2", "-o", str(tmp_path / name), "-j", "16",
                               "-q"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for name in ("first", "second")]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    found = rows(imgen)
    assert len(found) == 80 and len({r["id"] for r in found}) == 80
    assert sorted(r["prompt"] for r in found) == sorted(f"{n} prompt {i}" for n in ("first", "second") for i in range(40))
    assert all(r["batch"] and len(r["images"]) == 1 for r in found)


def test_a_broken_ledger_never_fails_a_generation(imgen, server, outdir):
    path = ledger_path(imgen)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not a database" * 100)
    res = imgen("generate", "-m", "dall-e-3", "x", "-o", str(outdir))
    assert res.returncode == 0 and len(res.lines) == 1
    assert "not logged" in res.stderr and str(path) in res.stderr


def test_a_locked_ledger_never_fails_a_generation(imgen, server, outdir):
    assert imgen("generate", "-m", "dall-e-3", "first", "-o", str(outdir)).returncode == 0  # the ledger exists
    holder = sqlite3.connect(ledger_path(imgen), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        res = imgen("generate", "-m", "dall-e-3", "second", "-o", str(outdir), timeout=60)
    finally:
        holder.rollback()
        holder.close()
    assert res.returncode == 0 and len(res.lines) == 1
    assert "not logged" in res.stderr and str(ledger_path(imgen)) in res.stderr
    assert [r["prompt"] for r in rows(imgen)] == ["first"]


def test_logging_can_be_turned_off(imgen, server, outdir, tmp_path):
    assert imgen("generate", "-m", "dall-e-3", "a", "-o", str(outdir), "--no-log").returncode == 0
    assert imgen("generate", "-m", "dall-e-3", "b", "-o", str(outdir), env={"IMGEN_NO_LOG": "1"}).returncode == 0
    config = Path(os.environ["IMGEN_CONFIG"])
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("[profiles.cometapi]\nlog = false\n")
    assert imgen("generate", "-m", "dall-e-3", "c", "-o", str(outdir)).returncode == 0
    assert imgen("generate", "-m", "dall-e-3", "d", "-o", str(outdir), "--log").returncode == 0
    assert [r["prompt"] for r in rows(imgen)] == ["d"]


def test_log_filters_and_show(imgen, server, outdir):
    for model, prompt in (("dall-e-3", "a lighthouse at dusk"), ("dall-e-2", "a harbour at dawn"), ("dall-e-3", "dusk over the harbour")):
        assert imgen("generate", "-m", model, prompt, "-o", str(outdir)).returncode == 0
    assert [r["prompt"] for r in rows(imgen, "--model", "dall-e-2")] == ["a harbour at dawn"]
    assert [r["prompt"] for r in rows(imgen, "--search", "harbour dusk")] == ["dusk over the harbour"]
    assert [r["prompt"] for r in rows(imgen, "--search", '"(dusk*')] == []  # FTS syntax in the text is just text
    assert len(rows(imgen, "--since", "1h")) == 3 and rows(imgen, "--since", "2999-01-01") == []
    assert len(rows(imgen, "-n", "2")) == 2
    ndjson = imgen("log", "--ndjson")
    assert [json.loads(line)["prompt"] for line in ndjson.stdout.splitlines()][0] == "dusk over the harbour"
    table = imgen("log")
    assert table.returncode == 0 and "a lighthouse at dusk" in table.stdout
    newest = rows(imgen)[0]
    Path(newest["images"][0]["path"]).write_bytes(b"changed")
    shown = json.loads(imgen("log", "show", str(newest["id"]), "--json").stdout)
    assert shown["images"][0]["state"] == "changed"
    Path(newest["images"][0]["path"]).unlink()
    assert "(missing;" in imgen("log", "show", str(newest["id"])).stdout
    assert imgen("log", "show", "999").returncode == 2
    assert imgen("log", "--since", "last tuesday").returncode == 2


def test_cost_totals_keep_billed_estimated_and_unknown_apart(imgen, server, outdir, priced):
    for args in (("-m", "dall-e-3"), ("-m", "dall-e-3"), ("-m", "dall-e-2", "-n", "3"), ("-m", "gpt-image-1", "-Q", "low")):
        assert imgen("generate", *args, "a boat", "-o", str(outdir)).returncode == 0
    server.fault("moderation")
    assert imgen("generate", "-m", "dall-e-3", "refused", "-o", str(outdir)).returncode == 5
    billed = next(r for r in rows(imgen) if r["model"] == "gpt-image-1")["cost_usd"]
    doc = json.loads(imgen("cost", "--by", "model", "--json").stdout)
    by = {g["key"]: g for g in doc["groups"]}
    assert doc["currency"] == "USD"
    assert by["dall-e-3"]["estimated_usd"] == pytest.approx(0.08) and by["dall-e-3"]["unknown"] == 1 and by["dall-e-3"]["failed"] == 1
    assert by["dall-e-2"]["estimated_usd"] == pytest.approx(0.06) and by["dall-e-2"]["images"] == 3  # $0.02 a request x 3
    assert by["gpt-image-1"]["billed_usd"] == pytest.approx(billed) and by["gpt-image-1"]["estimated_usd"] == 0
    assert doc["total"]["estimated_usd"] == pytest.approx(0.14) and doc["total"]["billed_usd"] == pytest.approx(billed)
    assert doc["total"]["generations"] == 5
    table = imgen("cost", "--by", "day")
    assert table.returncode == 0 and "$0.1400" in table.stdout
    assert imgen("cost", "--by", "colour").returncode == 2
