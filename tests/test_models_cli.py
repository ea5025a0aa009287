"""`imgen models` in process: listings, `show`, the remote catalog, errors and exit codes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from fakeserver import FakeServer
from imgen.cli import app
from imgen.errors import ExitCode
from imgen.models import capabilities, catalog


@pytest.fixture
def imgen():
    runner = CliRunner()

    def run(*args: str):
        result = runner.invoke(app, ["models", *args])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return run


@pytest.fixture
def fake(tmp_path, monkeypatch):
    monkeypatch.setenv("IMGEN_CACHE_DIR", str(tmp_path / "cache"))
    with FakeServer() as srv:
        yield srv


def table_rows(stdout: str) -> dict[str, list[str]]:
    """First cell -> all cells, for the rows of a rendered table."""
    rows = {}
    for line in stdout.splitlines()[2:]:
        cells = [c for c in line.split("  ") if c.strip()]
        if cells:
            rows[cells[0].strip()] = [c.strip() for c in cells]
    return rows


# ----------------------------------------------------------------- the built-in table


@pytest.mark.parametrize("args", [(), ("list",)])
def test_list_shows_every_record(imgen, args):
    result = imgen(*args)
    assert result.exit_code == 0, result.stderr
    rows = table_rows(result.stdout)
    for spec in capabilities.all_specs():
        assert spec.id in rows
    assert rows["dall-e-3"][1:2] == ["openai"]
    assert "1-10" in rows["dall-e-2"] and "1" in rows["dall-e-3"]
    assert result.stderr == ""


def test_list_lines_are_not_wrapped(imgen):
    result = imgen()
    assert len(result.stdout.splitlines()) == 2 + len(capabilities.all_specs())


def test_piped_listing_is_plain_data_whatever_forces_colour(imgen, fake, monkeypatch):
    # stdout is not a terminal here: no escape codes, no padding to a console width, a line a model.
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    image_ids = {e["id"] for e in fake.catalog if e["model_type"] == "image"}
    for args, count in ((), len(capabilities.all_specs())), (("--remote", "--base-url", fake.base_url), len(image_ids)):
        result = imgen(*args)
        assert result.exit_code == 0, result.stderr
        lines = result.stdout.splitlines()
        assert "\x1b" not in result.stdout
        assert len(lines) == 2 + count
        assert all(line == line.rstrip() for line in lines)
        assert lines[0].split()[:2] == ["model", "api" if not args else "provider"]


@pytest.mark.parametrize("args", [("--json",), ("list", "--json"), ("--json", "list")])
def test_list_json(imgen, args):
    result = imgen(*args)
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert [(m["id"], m["dialect"]) for m in doc["models"]] == [(s.id, s.dialect) for s in capabilities.all_specs()]
    dalle3 = doc["models"][1]
    assert dalle3["n"] == {"min": 1, "max": 1}
    assert dalle3["fields"]["style"] == {"flag": "--style", "kind": "str", "type": "enum", "values": ["vivid", "natural"]}


def test_list_for_a_profile_keeps_its_api(imgen):
    result = imgen("--json", "-P", "dianming")
    assert [(m["id"], m["dialect"]) for m in json.loads(result.stdout)["models"]] == [("gpt-image-1.5", "envelope")]
    offline = imgen("list", "-P", "offline", "--json")
    assert [m["id"] for m in json.loads(offline.stdout)["models"]] == ["placeholder"]


def test_list_for_an_unknown_profile_is_a_config_error(imgen):
    result = imgen("-P", "no-such-profile")
    assert result.exit_code == ExitCode.CONFIG
    assert result.stderr.startswith("imgen: error: ") and result.stdout == ""


# ----------------------------------------------------------------- show


def test_show_prints_every_field(imgen):
    result = imgen("show", "dall-e-3")
    assert result.exit_code == 0
    out = result.stdout
    assert out.startswith("dall-e-3  (OpenAI, openai API)\n")
    for expected in ("n: 1\n", "prompt: at most 4000 characters", "results: url, b64_json", "default size: 1024x1024",
                     "--style", "style: vivid | natural", "quality: standard | hd", "1024x1024 | 1792x1024 | 1024x1792"):
        assert expected in out


def test_show_dated_id(imgen):
    result = imgen("show", "gpt-image-2-2026-04-21")
    assert result.exit_code == 0
    assert "gpt-image-2-2026-04-21 is checked as gpt-image-2" in result.stdout
    assert "sides divisible by 16" in result.stdout
    assert "--response-format: GPT image models always return base64" in result.stdout


def test_show_points_at_the_other_api(imgen):
    result = imgen("show", "gpt-image-1.5")
    assert "also on the envelope API: imgen models show gpt-image-1.5 --api envelope" in result.stdout
    envelope = imgen("show", "gpt-image-1.5", "--api", "envelope", "--json")
    doc = json.loads(envelope.stdout)
    assert doc["dialect"] == "envelope" and doc["results"] == ["url"]


def test_show_json(imgen):
    result = imgen("show", "doubao-seedream-4-0-250828", "--json")
    doc = json.loads(result.stdout)
    assert doc["requested"] == "doubao-seedream-4-0-250828" and doc["id"] == "doubao-seedream-5-0-260128"
    assert doc["fields"]["image"]["max_items"] == 14
    assert doc["prompt_max"] == 4000 and doc["prompt_advice"] == 1000
    assert "reference images + max_images <= 15" in doc["rules"]


def test_show_unknown_model_suggests_close_ids(imgen):
    result = imgen("show", "dalle-3")
    assert result.exit_code == ExitCode.USAGE
    assert result.stdout == ""
    assert result.stderr.splitlines()[0] == "imgen: error: unknown model 'dalle-3'"
    assert "hint: did you mean dall-e-3" in result.stderr


def test_show_unknown_api(imgen):
    result = imgen("show", "dall-e-3", "--api", "grpc")
    assert result.exit_code == ExitCode.USAGE and "--api grpc" in result.stderr


# ----------------------------------------------------------------- --remote


def test_remote_table(imgen, fake):
    result = imgen("--remote", "--base-url", fake.base_url)
    assert result.exit_code == 0, result.stderr
    rows = table_rows(result.stdout)
    image_ids = {e["id"] for e in fake.catalog if e["model_type"] == "image"}
    assert set(rows) == image_ids
    assert rows["dall-e-3"][-1] == "yes" and "$0.04/request" in rows["dall-e-3"]
    assert rows["doubao-seedream-4-0-250828"][-1] == "yes (doubao-seedream-5-0-260128)"
    assert rows["flux-1-kontext-pro"][-2:] == ["(malformed)", "-"]
    assert "$5 in / $40 out per M tokens" in rows["gpt-image-1"]
    assert f"{len(image_ids)} image models from {fake.base_url} (fetched now)" in result.stderr


def test_remote_json(imgen, fake):
    result = imgen("list", "--remote", "--json", "--base-url", fake.base_url)
    doc = json.loads(result.stdout)
    assert doc["base_url"] == fake.base_url and doc["from_cache"] is False
    models = {m["id"]: m for m in doc["models"]}
    assert models["gpt-image-2"]["checked"] is True and models["gpt-image-2"]["checked_as"] == "gpt-image-2"
    assert models["flux-1-kontext-pro"]["checked"] is False
    assert models["flux-1-kontext-pro"]["endpoints_malformed"] is True
    assert models["flux-1-kontext-pro"]["endpoints_raw"].startswith("{")
    assert models["dall-e-2"]["pricing"]["per_request"] == 0.02
    assert "sora-2" not in models and "gpt-5" not in models


def test_remote_uses_the_profile_base_url(imgen, fake, monkeypatch):
    monkeypatch.setenv("IMGEN_BASE_URL", fake.base_url)
    result = imgen("--remote", "--json")
    assert json.loads(result.stdout)["base_url"] == fake.base_url


def test_remote_is_cached_and_refreshable(imgen, fake):
    def fetches() -> int:
        return sum(r.path.startswith("/api/models") for r in fake.requests)

    imgen("--remote", "--base-url", fake.base_url)
    assert fetches() == 1
    second = imgen("--remote", "--json", "--base-url", fake.base_url)
    assert fetches() == 1 and json.loads(second.stdout)["from_cache"] is True
    imgen("--refresh", "--base-url", fake.base_url)
    assert fetches() == 2


def test_remote_server_down(imgen, fake):
    base = fake.base_url
    fake.stop()
    result = imgen("--remote", "--base-url", base)
    assert result.exit_code == ExitCode.NETWORK
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"imgen: error: cannot reach the catalog at {base}/api/models")
    assert lines[1].startswith("  hint: ")


def test_remote_server_down_with_cache_warns(imgen, fake):
    base = fake.base_url
    imgen("--remote", "--base-url", base)
    path = catalog.cache_path(base)
    doc = json.loads(path.read_text())
    doc["fetched_at"] -= 3 * 86400
    path.write_text(json.dumps(doc))
    fake.stop()
    result = imgen("--remote", "--base-url", base)
    assert result.exit_code == 0
    assert "dall-e-3" in table_rows(result.stdout)
    assert result.stderr.startswith("imgen: warning: cannot reach the catalog")
    assert "showing the cached catalog from 3 days ago" in result.stderr


def test_remote_for_the_offline_profile_is_refused(imgen):
    result = imgen("--remote", "-P", "offline")
    assert result.exit_code == ExitCode.USAGE
    assert "offline" in result.stderr and "--base-url" in result.stderr


def test_bad_base_url_is_refused_before_any_request(imgen):
    result = imgen("--remote", "--base-url", "ftp://example")
    assert result.exit_code != 0 and result.stdout == ""
    assert result.stderr.startswith("imgen: error: ")


def test_catalog_text_cannot_split_a_row_or_reach_the_terminal():
    from imgen.cli.table import plain as _plain

    assert _plain("flux\n  pro\x1b[31m\tx") == "flux pro [31m x"
