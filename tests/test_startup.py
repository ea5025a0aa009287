"""Start-up stays light: help and completion requests import only what they need.

Every TAB press starts a new imgen process, and so does every `--help`: neither may pay for the
HTTP client or the progress display. `--version` and `--help` are covered in
test_generate_e2e.py; this adds the subcommand help screens and completion requests.
No timings here (machines are noisy): what is imported is the stable part of start-up cost, and
`python -X importtime -m imgen ...` shows where the time goes.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HEAVY = ("httpx", "rich.progress")


def imports(*args: str, **env: str) -> tuple[list[tuple[int, str]], str]:
    """(nesting level, module) for every module imported, in -X importtime order; and stdout."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "imgen", *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "imported package" not in line:
            name = line.rsplit("|", 1)[1]
            found.append(((len(name) - len(name.lstrip())) // 2, name.strip()))
    assert found  # importtime really reported
    return found, proc.stdout


def importers(found: list[tuple[int, str]], module: str) -> list[str]:
    """The chain of modules that led to `module` being imported (importtime lists children first)."""
    for index, (level, name) in enumerate(found):
        if name == module:
            chain = []
            for later_level, later in found[index + 1:]:
                if later_level < level:
                    chain.append(later)
                    level = later_level
            return chain
    return []


def completion(*words: str) -> dict[str, str]:
    return {"_IMGEN_COMPLETE": "complete_bash", "COMP_WORDS": " ".join(words), "COMP_CWORD": str(len(words) - 1)}


CASES = {
    "generate --help": (["generate", "--help"], {}, "--model"),
    "models --help": (["models", "--help"], {}, "show"),
    "config --help": (["config", "--help"], {}, "set"),
    "complete a command": ([], completion("imgen", "gen"), "generate"),
    "complete an option": ([], completion("imgen", "generate", "--mo"), "--model"),
    "complete a model id": ([], completion("imgen", "generate", "-m", ""), "dall-e-3"),
    "complete a size": ([], completion("imgen", "generate", "-m", "dall-e-2", "-s", ""), "512x512"),
    "complete a profile": ([], completion("imgen", "-P", ""), "offline"),
    "complete for zsh": ([], {"_IMGEN_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "imgen gen"}, "generate"),
}


@pytest.mark.parametrize("case", CASES)
def test_help_and_completion_stay_light(case):
    args, env, expected = CASES[case]
    found, stdout = imports(*args, **env)
    assert expected in stdout  # the request was really answered
    names = {name for _, name in found}
    assert not names & set(HEAVY), f"{case} imported {sorted(names & set(HEAVY))}"
    # Typer 0.29 validates parameters with pydantic; imgen itself must never be the reason.
    if "pydantic" in names:
        assert any(m.startswith("typer") for m in importers(found, "pydantic")), importers(found, "pydantic")


def test_version_does_not_even_import_typer():
    found, stdout = imports("--version")
    assert stdout.startswith("imgen ")
    assert not {name for _, name in found} & {"typer", "rich", "click"}


@pytest.mark.parametrize("args", [["--help"], ["config", "--help"]])
def test_help_does_not_load_the_settings_table(args):
    found, stdout = imports(*args)
    assert "Usage" in stdout
    loaded = {name for _, name in found} & {"imgen.settings", "imgen.config_edit"}
    assert not loaded, f"{' '.join(args)} imported {sorted(loaded)}: {importers(found, min(loaded))}"


def test_config_set_help_still_lists_every_setting():
    from imgen.config.settings import SETTING_KEYS

    _, stdout = imports("config", "set", "--help", COLUMNS="200")
    assert "Settings:" in stdout
    assert all(f"{name}:" in stdout for name in SETTING_KEYS)
