"""Format, size and transparency of an image, read from its headers alone.

An image edit that breaks a provider's rules (a mask that is not a PNG with alpha, or not the exact size of the
image it masks; dall-e-2's one square PNG with transparency) is refused only after a slow, sometimes billed upload
of every input. imgen refuses it first, and the facts it needs sit in the first few hundred bytes of each file,
past whatever metadata precedes them: no imaging library, no decoding, no time spent on the pixels.

These files come from the user and from the network, so nothing a header says about lengths is trusted: chunk and
segment payloads are skipped with seek and never read, every walk is capped, reads are a few dozen bytes at most,
and a header that is cut short or inconsistent yields unknown dimensions rather than an exception.
"""

from __future__ import annotations

import io
import pathlib
import struct
import typing
from dataclasses import dataclass

from imgen.files.imagetype import HEAD_BYTES, png_size, sniff

# Real files reach their size header within a handful of chunks or segments; a file that needs more is broken or
# hostile, and every step costs a read, so the walk gives up here.
MAX_STEPS = 10_000


@dataclass(frozen=True)
class ImageInfo:
    format: str  # as `sniff` names it; only png, jpeg, webp and gif are read further, others have no size
    width: int | None  # None when the header is cut short or inconsistent
    height: int | None
    # True: the image can hold transparency (an alpha channel, a tRNS chunk, an ALPH chunk, a GIF transparent colour);
    # False: it cannot (every JPEG, a plain lossy WebP); None: the headers read do not tell.
    alpha: bool | None


def read_info(f: typing.BinaryIO) -> ImageInfo | None:
    """What the image in `f` (seekable, positioned at its start) is, or None when it is not an image `sniff` knows.

    width and height are None when the header is cut short or inconsistent; alpha is None when the headers read
    cannot tell. Only headers are read (see the per-format readers); payloads are skipped with seek.
    """
    start = f.tell()
    head = f.read(HEAD_BYTES)
    fmt = sniff(head)
    if fmt == "png":
        return _png(f, start, head)
    if fmt == "jpeg":
        return _jpeg(f, start)
    if fmt == "webp":
        return _webp(f, start, head)
    if fmt == "gif":
        return _gif(f, start, head)
    return None if fmt is None else ImageInfo(fmt, None, None, None)


def probe(path: pathlib.Path) -> ImageInfo | None:
    """read_info of the file at `path`; OSError propagates so the caller can report it."""
    with open(path, "rb") as f:
        return read_info(f)


def probe_bytes(data: bytes) -> ImageInfo | None:
    """read_info of bytes already in memory."""
    return read_info(io.BytesIO(data))


# Bit depths the PNG spec allows for each colour type; any other pair is a corrupt IHDR.
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


def _png(f: typing.BinaryIO, start: int, head: bytes) -> ImageInfo:
    """IHDR gives the size; transparency is colour type 4/6 (an alpha channel) or a tRNS chunk, which must come before
    the first IDAT, so the chunks are walked up to there."""
    size = png_size(head)
    depth, colour = head[24:26] if len(head) >= 26 else (0, 0)
    if size is None or depth not in _PNG_DEPTHS.get(colour, ()):
        return ImageInfo("png", None, None, None)
    width, height = size
    if colour in (4, 6):
        return ImageInfo("png", width, height, True)
    f.seek(start + 33)  # signature, then IHDR's length, type, 13 bytes of data and CRC
    for _ in range(MAX_STEPS):
        chunk = f.read(8)
        if len(chunk) < 8:
            break
        length, kind = struct.unpack(">I4s", chunk)
        if kind == b"IDAT":
            return ImageInfo("png", width, height, False)
        if kind == b"tRNS":
            return ImageInfo("png", width, height, True)
        if length >= 2**31 or not kind.isalpha():
            break
        f.seek(length + 4, 1)  # data and CRC
    return ImageInfo("png", width, height, None)


# Start of frame in every coding process; C4 (DHT), C8 (JPG, reserved) and CC (DAC) share the range but are not frames.
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
# Markers with no length field after them: TEM, RST0-7 and a repeated SOI.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})


def _jpeg(f: typing.BinaryIO, start: int) -> ImageInfo:
    """The size is in the first SOFn segment, which may follow tens of KiB of EXIF, ICC and comments, so the
    segments are walked by their length fields. A JPEG never carries transparency."""
    f.seek(start + 2)
    for _ in range(MAX_STEPS):
        if f.read(1) != b"\xff":
            break  # cut short, or junk where a marker must begin
        marker = f.read(1)
        if marker == b"\xff":
            f.seek(-1, 1)  # a fill byte: the marker is still to come
            continue
        if not marker or (marker[0] < 0xC0 and marker[0] not in _STANDALONE) or marker[0] in (0xD9, 0xDA):
            break  # cut short, not a marker, or the image ended or its scan began with no frame header
        if marker[0] in _STANDALONE:
            continue
        header = f.read(2)
        if len(header) < 2:
            break
        (length,) = struct.unpack(">H", header)
        if marker[0] in _SOF:
            frame = f.read(6)
            if length < 8 or len(frame) < 6:
                break
            height, width, components = struct.unpack_from(">HHB", frame, 1)
            # Height 0 defers to a DNL marker after the first scan, which a header read cannot reach.
            if width and height and components and length == 8 + 3 * components:
                return ImageInfo("jpeg", width, height, False)
            break
        if length < 2:
            break
        f.seek(length - 2, 1)
    return ImageInfo("jpeg", None, None, False)


def _webp(f: typing.BinaryIO, start: int, head: bytes) -> ImageInfo:
    """The first chunk says it all for a simple file (VP8 or VP8L) and for an animation (VP8X canvas and flags). A
    still VP8X file is walked on to its bitstream chunk, as libwebp does: the image must match the canvas, an ALPH
    chunk adds transparency, and a lossless bitstream's own alpha bit overrides the VP8X flag."""
    unknown = ImageInfo("webp", None, None, None)
    (riff_size,) = struct.unpack_from("<I", head, 4)
    f.seek(start + 12)
    kind, size, payload = _webp_chunk(f)
    if size > riff_size - 12:
        return unknown
    if kind in (b"VP8 ", b"VP8L"):
        image = _webp_bitstream(kind, size, payload)
        return unknown if image is None else ImageInfo("webp", *image)
    if kind != b"VP8X" or size != 10 or len(payload) < 10:
        return unknown
    flags = payload[0]
    width = 1 + int.from_bytes(payload[4:7], "little")
    height = 1 + int.from_bytes(payload[7:10], "little")
    if width * height >= 2**32:
        return unknown
    alpha = bool(flags & 0x10)
    if flags & 0x02:
        return ImageInfo("webp", width, height, alpha)  # animated: the frames are ANMF chunks, the canvas is the size
    alph_chunk = False
    walked = 4 + 8 + 10  # "WEBP" and the VP8X chunk, as the RIFF size counts them
    for _ in range(MAX_STEPS):
        kind, size, payload = _webp_chunk(f)
        if not kind:
            break
        walked += 8 + size + (size & 1)
        if walked > riff_size:
            return unknown  # a chunk overruns the file it claims to be in
        if kind in (b"VP8 ", b"VP8L"):
            image = _webp_bitstream(kind, size, payload)
            if image is None or image[:2] != (width, height):
                return unknown
            return ImageInfo("webp", width, height, (image[2] if kind == b"VP8L" else alpha) or alph_chunk)
        alph_chunk = alph_chunk or kind == b"ALPH"
    return ImageInfo("webp", width, height, alpha or alph_chunk)  # cut short before the bitstream: trust the flags


def _webp_chunk(f: typing.BinaryIO) -> tuple[bytes, int, bytes]:
    """(fourcc, payload size, the payload's first bytes) of the chunk at the file position, which is left at the next
    chunk; fourcc is b"" when the header is cut short."""
    header = f.read(8)
    if len(header) < 8:
        return b"", 0, b""
    kind, size = struct.unpack("<4sI", header)
    payload = f.read(min(size, 10))
    f.seek(size + (size & 1) - len(payload), 1)  # odd payloads are padded to even
    return kind, size, payload


def _webp_bitstream(kind: bytes, size: int, payload: bytes) -> tuple[int, int, bool] | None:
    """(width, height, alpha) from the start of a VP8 or VP8L bitstream, or None when it is cut short or invalid."""
    if kind == b"VP8 ":
        if size < 10 or len(payload) < 10 or payload[3:6] != b"\x9d\x01\x2a":
            return None
        tag = int.from_bytes(payload[:3], "little")
        # libwebp's checks: a key frame, a known profile, shown, its first partition inside the chunk.
        if tag & 1 or (tag >> 1) & 7 > 3 or not (tag >> 4) & 1 or tag >> 5 >= size:
            return None
        width, height = struct.unpack_from("<HH", payload, 6)
        width, height = width & 0x3FFF, height & 0x3FFF  # the top two bits are an upscaling hint, not size
        return (width, height, False) if width and height else None
    if size < 5 or len(payload) < 5 or payload[0] != 0x2F:
        return None
    bits = int.from_bytes(payload[1:5], "little")
    if bits >> 29:
        return None  # a version other than 0
    return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool((bits >> 28) & 1)


def _gif(f: typing.BinaryIO, start: int, head: bytes) -> ImageInfo:
    """The logical screen gives the size. Transparency is reported only when a Graphic Control Extension before the
    first image declares it: a later frame's is past image data that is not walked, so otherwise alpha is None."""
    if len(head) < 13:
        return ImageInfo("gif", None, None, None)
    width, height, packed = struct.unpack_from("<HHB", head, 6)
    colour_table = 3 << ((packed & 7) + 1) if packed & 0x80 else 0
    f.seek(start + 13 + colour_table)
    alpha = True if _gif_transparent(f) else None
    if not (width and height):
        return ImageInfo("gif", None, None, alpha)
    return ImageInfo("gif", width, height, alpha)


def _gif_transparent(f: typing.BinaryIO) -> bool:
    """Whether a Graphic Control Extension before the first image declares a transparent colour."""
    steps = 0
    while steps < MAX_STEPS:
        introducer = f.read(2)
        if len(introducer) < 2 or introducer[0] != 0x21:
            return False  # the first image, the trailer, or a cut file
        while steps < MAX_STEPS:  # the extension's sub-blocks, up to the empty one
            steps += 1
            size = f.read(1)
            if not size:
                return False
            if size[0] == 0:
                break
            data = f.read(1)
            if introducer[1] == 0xF9 and size[0] == 4 and data and data[0] & 1:
                return True
            f.seek(size[0] - len(data), 1)
    return False
