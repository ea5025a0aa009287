"""Walking PNG, JPEG and WebP files: their chunks or segments as offsets into the file.

Files come from the network, so no length a header states is trusted: each is checked against the
file, and a walk stops after STRUCTURE_STEPS parts.
"""

from __future__ import annotations

import os
import struct
import typing
from collections.abc import Iterator
from dataclasses import dataclass

FORMATS = ("png", "jpeg", "webp")
# Real files have a few dozen chunks, but a PNG may legally split its IDAT into very many; this only stops a walk
# that would never end in reasonable time. `read` uses imageinfo's much smaller cap.
STRUCTURE_STEPS = 1_000_000


@dataclass(frozen=True)
class Part:
    kind: bytes  # PNG or WebP chunk type; for JPEG the marker, one byte
    start: int  # offset of the chunk or segment header
    data: int  # offset of its payload
    size: int  # payload length
    end: int  # offset just past it: CRC and padding included


def size_of(f: typing.BinaryIO) -> int:
    return os.fstat(f.fileno()).st_size


def pread(f: typing.BinaryIO, offset: int, n: int) -> bytes:
    f.seek(offset)
    return f.read(n)


def parts(f: typing.BinaryIO, fmt: str, size: int, steps: int, lenient: bool = False) -> Iterator[Part]:
    """The chunks or segments of a file `sniff` named `fmt`; ValueError where the structure breaks."""
    if fmt == "png":
        return png_parts(f, size, steps)
    if fmt == "jpeg":
        return jpeg_parts(f, size, steps)
    return webp_parts(f, riff_extent(f, size, lenient), steps)


def png_parts(f: typing.BinaryIO, size: int, steps: int) -> Iterator[Part]:
    """Every chunk up to and including IEND."""
    pos = 8
    for _ in range(steps):
        header = pread(f, pos, 8)
        if len(header) < 8:
            raise ValueError("PNG cut short before IEND")
        length, kind = struct.unpack(">I4s", header)
        end = pos + 12 + length
        if length >= 2**31 or not kind.isalpha() or end > size:
            raise ValueError(f"PNG chunk at byte {pos} is corrupt or cut short")
        yield Part(kind, pos, pos + 8, length, end)
        if kind == b"IEND":
            return
        pos = end
    raise ValueError("PNG has too many chunks")


# Markers with no length: TEM and RST0-7. SOI again, or EOI, before the first scan means a broken file.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def jpeg_parts(f: typing.BinaryIO, size: int, steps: int) -> Iterator[Part]:
    """The segments up to and including the first SOS, whose `end` is where the entropy-coded data begins. Every
    metadata segment precedes it."""
    pos = 2
    for _ in range(steps):
        head = pread(f, pos, 4)
        if len(head) < 2 or head[0] != 0xFF:
            raise ValueError(f"JPEG has no marker at byte {pos}")
        marker = head[1]
        if marker == 0xFF:  # a fill byte before the marker
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker < 0xC0 or marker in (0xD8, 0xD9) or len(head) < 4:
            raise ValueError(f"JPEG is corrupt or cut short at byte {pos}")
        (length,) = struct.unpack_from(">H", head, 2)
        end = pos + 2 + length
        if length < 2 or end > size:
            raise ValueError(f"JPEG segment at byte {pos} is corrupt or cut short")
        yield Part(head[1:2], pos, pos + 4, length - 2, end)
        if marker == 0xDA:
            return
        pos = end
    raise ValueError("JPEG has too many segments")


def riff_extent(f: typing.BinaryIO, size: int, lenient: bool = False) -> int:
    (riff_size,) = struct.unpack("<I", pread(f, 4, 4))
    end = 8 + riff_size
    if riff_size < 4 or (end > size and not lenient):
        raise ValueError("WebP is cut short or its RIFF size is wrong")
    return min(end, size)


def webp_parts(f: typing.BinaryIO, riff_end: int, steps: int) -> Iterator[Part]:
    """Every chunk inside the RIFF container."""
    pos = 12
    for _ in range(steps):
        if pos >= riff_end:
            return
        header = pread(f, pos, 8)
        if len(header) < 8:
            raise ValueError("WebP cut short")
        kind, length = struct.unpack("<4sI", header)
        end = pos + 8 + length + (length & 1)
        if end > riff_end:
            raise ValueError(f"WebP chunk at byte {pos} overruns the file")
        yield Part(kind, pos, pos + 8, length, end)
        pos = end
    raise ValueError("WebP has too many chunks")


def is_c2pa(fmt: str, f: typing.BinaryIO, part: Part) -> bool:
    if fmt == "png":
        return part.kind == b"caBX"
    if fmt == "webp":
        return part.kind == b"C2PA"
    if part.kind != b"\xeb":
        return False
    # APP11 as JPEG XT (ISO 19566-5) frames JUMBF: "JP", box instance, sequence number, then the superbox's LBox and
    # "jumb"; the c2pa description box (its UUID starts with "c2pa", then the label) follows within a few bytes.
    head = pread(f, part.data, min(part.size, 64))
    return head[:2] == b"JP" and head[12:16] == b"jumb" and b"c2pa" in head
