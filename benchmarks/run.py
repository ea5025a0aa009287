#!/usr/bin/env python3
"""imgen benchmarks: one reproducible run, one table of figures.

Starts the local test server (tests/fakeserver.py, standalone) with the latency and image size each
figure needs, runs the installed `imgen` and its comparisons as subprocesses against it, and prints
every series (median, min, max, IQR) and a final table: figure | imgen | comparison | ratio | target | met?

    .venv/bin/python benchmarks/run.py                 # full run (several minutes, ~1.2 GB of temp disk)
    .venv/bin/python benchmarks/run.py --quick         # smoke run: fewer repetitions, smaller sizes
    .venv/bin/python benchmarks/run.py --only startup,oneshot --json results.json

Standard library only. All traffic goes to 127.0.0.1. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FAKESERVER = ROOT / "tests" / "fakeserver.py"
OPENAI_VENV = HERE / ".venv-openai"
OPENAI_PIN = "openai==1.109.1"
API_KEY = "sk-bench-0123456789abcdef"
MiB = 1024 * 1024
FIGURES = ("startup", "oneshot", "batch", "download", "base64", "memory", "upload", "ledger")
PROMPT = "a paper boat floating on calm water at sunrise"


# ------------------------------------------------------------------------------------------------
# Measuring one process: wall time and peak resident memory


# Peak RSS of a child process, and why it is measured this way.
#
# Linux keeps a high-water mark of resident memory per process and hands it to the parent in the
# rusage of wait4() (ru_maxrss, KiB). Two traps make the obvious readings wrong:
#   * resource.getrusage(RUSAGE_CHILDREN) is the maximum over *all* children reaped so far, so after
#     one 500 MiB run every later reading says at least 500 MiB.
#   * Even os.wait4(pid) for one child is contaminated by whoever spawned it: at execve() the kernel
#     folds the high-water mark of the pre-exec address space into the new image's ru_maxrss, and
#     Python's subprocess forks with vfork/CLONE_VM, so that pre-exec space is *this runner's*. A
#     runner holding 200 MiB makes `python -c pass` (8.5 MiB) read as 211 MiB (checked).
#   * Polling /proc/PID/status VmHWM is exact per image but racy: the last sample before exit can
#     miss the final peak, and a zombie's status has no Vm lines any more.
# So every measured command is started by a tiny launcher that forks (a real fork: a fresh copy of
# the launcher's own small address space), execs the command, and reads that child's rusage with
# wait4(): GNU time (`/usr/bin/time -f %M`, ~2 MiB, its child's pre-exec image is ~1 MiB) when it is
# installed, else a minimal Python launcher whose pre-exec image (~9 MiB) is below the smallest
# figure measured here (a Python interpreter alone peaks at ~8.5 MiB; imgen at 25+ MiB).
# For a pipeline (bash -c 'curl | jq; curl'), wait4 reports the largest single process among the
# shell and the children it waited for: the peak of the biggest process, not the sum.

_PY_LAUNCHER = r"""
import os, sys
out, argv = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(out, "w") as fh:
    fh.write("%d\n" % usage.ru_maxrss)
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def _gnu_time() -> str | None:
    path = shutil.which("time", path="/usr/bin:/bin:/usr/local/bin")
    if not path:
        return None
    try:
        with tempfile.NamedTemporaryFile("r") as fh:
            subprocess.run([path, "-f", "%M", "-o", fh.name, "true"], check=True, capture_output=True, timeout=10)
            int(fh.read().strip().splitlines()[-1])
        return path
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


@dataclass
class Run:
    argv: list[str]
    wall: float  # seconds, spawn to reap
    rc: int
    stdout: str
    stderr: str
    maxrss_kib: int | None = None

    def check(self, what: str) -> None:
        if self.rc != 0:
            tail = (self.stderr.strip() or self.stdout.strip())[-600:]
            raise BenchError(f"{what} exited {self.rc}: {tail}")


class BenchError(Exception):
    """A measured command failed: the row is reported as failed, the run goes on."""


class Runner:
    def __init__(self, tmp: Path, env: dict[str, str], launcher: str = "auto") -> None:
        self.tmp = tmp
        self.env = env
        self.gnu_time = _gnu_time() if launcher in ("auto", "gnu-time") else None
        if launcher == "gnu-time" and not self.gnu_time:
            sys.exit("--rss-launcher gnu-time: GNU time is not installed (apt-get install time)")
        self.rss_method = (
            f"GNU time ({self.gnu_time} -f %M): wait4() rusage of a freshly forked child"
            if self.gnu_time
            else "Python fork/exec launcher: wait4() rusage of a freshly forked child"
        )
        self._n = 0

    def run(
        self,
        argv: Sequence[str],
        *,
        rss: bool = False,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        stdin: Path | None = None,
        timeout: float = 900.0,
    ) -> Run:
        """Run argv to completion; wall time from spawn to reap; peak RSS when rss=True."""
        self._n += 1
        out_path = self.tmp / f"run-{self._n}.out"
        err_path = self.tmp / f"run-{self._n}.err"
        rss_path = self.tmp / f"run-{self._n}.rss"
        full = list(argv)
        if rss:
            if self.gnu_time:
                full = [self.gnu_time, "-f", "%M", "-o", str(rss_path), "--", *full]
            else:
                full = [sys.executable, "-c", _PY_LAUNCHER, str(rss_path), *full]
        with open(out_path, "wb") as out, open(err_path, "wb") as err, (
            open(stdin, "rb") if stdin else open(os.devnull, "rb")
        ) as inp:
            started = time.perf_counter()
            proc = subprocess.Popen(full, stdin=inp, stdout=out, stderr=err, env=env or self.env, cwd=cwd or self.tmp)
            timer = threading.Timer(timeout, proc.kill)
            timer.start()
            try:
                proc.wait()
            finally:
                timer.cancel()
            wall = time.perf_counter() - started
        result = Run(
            list(argv),
            wall,
            proc.returncode,
            out_path.read_text("utf-8", "replace"),
            err_path.read_text("utf-8", "replace"),
        )
        for path in (out_path, err_path):
            path.unlink(missing_ok=True)
        if rss:
            try:
                lines = rss_path.read_text().strip().splitlines()
                result.maxrss_kib = int(lines[-1]) if lines else None
            except (OSError, ValueError):
                result.maxrss_kib = None
            rss_path.unlink(missing_ok=True)
            if result.maxrss_kib is None and result.rc == 0:
                raise BenchError(f"no peak RSS reading for {argv[0]}")
        return result


# ------------------------------------------------------------------------------------------------
# Series and rows


@dataclass
class Series:
    name: str
    unit: str  # "s" or "MiB"
    samples: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.samples.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def stats(self) -> dict[str, float]:
        s = sorted(self.samples)
        q1, q3 = (statistics.quantiles(s, n=4, method="inclusive")[::2] if len(s) >= 2 else (s[0], s[0]))
        return {"n": len(s), "median": statistics.median(s), "min": s[0], "max": s[-1], "q1": q1, "q3": q3}


@dataclass
class Row:
    figure: str
    label: str
    imgen: str
    comparison: str
    ratio: str
    target: str
    met: bool | None  # None: no target, or not measurable
    note: str = ""


def fmt_time(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_value(series: Series, value: float) -> str:
    if series.unit == "s":
        return fmt_time(value)
    if series.unit == "MiB/s":
        return f"{value:.0f} MiB/s"
    return f"{value:.1f} {series.unit}"


def fmt_series(series: Series | None) -> str:
    """median [min–max]"""
    if series is None or not series.samples:
        return "n/a"
    st = series.stats()
    return f"{fmt_value(series, st['median'])} [{fmt_value(series, st['min'])}–{fmt_value(series, st['max'])}]"


class Report:
    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.series: dict[str, list[Series]] = {}
        self.notes: dict[str, list[str]] = {}
        self.seconds: dict[str, float] = {}
        self.load: dict[str, tuple[float, float]] = {}  # 1-min load average before/after each figure

    def add_series(self, figure: str, *series: Series) -> None:
        self.series.setdefault(figure, []).extend(s for s in series if s.samples)

    def row(self, *args: Any, **kw: Any) -> None:
        self.rows.append(Row(*args, **kw))

    def note(self, figure: str, text: str) -> None:
        self.notes.setdefault(figure, []).append(text)
        log(f"  note: {text}")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def na(reason: str) -> str:
    return f"n/a ({reason})"


# ------------------------------------------------------------------------------------------------
# The local test server


@dataclass
class Server:
    base_url: str
    proc: subprocess.Popen


@contextmanager
def fake_server(tmp: Path, *, latency: float = 0.0, image_bytes: int | None = None) -> Iterator[Server]:
    """tests/fakeserver.py standalone: its first stdout line is its base URL; SIGTERM stops it."""
    argv = [sys.executable, str(FAKESERVER), "--host", "127.0.0.1", "--port", "0", "--latency", str(latency), "--api-key", API_KEY]
    if image_bytes:
        argv += ["--image-bytes", str(image_bytes)]
    with open(tmp / "fakeserver.err", "ab") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        try:
            ready, _, _ = select.select([proc.stdout], [], [], 20)
            line = proc.stdout.readline().decode().strip() if ready else ""
            if not line.startswith("http://127.0.0.1:"):
                raise RuntimeError(f"the test server did not start (got {line!r}); see {tmp / 'fakeserver.err'}")
            yield Server(line, proc)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()


def post_generation(server: Server, body: dict[str, Any]) -> tuple[dict[str, Any] | None, int]:
    """A direct POST from the runner, body streamed and counted; returns (JSON if small, body size)."""
    request = urllib.request.Request(
        server.base_url + "/v1/images/generations",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    size, keep = 0, []
    with opener.open(request, timeout=600) as response:
        while chunk := response.read(MiB):
            size += len(chunk)
            if size <= MiB:
                keep.append(chunk)
    return (json.loads(b"".join(keep)) if size <= MiB else None), size


# ------------------------------------------------------------------------------------------------
# Tools and the environment


def clean_env(tmp: Path) -> dict[str, str]:
    """The runner's environment without anything that could steer imgen, curl or the SDK elsewhere."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IMGEN_", "OPENAI_"))
        and k not in ("COMETAPI_KEY", "DIANMING_API_KEY", "CI", "FORCE_COLOR", "COLUMNS", "LINES", "TERMINAL_WIDTH")
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    home = tmp / "home"
    (home / "config").mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "NO_COLOR": "1",
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_CACHE_HOME": str(home / "cache"),
            "IMGEN_CONFIG": str(home / "config" / "imgen" / "config.toml"),
            "IMGEN_CREDENTIALS": str(home / "config" / "imgen" / "credentials.toml"),
            "IMGEN_CACHE_DIR": str(home / "cache" / "imgen"),
        }
    )
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # start-up figures assume the usual bytecode cache
    return env


def find_imgen() -> tuple[str, str]:
    """(imgen executable, the interpreter its launcher runs): the venv next to this runner first."""
    candidates = [Path(sys.executable).parent / "imgen", ROOT / ".venv" / "bin" / "imgen"]
    found = next((str(c) for c in candidates if c.exists()), None) or shutil.which("imgen")
    if not found:
        sys.exit("imgen is not installed: run `python3 -m venv .venv && .venv/bin/pip install -e .` first")
    python = sys.executable
    try:
        first = Path(found).read_bytes()[:300].split(b"\n", 1)[0].decode()
        if first.startswith("#!") and Path(first[2:].strip().split()[0]).exists():
            python = first[2:].strip().split()[0]
    except (OSError, UnicodeDecodeError, IndexError):
        pass
    return found, python


TOOL_HINTS = {
    "curl": "apt-get install curl",
    "jq": "apt-get install jq",
    "xargs": "apt-get install findutils",
    "bash": "apt-get install bash",
}


class Tools:
    def __init__(self) -> None:
        self.paths = {name: shutil.which(name) for name in TOOL_HINTS}
        self._warned: set[str] = set()

    def missing(self, *names: str) -> list[str]:
        gone = [n for n in names if not self.paths.get(n)]
        for n in gone:
            if n not in self._warned:
                self._warned.add(n)
                log(f"imgen-bench: `{n}` is not installed; rows comparing against it say n/a. Install it with: {TOOL_HINTS[n]}")
        return gone


def openai_cli(tmp: Path, env: dict[str, str], python: str, allow_install: bool) -> tuple[str | None, str]:
    """The OpenAI SDK's own CLI (openai==1.109.1) from a scratch venv; (path, reason if missing)."""
    exe = OPENAI_VENV / "bin" / "openai"
    stamp = OPENAI_VENV / ".installed"
    if exe.exists() and stamp.exists() and stamp.read_text().strip() == OPENAI_PIN:
        return str(exe), ""
    if not allow_install:
        return None, "not installed; run without --no-install"
    log(f"imgen-bench: installing {OPENAI_PIN} into {OPENAI_VENV} (once) ...")
    pip_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    try:
        subprocess.run([python, "-m", "venv", "--clear", str(OPENAI_VENV)], check=True, capture_output=True, timeout=300)
        subprocess.run(
            [str(OPENAI_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", OPENAI_PIN],
            check=True, capture_output=True, timeout=900, env=pip_env,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        log(f"imgen-bench: could not install {OPENAI_PIN}: {exc} {detail.decode(errors='replace')[-400:]}")
        return None, "SDK install failed"
    if not exe.exists():
        return None, "SDK installed no `openai` command"
    stamp.write_text(OPENAI_PIN + "\n")
    return str(exe), ""


# ------------------------------------------------------------------------------------------------
# The commands compared


CURL_RECIPE = r"""set -o pipefail
url=$(curl -s -X POST "$BENCH_BASE/v1/images/generations" -H "Authorization: Bearer $BENCH_KEY" \
      -H 'Content-Type: application/json' -d "$BENCH_BODY" | jq -r '.data[].url') || exit 1
curl -s -o "$BENCH_OUT" "$url"
"""

# One batch job for xargs: $1 is the job number.
XARGS_JOB = r"""set -o pipefail
url=$(curl -s -X POST "$BENCH_BASE/v1/images/generations" -H "Authorization: Bearer $BENCH_KEY" \
      -H 'Content-Type: application/json' -d "{\"model\":\"dall-e-2\",\"prompt\":\"batch prompt $1\"}" \
      | jq -r '.data[].url') || exit 1
curl -s -o "$BENCH_OUT/job-$1.png" "$url"
"""


# The base64 figure's comparison: the same POST, its body read and thrown away.
CURL_POST_ONLY = (
    'curl -s -o /dev/null -X POST "$BENCH_BASE/v1/images/generations" '
    '-H "Authorization: Bearer $BENCH_KEY" -H "Content-Type: application/json" -d "$BENCH_BODY"'
)


@dataclass
class Ctx:
    args: argparse.Namespace
    tmp: Path
    runner: Runner
    tools: Tools
    imgen: str
    python: str
    report: Report
    reps: Callable[[int, int], int]

    def imgen_env(self, server: Server) -> dict[str, str]:
        return {**self.runner.env, "IMGEN_BASE_URL": server.base_url, "IMGEN_API_KEY": API_KEY}

    def fresh_dir(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.tmp))
        return path


def images_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".gif"))


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# imgen embeds its provenance record and an XMP packet (about 1 KiB today); anything past this
# would no longer be "the image plus its metadata".
METADATA_ROOM = 64 * 1024


def check_saved(out: Path, size: int | None, what: str, *, count: int = 1, embedded: bool = True) -> list[int]:
    """The images in `out` are what was served: with provenance embedded (the default) each is a
    PNG of `size` to `size` + 64 KiB bytes, with --metadata none exactly `size` bytes. A `size` of
    None (a tiny image) checks only the count and the PNG signature. Returns the sizes."""
    files = images_in(out)
    sizes = [f.stat().st_size for f in files]
    wanted = f"{count} file{'s' if count != 1 else ''}"
    if size is not None:
        wanted += f" of {size} bytes" + (f" (+ ≤ {METADATA_ROOM} bytes of metadata)" if embedded else "")
    if len(files) != count:
        raise BenchError(f"{what} saved {sizes} bytes, expected {wanted}")
    for path, got in zip(files, sizes):
        with open(path, "rb") as fh:
            if fh.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
                raise BenchError(f"{what} saved {path.name}, which is not a PNG")
        if size is not None and not (size <= got <= size + METADATA_ROOM if embedded else got == size):
            raise BenchError(f"{what} saved {sizes} bytes, expected {wanted}")
    return sizes


def imgen_oneshot(ctx: Ctx, server: Server, out: Path, *extra: str, rss: bool = False) -> Run:
    argv = [ctx.imgen, "generate", "-m", "dall-e-2", "-q", "-o", str(out), *extra, PROMPT]
    run = ctx.runner.run(argv, rss=rss, env=ctx.imgen_env(server))
    run.check("imgen generate")
    return run


def run_saving(ctx: Ctx, argv: list[str], out: Path, expected: int, what: str, **kw: Any) -> Run:
    """Run a command that saves `expected` images into `out`: checked, counted, then removed."""
    run = ctx.runner.run(argv, **kw)
    run.check(what)
    saved = len(images_in(out))
    shutil.rmtree(out, ignore_errors=True)
    if saved != expected:
        raise BenchError(f"{what} saved {saved} of {expected} images")
    return run


def curl_recipe(ctx: Ctx, server: Server, out_file: Path) -> Run:
    env = {
        **ctx.runner.env,
        "BENCH_BASE": server.base_url,
        "BENCH_KEY": API_KEY,
        "BENCH_BODY": json.dumps({"model": "dall-e-2", "prompt": PROMPT}),
        "BENCH_OUT": str(out_file),
    }
    run = ctx.runner.run(["bash", "-c", CURL_RECIPE], env=env)
    run.check("curl + jq + curl")
    if not out_file.exists() or out_file.stat().st_size == 0:
        raise BenchError("curl + jq + curl wrote no file")
    return run


# ------------------------------------------------------------------------------------------------
# Figures


def fig_startup(ctx: Ctx) -> None:
    """imgen --version / --help / generate --help against `python -c pass` on imgen's interpreter."""
    reps = ctx.reps(25, 5)
    cmds = {
        "python -c pass": [ctx.python, "-c", "pass"],
        "imgen --version": [ctx.imgen, "--version"],
        "imgen --help": [ctx.imgen, "--help"],
        "imgen generate --help": [ctx.imgen, "generate", "--help"],
    }
    series = {name: Series(name, "s") for name in cmds}
    for argv in cmds.values():  # warm-up: bytecode caches, page cache
        ctx.runner.run(argv).check(" ".join(argv[1:]) or argv[0])
    for _ in range(reps):  # interleaved, so drift hits every command alike
        for name, argv in cmds.items():
            run = ctx.runner.run(argv)
            run.check(name)
            series[name].add(run.wall)
    ctx.report.add_series("startup", *series.values())
    base = series["python -c pass"]
    v = series["imgen --version"]
    over = v.median - base.median
    ctx.report.row(
        "startup", "imgen --version", fmt_series(v), f"python -c pass {fmt_series(base)}",
        f"+{over * 1000:.1f} ms", "≤ +60 ms over python -c pass", over <= 0.060,
    )
    h = series["imgen --help"]
    ctx.report.row(
        "startup", "imgen --help", fmt_series(h), f"python -c pass {fmt_time(base.median)}",
        f"+{(h.median - base.median) * 1000:.0f} ms", "—", None,
    )
    g = series["imgen generate --help"]
    ctx.report.row(
        "startup", "imgen generate --help", fmt_series(g), f"python -c pass {fmt_time(base.median)}",
        f"+{(g.median - base.median) * 1000:.0f} ms", "< 250 ms", g.median < 0.250,
    )


# The libraries imgen cannot start without: importing them is the floor under its fixed cost.
IMPORT_FLOOR = "import typer, httpx, rich"


def fig_oneshot(ctx: Ctx) -> None:
    """One generate (request, download, verified write) vs importing its libraries, curl+jq+curl
    and the OpenAI SDK's CLI."""
    reps = ctx.reps(10, 3)
    missing = ctx.tools.missing("bash", "curl", "jq")
    sdk, sdk_reason = openai_cli(ctx.tmp, ctx.runner.env, ctx.python, not ctx.args.no_install)
    if not sdk:
        log(f"imgen-bench: OpenAI CLI comparison unavailable: {sdk_reason}")
    s_imgen = Series("imgen generate", "s")
    s_curl = Series("curl + jq + curl", "s")
    s_sdk = Series("openai api images.generate", "s")
    s_import = Series(f'python -c "{IMPORT_FLOOR}"', "s")
    probe = ctx.runner.run([ctx.python, "-c", IMPORT_FLOOR])
    import_reason = "" if probe.rc == 0 else f"{IMPORT_FLOOR} fails on {ctx.python}"
    with fake_server(ctx.tmp, latency=0.0) as server:
        sdk_env = {**ctx.runner.env, "OPENAI_BASE_URL": server.base_url + "/v1", "OPENAI_API_KEY": API_KEY}
        sdk_argv = [sdk or "openai", "api", "images.generate", "-m", "dall-e-2", "-p", PROMPT]

        def once(record: bool) -> None:
            out = ctx.fresh_dir("oneshot")
            run = imgen_oneshot(ctx, server, out)
            if len(images_in(out)) != 1:
                raise BenchError(f"imgen wrote {len(images_in(out))} images, expected 1")
            if record:
                s_imgen.add(run.wall)
            if not import_reason:
                run = ctx.runner.run([ctx.python, "-c", IMPORT_FLOOR])
                run.check(IMPORT_FLOOR)
                if record:
                    s_import.add(run.wall)
            if not missing:
                run = curl_recipe(ctx, server, out / "curl.png")
                if record:
                    s_curl.add(run.wall)
            if sdk:
                run = ctx.runner.run(sdk_argv, env=sdk_env)
                run.check("openai api images.generate")
                if '"url"' not in run.stdout:
                    raise BenchError(f"the OpenAI CLI printed no image URL: {run.stdout[:200]!r}")
                if record:
                    s_sdk.add(run.wall)
            shutil.rmtree(out, ignore_errors=True)

        once(False)  # warm-up
        for _ in range(reps):
            once(True)
    ctx.report.add_series("oneshot", s_imgen, s_import, s_curl, s_sdk)
    if import_reason:
        ctx.report.row("oneshot", "one-shot fixed cost", fmt_series(s_imgen), na(import_reason), "n/a", "≤ +60 ms", None)
    else:
        over = s_imgen.median - s_import.median
        ctx.report.row("oneshot", "one-shot fixed cost", fmt_series(s_imgen), f"{IMPORT_FLOOR} {fmt_series(s_import)}",
                       f"{over * 1000:+.0f} ms over {IMPORT_FLOOR}", "≤ +60 ms", over <= 0.060)
    curl_cell = na(f"tool missing: {', '.join(missing)}") if missing else fmt_series(s_curl)
    ctx.report.row(
        "oneshot", "one-shot vs curl+jq+curl", fmt_series(s_imgen), curl_cell,
        "n/a" if missing else f"{s_imgen.median / s_curl.median:.2f}× curl's time", "—", None,
    )
    sdk_cell = fmt_series(s_sdk) if sdk else na(sdk_reason)
    speedup = s_sdk.median / s_imgen.median if sdk else None
    ctx.report.row(
        "oneshot", "one-shot vs OpenAI CLI (no download)", fmt_series(s_imgen), sdk_cell,
        f"{speedup:.2f}× faster" if speedup else "n/a", "≥ 3× faster", (speedup >= 3.0) if speedup else None,
    )


def batch_available(ctx: Ctx) -> tuple[bool, str]:
    """--batch in `imgen generate --help` and a trial batch of two prompts that saves two images."""
    help_run = ctx.runner.run([ctx.imgen, "generate", "--help"], env={**ctx.runner.env, "COLUMNS": "200"})
    if "--batch" not in help_run.stdout:
        return False, "no --batch in this imgen"
    with fake_server(ctx.tmp, latency=0.0) as server:
        jobs = ctx.tmp / "trial-batch.txt"
        jobs.write_text("trial prompt one\ntrial prompt two\n")
        out = ctx.fresh_dir("batch-trial")
        run = ctx.runner.run(
            [ctx.imgen, "generate", "--batch", str(jobs), "--concurrency", "2", "-m", "dall-e-2", "-q", "-o", str(out)],
            env=ctx.imgen_env(server), timeout=120,
        )
        found = len(images_in(out))
        shutil.rmtree(out, ignore_errors=True)
    if run.rc != 0 or found != 2:
        detail = " / ".join(line.strip() for line in run.stderr.strip().splitlines()[-2:])[:160]
        log(f"imgen-bench: --batch trial failed (exit {run.rc}, {found} of 2 images): {detail}")
        return False, f"--batch trial failed: exit {run.rc}"
    return True, ""


def fig_batch(ctx: Ctx) -> None:
    """N prompts at 1 s server latency, 8 in flight: vs the ideal and vs xargs -P 8 + the curl recipe."""
    quick = ctx.args.quick
    sizes = [32, 64] if quick else [64, 256]
    latency, conc = 1.0, 8
    reps = ctx.reps(3, 1)
    ok, reason = batch_available(ctx)
    missing = ctx.tools.missing("bash", "curl", "jq", "xargs")
    if not ok:
        ctx.report.note("batch", f"imgen batch mode: {reason}")
    with fake_server(ctx.tmp, latency=latency) as server:
        for jobs in sizes:
            ideal = jobs * latency / conc
            s_imgen = Series(f"imgen --batch ({jobs} jobs)", "s")
            s_xargs = Series(f"xargs -P {conc} curl recipe ({jobs} jobs)", "s")
            prompts = ctx.tmp / f"batch-{jobs}.txt"
            prompts.write_text("".join(f"batch prompt {i}\n" for i in range(1, jobs + 1)))
            numbers = ctx.tmp / f"batch-{jobs}.numbers"
            numbers.write_text("".join(f"{i}\n" for i in range(1, jobs + 1)))
            for _ in range(reps):
                if ok:
                    out = ctx.fresh_dir("batch-imgen")
                    argv = [ctx.imgen, "generate", "--batch", str(prompts), "--concurrency", str(conc), "-m", "dall-e-2", "-q", "-o", str(out)]
                    s_imgen.add(run_saving(ctx, argv, out, jobs, "imgen --batch", env=ctx.imgen_env(server)).wall)
                if not missing:
                    out = ctx.fresh_dir("batch-xargs")
                    env = {**ctx.runner.env, "BENCH_BASE": server.base_url, "BENCH_KEY": API_KEY, "BENCH_OUT": str(out)}
                    argv = ["xargs", "-P", str(conc), "-n", "1", "bash", "-c", XARGS_JOB, "_"]
                    s_xargs.add(run_saving(ctx, argv, out, jobs, "xargs + curl recipe", env=env, stdin=numbers).wall)
            ctx.report.add_series("batch", s_imgen, s_xargs)
            label = f"batch {jobs} × {latency:g} s, -j {conc}"
            if ok:
                eff = ideal / s_imgen.median
                ctx.report.row("batch", f"{label}: vs ideal", fmt_series(s_imgen), f"ideal {fmt_time(ideal)}",
                               f"{eff:.1%} of ideal", "≥ 90% of ideal", eff >= 0.90)
            else:
                ctx.report.row("batch", f"{label}: vs ideal", na(reason), f"ideal {fmt_time(ideal)}", "n/a", "≥ 90% of ideal", None)
            x_cell = na(f"tool missing: {', '.join(missing)}") if missing else fmt_series(s_xargs)
            if ok and not missing:
                r = s_imgen.median / s_xargs.median
                ctx.report.row("batch", f"{label}: vs xargs -P {conc}", fmt_series(s_imgen), x_cell,
                               f"{r:.3f}× xargs' time", "≤ xargs (±2% noise)", r <= 1.02)
            else:
                ctx.report.row("batch", f"{label}: vs xargs -P {conc}", fmt_series(s_imgen) if ok else na(reason), x_cell,
                               "n/a", "≤ xargs (±2% noise)", None)


def _sync_file_works(ctx: Ctx) -> bool:
    """coreutils `sync FILE` (8.24+) fsyncs just that file: curl's equal of imgen's fsync before rename."""
    probe = ctx.tmp / "sync-probe"
    probe.write_bytes(b"x")
    try:
        return shutil.which("sync") is not None and ctx.runner.run(["sync", str(probe)]).rc == 0
    finally:
        probe.unlink(missing_ok=True)


def fmt_size(size: int) -> str:
    return f"{size // (1024 * MiB)} GiB" if size % (1024 * MiB) == 0 else f"{size / MiB:g} MiB"


def imgen_download(ctx: Ctx, server: Server, size: int | None, *, metadata: str | None, rss: bool,
                   max_download: str = "1G") -> tuple[Run, int]:
    """One `imgen generate` of the server's image, its saved file checked and removed; (run, bytes saved)."""
    out = ctx.fresh_dir("download")
    extra = ["--max-download", max_download, *(["--metadata", metadata] if metadata else [])]
    try:
        run = imgen_oneshot(ctx, server, out, *extra, rss=rss)
        saved = check_saved(out, size, "imgen generate", embedded=metadata != "none")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return run, saved[0]


CURL_GET = 'exec curl -s -o "$BENCH_OUT" "$BENCH_URL"'  # exec: GNU time then measures curl, not bash
CURL_GET_SYNC = 'curl -s -o "$BENCH_OUT" "$BENCH_URL" && sync "$BENCH_OUT"'


def curl_download(ctx: Ctx, server: Server, size: int | None, script: str, *, rss: bool) -> Run:
    """curl of a freshly signed URL (asked for by the runner, outside the timing), the file checked."""
    payload, _ = post_generation(server, {"model": "dall-e-2", "prompt": PROMPT})
    target = ctx.tmp / "curl-download.png"
    env = {**ctx.runner.env, "BENCH_URL": payload["data"][0]["url"], "BENCH_OUT": str(target)}
    try:
        run = ctx.runner.run(["bash", "-c", script], env=env, rss=rss)
        run.check("curl -o")
        got = target.stat().st_size if target.exists() else 0
    finally:
        target.unlink(missing_ok=True)
    if (got != size) if size is not None else (got == 0):
        raise BenchError(f"curl saved {got} bytes, expected {size if size is not None else 'an image'}")
    return run


@dataclass
class Phase:
    """A command's download phase: its wall time on the big image minus its wall time on a tiny
    one, the two run back to back in the same repetition, so start-up, the API request and the
    connection cancel out and what is left is the transfer, the checks and the write."""

    big: Series
    tiny: Series
    phase: Series

    @classmethod
    def named(cls, name: str, size: int) -> Phase:
        return cls(Series(f"{name}, {fmt_size(size)} image: wall", "s"), Series(f"{name}, tiny image: wall", "s"),
                   Series(f"{name}: download phase ({fmt_size(size)} − tiny)", "s"))

    def add(self, big: Run, tiny: Run) -> None:
        self.big.add(big.wall)
        self.tiny.add(tiny.wall)
        self.phase.add(big.wall - tiny.wall)

    def all(self) -> tuple[Series, Series, Series]:
        return self.big, self.tiny, self.phase

    def cell(self, size: int) -> str:
        median = self.phase.median
        rate = f" · {size / MiB / median:.0f} MiB/s" if median > 0 else ""
        return f"{fmt_series(self.phase)}{rate}"


def fig_download(ctx: Ctx) -> None:
    """The download phase of one big image from a signed URL, imgen (with and without embedded
    provenance) against curl -o and curl -o && sync FILE; and imgen's peak RSS."""
    size = (64 if ctx.args.quick else 512) * MiB
    reps = ctx.reps(5, 2)
    missing = ctx.tools.missing("bash", "curl")
    with_sync = not missing and _sync_file_works(ctx)
    modes = {"--metadata none": "none", "provenance embedded, the default": None}
    imgen = {mode: Phase.named(f"imgen generate ({mode})", size) for mode in modes}
    rss = {mode: Series(f"imgen generate ({mode}), {fmt_size(size)} image: peak RSS", "MiB") for mode in modes}
    curl = Phase.named("curl -o", size)
    curl_sync = Phase.named("curl -o && sync FILE", size)
    s_curl_rss = Series(f"curl -o, {fmt_size(size)} image: peak RSS", "MiB")
    embedded_bytes: list[int] = []
    with contextlib.ExitStack() as stack:
        big = stack.enter_context(fake_server(ctx.tmp, latency=0.0, image_bytes=size))
        tiny = stack.enter_context(fake_server(ctx.tmp, latency=0.0))

        def once(record: bool) -> None:
            # imgen and curl take turns; each big run is followed by its tiny counterpart, run the
            # same way (same launcher, same flags), so the difference is the download alone.
            for (mode, metadata), (other, script) in zip(modes.items(), ((curl, CURL_GET), (curl_sync, CURL_GET_SYNC))):
                b, saved = imgen_download(ctx, big, size, metadata=metadata, rss=True)
                t, _ = imgen_download(ctx, tiny, None, metadata=metadata, rss=True)
                if record:
                    imgen[mode].add(b, t)
                    rss[mode].add(b.maxrss_kib / 1024)
                    if metadata is None:
                        embedded_bytes.append(saved - size)
                if missing or (other is curl_sync and not with_sync):
                    continue
                measure_rss = other is curl
                b = curl_download(ctx, big, size, script, rss=measure_rss)
                t = curl_download(ctx, tiny, None, script, rss=measure_rss)
                if record:
                    other.add(b, t)
                    if measure_rss:
                        s_curl_rss.add(b.maxrss_kib / 1024)

        once(False)  # warm-up: bytecode and page caches; the server hashes the padded image once per size
        for _ in range(reps):
            once(True)
    ctx.report.add_series("download", *(s for mode in modes for s in (*imgen[mode].all(), rss[mode])),
                          *curl.all(), *curl_sync.all(), s_curl_rss)
    if embedded_bytes and max(embedded_bytes) == 0:
        ctx.report.note("download", "the default run saved exactly the served bytes: no provenance was embedded")
    label = f"download {fmt_size(size)} phase"
    for mode in modes:
        mine = imgen[mode]
        for other, name, target, least, word in (
            (curl_sync, "curl -o && sync", "≥ 1.25× faster than curl -o && sync", 1.25, "faster"),
            (curl, "curl -o", "≥ 0.5× curl -o", 0.5, "curl's speed"),
        ):
            row_label = f"{label} vs {name} ({mode})"
            if missing or (other is curl_sync and not with_sync):
                reason = f"tool missing: {', '.join(missing)}" if missing else "this sync cannot sync one FILE"
                ctx.report.row("download", row_label, mine.cell(size), na(reason), "n/a", target, None)
                continue
            comparison = f"{name} {other.cell(size)}"
            if mine.phase.median <= 0 or other.phase.median <= 0:
                ctx.report.row("download", row_label, mine.cell(size), comparison, "n/a (a phase ≤ 0: noise)", target, None)
                continue
            r = other.phase.median / mine.phase.median
            text = f"{r:.2f}× {word}" if word != "faster" or r >= 1 else f"{1 / r:.2f}× slower"
            ctx.report.row("download", row_label, mine.cell(size), comparison, text, target, r >= least)
    peak = rss["provenance embedded, the default"]
    if s_curl_rss.samples:
        comparison, ratio = f"curl -o {fmt_series(s_curl_rss)}", f"{peak.median / s_curl_rss.median:.1f}× curl"
    else:
        comparison, ratio = na(f"tool missing: {', '.join(missing)}"), "n/a"
    ctx.report.row("download", f"download {fmt_size(size)}: peak RSS (the default)", fmt_series(peak), comparison,
                   ratio, "≤ 64 MiB", peak.median <= 64)


def fig_base64(ctx: Ctx) -> None:
    each = (4 if ctx.args.quick else 32) * MiB
    n = 4
    reps = ctx.reps(3, 2)
    missing = ctx.tools.missing("curl")
    body = {"model": "dall-e-2", "prompt": PROMPT, "n": n, "response_format": "b64_json"}
    s_wall = Series(f"imgen -n {n} b64_json {each // MiB} MiB each: wall", "s")
    s_rss = Series(f"imgen -n {n} b64_json {each // MiB} MiB each: peak RSS", "MiB")
    s_curl = Series("curl POST, body → /dev/null: wall", "s")
    s_flat = Series("imgen -n 1 b64_json tiny image: peak RSS", "MiB")
    extra = ("-n", str(n), "--response-format", "b64_json", "--max-download", "1G")
    with fake_server(ctx.tmp, latency=0.0, image_bytes=each) as server:
        _, body_size = post_generation(server, body)  # also the warm-up of the server's caches
        env = {
            **ctx.runner.env,
            "BENCH_BASE": server.base_url,
            "BENCH_KEY": API_KEY,
            "BENCH_BODY": json.dumps(body),
        }
        for _ in range(reps):
            out = ctx.fresh_dir("b64")
            try:
                run = imgen_oneshot(ctx, server, out, *extra, rss=True)
                check_saved(out, each, "imgen -n b64_json", count=n)
            finally:
                shutil.rmtree(out, ignore_errors=True)
            s_wall.add(run.wall)
            s_rss.add(run.maxrss_kib / 1024)
            if not missing:
                run = ctx.runner.run(
                    ["bash", "-c", CURL_POST_ONLY],
                    env=env,
                )
                run.check("curl POST")
                s_curl.add(run.wall)
    with fake_server(ctx.tmp, latency=0.0) as server:  # the flat reference: same path, tiny image
        for _ in range(reps):
            out = ctx.fresh_dir("b64-tiny")
            try:
                run = imgen_oneshot(ctx, server, out, "--response-format", "b64_json", rss=True)
                check_saved(out, None, "imgen b64_json, tiny image")
            finally:
                shutil.rmtree(out, ignore_errors=True)
            s_flat.add(run.maxrss_kib / 1024)
    ctx.report.add_series("base64", s_wall, s_rss, s_curl, s_flat)
    body_mib = body_size / MiB
    label = f"base64 {n} × {each // MiB} MiB"
    ctx.report.row("base64", f"{label}: peak RSS vs body", fmt_series(s_rss), f"body {body_mib:.1f} MiB",
                   f"{s_rss.median / body_mib:.2f}× body", "≤ 2× body", s_rss.median <= 2 * body_mib)
    growth = s_rss.median - s_flat.median
    ctx.report.row("base64", f"{label}: stretch, flat", fmt_series(s_rss), f"tiny b64 image {fmt_series(s_flat)}",
                   f"{growth:+.1f} MiB", "flat (≤ +8 MiB)", growth <= 8)
    ctx.report.row("base64", f"{label}: wall vs receiving the body", fmt_series(s_wall),
                   na("tool missing: curl") if missing else f"curl POST → /dev/null {fmt_series(s_curl)}",
                   f"{s_wall.median / s_curl.median:.2f}× curl's time" if not missing else "n/a", "—", None)


def fig_memory(ctx: Ctx) -> None:
    """imgen's peak RSS over download sizes up to 1 GiB, the sizes taking turns in each repetition."""
    sizes = [m * MiB for m in ((1, 16, 64) if ctx.args.quick else (1, 64, 512, 1024))]
    reps = ctx.reps(3, 2)
    peaks = {size: Series(f"imgen generate, {fmt_size(size)} image: peak RSS", "MiB") for size in sizes}
    with contextlib.ExitStack() as stack:
        servers = {size: stack.enter_context(fake_server(ctx.tmp, latency=0.0, image_bytes=size)) for size in sizes}
        for server in servers.values():
            post_generation(server, {"model": "dall-e-2", "prompt": PROMPT})  # the server hashes its padded image once
        imgen_download(ctx, servers[sizes[0]], sizes[0], metadata=None, rss=True, max_download="2G")  # warm-up
        for _ in range(reps):
            for size, server in servers.items():
                run, _ = imgen_download(ctx, server, size, metadata=None, rss=True, max_download="2G")
                peaks[size].add(run.maxrss_kib / 1024)
    ctx.report.add_series("memory", *peaks.values())
    base = peaks[sizes[0]]
    for size, s in peaks.items():
        ctx.report.row("memory", f"peak RSS, {fmt_size(size)} download", fmt_series(s),
                       f"{fmt_size(sizes[0])}: {fmt_value(base, base.median)}",
                       f"{s.median - base.median:+.1f} MiB", "< 64 MiB", s.median < 64)
    growth = peaks[sizes[-1]].median - base.median
    span = (sizes[-1] - sizes[0]) / MiB
    ctx.report.row("memory", f"growth {fmt_size(sizes[0])} → {fmt_size(sizes[-1])}", f"{growth:+.1f} MiB",
                   f"size +{span:g} MiB", f"{growth / span:.2%} of size", "flat (≤ +8 MiB)", growth <= 8)


def _padded_png(path: Path, total: int) -> Path:
    """A valid 1024x1024 RGBA PNG of `total` bytes: a private ancillary chunk pads it, which any
    reader skips, so the upload is as big as a photo's without encoding one."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    idat = chunk(b"IDAT", zlib.compress(b"".join(b"\0" + bytes(4096) for _ in range(1024))))
    head = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1024, 1024, 8, 6, 0, 0, 0))
    pad = total - len(head) - len(idat) - 12 - 12  # the padding chunk's and IEND's framing
    path.write_bytes(head + chunk(b"paDd", bytes(pad)) + idat + chunk(b"IEND", b""))
    return path


def fig_upload(ctx: Ctx) -> None:
    """imgen edit of a 48 MB input (under the 50 MB limit): peak RSS against a tiny input's, and
    the wall time against curl -F sending the same form."""
    total = (8 if ctx.args.quick else 48) * 1_000_000
    reps = ctx.reps(3, 2)
    big = _padded_png(ctx.tmp / "big.png", total)
    tiny = _padded_png(ctx.tmp / "tiny.png", 64 * 1024)
    missing = ctx.tools.missing("curl")
    s_rss = Series(f"imgen edit, {total // 1_000_000} MB input: peak RSS", "MiB")
    s_wall = Series(f"imgen edit, {total // 1_000_000} MB input: wall", "s")
    s_tiny = Series("imgen edit, 64 KiB input: peak RSS", "MiB")
    s_curl = Series("curl -F, same form: wall", "s")
    with fake_server(ctx.tmp, latency=0.0) as server:
        for _ in range(reps):
            for source, rss_series, wall_series in ((big, s_rss, s_wall), (tiny, s_tiny, None)):
                out = ctx.fresh_dir("edit")
                argv = [ctx.imgen, "edit", str(source), PROMPT, "-m", "gpt-image-1", "-q", "-o", str(out)]
                run = ctx.runner.run(argv, rss=True, env=ctx.imgen_env(server))
                run.check("imgen edit")
                shutil.rmtree(out, ignore_errors=True)
                rss_series.add(run.maxrss_kib / 1024)
                if wall_series is not None:
                    wall_series.add(run.wall)
            if not missing:
                run = ctx.runner.run([
                    "curl", "-fsS", "-o", "/dev/null", "-H", f"Authorization: Bearer {API_KEY}", "-F", "model=gpt-image-1",
                    "-F", f"prompt={PROMPT}", "-F", f"image=@{big};type=image/png", server.base_url + "/v1/images/edits",
                ])
                run.check("curl -F")
                s_curl.add(run.wall)
    ctx.report.add_series("upload", s_rss, s_wall, s_tiny, s_curl)
    growth = s_rss.median - s_tiny.median
    mb = total // 1_000_000
    ctx.report.row("upload", f"peak RSS, {mb} MB upload", fmt_series(s_rss), f"64 KiB input {fmt_series(s_tiny)}",
                   f"{growth:+.1f} MiB", "flat (≤ +8 MiB)", growth <= 8)
    ctx.report.row("upload", f"wall, {mb} MB edit", fmt_series(s_wall), na("tool missing: curl") if missing else f"curl -F {fmt_series(s_curl)}",
                   f"{s_wall.median / s_curl.median:.2f}× curl's time" if not missing else "n/a", "—", None)


def fig_ledger(ctx: Ctx) -> None:
    """The cost of the history ledger: one batch at zero latency, with and without it, runs
    alternating so drift on a shared machine falls on both. A 1-job batch (ledger on) in the same
    repetitions gives the batch's fixed cost, and so the per-job overhead of the ledger-on runs."""
    jobs = 200 if ctx.args.quick else 1000
    reps = ctx.reps(3, 1)
    prompts = ctx.tmp / "ledger-prompts.txt"
    prompts.write_text("".join(f"ledger prompt {i}\n" for i in range(1, jobs + 1)))
    one = ctx.tmp / "ledger-one.txt"
    one.write_text("ledger prompt 1\n")
    s_with = Series(f"imgen --batch, {jobs} jobs, ledger on", "s")
    s_without = Series(f"imgen --batch, {jobs} jobs, --no-log", "s")
    s_one = Series("imgen --batch, 1 job, ledger on", "s")
    s_per_job = Series(f"batch per-job overhead: ({jobs} jobs − 1 job) / {jobs - 1}, ledger on", "s")
    with fake_server(ctx.tmp, latency=0.0) as server:
        for rep in range(reps):
            walls = {}
            # each batch starts from an empty ledger of its own, so none pays for another's history
            for key, series, source, count, extra in (
                ("with", s_with, prompts, jobs, ()),
                ("without", s_without, prompts, jobs, ("--no-log",)),
                ("one", s_one, one, 1, ()),
            ):
                out = ctx.fresh_dir("ledger")
                env = {**ctx.imgen_env(server), "IMGEN_DATA_DIR": str(ctx.tmp / f"ledger-{rep}-{key}")}
                argv = [ctx.imgen, "generate", "--batch", str(source), "-j", "8", "-m", "dall-e-2", "-q", "-o", str(out), *extra]
                walls[key] = run_saving(ctx, argv, out, count, "imgen --batch", env=env).wall
                series.add(walls[key])
            s_per_job.add((walls["with"] - walls["one"]) / (jobs - 1))
    ctx.report.add_series("ledger", s_with, s_without, s_one, s_per_job)
    per_job = (s_with.median - s_without.median) / jobs * 1000
    ctx.report.row("ledger", f"{jobs}-job batch, ledger on", fmt_series(s_with), f"--no-log {fmt_series(s_without)}",
                   f"{per_job:+.2f} ms per generation", "< 5 ms per generation", per_job < 5)
    st = {k: v * 1000 for k, v in s_per_job.stats().items() if k != "n"}
    ctx.report.row("ledger", "batch per-job overhead, -j 8, ledger on", f"{jobs} jobs {fmt_series(s_with)}",
                   f"1 job {fmt_series(s_one)}", f"{st['median']:.2f} ms per job [{st['min']:.2f}–{st['max']:.2f}]", "—", None)


FIGURE_FUNCS: dict[str, Callable[[Ctx], None]] = {
    "startup": fig_startup,
    "oneshot": fig_oneshot,
    "batch": fig_batch,
    "download": fig_download,
    "base64": fig_base64,
    "memory": fig_memory,
    "upload": fig_upload,
    "ledger": fig_ledger,
}


# ------------------------------------------------------------------------------------------------
# Output


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def met_text(met: bool | None) -> str:
    return {True: "yes", False: "NO", None: "—"}[met]


def print_report(report: Report, meta: dict[str, Any]) -> None:
    print(f"\nimgen {meta['imgen_version']} · Python {meta['python']} · {meta['machine']} · "
          f"{meta['cpus']} CPUs · {'quick' if meta['quick'] else 'full'} run · {meta['started']}")
    print(f"peak RSS: {meta['rss_method']}")
    print("values: median [min–max] over the repetitions; per-series detail below the table\n")
    print(table(
        ["figure", "imgen", "comparison", "ratio", "target", "met?"],
        [[r.label, r.imgen, r.comparison, r.ratio, r.target, met_text(r.met)] for r in report.rows],
    ))
    print("\nseries (n, median, IQR, min, max):")
    detail = []
    for figure, series in report.series.items():
        for s in series:
            st = s.stats()
            detail.append([figure, s.name, str(st["n"]), fmt_value(s, st["median"]),
                           f"{fmt_value(s, st['q1'])} – {fmt_value(s, st['q3'])}", fmt_value(s, st["min"]), fmt_value(s, st["max"])])
    if detail:
        print(table(["figure", "series", "n", "median", "IQR", "min", "max"], detail))
    for figure, notes in report.notes.items():
        for text in notes:
            print(f"note ({figure}): {text}")
    print(f"\nfigure times, with the 1-min load average before → after ({meta['cpus']} CPUs; the run itself "
          "accounts for about 1, more means other work competed with it):")
    print("  " + ", ".join(f"{k} {v:.0f} s (load {report.load[k][0]:.1f} → {report.load[k][1]:.1f})" for k, v in report.seconds.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark imgen against the local test server and print a table.")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and smaller sizes (smoke run)")
    parser.add_argument("--only", default=None, help=f"comma-separated figures to run: {','.join(FIGURES)}")
    parser.add_argument("--json", dest="json_file", default=None, help="also write the results to this JSON file")
    parser.add_argument("--reps", type=int, default=None, help="override every figure's repetition count")
    parser.add_argument("--tmpdir", default=None, help="where outputs are written (and deleted); default: the system temp dir")
    parser.add_argument("--no-install", action="store_true", help=f"do not install {OPENAI_PIN} into {OPENAI_VENV.name}")
    parser.add_argument("--rss-launcher", choices=("auto", "gnu-time", "python"), default="auto",
                        help="how peak RSS is read: GNU time if installed (auto), or the built-in Python launcher")
    args = parser.parse_args(argv)

    chosen = list(FIGURES)
    if args.only:
        chosen = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in chosen if n not in FIGURES]
        if unknown:
            parser.error(f"--only: unknown figure(s) {', '.join(unknown)}; known: {', '.join(FIGURES)}")
    if not FAKESERVER.exists():
        sys.exit(f"the test server {FAKESERVER} is missing: run from an imgen checkout")
    imgen, python = find_imgen()

    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="imgen-bench-", dir=args.tmpdir))
    report = Report()
    try:
        runner = Runner(tmp, clean_env(tmp), args.rss_launcher)
        if not runner.gnu_time and args.rss_launcher == "auto":
            log("imgen-bench: GNU time (/usr/bin/time) not found; measuring peak RSS with a Python launcher "
                "(apt-get install time for the lighter one)")
        version_run = runner.run([imgen, "--version"])
        version_run.check("imgen --version")
        meta = {
            "imgen": imgen,
            "imgen_version": version_run.stdout.strip().removeprefix("imgen "),
            "interpreter": python,
            "python": platform.python_version(),
            "machine": f"{platform.system()} {platform.machine()}",
            "cpus": os.cpu_count(),
            "quick": args.quick,
            "started": dt.datetime.now().isoformat(timespec="seconds"),
            "rss_method": runner.rss_method,
            "figures": chosen,
        }
        ctx = Ctx(
            args=args, tmp=tmp, runner=runner, tools=Tools(), imgen=imgen, python=python, report=report,
            reps=lambda full, quick: args.reps or (quick if args.quick else full),
        )
        for name in chosen:
            log(f"imgen-bench: {name} ...")
            t0 = time.monotonic()
            load0 = os.getloadavg()[0]
            try:
                FIGURE_FUNCS[name](ctx)
            except (BenchError, RuntimeError, OSError) as exc:
                log(f"imgen-bench: {name} failed: {exc}")
                report.row(name, f"{name}: failed", na(str(exc)[:80]), "", "", "", False)
            report.seconds[name] = time.monotonic() - t0
            report.load[name] = (load0, os.getloadavg()[0])
        meta["total_seconds"] = round(time.monotonic() - started, 1)
        print_report(report, meta)
        print(f"total: {meta['total_seconds']:.0f} s")
        if args.json_file:
            doc = {
                "meta": meta,
                "rows": [asdict(r) for r in report.rows],
                "series": {f: [{"name": s.name, "unit": s.unit, "samples": s.samples, **s.stats()} for s in ss]
                           for f, ss in report.series.items()},
                "notes": report.notes,
                "figure_seconds": report.seconds,
                "figure_load": report.load,
            }
            Path(args.json_file).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
            log(f"imgen-bench: results written to {args.json_file}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if any(r.met is False and r.label.endswith("failed") for r in report.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
