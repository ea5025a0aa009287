import os

# Plain, wide, colourless output for every in-process CLI test.
os.environ["NO_COLOR"] = "1"
os.environ["TERMINAL_WIDTH"] = "200"
os.environ["_TYPER_FORCE_DISABLE_TERMINAL"] = "1"

import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

API_KEY = "sk-test-CANARY-9f8e7d6c5b4a"

# Every variable imgen reads, so the developer's own environment never leaks into a test.
IMGEN_ENV_PREFIXES = ("IMGEN_",)
KEY_VARS = ("COMETAPI_KEY", "OPENAI_API_KEY", "DIANMING_API_KEY")


def _imgen_executable() -> str:
    found = shutil.which("imgen", path=str(Path(sys.executable).parent)) or shutil.which("imgen")
    if not found:
        raise RuntimeError("the imgen command is not installed: pip install -e '.[test]'")
    return found


IMGEN = _imgen_executable()


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    """Each test gets its own config, credentials and cache directories, and no inherited keys."""
    home = tmp_path_factory.mktemp("home")
    for var in list(os.environ):
        if var.startswith(IMGEN_ENV_PREFIXES) or var in KEY_VARS:
            monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("IMGEN_CONFIG", str(home / "config" / "imgen" / "config.toml"))
    monkeypatch.setenv("IMGEN_CREDENTIALS", str(home / "config" / "imgen" / "credentials.toml"))
    monkeypatch.setenv("IMGEN_CACHE_DIR", str(home / "cache" / "imgen"))
    return home


@pytest.fixture
def server():
    from fakeserver import FakeServer

    with FakeServer(api_key=API_KEY) as srv:
        yield srv


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    stdout_bytes: bytes

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line]


@pytest.fixture
def outdir(tmp_path):
    path = tmp_path / "out"
    path.mkdir()
    return path


@pytest.fixture
def imgen(tmp_path, server):
    """Run the installed imgen as a subprocess against the test server, cwd in a temp dir."""

    def run(*args: str, input: str | bytes | None = None, env: dict | None = None, key: str | None = API_KEY, timeout: float = 60, cwd=None) -> Result:
        full_env = dict(os.environ)
        full_env["IMGEN_BASE_URL"] = server.base_url
        if key is not None:
            full_env["COMETAPI_KEY"] = key
        full_env.update(env or {})
        data = input.encode() if isinstance(input, str) else input
        proc = subprocess.run(
            [IMGEN, *args],
            input=data,
            capture_output=True,
            env=full_env,
            cwd=cwd or tmp_path,
            timeout=timeout,
            stdin=None if data is not None else subprocess.DEVNULL,
        )
        # The key must never reach any output, whatever the test is about.
        for stream in (proc.stdout, proc.stderr):
            assert API_KEY.encode() not in stream, "the API key leaked into imgen's output"
        return Result(proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"), proc.stdout)

    return run
