"""The large-download reader (transport/rawbody.py): bodies read from the socket below httpx.

Unit tests drive the header splitter and the reader over real socket pairs; the end-to-end tests
run the installed imgen against a raw-socket server that cuts, trickles, overruns and stalls.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import socket
import struct
import subprocess
import threading
import time
import zlib
from pathlib import Path

import httpx
import pytest

from conftest import API_KEY, IMGEN, interruptible
from hostile import HostileServer, head, stop_listening
from imgen.transport import http, rawbody
from test_tls_lazy import TLSServer, make_certs

MiB = 1 << 20
BIG = 20 * MiB  # over rawbody.RAW_FROM: read below httpx


def png(size: int, seed: int = 1) -> bytes:
    """A valid PNG of exactly `size` bytes whose bulk is random (a private chunk), so a byte out of
    place changes the hash."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    start = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0))
    end = chunk(b"IDAT", zlib.compress(b"\0\0\0\0\0")) + chunk(b"IEND", b"")
    filler = random.Random(seed).randbytes(size - len(start) - len(end) - 12)
    return start + chunk(b"raNd", filler) + end


# --- the header splitter -------------------------------------------------------------------------


class Feed:
    """An inner network stream handing out the given pieces, one per read."""

    def __init__(self, *pieces: bytes) -> None:
        self.pieces = list(pieces)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""

    def get_extra_info(self, info: str):
        return None


def drain(stream: rawbody._HeadSplit, max_bytes: int = 65536) -> list[bytes]:
    out = []
    while piece := stream.read(max_bytes):
        out.append(piece)
    return out


def test_each_read_ends_at_a_header_block_and_keeps_the_body_for_later():
    wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody"
    got = drain(rawbody._HeadSplit(Feed(wire)))
    assert got == [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n", b"body"]


@pytest.mark.parametrize("cut", range(1, 44))
def test_a_blank_line_split_across_reads_is_still_found(cut):
    wire = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nbody!!"
    assert len(wire) == 44
    stream = rawbody._HeadSplit(Feed(wire[:cut], wire[cut:]))
    got = drain(stream)
    assert b"".join(got) == wire
    heads = b""
    for piece in got:
        heads += piece
        if heads.endswith(b"\r\n\r\n"):
            break
    assert heads == wire[:38], "the first header block was handed out together with body bytes"


def test_max_bytes_is_respected_and_the_rest_kept():
    stream = rawbody._HeadSplit(Feed(b"x" * 100))
    assert [len(p) for p in drain(stream, 30)] == [30, 30, 30, 10]


def test_bytes_held_back_make_the_connection_unfit_for_reuse():
    stream = rawbody._HeadSplit(Feed(b"HTTP/1.1 200 OK\r\n\r\nextra"))
    stream.read(65536)
    assert stream.get_extra_info("is_readable") is True


# --- the reader over real sockets ----------------------------------------------------------------


def reader_over(pieces: list[bytes], length: int | None, *, pending: bytes = b"", close: bool = True, timeout: float = 5,
                deadline: float | None = None, pause: float = 0.0):
    ours, theirs = socket.socketpair()

    def send() -> None:
        try:
            for piece in pieces:
                theirs.sendall(piece)
                if pause:
                    time.sleep(pause)
        except OSError:
            return  # the test is done with it
        if close:
            theirs.close()

    threading.Thread(target=send, daemon=True).start()
    request = httpx.Request("GET", "http://dl.test/x.png")
    return rawbody.RawBody(ours, pending, length, request, timeout, deadline), theirs


def read_all(body: rawbody.RawBody, buffer: int = 1 * MiB) -> bytes:
    return b"".join(bytes(v) for v in body.pieces(buffer))


def test_short_reads_assemble_the_whole_body():
    data = png(3 * MiB)
    rng = random.Random(7)
    pieces, at = [], 0
    while at < len(data):
        step = rng.choice([1, 2, 3, 17, 1000, 4096, 65537, 300_000])
        pieces.append(data[at : at + step])
        at += step
    body, _ = reader_over(pieces[1:], len(data), pending=pieces[0])
    assert read_all(body, buffer=8191) == data


def test_the_bytes_already_read_come_first():
    body, _ = reader_over([b"world"], 10, pending=b"hello")
    assert read_all(body, buffer=3) == b"helloworld"


def test_a_body_longer_than_its_length_is_read_to_its_length_only():
    body, _ = reader_over([b"0123456789" + b"EXTRA" * 1000], 10, close=False)
    assert read_all(body) == b"0123456789"


def test_a_connection_cut_mid_buffer_is_a_protocol_error_naming_what_is_missing():
    body, _ = reader_over([b"a" * 5000], 10_000)
    view = memoryview(bytearray(1 * MiB))
    got = 0
    with pytest.raises(httpx.RemoteProtocolError, match="5000 bytes of the body still to come"):
        while n := body.readinto(view):
            got += n
    assert got == 5000


def test_without_a_length_the_body_ends_at_the_close():
    body, _ = reader_over([b"abc", b"def"], None)
    assert read_all(body) == b"abcdef"


def test_silence_is_a_read_timeout():
    body, theirs = reader_over([b"abc"], 10, close=False, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        read_all(body)
    assert time.monotonic() - started < 3
    theirs.close()


def test_the_deadline_bounds_a_trickle_that_never_stops_long_enough_to_time_out():
    body, theirs = reader_over([b"x"] * 100, 1000, close=False, timeout=5, deadline=time.monotonic() + 0.5, pause=0.05)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        read_all(body, buffer=1)
    assert time.monotonic() - started < 3
    theirs.close()


def test_a_reset_is_a_read_error():
    ours, theirs = socket.socketpair()
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ours.shutdown(socket.SHUT_RDWR)
    body = rawbody.RawBody(ours, b"", 10, httpx.Request("GET", "http://dl.test/"), 1.0)
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        read_all(body)
    theirs.close()


# --- through the download client -----------------------------------------------------------------


class KeepAliveServer:
    """Serves GET /big and /small over kept-alive connections, counting the connections made."""

    def __init__(self) -> None:
        self.big, self.small = png(BIG, 2), png(50_000, 3)
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._acceptor = threading.Thread(target=self._serve, daemon=True)
        self._acceptor.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while True:
                while b"\r\n\r\n" not in data:
                    more = conn.recv(65536)
                    if not more:
                        return
                    data += more
                line, _, data = data.partition(b"\r\n\r\n")
                body = self.big if b" /big " in line.split(b"\r\n")[0] + b" " else self.small
                try:
                    conn.sendall(head(200, {"Content-Type": "image/png", "Connection": "keep-alive"}, length=len(body)) + body)
                except OSError:
                    return

    def close(self) -> None:
        stop_listening(self._sock, self._acceptor)


def test_a_raw_read_connection_is_never_reused_and_small_downloads_keep_theirs(tmp_path):
    from imgen.files.writer import ImageWriter
    from imgen.transport import download, urlpolicy

    server = KeepAliveServer()
    client = http.download_client(30)
    try:
        saved = []
        for name in ("big", "small", "small", "big", "small"):
            saved.append(download.fetch(
                client, f"{server.base}/{name}", lambda: ImageWriter(tmp_path, max_bytes=1 << 30), lambda ext, n=name: f"{n}.{ext}",
                policy=http.RetryPolicy(retries=0), url_policy=urlpolicy.UrlPolicy.for_api(server.base),
            ))
    finally:
        client.close()
        server.close()
    want = {"big": hashlib.sha256(server.big).hexdigest(), "small": hashlib.sha256(server.small).hexdigest()}
    for image in saved:
        kind = image.path.name.split(".")[0].split("-")[0]
        assert image.sha256 == want[kind] == hashlib.sha256(image.path.read_bytes()).hexdigest()
    # big, then the two smalls on one new connection, big on that one (then closed), small on a new one
    assert server.connections == 3


# --- the installed imgen against a raw-socket server ----------------------------------------------


def serving(image_script, count: int = 1):
    """An API whose answer points at `count` images on the same server; GET /img/N runs
    image_script(n, request, send)."""
    gets: list[str] = []

    def script(request, send):
        if request.method == "POST":
            body = json.dumps({"created": 1, "data": [{"url": f"{server.base_url}/img/{i}"} for i in range(count)]}).encode()
            send(head(200, length=len(body)) + body)
        else:
            gets.append(request.path)
            image_script(int(request.path.rsplit("/", 1)[1]), request, send)

    server = HostileServer(script)
    server.gets = gets
    return server


def run_imgen(server, out: Path, *extra: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "COMETAPI_KEY": API_KEY, "IMGEN_BASE_URL": server.base_url}
    proc = subprocess.run([IMGEN, "generate", "-m", "dall-e-2", "-o", str(out), "--json", *extra, "a boat"], env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in proc.stderr and API_KEY not in proc.stderr + proc.stdout
    return proc


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".imgen-"))


def image_head(length: int) -> bytes:
    return head(200, {"Content-Type": "image/png"}, length=length)


def test_an_image_sent_in_odd_pieces_with_its_headers_split_is_saved_byte_for_byte(tmp_path):
    data = png(BIG, 4)

    def image(n, request, send):
        wire = image_head(len(data)) + data
        rng = random.Random(n)
        at = 0
        while at < len(wire):
            step = rng.choice([1, 5, 13, 700, 8191, 65536, 1_000_003])
            send(wire[at : at + step])
            at += step

    out = tmp_path / "out"
    with serving(image, count=2) as server:
        proc = run_imgen(server, out, "-n", "2", "--metadata", "none")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    files = sorted(out.glob("*.png"))
    assert len(files) == 2 and leftovers(out) == []
    want = hashlib.sha256(data).hexdigest()
    assert {i["sha256"] for i in doc["images"]} == {want}
    assert all(hashlib.sha256(f.read_bytes()).hexdigest() == want for f in files)


def test_a_body_longer_than_its_content_length_saves_exactly_the_announced_bytes(tmp_path):
    data = png(BIG, 5)

    def image(n, request, send):
        send(image_head(len(data)) + data + b"GARBAGE" * 100_000)

    out = tmp_path / "out"
    with serving(image) as server:
        proc = run_imgen(server, out, "--metadata", "none")
    assert proc.returncode == 0, proc.stderr
    [saved] = out.glob("*.png")
    assert saved.read_bytes() == data


def test_a_content_length_shorter_than_the_image_is_a_cut_image_and_nothing_is_saved(tmp_path):
    data = png(BIG, 6)

    def image(n, request, send):
        send(image_head(len(data) - 100) + data)

    out = tmp_path / "out"
    with serving(image) as server:
        proc = run_imgen(server, out, "--retries", "1")
        gets = len(server.gets)
    assert proc.returncode != 0
    assert "cut short" in proc.stderr
    assert gets == 2, "a cut download is retried, as any other"
    assert list(out.glob("*.png")) == [] and leftovers(out) == []


@pytest.mark.parametrize("cut_at", [1, MiB - 1, MiB, MiB + 1, BIG // 2 + 12345, BIG - 1])
def test_a_connection_cut_mid_body_is_retried_and_the_retry_saves_the_whole_image(tmp_path, cut_at):
    data = png(BIG, 7)
    tries = []

    def image(n, request, send):
        tries.append(n)
        body = data[:cut_at] if len(tries) == 1 else data
        send(image_head(len(data)) + body)  # then the server closes the connection

    out = tmp_path / "out"
    with serving(image) as server:
        proc = run_imgen(server, out, "--retries", "2", "--metadata", "none")
    assert proc.returncode == 0, proc.stderr
    [saved] = out.glob("*.png")
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == json.loads(proc.stdout)["images"][0]["sha256"] == hashlib.sha256(data).hexdigest()
    assert len(tries) == 2 and leftovers(out) == []


def test_a_connection_cut_every_time_saves_nothing_and_leaves_nothing(tmp_path):
    data = png(BIG, 8)

    def image(n, request, send):
        send(image_head(len(data)) + data[: BIG // 3])

    out = tmp_path / "out"
    with serving(image) as server:
        proc = run_imgen(server, out, "--retries", "1")
    assert proc.returncode != 0 and "cut short" in proc.stderr
    assert json.loads(proc.stdout)["ok"] is False
    assert list(out.iterdir()) == []


def test_a_stalled_body_times_out_with_nothing_saved(tmp_path):
    data = png(BIG, 9)

    def image(n, request, send):
        send(image_head(len(data)) + data[: 3 * MiB])
        time.sleep(20)

    out = tmp_path / "out"
    with serving(image) as server:
        started = time.monotonic()
        proc = run_imgen(server, out, "--retries", "0", "--timeout", "2")
    assert time.monotonic() - started < 15
    assert proc.returncode != 0
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("count", [1, 2])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_download_leaves_nothing(tmp_path, count, sig):
    data = png(BIG, 10)
    started = threading.Event()

    def image(n, request, send):
        send(image_head(len(data)) + data[: 2 * MiB])
        started.set()
        for at in range(2 * MiB, BIG, 4096):  # a trickle: each read returns, but the end is far off
            send(data[at : at + 4096])
            time.sleep(0.01)

    out = tmp_path / "out"
    with serving(image, count=count) as server:
        env = {**os.environ, "COMETAPI_KEY": API_KEY, "IMGEN_BASE_URL": server.base_url}
        proc = subprocess.Popen([IMGEN, "generate", "-m", "dall-e-2", "-n", str(count), "-o", str(out), "a boat"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=interruptible)
        try:
            assert started.wait(20), "the download never started"
            time.sleep(0.3)
            proc.send_signal(sig)
            _, stderr = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130, stderr  # SIGTERM is handled as Ctrl-C: the same cleanup, the same code
    assert b"Traceback" not in stderr
    assert list(out.iterdir()) == []


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


def test_over_tls_the_body_is_read_from_the_tls_socket_and_saved_byte_for_byte(tmp_path, certs, monkeypatch):
    from imgen.files.writer import ImageWriter
    from imgen.transport import download, urlpolicy

    monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca))
    http._tls.cache_clear()
    upstream = KeepAliveServer()
    client = http.download_client(30)
    try:
        with TLSServer(certs, upstream=("127.0.0.1", int(upstream.base.rsplit(":", 1)[1]))) as relay:
            saved = [download.fetch(
                client, f"{relay.base_url}/{name}", lambda: ImageWriter(tmp_path, max_bytes=1 << 30), lambda ext, n=name: f"{n}.{ext}",
                policy=http.RetryPolicy(retries=0), url_policy=urlpolicy.UrlPolicy.for_api(relay.base_url),
            ) for name in ("big", "small", "big")]
    finally:
        client.close()
        upstream.close()
        http._tls.cache_clear()
    assert [s.sha256 for s in saved] == [hashlib.sha256(d).hexdigest() for d in (upstream.big, upstream.small, upstream.big)]
    assert all(hashlib.sha256(s.path.read_bytes()).hexdigest() == s.sha256 for s in saved)
    assert relay.handshakes == 2, "the connection a raw read used must not be used again"
