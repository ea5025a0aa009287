"""README's first commands work as written, and the tool checks behave as README says.

* The first shell block of README.md holds two commands: install and make an image, then the test
  command. The slow test runs the first one with bash in a copy of the checkout, in a fresh
  environment (a new HOME, no venv on PATH), as a newcomer on a stock machine would; it needs PyPI.
* CI (.ci/run) runs README's test command, word for word.
* conftest.require_tool skips a test whose tool is missing, and fails it under IMGEN_REQUIRE_TOOLS
  (checked by running pytest on a generated test file)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from markdown_it import MarkdownIt  # a dependency of rich, so installed with imgen

from conftest import tool_missing

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CI_RUN = ROOT / ".ci" / "run"
TESTS = Path(__file__).resolve().parent
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
# The machine's own network and pip settings (a proxy, a mirror, a CA bundle) reach the fresh
# environment; nothing of the developer's shell or of this test run does.
PASS_THROUGH = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "SSL_CERT_FILE",
                "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "PYENV_ROOT", "PYENV_VERSION", "TMPDIR", "LANG", "LC_ALL")


def first_shell_block() -> list[str]:
    """The commands of README's first sh code block, one per line (comments and blanks dropped)."""
    tokens = MarkdownIt().parse(README.read_text(encoding="utf-8"))
    fence = next((t for t in tokens if t.type == "fence" and t.info.strip() in ("sh", "bash", "shell", "console")), None)
    assert fence is not None, "README.md has no shell code block"
    return [line for line in fence.content.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def intro() -> str:
    text = README.read_text(encoding="utf-8")
    assert "\n## Generating" in text
    return text.split("\n## Generating", 1)[0]


# --- what README says --------------------------------------------------------------------------


def test_readme_starts_with_the_two_commands():
    commands = first_shell_block()
    assert len(commands) == 2, commands
    install, test = commands
    # A venv first: Debian's and Ubuntu's Python refuse `pip install` outside one.
    assert install.startswith("python3 -m venv "), install
    assert "pip install ." in install and "imgen generate" in install and "placeholder" in install
    assert "pytest" in test


def test_readme_names_the_prerequisites():
    text = intro()
    assert "python3-venv" in text
    assert "externally-managed-environment" in text
    assert "3.11" in text  # pyproject's requires-python


def test_ci_runs_readmes_test_command():
    test_command = first_shell_block()[1]
    lines = [line.strip() for line in CI_RUN.read_text(encoding="utf-8").splitlines()]
    assert test_command.strip() in lines, f".ci/run must run README's test command as written: {test_command}"
    assert "export IMGEN_REQUIRE_TOOLS=1" in lines


def test_readme_installs_the_packages_ci_installs():
    ci = set(re.findall(r"missing\+=\(([\w.+-]+)\)", CI_RUN.read_text(encoding="utf-8")))
    assert ci, "no `missing+=(package)` lines in .ci/run"
    apt = re.search(r"^sudo apt install ((?:[\w.+-]+ ?)+)$", README.read_text(encoding="utf-8"), re.M)
    assert apt, "README's Development section has no `sudo apt install ...` line for the test tools"
    assert set(apt.group(1).split()) == ci


# --- README's first command, on a fresh machine ---------------------------------------------------


def source_tree(destination: Path) -> None:
    """The checkout's files (tracked, and new ones not ignored), without venvs or .git."""
    listed = None
    if (ROOT / ".git").exists() and shutil.which("git"):
        done = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                              capture_output=True, timeout=60)
        if done.returncode == 0:
            listed = [name for name in done.stdout.decode().split("\0") if name]
    if listed is None:
        shutil.copytree(ROOT, destination, symlinks=True, ignore=shutil.ignore_patterns(
            ".git", ".venv", ".ci-venv", ".ci-artifacts", "__pycache__", ".pytest_cache", ".hypothesis", "*.egg-info", "build", "dist"))
        return
    for name in listed:
        source = ROOT / name
        if not source.is_file() or source.is_symlink():
            continue  # deleted in the work tree, or a link
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


# A stock Debian/Ubuntu PATH: its python3 is the distribution's, the one that refuses a bare
# `pip install` (externally-managed-environment); python:3.x images keep theirs in /usr/local/bin.
STOCK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def fresh_env(home: Path, stock: bool) -> dict[str, str]:
    """A login-less shell's environment with a new HOME and no venv (this one, the project's) on
    PATH: the stock PATH, or this run's PATH without the venvs."""
    venvs = {Path(sys.prefix).resolve(), (ROOT / ".venv").resolve(), (ROOT / ".ci-venv").resolve()}
    if os.environ.get("VIRTUAL_ENV"):
        venvs.add(Path(os.environ["VIRTUAL_ENV"]).resolve())

    def in_a_venv(entry: str) -> bool:
        path = Path(entry).resolve()
        return any(path == venv or venv in path.parents for venv in venvs)

    inherited = STOCK_PATH if stock else os.environ.get("PATH", os.defpath)
    path = [entry for entry in inherited.split(os.pathsep) if entry and not in_a_venv(entry)]
    env = {"PATH": os.pathsep.join(path), "HOME": str(home), "LANG": "C.UTF-8"}
    env.update({k: v for k, v in os.environ.items() if k in PASS_THROUGH or (k.startswith("PIP_") and k != "PIP_USER")})
    # pip's cache outlives the fresh HOME, so a second run does not download everything again; on a
    # clean machine it starts empty and the run downloads, as a newcomer's would.
    env["PIP_CACHE_DIR"] = os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.mark.slow
@pytest.mark.parametrize("stock", [True, False], ids=["stock-path", "this-path"])
def test_readmes_first_command_makes_an_image_on_a_fresh_machine(tmp_path_factory, stock):
    command = first_shell_block()[0]
    env_probe = fresh_env(Path("/nonexistent"), stock)
    python3 = shutil.which("python3", path=env_probe["PATH"])
    if python3 is None:
        pytest.skip(f"no python3 on {'the stock PATH' if stock else 'PATH'}")
    if stock and python3 == shutil.which("python3", path=fresh_env(Path("/nonexistent"), False)["PATH"]):
        pytest.skip("the stock PATH's python3 is the one on this PATH: the other case runs it")
    version = subprocess.run([python3, "-c", "import sys; print(sys.version_info >= (3, 11))"], capture_output=True, text=True,
                             env=env_probe, timeout=60)
    if version.stdout.strip() != "True":
        pytest.skip(f"{python3} is older than Python 3.11, which README asks for")
    # Not under tmp_path: the copied tests/conftest.py holds the test API key as data, which the
    # check that no key reaches a written file (conftest) would take for a leak.
    machine = tmp_path_factory.mktemp("readme")
    checkout, home = machine / "imgen", machine / "home"
    home.mkdir()
    source_tree(checkout)
    assert (checkout / "pyproject.toml").is_file() and (checkout / "src" / "imgen" / "__init__.py").is_file()
    env = fresh_env(home, stock)
    has_venv = subprocess.run([python3, "-c", "import ensurepip, venv"], env=env, capture_output=True, timeout=60)
    if has_venv.returncode != 0:
        tool_missing("python3 -m venv", "python3-venv")
    before = {p.name for p in checkout.iterdir()}

    done = subprocess.run(["bash", "--noprofile", "--norc", "-c", command], cwd=checkout, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900)

    assert done.returncode == 0, f"README's first command failed:\n{command}\n--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
    made = [checkout / name for name in sorted({p.name for p in checkout.iterdir()} - before) if name.endswith(IMAGE_SUFFIXES)]
    assert len(made) == 1, (made, done.stdout)
    assert made[0].read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    # imgen prints the path of what it saved, last, on stdout.
    assert Path(done.stdout.splitlines()[-1]).name == made[0].name, done.stdout
    # It was the venv's imgen, made by the command, that ran: not one from this test run.
    assert (checkout / ".venv" / "bin" / "imgen").is_file()


# --- the tool check: skip here, fail in CI ---------------------------------------------------------

TINY = '''
from conftest import require_tool


def test_missing_command():
    require_tool("imgen-no-such-tool-7c1e", "imgen-no-such-package")


def test_missing_file():
    require_tool("imgen-no-such-file", "imgen-file-package", path="/nonexistent/imgen-7c1e")


def test_present():
    assert require_tool("imgen-no-such-tool-7c1e", "dash", alternatives=("sh",)).endswith("/sh")
'''


def run_tiny(tmp_path: Path, **env_vars: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_tiny.py").write_text(textwrap.dedent(TINY), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGEN_")}
    env.update(env_vars, PYTHONPATH=str(TESTS), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rsf", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "test_tiny.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


def test_a_missing_tool_skips_naming_its_package(tmp_path):
    done = run_tiny(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed, 2 skipped" in done.stdout
    assert "imgen-no-such-tool-7c1e is not installed (Debian package imgen-no-such-package); .ci/run installs it" in done.stdout
    assert "imgen-no-such-file is not installed (Debian package imgen-file-package)" in done.stdout


def test_a_missing_tool_fails_under_imgen_require_tools(tmp_path):
    done = run_tiny(tmp_path, IMGEN_REQUIRE_TOOLS="1")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 failed, 1 passed" in done.stdout
    assert "imgen-no-such-tool-7c1e is not installed (Debian package imgen-no-such-package), and IMGEN_REQUIRE_TOOLS is set" in done.stdout
    assert "apt-get install imgen-file-package" in done.stdout


def test_require_tools_0_is_off_and_test_without_still_skips(tmp_path):
    assert run_tiny(tmp_path, IMGEN_REQUIRE_TOOLS="0").returncode == 0
    done = run_tiny(tmp_path, IMGEN_REQUIRE_TOOLS="1", IMGEN_TEST_WITHOUT="imgen-no-such-tool-7c1e,imgen-file-package")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "left out with IMGEN_TEST_WITHOUT" in done.stdout
