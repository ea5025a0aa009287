"""The prompt and settings written into the image file itself, with every image byte left as it was.

Where each format keeps them, and why there:

* PNG: an iTXt chunk "imgen" (uncompressed UTF-8 JSON of the record) right after IHDR, so a reader that stops at
  the first IDAT still finds it; a "parameters" text chunk in the AUTOMATIC1111 form that Stable Diffusion tools and
  image boards read (tEXt, or iTXt when the text is not Latin-1, as Pillow and so A1111 itself do); and a small XMP
  packet (iTXt "XML:com.adobe.xmp") with the prompt as dc:description and the IPTC digital source type, which PNG
  text has no standard key for. The packet is left out when the file already has one: a PNG holds one XMP packet.
  Text chunks are ancillary and may sit anywhere between IHDR and IEND, so every decoder skips them.
* JPEG: one XMP APP1 segment after SOI and the leading JFIF APP0 / Exif APP1 segments, the order both of those specs
  require. It holds dc:description (the prompt), Iptc4xmpExt:DigitalSourceType (trainedAlgorithmicMedia, the IPTC
  term that "made with AI" labels look for), exif:UserComment (the A1111 parameters, where A1111 readers look in a
  JPEG) and imgen:record (the JSON record). A segment holds at most 65533 bytes and a second standard XMP segment is
  not read by anyone, so an oversized record has its longest strings cut, each marked with CUT_MARK.
* WebP: the same packet, uncut, in an "XMP " chunk at the end, where the container puts XMP. Only the extended
  format (VP8X) may carry it, so a simple VP8/VP8L file gets a VP8X chunk first, its canvas and alpha flag taken from
  the bitstream.

A JPEG or WebP that already has an XMP packet is refused (ValueError): merging two packets is not worth the risk of
damaging someone else's metadata, and the caller's sidecar loses nothing.

C2PA: a Content Credentials manifest signs a hash over the file's bytes, so inserting anything makes a validator
report the file as tampered. A file with a manifest (PNG caBX chunk, JPEG APP11 segment holding a c2pa JUMBF box,
WebP C2PA chunk) is never rewritten: `embed` raises `Signed` and the caller writes a sidecar instead.

imgen's own XMP properties live in the namespace XMP_NS, prefix "imgen". The URI is under the reserved .invalid
domain, so it can neither resolve nor collide with anyone's real namespace, and it never changes: readers key on it.

Files come from the network, so nothing a header says is trusted: lengths are checked against the file, walks are
capped, `read` takes at most MAX_METADATA bytes of metadata (decompressed text included), and image data is only
ever copied or hashed in COPY_BLOCK pieces.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import struct
import typing
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from . import imageinfo, imagetype

if typing.TYPE_CHECKING:
    import xml.etree.ElementTree as ET

XMP_NS = "https://imgen.invalid/ns/1.0/"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
# Appended to a string cut to fit a JPEG's XMP segment, so a reader knows the text is not whole.
CUT_MARK = "…[truncated]"

COPY_BLOCK = 1 << 20
MAX_METADATA = 4 << 20
# Real files have a few dozen chunks, but a PNG may legally split its IDAT into very many; this only stops a walk
# that would never end in reasonable time. `read` uses imageinfo's much smaller cap.
STRUCTURE_STEPS = 1_000_000

FORMATS = ("png", "jpeg", "webp")

_XMP_SIG = b"http://ns.adobe.com/xap/1.0/\0"
_XMP_MAX_JPEG = 65533 - len(_XMP_SIG)  # the APP1 length field counts itself, the signature and the packet
_PNG_XMP_KEY = b"XML:com.adobe.xmp"
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_NS = {
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "exif": "http://ns.adobe.com/exif/1.0/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "imgen": XMP_NS,
}
# Characters XML 1.0 cannot carry at all, not even as references: the complement of its Char
# production (tab, LF, CR, U+0020-U+D7FF, U+E000-U+FFFD, U+10000-U+10FFFF), spelled as the few
# ranges it leaves out, which compiles in a seventh of the time the negated class takes.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

_WEBP_XMP = 0x04
_WEBP_ALPHA = 0x10

# Chunks and segments that describe the image rather than make it up, which strip_check ignores. C2PA manifests are
# deliberately not among them: a check that the image is intact should also see that its signature is.
_METADATA = {
    "png": frozenset({b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"}),
    "jpeg": frozenset({b"\xe1", b"\xed", b"\xfe"}),  # APP1 (Exif, XMP), APP13 (IPTC), COM
    "webp": frozenset({b"VP8X", b"EXIF", b"XMP "}),  # VP8X flags change; canvas and alpha are compared via probe
}


class Signed(ValueError):
    """The file carries a C2PA manifest, which any insertion would invalidate; it is left untouched."""


@dataclass(frozen=True)
class _Part:
    kind: bytes  # PNG or WebP chunk type; for JPEG the marker, one byte
    start: int  # offset of the chunk or segment header
    data: int  # offset of its payload
    size: int  # payload length
    end: int  # offset just past it: CRC and padding included


# --- public interface ---------------------------------------------------------------------------------------------


def has_c2pa(path: Path) -> bool:
    """A Content Credentials manifest: PNG `caBX` chunk, JPEG APP11 (0xFFEB) segment holding JUMBF ("jumb"/"c2pa" box),
    WebP `C2PA` chunk. A file too damaged to walk reports what its readable part holds."""
    with open(path, "rb") as f:
        fmt = imagetype.sniff(f.read(imagetype.HEAD_BYTES))
        if fmt not in FORMATS:
            return False
        try:
            return any(_is_c2pa(fmt, f, part) for part in _parts(f, fmt, _size(f), STRUCTURE_STEPS, lenient=True))
        except ValueError:
            return False


def embed(src: Path, dst: Path, fmt: str, record: dict, parameters: str | None = None) -> None:
    """Write to `dst` (a new file: O_CREAT|O_EXCL, mode 0644) the image at `src` with `record` and the A1111
    `parameters` inserted, every image byte unchanged (see the module docstring for where they go).

    Raises `Signed` for a file with a C2PA manifest and ValueError for one it cannot parse or already holding XMP
    (JPEG, WebP); the caller then falls back to a sidecar. All checks run before `dst` is created, and `dst` is removed
    again on any later error, so it is never left half-written. Image data is copied in COPY_BLOCK pieces.
    """
    fmt = _format(fmt)
    with open(src, "rb") as f:
        info = imageinfo.read_info(f)
        if info is None or info.format != fmt or info.width is None or info.height is None:
            raise ValueError(f"{src} is not a {fmt} file whose header can be read")
        plan = _PLANNERS[fmt](f, _size(f), info, record, parameters)
        _write(f, dst, plan)


def read(path: Path) -> dict:
    """What a file says about itself, without decoding it.

    {"format", "width", "height"} from imageinfo.probe; "imgen": imgen's record or None; "parameters": A1111 text or
    None (PNG "parameters", else XMP exif:UserComment, else the Exif UserComment); "comfyui": {"prompt", "workflow"}
    (JSON-decoded when they parse) or None; "xmp": {"description", "digital_source_type", "creator_tool",
    "user_comment"} or None; "text": the other PNG text chunks, first one of each key; "exif": whichever of Software,
    ImageDescription, UserComment, Artist the Exif block has, or None; "c2pa": None or {"present": True,
    "claim_generator": str or None}. A damaged file reports what precedes the damage; ValueError if it is no image.
    """
    with open(path, "rb") as f:
        info = imageinfo.read_info(f)
        if info is None:
            raise ValueError(f"{path} is not an image")
        found = _Found()
        collect = _COLLECTORS.get(info.format)
        if collect is not None:
            with contextlib.suppress(ValueError):
                collect(f, _size(f), found)
    return _report(info, found)


def strip_check(a: Path, b: Path, fmt: str) -> bool:
    """True when `a` and `b` hold the same image data: every non-metadata chunk or segment byte for byte (for JPEG,
    everything from the first scan on), and the same size and transparency as imageinfo reads them."""
    fmt = _format(fmt)
    try:
        return _image_digest(a, fmt) == _image_digest(b, fmt)
    except ValueError:
        return False


# --- walking the containers ---------------------------------------------------------------------------------------


def _format(fmt: str) -> str:
    fmt = fmt.lower()
    fmt = "jpeg" if fmt == "jpg" else fmt
    if fmt not in FORMATS:
        raise ValueError(f"metadata cannot be embedded in {fmt}")
    return fmt


def _size(f: typing.BinaryIO) -> int:
    return os.fstat(f.fileno()).st_size


def _pread(f: typing.BinaryIO, offset: int, n: int) -> bytes:
    f.seek(offset)
    return f.read(n)


def _parts(f: typing.BinaryIO, fmt: str, size: int, steps: int, lenient: bool = False) -> Iterator[_Part]:
    """The chunks or segments of a file `sniff` named `fmt`; ValueError where the structure breaks."""
    if fmt == "png":
        return _png_parts(f, size, steps)
    if fmt == "jpeg":
        return _jpeg_parts(f, size, steps)
    return _webp_parts(f, _riff_end(f, size, lenient), steps)


def _png_parts(f: typing.BinaryIO, size: int, steps: int) -> Iterator[_Part]:
    """Every chunk up to and including IEND."""
    pos = 8
    for _ in range(steps):
        header = _pread(f, pos, 8)
        if len(header) < 8:
            raise ValueError("PNG cut short before IEND")
        length, kind = struct.unpack(">I4s", header)
        end = pos + 12 + length
        if length >= 2**31 or not kind.isalpha() or end > size:
            raise ValueError(f"PNG chunk at byte {pos} is corrupt or cut short")
        yield _Part(kind, pos, pos + 8, length, end)
        if kind == b"IEND":
            return
        pos = end
    raise ValueError("PNG has too many chunks")


# Markers with no length: TEM and RST0-7. SOI again, or EOI, before the first scan means a broken file.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def _jpeg_parts(f: typing.BinaryIO, size: int, steps: int) -> Iterator[_Part]:
    """The segments up to and including the first SOS, whose `end` is where the entropy-coded data begins. Every
    metadata segment precedes it."""
    pos = 2
    for _ in range(steps):
        head = _pread(f, pos, 4)
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
        yield _Part(head[1:2], pos, pos + 4, length - 2, end)
        if marker == 0xDA:
            return
        pos = end
    raise ValueError("JPEG has too many segments")


def _riff_end(f: typing.BinaryIO, size: int, lenient: bool = False) -> int:
    (riff_size,) = struct.unpack("<I", _pread(f, 4, 4))
    end = 8 + riff_size
    if riff_size < 4 or (end > size and not lenient):
        raise ValueError("WebP is cut short or its RIFF size is wrong")
    return min(end, size)


def _webp_parts(f: typing.BinaryIO, riff_end: int, steps: int) -> Iterator[_Part]:
    """Every chunk inside the RIFF container."""
    pos = 12
    for _ in range(steps):
        if pos >= riff_end:
            return
        header = _pread(f, pos, 8)
        if len(header) < 8:
            raise ValueError("WebP cut short")
        kind, length = struct.unpack("<4sI", header)
        end = pos + 8 + length + (length & 1)
        if end > riff_end:
            raise ValueError(f"WebP chunk at byte {pos} overruns the file")
        yield _Part(kind, pos, pos + 8, length, end)
        pos = end
    raise ValueError("WebP has too many chunks")


def _is_c2pa(fmt: str, f: typing.BinaryIO, part: _Part) -> bool:
    if fmt == "png":
        return part.kind == b"caBX"
    if fmt == "webp":
        return part.kind == b"C2PA"
    if part.kind != b"\xeb":
        return False
    # APP11 as JPEG XT (ISO 19566-5) frames JUMBF: "JP", box instance, sequence number, then the superbox's LBox and
    # "jumb"; the c2pa description box (its UUID starts with "c2pa", then the label) follows within a few bytes.
    head = _pread(f, part.data, min(part.size, 64))
    return head[:2] == b"JP" and head[12:16] == b"jumb" and b"c2pa" in head


# --- embed --------------------------------------------------------------------------------------------------------

# A plan is the new file as literal bytes and (offset, length) ranges copied from the source.
_Plan = list[bytes | tuple[int, int]]


def _plan_png(f: typing.BinaryIO, size: int, info: imageinfo.ImageInfo, record: dict, parameters: str | None) -> _Plan:
    has_xmp = has_idat = False
    for part in _png_parts(f, size, STRUCTURE_STEPS):
        if _is_c2pa("png", f, part):
            raise Signed("the PNG carries a C2PA manifest")
        has_idat = has_idat or part.kind == b"IDAT"
        if part.kind == b"iTXt" and _pread(f, part.data, len(_PNG_XMP_KEY) + 1) == _PNG_XMP_KEY + b"\0":
            has_xmp = True
    if not has_idat:
        raise ValueError("PNG has no image data")
    return [(0, PNG_HEAD), png_chunks(record, parameters, xmp=not has_xmp), (PNG_HEAD, size - PNG_HEAD)]


PNG_HEAD = 8 + 8 + 13 + 4  # signature and IHDR: read_info has checked that IHDR comes first, 13 bytes long
_PNG_START = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"


def png_chunks(record: dict, parameters: str | None, *, xmp: bool = True) -> bytes:
    """The chunks a PNG gets after its IHDR: imgen's record, the A1111 parameters, an XMP packet."""
    chunks = [_png_chunk(b"iTXt", _itxt(b"imgen", _json(record)))]
    if parameters is not None:
        chunks.append(_png_text(b"parameters", parameters))
    if xmp:
        chunks.append(_png_chunk(b"iTXt", _itxt(_PNG_XMP_KEY, _xmp_packet(record, None, carry_record=False).decode())))
    return b"".join(chunks)


def png_insertion(head: bytes, record: dict, parameters: str | None) -> bytes | None:
    """What `embed` would put after this file's first PNG_HEAD bytes, for a writer to put there as the file
    arrives; None unless they are a PNG's signature and IHDR."""
    if len(head) < PNG_HEAD or not head.startswith(_PNG_START):
        return None
    return png_chunks(record, parameters)


def png_insertion_stands(path: Path, offset: int, length: int) -> bool:
    """Whether the chunks png_insertion put at `offset` may stay: the file is a PNG `embed` would have written
    them into (image data, no C2PA manifest) and holds no XMP packet of its own."""
    try:
        with open(path, "rb") as f:
            info = imageinfo.read_info(f)
            if info is None or info.format != "png" or info.width is None or info.height is None:
                return False
            has_idat = False
            for part in _png_parts(f, _size(f), STRUCTURE_STEPS):
                if offset <= part.start < offset + length:
                    continue
                if _is_c2pa("png", f, part):
                    return False
                if part.kind == b"iTXt" and _pread(f, part.data, len(_PNG_XMP_KEY) + 1) == _PNG_XMP_KEY + b"\0":
                    return False
                has_idat = has_idat or part.kind == b"IDAT"
            return has_idat
    except (OSError, ValueError):
        return False


def _plan_jpeg(f: typing.BinaryIO, size: int, info: imageinfo.ImageInfo, record: dict, parameters: str | None) -> _Plan:
    insert = scan = None
    for part in _jpeg_parts(f, size, STRUCTURE_STEPS):
        if _is_c2pa("jpeg", f, part):
            raise Signed("the JPEG carries a C2PA manifest")
        head = _pread(f, part.data, len(_XMP_SIG)) if part.kind == b"\xe1" else b""
        if head == _XMP_SIG:
            raise ValueError("the JPEG already has an XMP packet")
        if insert is None and part.kind != b"\xe0" and not head.startswith(b"Exif\0"):
            insert = part.start
        scan = part.end
    assert insert is not None and scan is not None  # the walk only ends normally at SOS
    if not _has_eoi(f, scan, size):
        raise ValueError("JPEG cut short: no end-of-image marker")
    packet = _XMP_SIG + _jpeg_packet(record, parameters)
    segment = b"\xff\xe1" + struct.pack(">H", 2 + len(packet)) + packet
    return [(0, insert), segment, (insert, size - insert)]


def _has_eoi(f: typing.BinaryIO, start: int, size: int) -> bool:
    """Whether an EOI marker follows `start`. Entropy-coded data stuffs every 0xFF with a zero, so the first FF D9 is
    the end of the image, and a file without one was cut short."""
    f.seek(start)
    carry = b""
    while block := f.read(COPY_BLOCK):
        if b"\xff\xd9" in carry + block[:1] or b"\xff\xd9" in block:
            return True
        carry = block[-1:]
    return False


def _plan_webp(f: typing.BinaryIO, size: int, info: imageinfo.ImageInfo, record: dict, parameters: str | None) -> _Plan:
    riff_end = _riff_end(f, size)
    first = None
    for part in _webp_parts(f, riff_end, STRUCTURE_STEPS):
        first = first or part
        if _is_c2pa("webp", f, part):
            raise Signed("the WebP carries a C2PA manifest")
        if part.kind == b"XMP ":
            raise ValueError("the WebP already has an XMP packet")
    if first is None:
        raise ValueError("WebP has no chunks")
    xmp = _riff_chunk(b"XMP ", _xmp_packet(record, parameters))
    tail = [xmp, (riff_end, size - riff_end)]  # bytes past the RIFF container, if any, stay where they were
    if first.kind == b"VP8X" and first.size == 10:
        (flags,) = _pread(f, first.data, 1)
        body: _Plan = [(12, 8), bytes([flags | _WEBP_XMP]), (first.data + 1, riff_end - first.data - 1)]
        riff_size = riff_end - 8 + len(xmp)
    elif first.kind in (b"VP8 ", b"VP8L"):
        flags = _WEBP_XMP | (_WEBP_ALPHA if info.alpha else 0)  # read_info read the VP8L alpha bit; VP8 has none
        canvas = (info.width - 1).to_bytes(3, "little") + (info.height - 1).to_bytes(3, "little")
        vp8x = _riff_chunk(b"VP8X", bytes([flags, 0, 0, 0]) + canvas)
        body = [vp8x, (12, riff_end - 12)]
        riff_size = riff_end - 8 + len(vp8x) + len(xmp)
    else:
        raise ValueError("WebP does not start with an image chunk")
    if riff_size >= 2**32:
        raise ValueError("WebP would outgrow the RIFF size field")
    return [b"RIFF" + struct.pack("<I", riff_size) + b"WEBP", *body, *tail]


_PLANNERS = {"png": _plan_png, "jpeg": _plan_jpeg, "webp": _plan_webp}


def _write(src: typing.BinaryIO, dst: Path, plan: _Plan) -> None:
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
    try:
        with os.fdopen(fd, "wb") as out:
            for piece in plan:
                if isinstance(piece, bytes):
                    out.write(piece)
                else:
                    _copy(src, out, *piece)
    except BaseException:
        # Only reached once dst was created by this call, so nothing of anyone else's is removed.
        with contextlib.suppress(OSError):
            os.unlink(dst)
        raise


def _copy(src: typing.BinaryIO, out: typing.BinaryIO, offset: int, length: int) -> None:
    for block in _blocks(src, offset, length):
        out.write(block)


def _blocks(f: typing.BinaryIO, offset: int, length: int) -> Iterator[bytes]:
    """`length` bytes from `offset`, a block at a time (a big image is never held whole)."""
    f.seek(offset)
    while length > 0:
        block = f.read(min(COPY_BLOCK, length))
        if not block:
            raise ValueError("the file shrank while it was read")
        yield block
        length -= len(block)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    if len(data) >= 2**31:
        raise ValueError("metadata too large for a PNG chunk")
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _itxt(keyword: bytes, text: str) -> bytes:
    # Uncompressed, no language tag, no translated keyword: readable by any tool, and grep finds the prompt.
    return keyword + b"\0\0\0\0\0" + text.encode("utf-8", "replace")


def _png_text(keyword: bytes, text: str) -> bytes:
    text = text.replace("\0", "")  # the separator; no reader would see past it
    try:
        return _png_chunk(b"tEXt", keyword + b"\0" + text.encode("latin-1"))
    except UnicodeEncodeError:
        return _png_chunk(b"iTXt", _itxt(keyword, text))


def _riff_chunk(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack("<I", len(data)) + data + b"\0" * (len(data) & 1)


def _json(record: dict) -> str:
    """The record as JSON text that is valid UTF-8 and valid XML character data: lone surrogates and U+FFFE/U+FFFF,
    which neither can carry, become JSON escapes (JSON already escapes control characters)."""
    text = json.dumps(record, ensure_ascii=False)
    return _XML_ILLEGAL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _xml_text(text: str) -> str:
    text = _XML_ILLEGAL.sub("\ufffd", text)
    # A literal CR would come back as LF from any XML parser; a character reference survives.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#xD;")


def _xmp_packet(record: dict, parameters: str | None, carry_record: bool = True) -> bytes:
    properties = []
    prompt = record.get("prompt")
    if isinstance(prompt, str):
        properties.append(_lang_alt("dc:description", prompt))
    properties.append(f"<Iptc4xmpExt:DigitalSourceType>{TRAINED_ALGORITHMIC_MEDIA}</Iptc4xmpExt:DigitalSourceType>")
    properties.append(f"<xmp:CreatorTool>imgen {_xml_text(__version__)}</xmp:CreatorTool>")
    if carry_record:
        if parameters is not None:
            properties.append(_lang_alt("exif:UserComment", parameters))
        properties.append(f"<imgen:record>{_xml_text(_json(record))}</imgen:record>")
    namespaces = "".join(f'\n    xmlns:{prefix}="{uri}"' for prefix, uri in _NS.items())
    body = "".join(f"\n   {p}" for p in properties)
    text = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        f' <rdf:RDF xmlns:rdf="{_RDF}">\n'
        f'  <rdf:Description rdf:about=""{namespaces}>{body}\n'
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    )
    return text.encode("utf-8")


def _lang_alt(name: str, text: str) -> str:
    # dc:description and exif:UserComment are language alternatives in XMP, not simple text.
    return f'<{name}><rdf:Alt><rdf:li xml:lang="x-default">{_xml_text(text)}</rdf:li></rdf:Alt></{name}>'


def _jpeg_packet(record: dict, parameters: str | None) -> bytes:
    """The XMP packet, fitted to one APP1 segment: when too big, every string longer than some cap (the largest cap
    that fits, found by bisection) is cut to it and marked."""
    packet = _xmp_packet(record, parameters)
    if len(packet) <= _XMP_MAX_JPEG:
        return packet
    best, low, high = None, 0, max([*_string_lengths(record), len(parameters or "")])
    while low < high:
        cap = (low + high) // 2
        candidate = _xmp_packet(_cut(record, cap), _cut(parameters, cap))
        if len(candidate) <= _XMP_MAX_JPEG:
            best, low = candidate, cap + 1
        else:
            high = cap
    if best is None:
        raise ValueError("the record is too large for a JPEG XMP segment even with its strings cut")
    return best


def _string_lengths(value: object) -> Iterator[int]:
    if isinstance(value, str):
        yield len(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _string_lengths(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _string_lengths(item)


def _cut(value: typing.Any, cap: int) -> typing.Any:
    if isinstance(value, str):
        return value if len(value) <= cap else value[:cap] + CUT_MARK
    if isinstance(value, dict):
        return {key: _cut(item, cap) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_cut(item, cap) for item in value]
    return value


# --- read ---------------------------------------------------------------------------------------------------------


@dataclass
class _Found:
    budget: int = MAX_METADATA
    texts: list[tuple[str, str]] = field(default_factory=list)
    xmp: bytes | None = None
    exif: bytes | None = None
    c2pa: bool = False
    manifest: bytearray = field(default_factory=bytearray)

    def take(self, f: typing.BinaryIO, part: _Part, partial: bool = False) -> bytes | None:
        """The payload of `part` (its first bytes only, when `partial`), or None when that would exceed the budget."""
        if part.size > self.budget and not partial:
            return None
        data = _pread(f, part.data, min(part.size, self.budget))
        self.budget -= len(data)
        return data

    def inflate(self, data: bytes) -> bytes | None:
        """zlib-decompressed `data`, or None when it is corrupt or inflates past the budget."""
        inflater = zlib.decompressobj()
        try:
            out = inflater.decompress(data, self.budget + 1)
        except zlib.error:
            return None
        if len(out) > self.budget:
            return None
        self.budget -= len(out)
        return out


def _collect_png(f: typing.BinaryIO, size: int, found: _Found) -> None:
    for part in _png_parts(f, size, imageinfo.MAX_STEPS):
        if part.kind in (b"tEXt", b"zTXt", b"iTXt"):
            data = found.take(f, part)
            entry = None if data is None else _png_text_entry(part.kind, data, found)
            if entry is not None:
                found.texts.append(entry)
        elif part.kind == b"eXIf" and found.exif is None:
            found.exif = found.take(f, part)
        elif part.kind == b"caBX":
            found.c2pa = True
            found.manifest += found.take(f, part, partial=True) or b""


def _png_text_entry(kind: bytes, data: bytes, found: _Found) -> tuple[str, str] | None:
    keyword, sep, rest = data.partition(b"\0")
    if not sep or not 1 <= len(keyword) <= 79:
        return None
    key = keyword.decode("latin-1")
    if kind == b"tEXt":
        return key, rest.decode("latin-1")
    if kind == b"zTXt":
        text = found.inflate(rest[1:]) if rest[:1] == b"\0" else None
        return None if text is None else (key, text.decode("latin-1"))
    if len(rest) < 2:
        return None
    compressed, method = rest[0], rest[1]
    _language, sep1, rest = rest[2:].partition(b"\0")
    _translated, sep2, text = rest.partition(b"\0")
    if not (sep1 and sep2) or (compressed and method != 0):
        return None
    if compressed:
        text = found.inflate(text)
        if text is None:
            return None
    return key, text.decode("utf-8", "replace")


def _collect_jpeg(f: typing.BinaryIO, size: int, found: _Found) -> None:
    for part in _jpeg_parts(f, size, imageinfo.MAX_STEPS):
        if part.kind == b"\xe1":
            head = _pread(f, part.data, len(_XMP_SIG))
            if head.startswith(b"Exif\0") and found.exif is None:
                found.exif = (found.take(f, part) or b"")[6:] or None
            elif head == _XMP_SIG and found.xmp is None:
                found.xmp = (found.take(f, part) or b"")[len(_XMP_SIG) :] or None
        elif part.kind == b"\xeb":
            found.c2pa = found.c2pa or _is_c2pa("jpeg", f, part)
            data = found.take(f, part, partial=True) or b""
            found.manifest += _jumbf_payload(data)


def _jumbf_payload(segment: bytes) -> bytes:
    """The JUMBF bytes an APP11 segment carries: after "JP", the box instance and the sequence number; segments after
    the first repeat the superbox header, which is dropped so the pieces join up."""
    if segment[:2] != b"JP" or len(segment) < 16:
        return b""
    sequence = int.from_bytes(segment[4:8], "big")
    box = segment[8:]
    if sequence > 1:
        box = box[16:] if int.from_bytes(box[:4], "big") == 1 else box[8:]  # LBox 1: an 8-byte XLBox follows TBox
    return box


def _collect_webp(f: typing.BinaryIO, size: int, found: _Found) -> None:
    for part in _webp_parts(f, _riff_end(f, size, lenient=True), imageinfo.MAX_STEPS):
        if part.kind == b"EXIF" and found.exif is None:
            data = found.take(f, part) or b""
            found.exif = data[6:] if data.startswith(b"Exif\0") else data  # some writers keep JPEG's prefix
        elif part.kind == b"XMP " and found.xmp is None:
            found.xmp = found.take(f, part)
        elif part.kind == b"C2PA":
            found.c2pa = True
            found.manifest += found.take(f, part, partial=True) or b""


_COLLECTORS = {"png": _collect_png, "jpeg": _collect_jpeg, "webp": _collect_webp}


def _report(info: imageinfo.ImageInfo, found: _Found) -> dict:
    text: dict[str, str] = {}
    for key, value in found.texts:
        text.setdefault(key, value)
    record = _json_object(text.pop("imgen", None))
    parameters = text.pop("parameters", None)
    comfy = {key: _maybe_json(text.pop(key, None)) for key in ("prompt", "workflow")}
    packet = text.pop(_PNG_XMP_KEY.decode(), None)
    xmp = _parse_xmp(found.xmp if packet is None else packet.encode("utf-8"))
    if xmp is not None:
        xmp_record = xmp.pop("record")
        record = record if record is not None else _json_object(xmp_record)
        parameters = parameters if parameters is not None else xmp["user_comment"]
    exif = _parse_exif(found.exif) if found.exif else None
    if parameters is None and exif:
        parameters = exif.get("UserComment")
    return {
        "format": info.format,
        "width": info.width,
        "height": info.height,
        "imgen": record,
        "parameters": parameters,
        "comfyui": comfy if any(v is not None for v in comfy.values()) else None,
        "xmp": xmp,
        "text": text,
        "exif": exif,
        "c2pa": {"present": True, "claim_generator": _claim_generator(bytes(found.manifest))} if found.c2pa else None,
    }


def _loads(text: str) -> typing.Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: hostile nesting
        return None


def _json_object(text: str | None) -> dict | None:
    value = None if text is None else _loads(text)
    return value if isinstance(value, dict) else None


def _maybe_json(text: str | None) -> typing.Any:
    if text is None:
        return None
    value = _loads(text)
    return text if value is None and text.strip() != "null" else value


def _parse_xmp(packet: bytes | None) -> dict | None:
    if not packet:
        return None
    packet = packet.rstrip(b"\0 \t\r\n")
    # XMP never needs a DTD, and entities are how XML bombs work. A NUL means UTF-16 or UTF-32, where the byte
    # search would miss a DTD; every container here mandates UTF-8 anyway.
    if b"<!DOCTYPE" in packet or b"<!ENTITY" in packet or b"\0" in packet:
        return None
    import xml.etree.ElementTree as ET  # only reading a packet parses XML; writing one does not

    try:
        root = ET.fromstring(packet)
    except (ET.ParseError, ValueError):
        return None
    descriptions = list(root.iter(f"{{{_RDF}}}Description"))

    def prop(prefix: str, name: str) -> str | None:
        tag = f"{{{_NS[prefix]}}}{name}"
        for description in descriptions:
            if tag in description.attrib:
                return description.attrib[tag]
            element = description.find(tag)
            if element is not None:
                return _xmp_value(element)
        return None

    return {
        "description": prop("dc", "description"),
        "digital_source_type": prop("Iptc4xmpExt", "DigitalSourceType"),
        "creator_tool": prop("xmp", "CreatorTool"),
        "user_comment": prop("exif", "UserComment"),
        "record": prop("imgen", "record"),
    }


def _xmp_value(element: ET.Element) -> str | None:
    """A simple property's text or resource URI, or a language alternative's x-default (else first) item."""
    resource = element.get(f"{{{_RDF}}}resource")
    if resource is not None:
        return resource
    containers = [child for child in element if child.tag in (f"{{{_RDF}}}Alt", f"{{{_RDF}}}Seq", f"{{{_RDF}}}Bag")]
    if not containers:
        return None if len(element) else (element.text or "")
    items = containers[0].findall(f"{{{_RDF}}}li")
    chosen = next((li for li in items if li.get(_XML_LANG) == "x-default"), items[0] if items else None)
    return None if chosen is None else (chosen.text or "")


# --- Exif ---------------------------------------------------------------------------------------------------------

_EXIF_TEXT = {0x010E: "ImageDescription", 0x0131: "Software", 0x013B: "Artist"}
_EXIF_IFD = 0x8769
_USER_COMMENT = 0x9286
_TIFF_WIDTHS = {1: 1, 2: 1, 3: 2, 4: 4, 7: 1, 13: 4}  # BYTE, ASCII, SHORT, LONG, UNDEFINED, IFD


def _parse_exif(tiff: bytes) -> dict[str, str] | None:
    """The few text tags worth showing, from IFD0 and the Exif IFD of a TIFF-structured Exif block."""
    order = {b"II*\0": "<", b"MM\0*": ">"}.get(tiff[:4])
    if order is None or len(tiff) < 8:
        return None
    ifd0 = _ifd(tiff, struct.unpack_from(order + "I", tiff, 4)[0], order)
    out = {name: _exif_ascii(ifd0[tag][1]) for tag, name in _EXIF_TEXT.items() if tag in ifd0}
    pointer = ifd0.get(_EXIF_IFD)
    if pointer is not None and len(pointer[1]) == 4:
        exif_ifd = _ifd(tiff, struct.unpack(order + "I", pointer[1])[0], order)
        if _USER_COMMENT in exif_ifd:
            comment = _user_comment(exif_ifd[_USER_COMMENT][1], order == ">")
            if comment is not None and comment.strip():
                out["UserComment"] = comment
    return out or None


def _ifd(tiff: bytes, offset: int, order: str) -> dict[int, tuple[int, bytes]]:
    """tag -> (type, value bytes) for the entries of one IFD, each bounds-checked."""
    entries: dict[int, tuple[int, bytes]] = {}
    if offset + 2 > len(tiff):
        return entries
    (count,) = struct.unpack_from(order + "H", tiff, offset)
    for i in range(min(count, 1000)):
        at = offset + 2 + 12 * i
        if at + 12 > len(tiff):
            break
        tag, kind, n = struct.unpack_from(order + "HHI", tiff, at)
        width = _TIFF_WIDTHS.get(kind)
        if width is None:
            continue
        length = width * n
        start = at + 8 if length <= 4 else struct.unpack_from(order + "I", tiff, at + 8)[0]
        if start + length <= len(tiff):
            entries.setdefault(tag, (kind, tiff[start : start + length]))
    return entries


def _exif_ascii(raw: bytes) -> str:
    raw = raw.split(b"\0", 1)[0]
    try:
        return raw.decode("utf-8")  # Exif says ASCII; what tools actually write is UTF-8
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _user_comment(raw: bytes, big_endian: bool) -> str | None:
    """UserComment starts with an 8-byte character code; A1111 writes UNICODE (UTF-16) through piexif."""
    code, body = raw[:8], raw[8:]
    if code == b"UNICODE\0":
        text = _utf16(body, big_endian)
    elif code == b"ASCII\0\0\0":
        text = body.decode("latin-1")
    elif code == b"JIS\0\0\0\0\0":
        text = body.decode("shift_jis", "replace")
    else:
        text = body.decode("utf-8", "replace")
    return text.rstrip("\0")


def _utf16(body: bytes, big_endian: bool) -> str:
    # The spec says the TIFF byte order, but writers disagree; a first character in ASCII shows the real one.
    if body[:2] in (b"\xfe\xff", b"\xff\xfe"):
        return body.decode("utf-16", "replace")
    if len(body) >= 2 and (body[0] == 0) != (body[1] == 0):
        big_endian = body[0] == 0
    return body[: len(body) & ~1].decode("utf-16-be" if big_endian else "utf-16-le", "replace")


# --- C2PA ---------------------------------------------------------------------------------------------------------


def _claim_generator(manifest: bytes) -> str | None:
    """The claim_generator of the last claim in the manifest store (the active manifest comes last): the CBOR text
    key, then a CBOR text string. Claims of C2PA 2.x drop it for claim_generator_info, whose "name" is used then."""
    at = manifest.rfind(b"\x6fclaim_generator")  # 0x6f: a 15-byte text string
    if at >= 0 and (text := _cbor_text(manifest, at + 16)) is not None:
        return text
    at = manifest.rfind(b"\x74claim_generator_info")
    if at >= 0:
        window = manifest[at + 21 : at + 21 + 1024]
        name = window.find(b"\x64name")
        if name >= 0:
            return _cbor_text(window, name + 5)
    return None


def _cbor_text(data: bytes, pos: int) -> str | None:
    """The CBOR text string (major type 3, definite length) at `pos`, or None."""
    if pos >= len(data) or data[pos] >> 5 != 3:
        return None
    length, pos = data[pos] & 0x1F, pos + 1
    if length >= 24:
        width = {24: 1, 25: 2, 26: 4}.get(length)
        if width is None or pos + width > len(data):
            return None  # 8-byte lengths and indefinite strings: nothing a tool name needs
        length, pos = int.from_bytes(data[pos : pos + width], "big"), pos + width
    if length > 4096 or pos + length > len(data):
        return None
    try:
        return data[pos : pos + length].decode("utf-8")
    except UnicodeDecodeError:
        return None


# --- strip_check --------------------------------------------------------------------------------------------------


def _image_digest(path: Path, fmt: str) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        info = imageinfo.read_info(f)
        if info is None or info.format != fmt:
            raise ValueError(f"{path} is not {fmt}")
        digest.update(repr((info.width, info.height, info.alpha)).encode())
        size = _size(f)
        last = None
        for last in _parts(f, fmt, size, STRUCTURE_STEPS):
            if last.kind not in _METADATA[fmt]:
                _hash_range(f, digest, last.start, last.end - last.start)
        if fmt == "jpeg" and last is not None:
            _hash_range(f, digest, last.end, size - last.end)  # the scans, EOI and anything after
    return digest.digest()


def _hash_range(f: typing.BinaryIO, digest: typing.Any, offset: int, length: int) -> None:
    for block in _blocks(f, offset, length):
        digest.update(block)
