"""`imgen models` in process: listings, `show`, the remote catalog, errors and exit codes."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import termios

import pytest
from rich.cells import cell_len
from typer.testing import CliRunner

from conftest import IMGEN
from fakeserver import FakeServer
from imgen.cli import app
from imgen.cli.models import LOCAL_COLUMNS, REMOTE_COLUMNS
from imgen.cli.table import Column, fit
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
        assert lines[0].split()[:2] == ["model", "dialect" if not args else "provider"]


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


def test_list_for_an_unknown_profile_is_a_usage_error(imgen):
    # -P NAME is typed on the command line: a name that is no profile is a usage error (exit 2).
    result = imgen("-P", "no-such-profile")
    assert result.exit_code == ExitCode.USAGE
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


# ----------------------------------------------------------------- on a terminal: nothing breaks an id

WIDTHS = (80, 100, 120, 200)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def on_terminal(args: tuple[str, ...], width: int) -> tuple[list[str], str]:
    """Run the installed imgen with stdout on a pseudo-terminal `width` columns wide: its lines
    (escape codes dropped) and its stderr."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, width, 0, 0))
    env = {**os.environ, "COLUMNS": str(width), "TERM": "xterm-256color"}
    proc = subprocess.Popen([IMGEN, "models", *args], stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    out = bytearray()
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                proc.kill()
                pytest.fail(f"imgen models {' '.join(args)} wrote nothing for a minute")
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child has closed the terminal
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    return ANSI.sub("", out.decode()).replace("\r", "").splitlines(), err.decode()


def piped(args: tuple[str, ...], width: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(width)}
    return subprocess.run([IMGEN, "models", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, check=True)


def plain_table(stdout: str) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of a piped table: its cells never hold two spaces running."""
    lines = stdout.splitlines()
    return header_cells(lines[0]), [re.split(r"  +", line) for line in lines[2:]]


def header_cells(line: str) -> list[str]:
    return re.split(r"  +", line.strip())


def listing_args(kind: str, wide: bool, fake: FakeServer) -> tuple[str, ...]:
    remote = ("--remote", "--base-url", fake.base_url) if kind == "remote" else ()
    return (*remote, *(("--wide",) if wide else ()))


@pytest.mark.parametrize("wide", [False, True], ids=["narrow", "wide"])
@pytest.mark.parametrize("kind", ["local", "remote"])
@pytest.mark.parametrize("width", WIDTHS)
def test_a_terminal_table_never_breaks_an_id_a_price_or_a_word(fake, width, kind, wide):
    args = listing_args(kind, wide, fake)
    headers, records = plain_table(piped(args, width).stdout)  # what the table holds, every column
    lines, stderr = on_terminal(args, width)
    columns = {c.header: c for c in (LOCAL_COLUMNS if kind == "local" else REMOTE_COLUMNS)}
    shown = header_cells(lines[0])
    assert shown == [h for h in headers if h in shown]
    assert shown == headers if wide else {h for h in headers if columns[h].rank is None} <= set(shown)
    for record in records:
        for header, cell in zip(headers, record):
            if header not in shown:
                continue
            if columns[header].whole:  # ids, prices: the whole cell on one line
                assert any(cell in line for line in lines), (header, cell, lines)
            for word in cell.split():  # anything else wraps between its words only
                assert any(word in line.split() for line in lines), (header, word, lines)
    if not wide:
        assert max(map(cell_len, lines)) <= width, lines
    hidden = [h for h in headers if h not in shown]
    if hidden:
        assert stderr.splitlines()[-1] == (
            f"imgen: note: {len(hidden)} column{'s' if len(hidden) > 1 else ''} hidden at {width} columns "
            f"({', '.join(hidden)}); --wide shows all"
        )
    else:
        assert "hidden" not in stderr
    assert not any("imgen:" in line for line in lines)  # notes stay off stdout


def test_eighty_columns_hide_the_least_needed_columns(fake):
    lines, stderr = on_terminal((), 80)
    assert header_cells(lines[0]) == ["model", "dialect", "sizes", "n", "features"]
    assert "(provider, aspect, also matches); --wide shows all" in stderr
    remote, _ = on_terminal(("--remote", "--base-url", fake.base_url), 80)
    assert header_cells(remote[0]) == ["model", "features", "price"]


@pytest.mark.parametrize("kind", ["local", "remote"])
@pytest.mark.parametrize("width", WIDTHS)
def test_a_pipe_gets_one_record_a_line_and_every_column(fake, width, kind):
    for wide in (False, True):
        result = piped(listing_args(kind, wide, fake), width)
        headers, records = plain_table(result.stdout)
        columns = LOCAL_COLUMNS if kind == "local" else REMOTE_COLUMNS
        assert headers == [c.header for c in columns]
        count = len(capabilities.all_specs()) if kind == "local" else sum(e["model_type"] == "image" for e in fake.catalog)
        assert len(records) == count and all(len(r) == len(headers) for r in records)
        assert "\x1b" not in result.stdout and "hidden" not in result.stderr


def test_models_list_takes_wide_either_side(fake):
    for args in (("--wide", "list"), ("list", "--wide")):
        lines, stderr = on_terminal(args, 80)
        assert header_cells(lines[0]) == [c.header for c in LOCAL_COLUMNS]
        assert "hidden" not in stderr


# ----------------------------------------------------------------- fitting columns to a width


def test_fit_keeps_every_word_whole_and_the_important_columns_first():
    columns = [Column("id", whole=True), Column("notes", rank=1), Column("tiny", rank=3), Column("wide", rank=2)]
    rows = [["a-long-model-id", "some words here", "x", "a-word-of-twenty-chr"]]
    layout = fit(columns, rows, 40)
    assert layout.shown == [0, 1, 2] and layout.hidden == ["wide"]  # "tiny" still fits where "wide" cannot
    assert layout.widths[0] == len("a-long-model-id") and layout.total <= 40
    assert fit(columns, rows, 30).shown == [0, 1, 2]
    assert fit(columns, rows, 10).shown == [0]  # an id wider than the terminal: shown whole, nothing else
    assert fit(columns, rows, 10).widths == [15]
    assert fit(columns, rows, 10, wide=True).shown == [0, 1, 2, 3]


def test_fit_gives_spare_room_to_the_column_nearest_one_line():
    columns = [Column("id", whole=True), Column("a", rank=1), Column("b", rank=1)]
    rows = [["model-x", "one two three four five six", "x y"]]
    layout = fit(columns, rows, 7 + 2 + 5 + 2 + 3)
    assert layout.widths == [7, 5, 3]  # "x y" on one line; the long text at its longest word


@pytest.mark.parametrize("width", WIDTHS)
def test_the_fitted_table_fits_and_ids_keep_their_width(width):
    from imgen.cli import models

    specs = list(capabilities.all_specs())
    rows = [[s.id, s.dialect, s.provider, models._sizes_cell(s), models._aspect_cell(s), models._n_cell(s),
             ", ".join(s.features), s.family_label or "-"] for s in specs]
    layout = fit(LOCAL_COLUMNS, rows, width)
    assert layout.total <= width
    for i, w in zip(layout.shown, layout.widths):
        cells = [LOCAL_COLUMNS[i].header, *(r[i] for r in rows)]
        longest = max(map(len, cells)) if LOCAL_COLUMNS[i].whole else max(len(word) for c in cells for word in c.split())
        assert w >= longest
