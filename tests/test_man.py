"""The man page: the committed man/imgen.1 matches a fresh run of scripts/gen_man.py, groff
reads it without a single warning, and it covers every command, option, environment variable,
file and exit code imgen has.

groff checks the page: without it that test skips, naming the Debian package, and fails where
IMGEN_REQUIRE_TOOLS is set (.ci/run installs groff and sets it); IMGEN_TEST_WITHOUT=groff skips on purpose."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require_tool

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "man" / "imgen.1"
GENERATOR = ROOT / "scripts" / "gen_man.py"


def generate(out: Path, **env: str) -> str:
    full = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    full.update(env)
    proc = subprocess.run([sys.executable, str(GENERATOR), "--out", str(out)], env=full, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return out.read_text(encoding="ascii")


def section(text: str, name: str) -> str:
    match = re.search(rf"^\.SH {re.escape(name)}\n(.*?)(?=^\.SH |\Z)", text, re.S | re.M)
    assert match, f"no {name} section"
    return match.group(1)


def roff(text: str) -> str:
    return text.replace("-", "\\-")


@pytest.fixture(scope="module")
def page() -> str:
    return PAGE.read_text(encoding="ascii")


def test_committed_page_matches_a_fresh_run(tmp_path, page):
    fresh = generate(tmp_path / "imgen.1")
    assert fresh == page, "man/imgen.1 is stale: run python scripts/gen_man.py"


def test_page_is_reproducible(tmp_path):
    first = generate(tmp_path / "a.1")
    assert generate(tmp_path / "b.1") == first
    from imgen import __version__

    assert re.search(rf'^\.TH IMGEN 1 \d{{4}}-\d\d-\d\d "imgen {re.escape(__version__)}"', first, re.M)


def test_source_date_epoch_sets_the_date(tmp_path):
    text = generate(tmp_path / "imgen.1", SOURCE_DATE_EPOCH="1700000000")
    assert re.search(r"^\.TH IMGEN 1 2023-11-14 ", text, re.M)


def test_groff_reports_nothing():
    groff = require_tool("groff", "groff")
    proc = subprocess.run([groff, "-man", "-ww", "-z", str(PAGE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stderr == ""


def test_roff_escaping(page):
    for number, text in enumerate(page.splitlines(), 1):
        if text.startswith((".TH ", '.\\"')):
            continue  # the date's hyphens, and the comment
        assert text.strip(), f"line {number}: blank lines are not roff"
        assert re.search(r"(?<!\\)-", text) is None, f"line {number}: unescaped hyphen: {text}"
        assert not text.startswith("'"), f"line {number}: would be read as a request: {text}"
        if text.startswith("."):
            assert re.match(r"\.(SH|SS|TP|PP|B|br|nf|fi|RS|RE|nh)\b", text), f"line {number}: unexpected request: {text}"


def command_block(page: str, path: tuple[str, ...]) -> str:
    """The root's OPTIONS section, or a command's .SS block within COMMANDS."""
    if len(path) == 1:
        return section(page, "OPTIONS")
    title = f'.SS "{roff(" ".join(path))}"\n'
    commands = section(page, "COMMANDS")
    assert title in commands, f"{' '.join(path)} has no section"
    return commands.split(title, 1)[1].split("\n.SS ", 1)[0]


def test_every_command_and_option_is_described(page):
    import typer

    from imgen.cli import app

    def walk(cmd, path):
        yield path, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, (*path, name))

    for path, cmd in walk(typer.main.get_command(app), ("imgen",)):
        block = command_block(page, path)
        for param in cmd.params:
            if param.param_type_name != "option" or getattr(param, "hidden", False):
                continue
            for opt in (*param.opts, *param.secondary_opts):
                assert f"\\fB{roff(opt)}\\fR" in block, f"{' '.join(path)} {opt} is not in the man page"


def test_environment_lists_every_variable_imgen_reads(page):
    from imgen.config import configfile, settings

    env = section(page, "ENVIRONMENT")
    named = set(re.findall(r"^\\fB([A-Z_]+)\\fR$", env.replace("\\-", "-"), re.M))
    # Every IMGEN_* name the source spells out, so a new variable cannot go undocumented.
    spelled = set()
    for path in (ROOT / "src" / "imgen").rglob("*.py"):
        spelled |= set(re.findall(r"[\"'](_?IMGEN_[A-Z_]+)[\"']", path.read_text(encoding="utf-8")))
    expected = spelled | set(settings.ENV_FOR_KEY.values()) | {settings.KEY_ENV, configfile.CONFIG_ENV, configfile.CREDENTIALS_ENV}
    expected |= {p["api_key_env"] for p in settings.BUILTIN_PROFILES.values() if p.get("api_key_env")}
    expected |= {"NO_COLOR", "CI", "TERM", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "_IMGEN_COMPLETE"}
    assert expected - named == set(), "undocumented in ENVIRONMENT (add them to scripts/gen_man.py)"


def test_files_section(page):
    files = section(page, "FILES")
    for name in ("config.toml", "credentials.toml", "catalog"):
        assert name in files


def test_exit_status_comes_from_errors(page):
    from imgen.errors import EXIT_CODE_HELP, ExitCode

    status = section(page, "EXIT STATUS")
    assert set(EXIT_CODE_HELP) == set(ExitCode)
    for code, text in EXIT_CODE_HELP.items():
        assert f".TP\n\\fB{int(code)}\\fR\n" in status
        assert roff(text[1:]) in status


def test_examples_include_a_pipeline_and_a_ci_batch(page):
    examples = section(page, "EXAMPLES")
    assert roff("imgen generate --batch prompts.jsonl -o assets/ --concurrency 8") in examples
    assert roff("| imgen generate - -o - >") in examples
