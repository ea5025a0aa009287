"""A plain one-shot generation loads what it uses and nothing else.

`imgen generate -q -o DIR PROMPT` against an http:// server, with the key in the environment and
no config file: the command named is the only one built, and the modules of the other commands,
of help rendering, of features not asked for (an aspect, an edit, a task, a price list) and of
reading files it only writes (TOML, XMP) stay unloaded. What is imported is the stable part of
start-up time; test_startup.py keeps help and completion light the same way.
"""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys

import pytest

from conftest import API_KEY, IMGEN

# Each would be loaded for nothing by the run below; the reason is in the test's docstring.
NOT_FOR_A_PLAIN_RUN = (
    # help and Typer's error panels
    "typer.rich_utils", "markdown_it", "rich.markdown", "rich.progress",
    # the other commands
    "imgen.cli.config", "imgen.cli.edit", "imgen.cli.gallery", "imgen.cli.log", "imgen.cli.models", "imgen.cli.provenance",
    "imgen.cli.show", "imgen.cli.task", "imgen.cli.table", "imgen.batch", "imgen.gallery", "imgen.preview",
    # features the run does not use
    "imgen.models.aspect", "imgen.models.editing", "imgen.generation.tasks", "imgen.models.catalog", "imgen.models.cost",
    "imgen.config.credentials", "decimal",
    # files it does not read: no config file, and XMP is written as text
    "tomllib", "xml.etree.ElementTree",
)


def imported(*args: str, env: dict[str, str]) -> tuple[set[str], subprocess.CompletedProcess]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", IMGEN, *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
    )
    names = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:") and "|" in line}
    assert "imgen.cli" in names  # importtime really reported
    return names, proc


def test_a_plain_generation_loads_only_what_it_uses(server, outdir):
    names, proc = imported(
        "generate", "-m", "dall-e-2", "-q", "-o", str(outdir), "a paper boat",
        env={"IMGEN_BASE_URL": server.base_url, "COMETAPI_KEY": API_KEY, "IMGEN_METADATA": "embed"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(list(outdir.iterdir())) == 1  # the run really saved its image, with its provenance embedded
    assert {"imgen.cli.generate", "imgen.pipeline", "imgen.files.metadata", "imgen.ledger.store"} <= names
    loaded = sorted(name for name in names if any(name == m or name.startswith(m + ".") for m in NOT_FOR_A_PLAIN_RUN))
    assert not loaded, f"a plain generation imported {loaded}"


def test_what_is_left_out_comes_back_when_the_run_needs_it(server, outdir):
    names, proc = imported(
        "generate", "-m", "dall-e-3", "--aspect", "16:9", "-q", "-o", str(outdir), "a paper boat",
        env={"IMGEN_BASE_URL": server.base_url, "COMETAPI_KEY": API_KEY},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "imgen.models.aspect" in names
    assert next(r for r in server.requests if r.method == "POST").json["size"] == "1792x1024"  # the shape reached the API


# --- only the command named is built ------------------------------------------------------


def test_the_root_group_builds_a_command_when_it_is_looked_up():
    import typer

    from imgen.cli import COMMANDS, app

    root = typer.main.get_command(app)
    assert list(root.commands) == list(COMMANDS)  # listed without building any of them
    assert "generate" in root.commands and "nope" not in root.commands
    assert root.commands._built == {}
    generate = root.commands["generate"]
    assert generate.name == "generate" and any("--model" in p.opts for p in generate.params)
    assert set(root.commands._built) == {"generate"}
    assert root.commands["generate"] is generate  # built once
    assert root.get_command(None, "nope") is None


def test_help_lists_the_commands_in_their_order():
    from typer.testing import CliRunner

    from imgen.cli import COMMANDS, app

    result = CliRunner().invoke(app, ["--help"], prog_name="imgen")
    assert result.exit_code == 0, result.output
    listed = [name for name in re.findall(r"^\W*(\w+)\s{2,}", result.output, re.M) if name in COMMANDS]
    assert listed == list(COMMANDS)


def test_a_group_is_built_whole_when_named():
    import typer

    from imgen.cli import app

    config = typer.main.get_command(app).commands["config"]
    assert {"show", "set", "path"} <= set(config.commands)


def test_lazy_commands_behave_as_a_dict():
    from imgen.cli.lazy import LazyCommands

    made = []

    def maker(name):
        return lambda: made.append(name) or f"<{name}>"

    commands = LazyCommands({"a": maker("a"), "b": maker("b")}, {"c": "<c>"})
    assert list(commands) == ["a", "b", "c"] and len(commands) == 3 and made == []
    assert "a" in commands and "z" not in commands and made == []
    assert commands.get("z") is None and commands.get("b") == "<b>" and made == ["b"]
    commands["d"] = "<d>"
    commands["a"] = "<A>"  # replaces the maker: never built
    del commands["c"]
    assert dict(commands.items()) == {"a": "<A>", "b": "<b>", "d": "<d>"} and made == ["b"]
    with pytest.raises(KeyError):
        commands["c"]


# --- the collector during start-up --------------------------------------------------------


def test_collection_resumes_when_the_command_runs():
    """__main__.main turns the collector off for start-up; the root group turns it back on before
    the command runs, so a long batch collects as it always did."""
    from typer.testing import CliRunner

    from imgen.cli import Imgen, app

    gc.disable()
    Imgen.resume_collection = True
    try:
        result = CliRunner().invoke(app, ["config", "path"], prog_name="imgen")
        assert result.exit_code == 0, result.output
        assert gc.isenabled() and gc.get_freeze_count() > 0
        assert not Imgen.resume_collection  # once per process
    finally:
        Imgen.resume_collection = False
        gc.unfreeze()
        gc.enable()


def test_an_in_process_run_leaves_the_collector_alone():
    from typer.testing import CliRunner

    from imgen.cli import app

    gc.disable()
    try:
        result = CliRunner().invoke(app, ["config", "path"], prog_name="imgen")
        assert result.exit_code == 0, result.output
        assert not gc.isenabled() and gc.get_freeze_count() == 0
    finally:
        gc.enable()


# --- the same answers, sooner -------------------------------------------------------------


def test_the_xml_character_filter_is_the_char_production():
    """files.metadata spells XML's illegal characters as the ranges XML 1.0 leaves out, which
    compiles far faster than the negated Char production; both must match exactly the same."""
    from imgen.files import metadata

    production = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
    every = "".join(map(chr, range(sys.maxunicode + 1)))
    assert metadata._XML_ILLEGAL.findall(every) == production.findall(every)


def test_cost_without_a_cached_price_list_reads_no_catalog(monkeypatch, tmp_path):
    monkeypatch.setenv("IMGEN_CACHE_DIR", str(tmp_path / "cache"))
    code = (
        "import sys; from imgen.pipeline import prepare; from imgen.generation.plan import cost_of;"
        "plan = prepare('a boat', flags={'model': 'dall-e-2', 'base_url': 'http://127.0.0.1:9'}, fields={}, params={});"
        "print(cost_of(plan)['basis'], 'imgen.models.catalog' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "IMGEN_API_KEY": "sk-test-0123456789"})
    assert proc.stdout.split() == ["unknown", "False"], proc.stderr[-2000:]
