"""Command-line mistakes in imgen's one error format, `imgen: error: ...` + `  hint: ...`, exit 2:
plain text on a pipe whatever the colour settings (no Rich box, no escapes), a command's prefix
accepted, and a "did you mean" for every mistyped name (command, option, profile, setting, model).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import IMGEN
from imgen.cli import app

# NO_COLOR set (as conftest does), unset, and colour forced: the pipe decides, nothing else.
COLOURS = {
    "no-color": {"NO_COLOR": "1"},
    "default": {},
    "forced": {"FORCE_COLOR": "1", "TTY_COMPATIBLE": "1", "COLUMNS": "60"},
}


def run(*args: str, colour: str = "no-color", env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "_TYPER_FORCE_DISABLE_TERMINAL", "TERMINAL_WIDTH")}
    full.update(COLOURS[colour])
    full.update(env or {})
    full.setdefault("IMGEN_BASE_URL", "http://127.0.0.1:9")  # nothing may be sent; if it were, it fails
    return subprocess.run([IMGEN, *args], capture_output=True, text=True, env=full, stdin=subprocess.DEVNULL, timeout=60, check=False)


def first_lines(stderr: str, n: int = 2) -> list[str]:
    return stderr.splitlines()[:n]


def assert_plain(text: str) -> None:
    assert "\x1b[" not in text, repr(text)
    for box in "╭╰│─":
        assert box not in text, text


def write_config(text: str) -> None:
    path = Path(os.environ["IMGEN_CONFIG"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# argv, the first two lines of stderr
CASES = {
    "not-a-number": (["generate", "-n", "two", "x"], ["imgen: error: -n: 'two' is not a whole number", "  hint: see imgen generate --help"]),
    "long-spelling": (["generate", "--concurrency", "0", "x"], ["imgen: error: --concurrency: 0 is not between 1 and 64",
                                                               "  hint: see imgen generate --help"]),
    "out-of-range": (["generate", "--retries", "20", "x"], ["imgen: error: --retries: 20 is not between 0 and 10",
                                                           "  hint: see imgen generate --help"]),
    "below-minimum": (["generate", "-j", "0", "x"], ["imgen: error: -j: 0 is not between 1 and 64", "  hint: see imgen generate --help"]),
    "not-a-float": (["generate", "--timeout", "soon", "x"], ["imgen: error: --timeout: 'soon' is not a number",
                                                            "  hint: see imgen generate --help"]),
    "unknown-option": (["generate", "--modle", "dall-e-3", "x"], ["imgen: error: no such option --modle", "  hint: did you mean --model?"]),
    "unknown-short-option": (["generate", "-x", "x"], ["imgen: error: no such option -x", "  hint: see imgen generate --help"]),
    "option-without-value": (["generate", "x", "-n"], ["imgen: error: -n needs a value", "  hint: see imgen generate --help"]),
    "flag-with-value": (["generate", "--overwrite=yes", "x"], ["imgen: error: --overwrite takes no value", "  hint: see imgen generate --help"]),
    "missing-argument": (["models", "show"], ["imgen: error: missing argument MODEL",
                                              "  hint: usage: imgen models show [OPTIONS] MODEL; see imgen models show --help"]),
    "missing-two-arguments": (["config", "set"], ["imgen: error: missing argument KEY",
                                                  "  hint: usage: imgen config set [OPTIONS] KEY VALUE; see imgen config set --help"]),
    "extra-argument": (["generate", "a", "red", "fox"], ["imgen: error: unexpected extra argument 'red fox'",
                                                         '  hint: quote a prompt of several words: imgen generate "a red fox in the snow"']),
    "command-typo": (["genrate", "x"], ["imgen: error: no command 'genrate'", "  hint: did you mean generate?"]),
    "command-typo-2": (["modles"], ["imgen: error: no command 'modles'", "  hint: did you mean models?"]),
    "subcommand-typo": (["config", "sett", "model", "x"], ["imgen: error: no command 'sett' in imgen config", "  hint: did you mean set?"]),
    "nested-subcommand-typo": (["config", "key", "remvoe"], ["imgen: error: no command 'remvoe' in imgen config key",
                                                             "  hint: did you mean remove?"]),
    "ambiguous-prefix": (["g", "x"], ["imgen: error: 'g' could be generate or gallery", "  hint: type more of the command's name"]),
    "ambiguous-subcommand-prefix": (["config", "s"], ["imgen: error: 's' could be show or set",
                                                      "  hint: type more of the command's name"]),
    "nothing-close": (["frobnicate"], ["imgen: error: no command 'frobnicate'",
                                       "  hint: the commands: generate, edit, cost, inspect, rerun, show, gallery, models, config, task, log"]),
    "root-option-typo": (["--profle", "x", "generate"], ["imgen: error: no such option --profle", "  hint: did you mean --profile?"]),
}


@pytest.mark.parametrize("colour", COLOURS)
@pytest.mark.parametrize("case", CASES)
def test_usage_errors_are_imgens_plain_two_lines(case, colour):
    args, expected = CASES[case]
    res = run(*args, colour=colour)
    assert res.returncode == 2, res.stderr
    assert first_lines(res.stderr) == expected
    assert len(res.stderr.splitlines()) == 2, res.stderr
    assert res.stdout == ""
    assert_plain(res.stderr)


def test_the_in_process_app_says_the_same():
    # CliRunner calls the app, not cli.run(): the same words either way (tests run in process too).
    result = CliRunner().invoke(app, ["generate", "-n", "two", "x"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["imgen: error: -n: 'two' is not a whole number", "  hint: see imgen generate --help"]


# --- what stays as it was ----------------------------------------------------------------------


@pytest.mark.parametrize("colour", COLOURS)
def test_no_arguments_still_prints_the_help_and_exits_2(colour):
    res = run(colour=colour)
    assert res.returncode == 2
    shown = re.sub(r"\x1b\[[0-9;]*m", "", res.stdout)  # the help itself is Rich's, coloured when forced
    assert "Usage: imgen [OPTIONS] COMMAND [ARGS]..." in shown and "generate" in shown
    assert res.stderr == ""


@pytest.mark.parametrize("args", [["--help"], ["generate", "--help"], ["config", "-h"], ["gen", "--help"]])
def test_help_still_exits_0(args):
    res = run(*args)
    assert res.returncode == 0, res.stderr
    assert "Usage: imgen" in res.stdout and res.stderr == ""


def test_a_group_without_its_command_still_prints_its_help():
    res = run("config")
    assert res.returncode == 2 and "Usage: imgen config" in res.stdout


def test_a_commands_own_exit_code_is_kept(imgen, server):
    server.fault("item_error", index=1)
    res = imgen("generate", "-m", "dall-e-2", "-n", "2", "x")
    assert res.returncode == 10, res.stderr  # typer.Exit(PARTIAL), raised after the report


def test_imgens_own_usage_errors_are_unchanged(imgen, server):
    res = imgen("generate", "-s", "big", "x")
    assert res.returncode == 2
    assert res.stderr.startswith("imgen: error: --size big")


# --- prefixes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("short", "full"), [
    (["gen"], ["generate"]),
    (["gene"], ["generate"]),
    (["mod", "sh"], ["models", "show"]),
    (["conf", "sh"], ["config", "show"]),
    (["co", "list"], None),  # config or cost: refused
])
def test_a_unique_prefix_runs_the_command(short, full):
    tail = {"generate": ["-m", "placeholder", "--dry-run", "--json", "x"], "models": ["dall-e-3", "--json"],
            "config": ["--json"], "cost": []}
    if full is None:
        res = run(*short)
        assert res.returncode == 2 and first_lines(res.stderr)[0] == "imgen: error: 'co' could be cost or config"
        return
    extra = tail[full[0]]
    prefixed, spelled = run(*short, *extra), run(*full, *extra)
    assert prefixed.returncode == 0, prefixed.stderr
    assert prefixed.stdout == spelled.stdout and json.loads(prefixed.stdout)


def test_completion_understands_a_prefix():
    env = {"_IMGEN_COMPLETE": "complete_bash", "COMP_WORDS": "imgen gen --mo", "COMP_CWORD": "2"}
    res = run(env=env)
    assert res.returncode == 0
    assert "--model" in res.stdout.split()


# --- profiles ----------------------------------------------------------------------------------


def test_an_unknown_profile_flag_is_a_usage_error_with_a_suggestion():
    write_config('[profiles.local]\nbase_url = "http://127.0.0.1:8080"\n')
    res = run("-P", "lcoal", "generate", "--dry-run", "x")
    assert res.returncode == 2
    assert first_lines(res.stderr) == [
        "imgen: error: --profile lcoal: no such profile",
        ("  hint: did you mean local? known profiles: cometapi, dianming, local, offline, openai; "
         "create one with: imgen config set -P lcoal base_url URL"),
    ]
    assert_plain(res.stderr)


def test_an_unknown_imgen_profile_is_a_usage_error_too():
    write_config('[profiles.local]\nbase_url = "http://127.0.0.1:8080"\n')
    res = run("generate", "--dry-run", "x", env={"IMGEN_PROFILE": "locall"})
    assert res.returncode == 2
    assert first_lines(res.stderr)[0] == "imgen: error: IMGEN_PROFILE=locall: no such profile"
    assert first_lines(res.stderr)[1].startswith("  hint: did you mean local? known profiles: ")


def test_an_unknown_default_profile_in_the_file_stays_a_config_error():
    write_config('default_profile = "lcoal"\n[profiles.local]\nbase_url = "http://127.0.0.1:8080"\n')
    res = run("generate", "--dry-run", "x")
    assert res.returncode == 3
    assert first_lines(res.stderr)[0].startswith("imgen: error: default_profile = 'lcoal' in ")
    assert "did you mean local?" in res.stderr


# --- config set: keys and model ids ------------------------------------------------------------


def test_config_set_suggests_the_setting():
    res = run("config", "set", "modle", "dall-e-3")
    assert res.returncode == 2
    assert first_lines(res.stderr) == ["imgen: error: unknown setting 'modle'",
                                       "  hint: did you mean model? (imgen config set --help lists every setting)"]
    assert not Path(os.environ["IMGEN_CONFIG"]).exists()


def test_config_set_suggests_params_for_a_misspelt_table():
    res = run("config", "set", "param.watermark", "false")
    assert res.returncode == 2
    assert first_lines(res.stderr)[1].startswith("  hint: did you mean params.watermark?")


def test_config_get_and_unset_suggest_the_setting_too():
    for verb in ("get", "unset"):
        res = run("config", verb, "retires")
        assert res.returncode == 2, verb
        assert first_lines(res.stderr)[1].startswith("  hint: did you mean retries?"), res.stderr


def test_config_unset_still_removes_a_misspelt_key_from_the_file():
    write_config('[profiles.cometapi]\nmodle = "x"\n')
    res = run("config", "unset", "modle")
    assert res.returncode == 0, res.stderr
    assert "modle" not in Path(os.environ["IMGEN_CONFIG"]).read_text()


def test_config_set_an_unknown_model_warns_with_the_nearest_ids():
    res = run("config", "set", "model", "dall-e-4")
    assert res.returncode == 0, res.stderr  # a gateway may serve ids imgen does not know
    assert first_lines(res.stderr) == [
        "imgen: warning: model dall-e-4 is not in imgen's table: it will be sent as is, without checks",
        "  hint: did you mean dall-e-3 or dall-e-2? (imgen models lists the ids imgen knows)",
    ]
    assert 'model = "dall-e-4"' in Path(os.environ["IMGEN_CONFIG"]).read_text()


def test_config_set_a_known_model_says_nothing_more():
    res = run("config", "set", "model", "dall-e-3")
    assert res.returncode == 0 and "did you mean" not in res.stderr


def test_config_set_on_a_misspelt_profile_says_it_made_a_new_one():
    write_config('[profiles.local]\nbase_url = "http://127.0.0.1:8080"\n')
    res = run("config", "set", "-P", "lcoal", "model", "dall-e-3")
    assert res.returncode == 0
    assert first_lines(res.stderr, 1) == ["imgen: warning: profile lcoal did not exist and was created; did you mean local?"]
    fresh = run("config", "set", "-P", "studio", "model", "dall-e-3")
    assert first_lines(fresh.stderr, 1) == ["imgen: note: new profile studio"]


# --- config show with a bad value --------------------------------------------------------------


def test_config_show_marks_a_bad_value_instead_of_failing():
    write_config('[profiles.cometapi]\ntimeout = "abc"\nretries = 3\n')
    res = run("config", "show")
    assert res.returncode == 0, res.stderr
    rows = {line.split()[0]: line for line in res.stdout.splitlines() if not line.startswith("#")}
    assert "abc (invalid: must be a number)" in rows["timeout"] and str(os.environ["IMGEN_CONFIG"]) in rows["timeout"]
    assert rows["retries"].split()[1] == "3"  # everything else still shown
    assert "profiles.cometapi.timeout must be a number; fix it with: imgen config set -P cometapi timeout VALUE" in res.stderr
    assert run("generate", "--dry-run", "x").returncode == 3  # the value is still refused where it is used


def test_config_show_json_marks_bad_values_from_the_file_and_the_environment():
    write_config('[profiles.cometapi]\ntimeout = "abc"\napi_key_env = "sk-pasted-the-key-itself-1234"\n')
    res = run("config", "show", "--json", env={"IMGEN_RETRIES": "many"})
    assert res.returncode == 0, res.stderr
    settings = json.loads(res.stdout)["settings"]
    assert settings["timeout"]["value"] == "abc" and settings["timeout"]["invalid"] == "must be a number"
    assert settings["retries"] == {"value": "many", "source": "env IMGEN_RETRIES", "invalid": "must be a whole number"}
    # A refused api_key_env is likely a key: never repeated.
    assert settings["api_key_env"]["value"] is None and "invalid" in settings["api_key_env"]
    assert "sk-pasted" not in res.stdout + res.stderr
    assert "invalid" not in settings["model"]


def test_a_valid_environment_value_hides_nothing_of_a_bad_file_value():
    write_config('[profiles.cometapi]\ntimeout = "abc"\n')
    res = run("config", "show", "--json", env={"IMGEN_TIMEOUT": "30"})
    settings = json.loads(res.stdout)["settings"]
    assert settings["timeout"] == {"value": 30.0, "source": "env IMGEN_TIMEOUT"}  # the value in use
    assert "profiles.cometapi.timeout must be a number" in res.stderr  # and the file still needs fixing


# --- start-up ----------------------------------------------------------------------------------


def test_a_usage_error_imports_neither_rich_nor_the_http_client():
    # Typer would draw its box with rich_utils; imgen's two lines need none of it (nor httpx).
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "imgen", "generate", "-n", "two", "x"],
                          capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert "imgen: error: -n: 'two' is not a whole number" in proc.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:") and "|" in line}
    assert "typer" in imported  # importtime really reported
    heavy = {name for name in imported if name.split(".")[0] in ("rich", "httpx") or name == "typer.rich_utils"}
    assert not heavy, sorted(heavy)
