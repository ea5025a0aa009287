"""Reading an API's answer within bounds: its decoded size, and the time the whole call may take.

A hostile or broken server decides how many bytes it sends, how far they inflate and how slowly
they trickle. The body is decoded here, from the raw bytes, a bounded piece at a time (httpx would
inflate a whole network chunk at once: 64 KiB of gzip can be 64 MiB), and every decoded byte is
counted against the limit, whatever Content-Length said. The call's deadline is enforced below
httpx, on each read of the socket, so a status line or a body sent a byte a second ends on time too.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import BadResponse, NetworkError
from ..units import human_size

DEFAULT_MAX_ANSWER = 256 * 1024 * 1024  # several 4K images as base64, with room to spare
ERROR_BODY_LIMIT = 1024 * 1024  # an error's JSON is a few hundred bytes; the rest is not worth reading
PIECE = 1024 * 1024  # the most a decoder hands back at once
ACCEPT_ENCODING = "gzip, deflate"  # what _decoder reads; never br or zstd, which httpx would take if installed


class AnswerTooLarge(BadResponse):
    """The answer grew past --max-answer."""


class CallTooLong(NetworkError):
    """The call as a whole ran past --max-time."""


def too_large(limit: int, what: str = "the API's answer") -> AnswerTooLarge:
    return AnswerTooLarge(
        f"{what} is larger than the {human_size(limit)} limit (--max-answer); it was not read further and nothing of it was saved",
        "raise --max-answer (e.g. --max-answer 1G) if the API's answers are really that large",
    )


# --- the deadline -------------------------------------------------------------------------------

_deadline = threading.local()


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Every socket read and write of the API client on this thread ends by `seconds` from now."""
    previous = getattr(_deadline, "at", None), getattr(_deadline, "seconds", None)
    _deadline.at = None if seconds is None else time.monotonic() + seconds
    _deadline.seconds = seconds
    try:
        yield
    finally:
        _deadline.at, _deadline.seconds = previous


def remaining() -> float | None:
    at = getattr(_deadline, "at", None)
    return None if at is None else at - time.monotonic()


def past_deadline() -> bool:
    left = remaining()
    return left is not None and left <= 0


def overdue() -> CallTooLong:
    seconds = getattr(_deadline, "seconds", None)
    return CallTooLong(
        f"the API call took longer than {seconds:g} s (--max-time) and was stopped" if seconds else "the API call ran out of time",
        "raise --max-time for slow models; the request may still have been billed, so check before retrying",
    )


def timed_backend(inner: Any) -> Any:
    """An httpcore network backend whose streams give each read and write no more time than the
    call has left: --timeout stays the wait between bytes, --max-time bounds their sum."""
    import httpcore

    def bounded(timeout: float | None) -> float | None:
        left = remaining()
        if left is None:
            return timeout
        if left <= 0:
            raise httpcore.ReadTimeout("the call's deadline passed")
        return left if timeout is None else min(timeout, left)

    class _Stream(httpcore.NetworkStream):
        def __init__(self, stream: Any) -> None:
            self._stream = stream

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            return self._stream.read(max_bytes, bounded(timeout))

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self._stream.write(buffer, bounded(timeout))

        def close(self) -> None:
            self._stream.close()

        def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> Any:
            return _Stream(self._stream.start_tls(ssl_context, server_hostname, bounded(timeout)))

        def get_extra_info(self, info: str) -> Any:
            return self._stream.get_extra_info(info)

    class _Backend(httpcore.NetworkBackend):
        def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):  # noqa: ANN001, ANN202
            return _Stream(inner.connect_tcp(host, port, bounded(timeout), local_address, socket_options))

        def connect_unix_socket(self, path, timeout=None, socket_options=None):  # noqa: ANN001, ANN202
            return _Stream(inner.connect_unix_socket(path, bounded(timeout), socket_options))

        def sleep(self, seconds: float) -> None:
            inner.sleep(seconds)

    return _Backend()


# --- the body -------------------------------------------------------------------------------------


def _decoder(response: Any) -> Any:
    """A zlib decompressor for the answer's Content-Encoding, or None for identity."""
    codings = [c.strip().lower() for c in response.headers.get("content-encoding", "").split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return None
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip"):
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if len(codings) == 1 and codings[0] == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS | 32)  # zlib-wrapped, as the standard says; auto-detected
    raise BadResponse(
        f"the API's answer is encoded as {', '.join(codings)}, which imgen did not ask for",
        "a proxy in between may be re-encoding answers; imgen asks for gzip or identity",
    )


def _inflate(decoder: Any, data: bytes) -> Iterator[bytes]:
    while True:
        out = decoder.decompress(data, PIECE)
        data = decoder.unconsumed_tail
        if out:
            yield out
        if not data and len(out) < PIECE:
            return


def chunks(response: Any, limit: int, *, what: str = "the API's answer") -> Iterator[bytes]:
    """The decoded body, a piece at a time; AnswerTooLarge once more than `limit` bytes came."""
    decoder = _decoder(response)
    total = 0
    try:
        for raw in response.iter_raw():
            for piece in _inflate(decoder, raw) if decoder is not None else (raw,):
                total += len(piece)
                if total > limit:
                    raise too_large(limit, what)
                yield piece
        if decoder is not None:
            tail = decoder.flush()
            total += len(tail)
            if total > limit:
                raise too_large(limit, what)
            if tail:
                yield tail
    except zlib.error as exc:
        raise BadResponse(f"{what} is not valid {response.headers.get('content-encoding')} data ({exc})",
                          "retry; a proxy in between may be corrupting answers") from None


def read(response: Any, limit: int, *, what: str = "the API's answer") -> bytes:
    return b"".join(chunks(response, limit, what=what))


def read_error_body(response: Any) -> bytes:
    """At most ERROR_BODY_LIMIT bytes of an error answer: enough for any error JSON; a longer body
    is cut there and then judged as the text it starts with."""
    kept: list[bytes] = []
    size = 0
    try:
        for piece in chunks(response, 1 << 62):
            kept.append(piece[: ERROR_BODY_LIMIT - size])
            size += len(kept[-1])
            if size >= ERROR_BODY_LIMIT:
                break
    except BadResponse:
        pass
    return b"".join(kept)
