"""A large download's body read straight from its socket into one reused buffer.

On its way up through h11, httpcore and httpx's iterator each body byte is copied about four
times; for a 512 MiB image that costs more than hashing it. So httpx still does everything up to
the body (the URL string as received, the per-connection address check, timeouts, the status line
and headers), and the body itself is read here with recv_into. Two things make that safe:

* h11 never holds a byte past the headers: the download client's streams (`split_backend`) hand it
  one header block per read, so what follows waits in the stream, where `reader` takes it from.
* a connection read this way is never used again: h11 has not seen the body, so httpcore closes
  the connection when the response is closed.

Only bodies that end at their Content-Length or at the connection's close are read this way, only
large ones (small images keep their pooled connections), and only on streams made here: chunked
bodies and proxied connections go through httpx's iterator as before.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpcore
import httpx

RAW_FROM = 8 * 1024 * 1024  # below this a kept-alive connection is worth more than the copies saved
BUFFER = 1024 * 1024
_END = b"\r\n\r\n"


class _HeadSplit(httpcore.NetworkStream):
    """A network stream that never hands its reader more than one header block at a time: whatever
    follows a block's blank line is kept for the next read (or for `take`)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._pending = b""
        self._tail = b""  # the last bytes handed out: a blank line may straddle two reads

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = self._pending or self._inner.read(max_bytes, timeout)
        self._pending = b""
        if len(data) > max_bytes:
            data, self._pending = data[:max_bytes], data[max_bytes:]
        cut = self._block_end(data)
        if cut is not None and cut < len(data):
            data, self._pending = data[:cut], data[cut:] + self._pending
        self._tail = (self._tail + data[-3:])[-3:]
        return data

    def _block_end(self, data: bytes) -> int | None:
        if self._tail:
            at = (self._tail + data[:3]).find(_END)
            if at >= 0:
                return at + 4 - len(self._tail)
        at = data.find(_END)
        return None if at < 0 else at + 4

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> Any:
        return _HeadSplit(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable" and self._pending:
            return True  # bytes nobody asked for: httpcore must not reuse this connection
        return self._inner.get_extra_info(info)

    def take(self) -> tuple[socket.socket, bytes] | None:
        """The socket the body arrives on and the bytes already read from it; None when the socket
        does not carry the plain HTTP bytes (TLS inside TLS)."""
        sock = self._inner.get_extra_info("socket")
        tls = self._inner.get_extra_info("ssl_object")
        if not isinstance(sock, socket.socket):
            return None
        if isinstance(sock, ssl.SSLSocket) if tls is None else not (isinstance(sock, ssl.SSLSocket) and tls is sock._sslobj):
            return None
        pending, self._pending = self._pending, b""
        return sock, pending


def split_backend(inner: Any) -> Any:
    """An httpcore network backend whose streams hand h11 one header block per read."""

    class _Backend(httpcore.NetworkBackend):
        def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):  # noqa: ANN001, ANN202
            return _HeadSplit(inner.connect_tcp(host, port, timeout, local_address, socket_options))

        def connect_unix_socket(self, path, timeout=None, socket_options=None):  # noqa: ANN001, ANN202
            return inner.connect_unix_socket(path, timeout, socket_options)

        def sleep(self, seconds: float) -> None:
            inner.sleep(seconds)

    return _Backend()


class RawBody:
    """The rest of one response's body: at most `length` bytes (all until the close when None).

    Failures are httpx's exceptions, so callers treat them as they treat httpx's own: a close before
    `length` is a RemoteProtocolError, a reset a ReadError, a silence past `timeout` (or past the
    `deadline`) a ReadTimeout.
    """

    def __init__(self, sock: socket.socket, pending: bytes, length: int | None, request: httpx.Request,
                 timeout: float | None, deadline: float | None = None) -> None:
        self._sock = sock
        self._pending = memoryview(pending)
        self.left = length
        self._request = request
        self._timeout = timeout
        self._deadline = deadline

    def readinto(self, view: memoryview) -> int:
        """Read into view; 0 once the body is complete."""
        if self.left is not None:
            if self.left <= 0:
                return 0
            view = view[: self.left]
        if self._pending:
            n = min(len(view), len(self._pending))
            view[:n] = self._pending[:n]
            self._pending = self._pending[n:]
        else:
            n = self._recv(view)
        if self.left is not None:
            self.left -= n
        return n

    def _recv(self, view: memoryview) -> int:
        try:
            self._sock.settimeout(self._wait())
            n = self._sock.recv_into(view)
        except TimeoutError:
            raise httpx.ReadTimeout("the download stopped sending", request=self._request) from None
        except OSError as exc:  # resets, and TLS failures (ssl.SSLError is an OSError)
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=self._request) from None
        if n == 0 and self.left is not None:
            raise httpx.RemoteProtocolError(
                f"the server closed the connection with {self.left} bytes of the body still to come", request=self._request
            )
        return n

    def _wait(self) -> float | None:
        if self._deadline is None:
            return self._timeout
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left if self._timeout is None else min(self._timeout, left)

    def pieces(self, size: int = BUFFER) -> Iterator[memoryview]:
        """The body as views of one reused buffer: each is valid only until the next is asked for."""
        view = memoryview(bytearray(size))
        while n := self.readinto(view):
            yield view[:n]


def reader(response: httpx.Response, *, timeout: float | None, deadline: float | None = None) -> RawBody | None:
    """The response's body as a RawBody, or None where httpx's iterator must read it."""
    stream = response.extensions.get("network_stream")
    if not isinstance(stream, _HeadSplit):
        return None
    if "chunked" in response.headers.get("transfer-encoding", "").lower():
        return None
    length_text = response.headers.get("content-length")
    length = int(length_text) if length_text is not None and length_text.isascii() and length_text.isdigit() else None
    if length_text is not None and length is None:
        return None
    if length is not None and length < RAW_FROM:
        return None
    taken = stream.take()
    if taken is None:
        return None
    return RawBody(*taken, length, response.request, timeout, deadline)
