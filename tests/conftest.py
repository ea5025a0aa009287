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
from typing import NoReturn  # noqa: E402

import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

API_KEY = "sk-test-CANARY-9f8e7d6c5b4a"

# Every variable imgen reads, so the developer's own environment never leaks into a test.
IMGEN_ENV_PREFIXES = ("IMGEN_",)
KEY_VARS = ("COMETAPI_KEY", "OPENAI_API_KEY", "DIANMING_API_KEY")


def interruptible() -> None:
    """preexec_fn for a child a test will Ctrl-C: a runner started in the background by a shell
    without job control ignores SIGINT, and its children would inherit that."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _imgen_executable() -> str:
    found = shutil.which("imgen", path=str(Path(sys.executable).parent)) or shutil.which("imgen")
    if not found:
        raise RuntimeError("the imgen command is not installed: pip install -e '.[test]'")
    return found


IMGEN = _imgen_executable()


# --- tools some tests drive ---------------------------------------------------------------

# Read once, at import: the isolated_env fixture removes every IMGEN_* variable while a test runs.
# .ci/run sets IMGEN_REQUIRE_TOOLS=1 after installing the tools: there a missing one is a failure.
REQUIRE_TOOLS_VAR = "IMGEN_REQUIRE_TOOLS"
REQUIRE_TOOLS = os.environ.get(REQUIRE_TOOLS_VAR, "").strip() not in ("", "0")
# Tools left out on purpose (IMGEN_TEST_WITHOUT=zsh,fish): skipped even under IMGEN_REQUIRE_TOOLS.
TEST_WITHOUT = {t.strip() for t in os.environ.get("IMGEN_TEST_WITHOUT", "").split(",") if t.strip()}


def require_tool(command: str, package: str, *, alternatives: tuple[str, ...] = (), path: str | Path | None = None) -> str:
    """The path of `command` on PATH (or of the first of `alternatives` found; or `path`, a file
    the package installs, when given). When it is missing the test skips, naming the Debian
    package, so README's test command passes on a machine without it; with IMGEN_REQUIRE_TOOLS
    set (as .ci/run sets it) the test fails instead, so CI still proves what the tool checks."""
    if command in TEST_WITHOUT or package in TEST_WITHOUT:
        pytest.skip(f"{command}: left out with IMGEN_TEST_WITHOUT")
    if path is not None:
        found = str(path) if Path(path).exists() else None
    else:
        found = next(filter(None, (shutil.which(name) for name in (command, *alternatives))), None)
    if found:
        return found
    tool_missing(command, package)


def tool_missing(command: str, package: str) -> NoReturn:
    """Skip the test for want of `command`, or fail it where IMGEN_REQUIRE_TOOLS is set."""
    missing = f"{command} is not installed (Debian package {package})"
    if REQUIRE_TOOLS:
        pytest.fail(f"{missing}, and {REQUIRE_TOOLS_VAR} is set: apt-get install {package}", pytrace=False)
    pytest.skip(f"{missing}; .ci/run installs it")


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
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("IMGEN_STATE_DIR", str(home / "state" / "imgen"))  # the task journal
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("IMGEN_DATA_DIR", str(home / "data" / "imgen"))  # the ledger
    # Most tests check that a file holds exactly the bytes the server sent; the provenance tests
    # (test_provenance_e2e.py) turn embedding back on, as it is by default.
    monkeypatch.setenv("IMGEN_METADATA", "none")
    # An in-process run without -o saves into the current directory: never the checkout's.
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    from imgen.models import capabilities

    capabilities.use_user_specs(())  # an in-process test's config file must not outlive it
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


# --- secrets in files ---------------------------------------------------------------------

# The key every imgen run gets; it may never end up in a file other than the credentials file.
# (Other canaries are left out on purpose: some in-process tests write them into config files
# as input, to check they are refused.)
SECRET_CANARIES = (API_KEY,)
CREDENTIALS_FILE = "credentials.toml"


def files_holding_secrets(*roots: Path) -> list[Path]:
    """Files under roots (credentials.toml aside) whose bytes hold one of SECRET_CANARIES."""
    found = []
    needles = [c.encode() for c in SECRET_CANARIES]
    for root in roots:
        if not root.is_dir():
            continue
        for path in root.rglob("*"):
            if path.name == CREDENTIALS_FILE or path.is_symlink() or not path.is_file():
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            if any(n in data for n in needles):
                found.append(path)
    return found


@pytest.fixture(autouse=True)
def no_secret_in_written_files(request, isolated_env):
    """After every test: outputs, sidecars, manifests, config and cache hold no key."""
    roots = [isolated_env]
    if "tmp_path" in request.fixturenames:
        roots.append(request.getfixturevalue("tmp_path"))  # now, while it is sure to exist
    yield
    leaked = files_holding_secrets(*roots)
    assert not leaked, f"an API key was written to {', '.join(map(str, leaked))}"


# --- the network stays on loopback ----------------------------------------------------------

# Loaded into imgen subprocesses through PYTHONPATH: name lookups other than localhost and IP
# literals never reach a DNS server (`.invalid` gets the resolver's own "not known" answer), and a
# connection to any address outside loopback is refused before a packet leaves. Each refusal is
# logged, so a test can assert imgen never even tried.
_NETGUARD = '''
import ipaddress, os, socket

_log = os.environ.get("IMGEN_NETGUARD_LOG")
# name=address pairs the fake resolver answers, e.g. to make a name resolve to 169.254.169.254.
_hosts = dict(p.split("=", 1) for p in os.environ.get("IMGEN_NETGUARD_HOSTS", "").split(",") if "=" in p)
_real_getaddrinfo = socket.getaddrinfo
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _note(text):
    if _log:
        with open(_log, "a", encoding="utf-8") as fh:
            fh.write(text + "\\n")


def _literal(host):
    try:
        return ipaddress.ip_address(str(host).strip("[]").split("%")[0])
    except ValueError:
        return None


def _getaddrinfo(host, *args, **kwargs):
    if host is None or host == "localhost" or _literal(host) is not None:
        return _real_getaddrinfo(host, *args, **kwargs)
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name in _hosts:
        return _real_getaddrinfo(_hosts[name], *args, **kwargs)
    if not name.rstrip(".").endswith(".invalid"):
        _note("dns " + name)
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def _allowed(address):
    if not isinstance(address, tuple):
        return True  # unix sockets
    ip = _literal(address[0])
    if ip is None:
        return False
    if getattr(ip, "ipv4_mapped", None):
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _connect(self, address):
    if not _allowed(address):
        _note("connect %r" % (address,))
        raise OSError(101, "Network is unreachable (netguard)")
    return _real_connect(self, address)


def _connect_ex(self, address):
    if not _allowed(address):
        _note("connect %r" % (address,))
        return 101
    return _real_connect_ex(self, address)


socket.getaddrinfo = _getaddrinfo
socket.socket.connect = _connect
socket.socket.connect_ex = _connect_ex
'''


@pytest.fixture(scope="session")
def netguard_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("netguard")
    (directory / "sitecustomize.py").write_text(_NETGUARD, encoding="utf-8")
    return directory


@pytest.fixture
def netguard(netguard_dir, tmp_path):
    """Environment for an imgen subprocess that cannot reach past loopback; `.log` lists attempts."""

    class Guard(dict):
        log: Path

        def attempts(self) -> list[str]:
            return self.log.read_text(encoding="utf-8").splitlines() if self.log.exists() else []

    guard = Guard(PYTHONPATH=str(netguard_dir), IMGEN_NETGUARD_LOG=str(tmp_path / "netguard.log"))
    guard.log = tmp_path / "netguard.log"
    return guard
