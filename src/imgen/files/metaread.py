"""Reading what an image file says about itself (files/metadata.py writes it): imgen's record, the
A1111 parameters, ComfyUI's workflow, XMP, Exif and whether Content Credentials are there, without
decoding the image. At most MAX_METADATA bytes of metadata are read, decompressed text included.
"""

from __future__ import annotations

import contextlib
import json
import struct
import typing
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from . import imageinfo
from .containers import Part, is_c2pa, jpeg_parts, png_parts, pread, riff_extent, size_of, webp_parts
from .metanames import MAX_METADATA, NS, PNG_XMP_KEY, RDF, XML_LANG, XMP_SIG


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
                collect(f, size_of(f), found)
    return _report(info, found)


@dataclass
class _Found:
    budget: int = MAX_METADATA
    texts: list[tuple[str, str]] = field(default_factory=list)
    xmp: bytes | None = None
    exif: bytes | None = None
    c2pa: bool = False
    manifest: bytearray = field(default_factory=bytearray)

    def take(self, f: typing.BinaryIO, part: Part, partial: bool = False) -> bytes | None:
        """The payload of `part` (its first bytes only, when `partial`), or None when that would exceed the budget."""
        if part.size > self.budget and not partial:
            return None
        data = pread(f, part.data, min(part.size, self.budget))
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
    for part in png_parts(f, size, imageinfo.MAX_STEPS):
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
    for part in jpeg_parts(f, size, imageinfo.MAX_STEPS):
        if part.kind == b"\xe1":
            head = pread(f, part.data, len(XMP_SIG))
            if head.startswith(b"Exif\0") and found.exif is None:
                found.exif = (found.take(f, part) or b"")[6:] or None
            elif head == XMP_SIG and found.xmp is None:
                found.xmp = (found.take(f, part) or b"")[len(XMP_SIG) :] or None
        elif part.kind == b"\xeb":
            found.c2pa = found.c2pa or is_c2pa("jpeg", f, part)
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
    for part in webp_parts(f, riff_extent(f, size, lenient=True), imageinfo.MAX_STEPS):
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
    packet = text.pop(PNG_XMP_KEY.decode(), None)
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
    descriptions = list(root.iter(f"{{{RDF}}}Description"))

    def prop(prefix: str, name: str) -> str | None:
        tag = f"{{{NS[prefix]}}}{name}"
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
    resource = element.get(f"{{{RDF}}}resource")
    if resource is not None:
        return resource
    containers = [child for child in element if child.tag in (f"{{{RDF}}}Alt", f"{{{RDF}}}Seq", f"{{{RDF}}}Bag")]
    if not containers:
        return None if len(element) else (element.text or "")
    items = containers[0].findall(f"{{{RDF}}}li")
    chosen = next((li for li in items if li.get(XML_LANG) == "x-default"), items[0] if items else None)
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
