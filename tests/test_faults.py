"""The fault matrix, end to end: the installed imgen against the local server, one fault at a time.

Every row checks the same contract: the documented exit code, a message naming what went wrong
with a hint, no traceback, no temporary file left behind, and nothing under a final name that
is not a complete image the server really sent. All traffic stays on 127.0.0.1: the imgen
subprocesses run under the conftest network guard, and a test fails if imgen even tried to
reach further.
"""

from __future__ import annotations

import errno
import hashlib
import os
import resource
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from conftest import API_KEY, IMGEN, interruptible
from imgen.errors import NetworkError
from imgen.files import writer as save
from imgen.transport import http

RETRIES = ("--retries", "1")


def temp_files(directory: Path) -> list[Path]:
    if not directory.exists():
        return []
    return [p for p in directory.rglob("*") if p.name.endswith(".part") or p.name.startswith(".imgen-")]


def assert_clean(res, outdir: Path, server, *, code: int, words: tuple[str, ...] = ()) -> None:
    """The contract every row shares."""
    assert res.returncode == code, f"exit {res.returncode}, wanted {code}\n{res.stderr}"
    assert "Traceback" not in res.stderr
    for word in words:
        assert word.lower() in res.stderr.lower(), f"{word!r} not in:\n{res.stderr}"
    if code:
        assert "imgen: error:" in res.stderr and "hint:" in res.stderr, res.stderr
    assert temp_files(outdir) == []
    served = {entry["sha256"] for entry in server.served}
    for path in outdir.rglob("*") if outdir.exists() else []:
        assert hashlib.sha256(path.read_bytes()).hexdigest() in served, f"{path.name} is not an image the server sent"
    if code == 0:
        assert res.lines and all(Path(line).parent == outdir for line in res.lines)
    elif code != 10:
        assert res.stdout == ""


@pytest.fixture
def run(imgen, outdir, netguard):
    """imgen generate with a small retry budget, into outdir, unable to reach past loopback."""

    def go(*args: str, env: dict | None = None, **kw):
        started = time.monotonic()
        # The test's own -o or --retries come later on the line, and the last one wins.
        res = imgen("generate", "-o", str(outdir), *RETRIES, *args, env={**netguard, **(env or {})}, **kw)
        res.elapsed = time.monotonic() - started
        assert netguard.attempts() == [], "imgen tried to reach beyond loopback"
        return res

    return go


# --- the API call ---------------------------------------------------------------------------

# id, model args, faults [(kind, times, opts)], exit code, words in stderr, API requests expected
API_FAULTS = [
    ("429-past-budget", [], [("status", 3, {"status": 429, "headers": {"Retry-After": "0"}})], 6, ("429", "--retries"), 2),
    ("insufficient-quota", [], [("insufficient_quota", 3, {})], 6, ("quota", "retrying will not help"), 1),
    ("500-then-success", [], [("status", 1, {"status": 500})], 0, (), 2),
    ("502-then-success", [], [("status", 1, {"status": 502})], 0, (), 2),
    ("503-then-success", [], [("status", 1, {"status": 503})], 0, (), 2),
    ("500-past-budget", [], [("status", 3, {"status": 500})], 8, ("500", "retry later"), 2),
    ("503-past-budget", [], [("status", 3, {"status": 503})], 8, ("503", "overloaded"), 2),
    ("reset-then-success", [], [("reset", 1, {})], 0, (), 2),
    ("reset-past-budget", [], [("reset", 3, {})], 7, ("dropped the connection",), 2),
    ("html-error-page", [], [("html", 3, {"status": 502})], 8, ("502", "HTML"), 2),
    ("html-with-200", [], [("html", 1, {"status": 200})], 9, ("not JSON", "text/html", "base URL"), 1),
    ("invalid-json", [], [("invalid_json", 1, {})], 9, ("not JSON",), 1),
    ("shape-no-data", [], [("shape", 1, {"variant": "no_data"})], 9, ("no 'data'",), 1),
    ("shape-null-data", [], [("shape", 1, {"variant": "null_data"})], 9, ("no 'data'",), 1),
    ("shape-data-not-list", [], [("shape", 1, {"variant": "data_not_list"})], 9, ("not a list",), 1),
    ("shape-item-without-image", [], [("shape", 1, {"variant": "empty_item"})], 9, ("neither a url nor b64_json",), 1),
    ("shape-empty-list", [], [("shape", 1, {"variant": "empty_list"})], 9, ("no images",), 1),
    ("shape-not-object", [], [("shape", 1, {"variant": "not_object"})], 9, ("not an object",), 1),
    ("invalid-base64", ["-m", "gpt-image-1"], [("invalid_b64", 1, {})], 9, ("invalid base64",), 1),
]


@pytest.mark.parametrize(
    "model, faults, code, words, calls", [pytest.param(*row[1:], id=row[0]) for row in API_FAULTS]
)
def test_api_fault(run, server, outdir, model, faults, code, words, calls):
    for kind, times, opts in faults:
        server.fault(kind, times=times, **opts)
    res = run("a lighthouse", *model)
    assert_clean(res, outdir, server, code=code, words=words)
    assert len(server.api_requests()) == calls
    assert len(list(outdir.iterdir())) == (1 if code == 0 else 0)


@pytest.mark.parametrize("header", [{"Retry-After": "0.4"}, {"retry-after-ms": "400"}])
def test_429_waits_as_told_then_succeeds(run, server, outdir, header):
    server.fault("status", status=429, headers=header)
    res = run("a lighthouse", "-v")
    assert_clean(res, outdir, server, code=0)
    first, second = server.api_requests()
    assert second.time - first.time >= 0.35  # the server's wait, not the client's own backoff
    assert "429" in res.stderr and "retrying in 0.4s" in res.stderr


def test_read_timeout_is_not_retried(run, server, outdir):
    server.fault("slow", delay=3.0)
    res = run("a lighthouse", "--timeout", "0.5")
    assert_clean(res, outdir, server, code=7, words=("did not answer in time", "--timeout", "billed"))
    assert len(server.api_requests()) == 1  # the request may have been billed: never sent twice
    assert res.elapsed < 3.0


def test_connection_refused(run, server, outdir):
    with socket.socket() as probe:  # a port nothing listens on: bound, then released
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    res = run("a lighthouse", env={"IMGEN_BASE_URL": f"http://127.0.0.1:{port}"})
    assert_clean(res, outdir, server, code=7, words=("refused the connection", "base URL"))
    assert "retry:" not in res.stderr  # retried quietly without -v, then reported once


def test_dns_failure(run, server, outdir):
    # .invalid never resolves (RFC 6761); the guard answers as the resolver would, with no DNS query.
    res = run("a lighthouse", env={"IMGEN_BASE_URL": "https://images.imgen-test.invalid"})
    assert_clean(res, outdir, server, code=7, words=("could not resolve", "images.imgen-test.invalid", "DNS"))


@pytest.fixture
def full_backlog():
    """A port on 127.0.0.1 whose listen queue is full: the kernel drops further SYNs, so a
    connect attempt hangs until the client's connect timeout, as with an unreachable host."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    held = []
    try:
        for _ in range(64):
            client = socket.socket()
            client.settimeout(0.3)
            try:
                client.connect(listener.getsockname())
            except OSError:
                client.close()
                break
            held.append(client)
        else:
            pytest.fail("the listen queue never filled: cannot simulate a connect timeout here")
        yield listener.getsockname()[1]
    finally:
        for client in held:
            client.close()
        listener.close()


def test_connect_timeout(run, server, outdir, full_backlog):
    res = run("a lighthouse", "--timeout", "0.5", env={"IMGEN_BASE_URL": f"http://127.0.0.1:{full_backlog}"})
    assert_clean(res, outdir, server, code=7, words=("timed out connecting", "--timeout"))
    assert res.elapsed < 5


# --- downloads ------------------------------------------------------------------------------

# id, faults, exit code, words, download requests expected, extra args, padded image size
DOWNLOAD_FAULTS = [
    ("cut-no-length-then-success", [("dl_cut", 1, {"content_length": False})], 0, (), 2, [], None),
    ("cut-no-length-past-budget", [("dl_cut", 3, {"content_length": False})], 9, ("cut short", "png"), 2, [], None),
    ("cut-no-length-large", [("dl_cut", 3, {"content_length": False})], 9, ("cut short",), 2, [], 200_000),
    ("reset-then-success", [("dl_reset", 1, {})], 0, (), 2, [], None),
    ("reset-past-budget", [("dl_reset", 3, {})], 7, ("dropped the connection",), 2, [], None),
    ("more-bytes-than-length", [("dl_extra", 1, {})], 0, (), 1, [], None),
    ("length-short-of-body", [("dl_extra", 3, {"short": True})], 9, ("cut short",), 2, [], None),
    ("xml-error-as-png", [("dl_error_as_png", 1, {"format": "xml"})], 9, ("not an image", "<?xml"), 1, [], None),
    ("json-error-as-png", [("dl_error_as_png", 1, {"format": "json"})], 9, ("not an image", "AccessDenied"), 1, [], None),
    ("html-portal", [("dl_html", 1, {})], 9, ("not an image", "<!DOCTYPE html>"), 1, [], None),
    ("403-signed-link", [("dl_403", 1, {})], 9, ("403", "altered or has expired", "generate again"), 1, [], None),
    ("redirect-loop", [("dl_redirect_loop", 1, {})], 9, ("redirected more than 5 times", "loop"), 6, [], None),
    ("500-past-budget", [("dl_status", 3, {"status": 500})], 8, ("500",), 2, [], None),
    ("503-then-success", [("dl_status", 1, {"status": 503})], 0, (), 2, [], None),
    ("over-size-limit", [], 9, ("larger than the 100 KiB limit", "--max-download"), 1, ["--max-download", "100K"], 300_000),
    (
        "over-size-limit-no-length",
        [("dl_cut", 1, {"content_length": False, "at": 300_000})],
        9, ("larger than the 100 KiB limit",), 1, ["--max-download", "100K"], 300_000,
    ),
    (
        "trickle-past-deadline",
        [("dl_slow", 1, {"rate": 16384})],
        7, ("did not finish downloading", "--timeout"), 1, ["--timeout", "1"], 400_000,
    ),
    ("stall-past-deadline", [("dl_slow", 3, {"delay": 5.0})], 7, ("did not finish downloading", "--timeout"), 1, ["--timeout", "1"], None),
]


@pytest.mark.parametrize(
    "faults, code, words, gets, args, image_bytes", [pytest.param(*row[1:], id=row[0]) for row in DOWNLOAD_FAULTS]
)
def test_download_fault(run, server, outdir, faults, code, words, gets, args, image_bytes):
    server.image_bytes = image_bytes
    for kind, times, opts in faults:
        server.fault(kind, times=times, **opts)
    res = run("a lighthouse", "-m", "dall-e-3", *args)  # dall-e-3 answers with a signed URL
    assert_clean(res, outdir, server, code=code, words=words)
    assert len(server.downloads()) == gets
    assert len(list(outdir.iterdir())) == (1 if code == 0 else 0)
    assert res.elapsed < 8  # deadlines hold: no retry outlives --timeout


def test_surplus_bytes_are_not_saved(run, server, outdir):
    server.fault("dl_extra", extra=4096)
    res = run("a lighthouse", "-m", "dall-e-3")
    assert_clean(res, outdir, server, code=0)
    saved = Path(res.lines[0]).read_bytes()
    assert len(saved) == server.served[0]["bytes"] and not saved.endswith(b"\xde\xad\xbe\xef")


def test_one_bad_image_of_several_keeps_the_rest(run, server, outdir):
    server.fault("invalid_b64", index=1)
    res = run("a lighthouse", "-m", "gpt-image-1", "-n", "3")
    assert_clean(res, outdir, server, code=10, words=("image 2", "invalid base64"))
    assert len(res.lines) == 2 and len(list(outdir.iterdir())) == 2


# --- Ctrl-C ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, to_stdout", [(1, False), (3, False), (1, True)], ids=["one", "three-at-once", "stdout"])
def test_ctrl_c_during_download_leaves_nothing(server, outdir, tmp_path, netguard, n, to_stdout):
    server.image_bytes = 2_000_000
    server.fault("dl_slow", times=n, rate=65536)  # half a minute per image unless interrupted
    scratch = tmp_path / "scratch"  # TMPDIR: where -o - stages its image
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGEN_")} | dict(netguard)
    env.update(IMGEN_BASE_URL=server.base_url, COMETAPI_KEY=API_KEY, TMPDIR=str(scratch))
    target = "-" if to_stdout else str(outdir)
    staging = scratch if to_stdout else outdir
    proc = subprocess.Popen(
        [IMGEN, "generate", "x", "-m", "dall-e-2", "-n", str(n), "-o", target],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path,
        preexec_fn=interruptible,
    )
    try:
        deadline = time.monotonic() + 15
        while len(temp_files(staging)) < n and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert len(temp_files(staging)) == n, "the downloads never started"
        time.sleep(0.2)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert time.monotonic() - sent < 3, "Ctrl-C waited for the downloads to finish"
    assert proc.returncode == 130
    text = stderr.decode()
    assert "interrupted" in text and "Traceback" not in text and API_KEY not in text
    assert stdout == b""
    assert list(outdir.iterdir()) == [] and list(scratch.iterdir()) == []


# --- the output directory ---------------------------------------------------------------------


def test_output_under_a_regular_file(run, server, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    res = run("a lighthouse", "-o", str(blocker / "images"))
    assert_clean(res, blocker.parent / "nowhere", server, code=2, words=("not a directory", "-o"))
    assert server.api_requests() == []  # refused before the (billed) call
    assert blocker.read_text() == "x"


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory no file can be created in, even by root (who ignores permission bits): a
    read-only tmpfs when root may mount; otherwise, as a normal user, mode 0555."""
    path = tmp_path / "ro"
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("root without mount(2): the read-only case is covered by -o under a file and the disk-full tests")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def test_output_directory_not_writable(run, server, read_only_dir):
    res = run("a lighthouse", "-o", str(read_only_dir / "sub"))
    words = ("read-only",) if os.geteuid() == 0 else ("permission denied",)
    assert_clean(res, read_only_dir, server, code=2, words=(*words, "-o"))
    assert server.api_requests() == []
    assert list(read_only_dir.iterdir()) == []


def _small_file_limit():
    # 64 KiB per file, and SIGXFSZ ignored, so an overlong write fails with EFBIG instead of
    # killing the process: the per-process stand-in for a full disk, needing no privilege.
    resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def test_disk_full_file_size_limit(server, outdir, tmp_path, netguard):
    server.image_bytes = 300_000
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGEN_")} | dict(netguard)
    env.update(IMGEN_BASE_URL=server.base_url, COMETAPI_KEY=API_KEY)
    proc = subprocess.run(
        [IMGEN, "generate", "x", "-m", "dall-e-3", "-o", str(outdir), *RETRIES],
        capture_output=True, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, preexec_fn=_small_file_limit, timeout=60,
    )
    stderr = proc.stderr.decode()
    assert proc.returncode == 9, stderr
    assert "larger than the largest file allowed" in stderr and "ulimit -f" in stderr and "nothing was saved" in stderr
    assert "Traceback" not in stderr and API_KEY not in stderr and proc.stdout == b""
    assert list(outdir.iterdir()) == []


@pytest.fixture
def tiny_tmpfs(tmp_path):
    path = tmp_path / "tiny"
    path.mkdir()
    if os.geteuid() != 0 or subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)], capture_output=True
    ).returncode:
        pytest.skip("needs root and mount(2); ENOSPC is also covered in process below, EFBIG above")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def test_disk_full_tmpfs(run, server, tiny_tmpfs):
    server.image_bytes = 300_000
    res = run("a lighthouse", "-m", "dall-e-3", "-o", str(tiny_tmpfs))
    assert_clean(res, tiny_tmpfs, server, code=9, words=("no space left", "nothing was saved", "free some space"))
    assert list(tiny_tmpfs.iterdir()) == []


@pytest.mark.parametrize(
    "code, words",
    [
        (errno.ENOSPC, "no space left"),
        (errno.EDQUOT, "quota"),
        (errno.EFBIG, "largest file allowed"),
        (errno.EIO, "Input/output error"),
    ],
)
def test_write_failures_clean_up_and_explain(tmp_path, monkeypatch, code, words):
    writer = save.ImageWriter(tmp_path)

    def failing_write(fd, data):
        raise OSError(code, os.strerror(code))

    with pytest.raises(save.WriteError) as info, writer:
        with monkeypatch.context() as patch:  # only around the write: pytest itself uses os.write
            patch.setattr(save.os, "write", failing_write)
            writer.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    assert words in info.value.message and info.value.hint
    assert info.value.exit_code == 9
    assert list(tmp_path.iterdir()) == []


def test_check_writable_has_no_side_effects(tmp_path):
    target = tmp_path / "a" / "b" / "c"
    save.check_writable(target)
    assert not (tmp_path / "a").exists() and list(tmp_path.iterdir()) == []  # the probe file is gone too
    (tmp_path / "file").write_text("x")
    with pytest.raises(save.Unwritable, match="not a directory") as info:
        save.check_writable(tmp_path / "file" / "sub")
    assert info.value.exit_code == 2
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    with pytest.raises(save.Unwritable, match="broken symbolic link"):
        save.check_writable(tmp_path / "dangling" / "sub")


@pytest.mark.parametrize("output, words", [("/proc/nowrite/", "no files can be created there"), ("afile/sub/", "not a directory")])
def test_an_output_that_cannot_take_a_file_is_a_usage_error_before_anything_is_sent(imgen, server, tmp_path, output, words):
    (tmp_path / "afile").write_text("x")
    res = imgen("generate", "-m", "gpt-image-1", "-o", output, "a cat")
    assert res.returncode == 2, res.stderr
    assert words in res.stderr and "nothing was sent" in res.stderr
    assert server.api_requests() == []


def test_no_download_skips_the_output_check(run, server, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = run("a lighthouse", "-m", "dall-e-3", "--no-download", "-o", str(blocker / "sub"))
    assert res.returncode == 0, res.stderr
    assert res.lines[0].startswith(server.base_url + "/files/")


def test_stdout_target_leaves_no_temporary_directory(run, server, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    server.fault("dl_403")
    res = run("a lighthouse", "-m", "dall-e-3", "-o", "-", env={"TMPDIR": str(scratch)})
    assert res.returncode == 9 and res.stdout_bytes == b""
    assert list(scratch.iterdir()) == []
    server.reset()
    res = run("a lighthouse", "-m", "dall-e-3", "-o", "-", env={"TMPDIR": str(scratch)})
    assert res.returncode == 0 and res.stdout_bytes.startswith(b"\x89PNG")
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize("failure", [httpx.ReadError("reset"), httpx.ReadTimeout("slow")])
def test_error_body_cut_short_is_a_network_error(failure):
    # A 429/5xx whose body stops mid-read must map like any dropped connection, and close.
    closed = []

    class Broken(httpx.SyncByteStream):
        def __iter__(self):
            raise failure
            yield b""  # pragma: no cover

        def close(self):
            closed.append(True)

    transport = httpx.MockTransport(lambda request: httpx.Response(503, stream=Broken()))
    with httpx.Client(transport=transport, base_url="http://127.0.0.1:9") as client, pytest.raises(NetworkError) as info:
        http.send(client, "POST", "/v1/images/generations", json_body={}, stream=True, policy=http.RetryPolicy(retries=0))
    assert "the API" in info.value.message
    assert closed


def test_api_redirect_names_the_new_base_url(imgen, server):
    # The same host, moved to https and a path prefix: worth copying.
    moved = server.base_url.replace("http://", "https://") + "/gateway"
    server.fault("status", status=301, headers={"Location": f"{moved}/v1/images/generations"}, body=b"")
    res = imgen("generate", "x")
    assert res.returncode == 5
    assert f"--base-url {moved}\n" in res.stderr
    assert len(server.api_requests()) == 1


@pytest.mark.parametrize("location", [
    "file:///etc/passwd", "https://evil.example/v1/images/generations", "javascript:alert(1)",
    "http://user:pw@127.0.0.1/v1/", "//evil.example/v1/", "https://127.0.0.1.evil.example/v1/",
])
def test_an_api_redirect_elsewhere_offers_nothing_to_copy(imgen, server, location):
    server.fault("status", status=302, headers={"Location": location}, body=b"")
    res = imgen("generate", "x")
    assert res.returncode == 5
    assert "imgen does not follow it" in res.stderr
    assert "--base-url http" not in res.stderr and "evil" not in res.stderr and "passwd" not in res.stderr


def test_a_redirect_from_https_down_to_http_is_not_suggested():
    from imgen.faults import moved_to

    assert moved_to("http://api.example.com/v1/x", "https://api.example.com/v1/images/generations") is None
    assert moved_to("https://api.example.com/v2/v1/x", "http://api.example.com/v1/images/generations") == "https://api.example.com/v2"
    assert moved_to("/prefix/v1/images/generations", "https://api.example.com/v1/images/generations") == "https://api.example.com/prefix"
