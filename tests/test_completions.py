"""Shell completion: the committed scripts match a fresh run of scripts/gen_completions.py, and
each really completes in its shell, values included (model ids, sizes, profiles).

bash, bash-completion, zsh and fish drive these tests: a completion script nobody ran is a guess.
.ci/run installs them and sets IMGEN_REQUIRE_TOOLS=1, so in CI a missing one fails its tests;
elsewhere they skip, naming the Debian package (conftest.require_tool). IMGEN_TEST_WITHOUT=zsh,fish
(say) skips those on purpose, even in CI, and the skip is reported."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import IMGEN, require_tool

ROOT = Path(__file__).resolve().parent.parent
COMPLETIONS = ROOT / "completions"
BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")

DALLE2_SIZES = ["256x256", "512x512", "1024x1024"]


def require(tool: str, path: Path | None = None) -> str:
    """The tool's path (a command on PATH, or `path` for a file a package installs); the Debian
    package has the tool's own name. Skips, or fails in CI, when it is missing."""
    return require_tool(tool, tool, path=path)


def shell_env(**extra: str) -> dict[str, str]:
    """The scripts run `imgen` from PATH: it must be the one under test."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(IMGEN).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def write_config(text: str) -> None:
    path = Path(os.environ["IMGEN_CONFIG"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# --- staleness -------------------------------------------------------------------------------


def test_committed_scripts_match_a_fresh_run(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_completions.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    fresh = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    committed = {p.name: p.read_bytes() for p in COMPLETIONS.iterdir()}
    assert sorted(fresh) == ["_imgen", "imgen.bash", "imgen.fish", "imgen.ps1"]
    stale = sorted(name for name in fresh if committed.get(name) != fresh[name])
    assert not stale, f"completions/{', '.join(stale)} are stale: run python scripts/gen_completions.py"
    assert sorted(committed) == sorted(fresh), "completions/ holds files the generator does not make"


def test_scripts_call_imgen_back():
    # Typer's shims, not a frozen list of options: every TAB asks the installed imgen.
    for name in ("imgen.bash", "_imgen", "imgen.fish", "imgen.ps1"):
        assert "_IMGEN_COMPLETE" in (COMPLETIONS / name).read_text()
    assert (COMPLETIONS / "_imgen").read_text().startswith("#compdef imgen\n")  # zsh reads line 1
    assert "Register-ArgumentCompleter -Native -CommandName imgen" in (COMPLETIONS / "imgen.ps1").read_text()


# --- the protocol, without a shell ---------------------------------------------------------


def complete_bash(*words: str) -> list[str]:
    """What imgen answers bash for the command line `words` (the last one is being completed)."""
    proc = subprocess.run(
        [IMGEN],
        env=shell_env(_IMGEN_COMPLETE="complete_bash", COMP_WORDS=" ".join(words), COMP_CWORD=str(len(words) - 1)),
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return proc.stdout.split()


def test_model_offers_the_capability_table():
    from imgen.models import capabilities

    assert complete_bash("imgen", "generate", "-m", "") == capabilities.known_ids()
    assert complete_bash("imgen", "generate", "--model", "gpt-image-1") == [
        i for i in capabilities.known_ids() if i.startswith("gpt-image-1")
    ]
    assert complete_bash("imgen", "models", "show", "dall") == ["dall-e-2", "dall-e-3"]


def test_size_follows_the_model_typed_before_it():
    assert complete_bash("imgen", "generate", "-m", "dall-e-2", "-s", "") == DALLE2_SIZES
    assert complete_bash("imgen", "generate", "-m", "dall-e-2", "--size", "5") == ["512x512"]


def test_size_without_model_uses_the_profiles_model(monkeypatch):
    from imgen.models import capabilities

    # The default profile's model is dall-e-3.
    assert complete_bash("imgen", "generate", "-s", "") == capabilities.sizes_for("dall-e-3")
    # A profile from the file, named before the verb or after it.
    write_config('[profiles.small]\nmodel = "dall-e-2"\n')
    assert complete_bash("imgen", "-P", "small", "generate", "-s", "") == DALLE2_SIZES
    assert complete_bash("imgen", "generate", "--profile", "small", "-s", "") == DALLE2_SIZES
    # IMGEN_MODEL outranks the profile, as in a real run.
    monkeypatch.setenv("IMGEN_MODEL", "qwen-image")
    assert complete_bash("imgen", "generate", "-s", "") == capabilities.sizes_for("qwen-image")


def test_size_of_an_unknown_model_offers_nothing():
    assert complete_bash("imgen", "generate", "-m", "no-such-model", "-s", "") == []


def test_profile_offers_builtin_and_file_profiles():
    write_config('[profiles.mine]\nbase_url = "https://example.test"\n')
    assert complete_bash("imgen", "generate", "-P", "") == ["cometapi", "dianming", "mine", "offline", "openai"]
    assert complete_bash("imgen", "-P", "o") == ["offline", "openai"]
    assert complete_bash("imgen", "config", "show", "--profile", "m") == ["mine"]


def test_a_broken_config_costs_suggestions_not_a_traceback():
    write_config("default_profile = [\n")
    assert complete_bash("imgen", "generate", "-P", "") == ["cometapi", "dianming", "offline", "openai"]
    assert complete_bash("imgen", "generate", "-m", "dall-e-2", "-s", "") == DALLE2_SIZES


# --- real shells --------------------------------------------------------------------------

BASH_DRIVER = r"""
script=$1; shift
if [[ $script == bash-completion:* ]]; then
  # The installed layout: bash-completion finds share/bash-completion/completions/imgen
  # through XDG_DATA_DIRS and loads it on the first TAB.
  source "${script#bash-completion:}"
  _completion_loader imgen
else
  source "$script"
fi
complete -p imgen >&2
COMP_WORDS=("$@")
COMP_CWORD=$(( $# - 1 ))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
_imgen_completion imgen "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""


def bash_complete(script: str, *words: str, env: dict[str, str] | None = None) -> list[str]:
    bash = require("bash")
    proc = subprocess.run(
        [bash, "--norc", "--noprofile", "-c", BASH_DRIVER, "bash", script, *words],
        env=env or shell_env(), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "_imgen_completion" in proc.stderr  # `complete -p imgen`: the function is registered
    return [w for w in proc.stdout.splitlines() if w]


@pytest.mark.parametrize(
    "words, expected",
    [
        (["imgen", "gen"], ["generate"]),
        (["imgen", "generate", "--mo"], ["--model", "--moderation"]),
        (["imgen", "models", "s"], ["show"]),
    ],
)
def test_bash_completes_commands_and_options(words, expected):
    assert bash_complete(str(COMPLETIONS / "imgen.bash"), *words) == expected


def test_bash_completes_values():
    script = str(COMPLETIONS / "imgen.bash")
    assert "dall-e-3" in bash_complete(script, "imgen", "generate", "-m", "")
    assert bash_complete(script, "imgen", "generate", "-m", "dall-e-2", "-s", "") == DALLE2_SIZES
    assert "offline" in bash_complete(script, "imgen", "generate", "-P", "")


def test_bash_completion_loads_the_installed_file(tmp_path):
    require("bash-completion", BASH_COMPLETION)
    share = tmp_path / "share"
    (share / "bash-completion" / "completions").mkdir(parents=True)
    shutil.copy(COMPLETIONS / "imgen.bash", share / "bash-completion" / "completions" / "imgen")
    env = shell_env(XDG_DATA_DIRS=f"{share}:/usr/share", BASH_COMPLETION_USER_DIR=str(tmp_path / "none"))
    loader = f"bash-completion:{BASH_COMPLETION}"
    assert bash_complete(loader, "imgen", "gen", env=env) == ["generate"]
    assert "dall-e-3" in bash_complete(loader, "imgen", "generate", "-m", "", env=env)


# zsh completes only inside its line editor, so a real interactive zsh runs on a pseudo-terminal
# (zsh/zpty): type, press TAB, then a key bound to a widget that prints the edited line.
ZSH_DRIVER = r"""
zmodload zsh/zpty || exit 3
setup=$1; shift
zpty z 'zsh -f -i'
zpty -w z "PS1='%% '; bindkey -e; _dump() { zle -I; print -r -- \"BUF<\$BUFFER>\"; BUFFER= }; zle -N _dump; bindkey '^Xd' _dump; $setup; print READY\$((1+1))"
zpty -r z out '*READY2*' || exit 4
for typed in "$@"; do
  zpty -w -n z "$typed"$'\t\C-xd'
  zpty -r z out '*BUF<*>*' || exit 5
  got=${${out##*BUF<}%%>*}
  print -r -- "$got"
done
zpty -w z exit
zpty -d z
"""


def zsh_lines(setup: str, *typed: str) -> list[str]:
    zsh = require("zsh")
    proc = subprocess.run(
        [zsh, "-f", "-c", ZSH_DRIVER, "zsh", setup, *typed],
        env=shell_env(TERM="dumb"), capture_output=True, text=True, timeout=90,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.splitlines()


def test_zsh_completes_from_fpath_on_every_tab(tmp_path):
    # The installed layout: _imgen in a site-functions directory on $fpath, found by compinit.
    functions = tmp_path / "site-functions"
    functions.mkdir()
    shutil.copy(COMPLETIONS / "_imgen", functions / "_imgen")
    setup = f"fpath=({functions} $fpath); autoload -Uz compinit; compinit -u -D"
    # The first TAB of a new shell must complete too (Typer's script alone only beeps there).
    assert zsh_lines(setup, "imgen gen", "imgen gen", "imgen generate --mo", "imgen generate -m dall", "imgen generate -m dall-e-2 -s 51") == [
        "imgen generate ",
        "imgen generate ",
        "imgen generate --mode",  # --model and --moderation share it
        "imgen generate -m dall-e-",
        "imgen generate -m dall-e-2 -s 512x512 ",
    ]


def test_zsh_completes_when_sourced():
    setup = f"autoload -Uz compinit; compinit -u -D; source {COMPLETIONS / '_imgen'}"
    assert zsh_lines(setup, "imgen gen", "imgen generate -P offl") == ["imgen generate ", "imgen generate -P offline "]


def fish_complete(line: str, **env: str) -> list[str]:
    fish = require("fish")
    proc = subprocess.run(
        [fish, "-c", f"complete -C {line!r}"], env=shell_env(**env), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return [row.split("\t")[0] for row in proc.stdout.splitlines()]


def test_fish_completes_from_the_vendor_directory(tmp_path, isolated_env):
    share = tmp_path / "share"
    (share / "fish" / "vendor_completions.d").mkdir(parents=True)
    shutil.copy(COMPLETIONS / "imgen.fish", share / "fish" / "vendor_completions.d" / "imgen.fish")
    env = {
        "XDG_DATA_DIRS": f"{share}:/usr/share",
        "HOME": str(isolated_env),
        "XDG_CONFIG_HOME": str(isolated_env / "config"),
        "XDG_DATA_HOME": str(isolated_env / "data"),
    }
    assert fish_complete("imgen gen", **env) == ["generate"]
    assert "dall-e-3" in fish_complete("imgen generate -m ", **env)
    assert fish_complete("imgen generate -m dall-e-2 -s ", **env) == DALLE2_SIZES
