"""Pull `"b64_json"` string values out of a JSON body as it streams in.

A response with four 32 MiB images is ~170 MiB of JSON; reading it whole, then parsing it,
holds three copies at once. Instead each base64 value is decoded chunk by chunk into a sink
(an ImageWriter) the moment it arrives, and the small remainder of the document, with a
placeholder where each value stood, is parsed with json.loads as usual.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Iterable
from typing import Protocol

from ..errors import DownloadError
from . import b64

KEY = b'"b64_json"'
PLACEHOLDER = "@spooled:"  # '@' and ':' are not base64: no real value can look like this
LOOKBEHIND = 64  # a key (or its `: "`) may straddle two chunks


class Sink(Protocol):
    def write(self, data: bytes) -> None: ...


class B64Stream:
    """Incremental base64 decoding into a sink; remembers the first error instead of raising,
    so one bad image does not sink the others in the same response."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.carry = b""
        self.error: tuple[str, str] | None = None  # (code, message)

    def feed(self, data: bytes) -> None:
        if self.error is not None:
            return
        if b"\\" in data:  # JSON may escape "/" as "\/" and wrap base64 lines with "\n"
            data = data.replace(b"\\/", b"/").replace(b"\\n", b"").replace(b"\\r", b"")
        if self.carry:
            data = self.carry + data
        cut = len(data) - len(data) % 4
        self.carry = bytes(data[cut:])
        if cut:
            try:
                decoded = b64.decode(memoryview(data)[:cut])  # a view: the chunk is not copied once more
            except (binascii.Error, ValueError) as exc:
                self.error = ("invalid_base64", f"the API sent invalid base64 image data ({exc})")
                return
            try:
                self.sink.write(decoded)
            except DownloadError as exc:  # over the size limit: this image fails, the others go on
                self.error = ("too_large", exc.message)

    def close(self) -> None:
        if self.error is None and self.carry.strip(b"="):
            self.error = ("invalid_base64", "the API sent base64 image data that ends in the middle of a group")


class TextTooLarge(ValueError):
    """The document around the images grew past its limit: a real answer's is a few KiB."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"more than {limit} bytes besides the images")


def split(chunks: Iterable[bytes], make_sink: Callable[[int], Sink], *, key: bytes = KEY,
          max_text: int | None = None) -> tuple[bytes, list[B64Stream]]:
    """Return (the body with each `key` string value replaced by PLACEHOLDER + its number, streams).
    `max_text` bounds what is held in memory: the body without its images (TextTooLarge past it)."""
    skeleton = bytearray()
    streams: list[B64Stream] = []
    current: B64Stream | None = None
    pending = b""
    for chunk in chunks:
        if max_text is not None and len(skeleton) > max_text:
            raise TextTooLarge(max_text)
        data = pending + chunk if pending else chunk
        pending = b""
        pos = 0
        while pos < len(data):
            if current is not None:  # inside a value: everything up to the closing quote
                end = data.find(b'"', pos)
                if end < 0:
                    stop = len(data) - (1 if data.endswith(b"\\") else 0)  # never split "\/"
                    current.feed(data[pos:stop])
                    pending = data[stop:]
                    break
                current.feed(data[pos:end])
                current.close()
                skeleton += b'"%s%d"' % (PLACEHOLDER.encode(), len(streams) - 1)
                current = None
                pos = end + 1
                continue
            k = data.find(key, pos)
            if k < 0:
                keep = max(pos, len(data) - LOOKBEHIND)
                skeleton += data[pos:keep]
                pending = data[keep:]
                break
            j = k + len(key)
            while j < len(data) and data[j : j + 1] in b" \t\r\n:":
                j += 1
            if j >= len(data):  # the `: "` is in the next chunk: decide then
                skeleton += data[pos:k]
                pending = data[k:]
                break
            if data[j : j + 1] != b'"' or b":" not in data[k + len(key) : j]:
                skeleton += data[pos:j]  # not a key with a string value: json.loads judges
                pos = j
                continue
            skeleton += data[pos:j]
            pos = j + 1
            current = B64Stream(make_sink(len(streams)))
            streams.append(current)
    if current is not None:
        current.error = current.error or ("invalid_base64", "the response ended inside the base64 data")
        skeleton += b'"'  # let json.loads report the truncated document
    skeleton += pending
    return bytes(skeleton), streams
