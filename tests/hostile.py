"""A hostile API server: raw sockets, so an answer can do what no well-behaved server library
lets it do. It inflates (gzip bombs), lies about its length, trickles a byte a second, never ends
a line, nests a hundred thousand levels deep, echoes the key it was sent, and sends more images
than were asked for.

Each test hands the server a `script`: a function of (request, send) that writes the raw answer
with `send(bytes)` (slowly, if it likes); the server records every request it reads.
"""

from __future__ import annotations

import base64
import gzip
import json
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from fakeserver import make_image


def stop_listening(sock: socket.socket, acceptor: threading.Thread) -> None:
    """Stop a listening socket that `acceptor` is blocked in accept() on. close() alone does not
    wake that accept(), and once the descriptor's number is reused by a later test's server, this
    thread could accept (and answer) that server's connections. shutdown() wakes it; it is joined
    before the number is given back."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    acceptor.join(timeout=5)
    sock.close()


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Script = Callable[[Request, Callable[[bytes], None]], None]


@dataclass
class HostileServer:
    script: Script
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        stop_listening(self._sock, self._thread)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                request = _read_request(conn)
                if request is None:
                    return
                self.requests.append(request)

                def send(data: bytes) -> None:
                    if self._stop.is_set():
                        raise ConnectionError("server stopping")
                    conn.sendall(data)

                self.script(request, send)
            except (OSError, ConnectionError):
                pass  # the client gave up: what a hostile answer is for


def _read_request(conn: socket.socket) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length") or 0)
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        rest += chunk
    return Request(method, path, headers, rest)


# --- answers ---------------------------------------------------------------------------------------


def head(status: int = 200, headers: dict[str, str] | None = None, *, length: int | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} {'OK' if status < 400 else 'Error'}"]
    merged = {"Content-Type": "application/json", "Connection": "close", **(headers or {})}
    if length is not None:
        merged["Content-Length"] = str(length)
    lines += [f"{k}: {v}" for k, v in merged.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Script:
    def script(request: Request, send: Callable[[bytes], None]) -> None:
        send(head(status, headers, length=len(body)) + body)

    return script


def png_b64(seed: str = "hostile") -> str:
    return base64.b64encode(make_image(seed).to_bytes()).decode()


def images_json(count: int) -> bytes:
    one = png_b64()
    return json.dumps({"created": 1, "data": [{"b64_json": one} for _ in range(count)]}).encode()


_bombs: dict[tuple[int, bytes, bytes], bytes] = {}


def gzip_bomb(inflated: int, opening: bytes = b'{"data": [], "pad": "', filler: bytes = b"a") -> bytes:
    """A JSON document of `inflated` bytes (`opening`, then `filler` over and over), gzipped to about
    a thousandth of that."""
    key = (inflated, opening, filler)
    if key not in _bombs:
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)
        chunk = filler * (1 << 20)
        parts = [packer.compress(opening)]
        for _ in range(inflated // len(chunk)):
            parts.append(packer.compress(chunk))
        parts += [packer.compress(b'"}]}'), packer.flush()]
        _bombs[key] = b"".join(parts)
    return _bombs[key]


def trickle(first: bytes, then: bytes, every: float = 1.0) -> Script:
    """`first` at once, then `then` a byte every `every` seconds."""

    def script(request: Request, send: Callable[[bytes], None]) -> None:
        send(first)
        for byte in then:
            time.sleep(every)
            send(bytes([byte]))

    return script


def endless(first: bytes, piece: bytes, every: float = 0.0, seconds: float = 120.0) -> Script:
    """`first`, then `piece` again and again until the client leaves (or `seconds` pass)."""

    def script(request: Request, send: Callable[[bytes], None]) -> None:
        send(first)
        stop = time.monotonic() + seconds
        while time.monotonic() < stop:
            send(piece)
            if every:
                time.sleep(every)

    return script


def sse_head() -> bytes:
    return head(200, {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})


def sse(event: str, payload: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(payload)}\n\n".encode()


def nested(depth: int) -> bytes:
    return b'{"data": ' + b"[" * depth + b"]" * depth + b"}"


def chunks_of(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


__all__ = ["HostileServer", "Request", "answer", "chunks_of", "endless", "gzip", "gzip_bomb", "head", "images_json", "nested",
           "png_b64", "sse", "sse_head", "trickle"]
