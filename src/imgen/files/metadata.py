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
from pathlib import Path

from .. import __version__
from . import imageinfo, imagetype
from .containers import FORMATS, STRUCTURE_STEPS, is_c2pa, jpeg_parts, parts, png_parts, pread, riff_extent, size_of, webp_parts
from .metanames import NS, PNG_XMP_KEY, RDF, XMP_SIG

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
# Appended to a string cut to fit a JPEG's XMP segment, so a reader knows the text is not whole.
CUT_MARK = "…[truncated]"

COPY_BLOCK = 1 << 20
_XMP_MAX_JPEG = 65533 - len(XMP_SIG)  # the APP1 length field counts itself, the signature and the packet
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


# --- public interface ---------------------------------------------------------------------------------------------


def has_c2pa(path: Path) -> bool:
    """A Content Credentials manifest: PNG `caBX` chunk, JPEG APP11 (0xFFEB) segment holding JUMBF ("jumb"/"c2pa" box),
    WebP `C2PA` chunk. A file too damaged to walk reports what its readable part holds."""
    with open(path, "rb") as f:
        fmt = imagetype.sniff(f.read(imagetype.HEAD_BYTES))
        if fmt not in FORMATS:
            return False
        try:
            return any(is_c2pa(fmt, f, part) for part in parts(f, fmt, size_of(f), STRUCTURE_STEPS, lenient=True))
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
        plan = _PLANNERS[fmt](f, size_of(f), info, record, parameters)
        _write(f, dst, plan)


def read(path: Path) -> dict:
    """What a file says about itself, without decoding it: see metaread.read."""
    from .metaread import read as read_file  # reading loads an XML parser; writing never does

    return read_file(path)


def strip_check(a: Path, b: Path, fmt: str) -> bool:
    """True when `a` and `b` hold the same image data: every non-metadata chunk or segment byte for byte (for JPEG,
    everything from the first scan on), and the same size and transparency as imageinfo reads them."""
    fmt = _format(fmt)
    try:
        return _image_digest(a, fmt) == _image_digest(b, fmt)
    except ValueError:
        return False


def _format(fmt: str) -> str:
    fmt = fmt.lower()
    fmt = "jpeg" if fmt == "jpg" else fmt
    if fmt not in FORMATS:
        raise ValueError(f"metadata cannot be embedded in {fmt}")
    return fmt



# --- embed --------------------------------------------------------------------------------------------------------

# A plan is the new file as literal bytes and (offset, length) ranges copied from the source.
_Plan = list[bytes | tuple[int, int]]


def _plan_png(f: typing.BinaryIO, size: int, info: imageinfo.ImageInfo, record: dict, parameters: str | None) -> _Plan:
    has_xmp = has_idat = False
    for part in png_parts(f, size, STRUCTURE_STEPS):
        if is_c2pa("png", f, part):
            raise Signed("the PNG carries a C2PA manifest")
        has_idat = has_idat or part.kind == b"IDAT"
        if part.kind == b"iTXt" and pread(f, part.data, len(PNG_XMP_KEY) + 1) == PNG_XMP_KEY + b"\0":
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
        chunks.append(_png_chunk(b"iTXt", _itxt(PNG_XMP_KEY, _xmp_packet(record, None, carry_record=False).decode())))
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
            for part in png_parts(f, size_of(f), STRUCTURE_STEPS):
                if offset <= part.start < offset + length:
                    continue
                if is_c2pa("png", f, part):
                    return False
                if part.kind == b"iTXt" and pread(f, part.data, len(PNG_XMP_KEY) + 1) == PNG_XMP_KEY + b"\0":
                    return False
                has_idat = has_idat or part.kind == b"IDAT"
            return has_idat
    except (OSError, ValueError):
        return False


def _plan_jpeg(f: typing.BinaryIO, size: int, info: imageinfo.ImageInfo, record: dict, parameters: str | None) -> _Plan:
    insert = scan = None
    for part in jpeg_parts(f, size, STRUCTURE_STEPS):
        if is_c2pa("jpeg", f, part):
            raise Signed("the JPEG carries a C2PA manifest")
        head = pread(f, part.data, len(XMP_SIG)) if part.kind == b"\xe1" else b""
        if head == XMP_SIG:
            raise ValueError("the JPEG already has an XMP packet")
        if insert is None and part.kind != b"\xe0" and not head.startswith(b"Exif\0"):
            insert = part.start
        scan = part.end
    assert insert is not None and scan is not None  # the walk only ends normally at SOS
    if not _has_eoi(f, scan, size):
        raise ValueError("JPEG cut short: no end-of-image marker")
    packet = XMP_SIG + _jpeg_packet(record, parameters)
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
    riff_end = riff_extent(f, size)
    first = None
    for part in webp_parts(f, riff_end, STRUCTURE_STEPS):
        first = first or part
        if is_c2pa("webp", f, part):
            raise Signed("the WebP carries a C2PA manifest")
        if part.kind == b"XMP ":
            raise ValueError("the WebP already has an XMP packet")
    if first is None:
        raise ValueError("WebP has no chunks")
    xmp = _riff_chunk(b"XMP ", _xmp_packet(record, parameters))
    tail = [xmp, (riff_end, size - riff_end)]  # bytes past the RIFF container, if any, stay where they were
    if first.kind == b"VP8X" and first.size == 10:
        (flags,) = pread(f, first.data, 1)
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
    namespaces = "".join(f'\n    xmlns:{prefix}="{uri}"' for prefix, uri in NS.items())
    body = "".join(f"\n   {p}" for p in properties)
    text = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        f' <rdf:RDF xmlns:rdf="{RDF}">\n'
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


# --- strip_check --------------------------------------------------------------------------------------------------


def _image_digest(path: Path, fmt: str) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        info = imageinfo.read_info(f)
        if info is None or info.format != fmt:
            raise ValueError(f"{path} is not {fmt}")
        digest.update(repr((info.width, info.height, info.alpha)).encode())
        size = size_of(f)
        last = None
        for last in parts(f, fmt, size, STRUCTURE_STEPS):
            if last.kind not in _METADATA[fmt]:
                _hash_range(f, digest, last.start, last.end - last.start)
        if fmt == "jpeg" and last is not None:
            _hash_range(f, digest, last.end, size - last.end)  # the scans, EOI and anything after
    return digest.digest()


def _hash_range(f: typing.BinaryIO, digest: typing.Any, offset: int, length: int) -> None:
    for block in _blocks(f, offset, length):
        digest.update(block)
