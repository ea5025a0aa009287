"""The image edit route of the fake server: ``POST /v1/images/edits`` as ``shared/api-notes.md`` section 7 describes it.

A multipart/form-data parser over the request bytes, header readers for PNG, JPEG and WebP (size and alpha,
no decoding), and the per-model rules an edit request must pass. The answer itself is the generation route's:
:func:`edit_plan` turns the form into the body that route validates and returns its plan.

Standard library only, and it imports nothing from the server module, so the server (run as a script or
imported) can load it from the route without two copies of its own classes.
"""

from __future__ import annotations

import email.message
import email.utils
import hashlib
import math
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["EditError", "Form", "ImageInfo", "Part", "edit_plan", "image_info", "parse_multipart", "read_form",
           "wants_stream"]

MB = 1 << 20

FILE_FIELDS = ("image", "image[]", "mask")
TEXT_FIELDS = ("prompt", "model", "n", "size", "quality", "background", "output_format", "output_compression",
               "input_fidelity", "response_format", "stream", "partial_images", "user", "moderation")
_INT_FIELDS = ("n", "output_compression", "partial_images")
_BOOL_FIELDS = ("stream",)

_GPT_EDIT_MODEL = re.compile(r"^(gpt-image-1|gpt-image-1-mini|gpt-image-1\.5|gpt-image-2)(-\d{4}-\d{2}-\d{2})?$")
_FIDELITY_MODELS = ("gpt-image-1", "gpt-image-1.5", "gpt-image-2")
_EDIT_MODELS = ("dall-e-2", "gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5", "gpt-image-2", "qwen-image-edit")
_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_ANY_IMAGE = ("image/jpeg", "image/png", "image/webp")
_PNG_ONLY = ("image/png",)

# Per family: accepted mimetypes, most images, the size each must stay under.
_LIMITS = {
    "gpt": (_ANY_IMAGE, 16, 50 * MB),
    "dalle2": (_PNG_ONLY, 1, 4 * MB),
    "qwen": (_ANY_IMAGE, 1, 10 * MB),
}
_MASK_LIMIT = 4 * MB


class EditError(Exception):
    """A refused edit request: answered 400 invalid_request_error with this message, param and code."""

    def __init__(self, message: str, param: str | None = None, code: str | None = "invalid_value") -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


# --------------------------------------------------------------------------------------------
# Image headers


@dataclass(frozen=True)
class ImageInfo:
    fmt: str  # png, jpeg, webp
    width: int
    height: int
    alpha: bool  # an alpha channel or a transparent colour (tRNS)
    mode: str  # PIL-style name of the pixel layout, for error texts


def sniff(data: Any) -> str | None:
    """The format the magic bytes announce, whatever the file claims to be."""
    head = bytes(data[:12])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def image_info(data: Any) -> ImageInfo | None:
    """Size and transparency from the header alone; None when the bytes are no readable image."""
    reader = {"png": _png_info, "jpeg": _jpeg_info, "webp": _webp_info}.get(sniff(data) or "")
    if reader is None:
        return None
    try:
        return reader(memoryview(data))
    except (struct.error, IndexError, ValueError):
        return None


_PNG_MODES = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}


def _png_info(view: memoryview) -> ImageInfo | None:
    length, kind = struct.unpack_from(">I4s", view, 8)
    if kind != b"IHDR" or length != 13:
        return None
    width, height, _depth, colour = struct.unpack_from(">IIBB", view, 16)
    if colour not in _PNG_MODES or not width or not height:
        return None
    # tRNS sits between IHDR and the first IDAT; the walk skips any chunk by its length, so a padded file is cheap.
    alpha, pos = colour in (4, 6), 8 + 12 + 13
    while pos + 8 <= len(view):
        length, kind = struct.unpack_from(">I4s", view, pos)
        if kind == b"tRNS":
            alpha = True
        if kind in (b"IDAT", b"IEND"):
            break
        pos += 12 + length
    return ImageInfo("png", width, height, alpha, _PNG_MODES[colour])


# SOFn markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not frames.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_info(view: memoryview) -> ImageInfo | None:
    pos = 2
    while pos + 4 <= len(view):
        if view[pos] != 0xFF:
            return None
        marker = view[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        (length,) = struct.unpack_from(">H", view, pos + 2)
        if marker in _JPEG_SOF:
            height, width, components = struct.unpack_from(">HHB", view, pos + 5)
            if not width or not height:
                return None
            return ImageInfo("jpeg", width, height, False, {1: "L", 3: "RGB", 4: "CMYK"}.get(components, "RGB"))
        pos += 2 + length
    return None


def _webp_info(view: memoryview) -> ImageInfo | None:
    kind, size = struct.unpack_from("<4sI", view, 12)
    payload = view[20 : 20 + size]
    if kind == b"VP8 ":
        if bytes(payload[3:6]) != b"\x9d\x01\x2a":
            return None
        width, height = struct.unpack_from("<HH", payload, 6)
        return ImageInfo("webp", width & 0x3FFF, height & 0x3FFF, False, "RGB")
    if kind == b"VP8L":
        if payload[0] != 0x2F:
            return None
        (bits,) = struct.unpack_from("<I", payload, 1)
        alpha = bool(bits >> 28 & 1)
        return ImageInfo("webp", (bits & 0x3FFF) + 1, (bits >> 14 & 0x3FFF) + 1, alpha, "RGBA" if alpha else "RGB")
    if kind == b"VP8X":
        alpha = bool(payload[0] & 0x10)
        width = int.from_bytes(payload[4:7], "little") + 1
        height = int.from_bytes(payload[7:10], "little") + 1
        return ImageInfo("webp", width, height, alpha, "RGBA" if alpha else "RGB")
    return None


# --------------------------------------------------------------------------------------------
# multipart/form-data


@dataclass
class Part:
    name: str
    filename: str | None  # None for a text part: the only thing that tells a file from a text
    content_type: str | None  # as declared, None when the part has no Content-Type
    data: memoryview  # a slice of the request body, never a copy
    info: ImageInfo | None = None


@dataclass
class Form:
    """An edit request's form as recorded on ``Recorded.form``."""

    fields: dict[str, str]  # text parts, name -> value (a repeated name keeps the last)
    files: list[dict[str, Any]]  # file parts in order: name, filename, content_type, bytes, sha256, width, height,
    #                              format (from the magic bytes), alpha
    chunked: bool  # the body came with Transfer-Encoding: chunked
    content_length: int | None  # the declared Content-Length, None when chunked
    parts: list[Part] = field(default_factory=list, repr=False, compare=False)


def _header_params(name: str, value: str) -> email.message.Message:
    msg = email.message.Message()
    msg[name] = value
    return msg


def _boundary(content_type: str | None) -> bytes:
    msg = _header_params("content-type", content_type or "")
    if not content_type or msg.get_content_type() != "multipart/form-data":
        raise EditError(f"Invalid Content-Type header ({content_type or 'none'}), expected multipart/form-data.",
                        None, "invalid_content_type")
    boundary = email.utils.collapse_rfc2231_value(msg.get_param("boundary") or "")
    if not boundary or len(boundary) > 70:
        raise EditError("Invalid multipart/form-data: the Content-Type header has no valid boundary.", None, None)
    return boundary.encode("latin-1", "replace")


def _malformed(why: str) -> EditError:
    return EditError(f"Invalid multipart/form-data body: {why}.", None, None)


def _delimiter_ends(body: bytes, pos: int) -> bool:
    """Whether the boundary ending at ``pos`` is a real delimiter: followed by "--" or padding and CRLF."""
    if body.startswith(b"--", pos):
        return True
    while pos < len(body) and body[pos] in b" \t":
        pos += 1
    return body.startswith(b"\r\n", pos)


def _next_delimiter(body: bytes, dash: bytes, start: int) -> int:
    """Index of the CRLF that opens the next delimiter; data may hold the boundary text without being one."""
    needle = b"\r\n" + dash
    at = start
    while True:
        found = body.find(needle, at)
        if found < 0:
            raise _malformed("a part is not closed by a boundary")
        if _delimiter_ends(body, found + len(needle)):
            return found
        at = found + 1


def _part(body: bytes, view: memoryview, start: int, end: int) -> Part:
    if body.startswith(b"\r\n", start):
        head_end, data_start = start, start + 2
    else:
        head_end = body.find(b"\r\n\r\n", start, end)
        if head_end < 0:
            raise _malformed("a part's headers do not end with a blank line")
        data_start = head_end + 4
    headers: dict[str, str] = {}
    for line in body[start:head_end].split(b"\r\n") if head_end > start else []:
        name, colon, value = line.decode("utf-8", "replace").partition(":")
        if not colon or not name.strip():
            raise _malformed(f"bad part header line {line[:60]!r}")
        headers[name.strip().lower()] = value.strip()
    disposition = headers.get("content-disposition")
    if disposition is None:
        raise _malformed("a part has no Content-Disposition header")
    msg = _header_params("content-disposition", disposition)
    if msg.get_content_disposition() != "form-data":
        raise _malformed(f"a part's Content-Disposition is not form-data ({disposition[:60]})")
    name = msg.get_param("name", header="content-disposition")
    if name is None:
        raise _malformed("a part's Content-Disposition has no name")
    return Part(email.utils.collapse_rfc2231_value(name), msg.get_filename(), headers.get("content-type"),
                view[data_start:end])


def parse_multipart(body: bytes, content_type: str | None) -> list[Part]:
    """The parts of a multipart/form-data body, in order; each part's data is a memoryview into ``body``."""
    dash = b"--" + _boundary(content_type)
    view = memoryview(body)
    # The first delimiter opens the body or follows a preamble and its CRLF; every later one follows the CRLF
    # that ends the previous part's data.
    if body.startswith(dash) and _delimiter_ends(body, len(dash)):
        pos = 0
    else:
        pos = _next_delimiter(body, dash, 0) + 2
    parts: list[Part] = []
    while True:
        pos += len(dash)
        if body.startswith(b"--", pos):
            return parts  # the close delimiter: whatever follows is an epilogue
        start = body.find(b"\r\n", pos) + 2
        end = _next_delimiter(body, dash, start)
        parts.append(_part(body, view, start, end))
        pos = end + 2


def _describe(part: Part) -> dict[str, Any]:
    info = part.info
    return {
        "name": part.name, "filename": part.filename, "content_type": part.content_type,
        "bytes": len(part.data), "sha256": hashlib.sha256(part.data).hexdigest(),
        "width": info.width if info else None, "height": info.height if info else None,
        "format": sniff(part.data), "alpha": info.alpha if info else None,
    }


def read_form(body: bytes, headers: dict[str, str]) -> Form:
    """Parse the request into the Form that is recorded; only an unparsable body is refused here."""
    parts = parse_multipart(body, headers.get("content-type"))
    fields: dict[str, str] = {}
    files = []
    for part in parts:
        if part.filename is None:
            fields[part.name] = bytes(part.data).decode("utf-8", "replace")
        else:
            part.info = image_info(part.data)
            files.append(_describe(part))
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    length = headers.get("content-length")
    return Form(fields, files, chunked, int(length) if length and not chunked else None, parts)


# --------------------------------------------------------------------------------------------
# The rules of an edit request


def edit_family(model: str) -> str | None:
    if model == "dall-e-2":
        return "dalle2"
    if model == "qwen-image-edit":
        return "qwen"
    if _GPT_EDIT_MODEL.match(model):
        return "gpt"
    return None


def _model(form: Form) -> str:
    return form.fields.get("model") or "dall-e-2"


def _as_bool(text: str) -> bool | None:
    return {"true": True, "1": True, "false": False, "0": False}.get(text.strip().lower())


def wants_stream(form: Form) -> bool:
    """Whether the answer will be an event stream: decides which faults this request can take."""
    stream = form.fields.get("stream")
    return edit_family(_model(form)) == "gpt" and stream is not None and _as_bool(stream) is True


def _param(name: str) -> str:
    return "image" if name == "image[]" else name


def _check_structure(form: Form) -> None:
    """Unknown names first, then each part's kind: a file where text belongs or the other way round."""
    for part in form.parts:
        if part.name not in FILE_FIELDS and part.name not in TEXT_FIELDS:
            raise EditError(f"Unknown parameter: '{part.name}'.", part.name, "unknown_parameter")
    for part in form.parts:
        if part.name in TEXT_FIELDS and part.filename is not None:
            raise EditError(f"Invalid type for '{part.name}': expected a string, but got a file instead.",
                            part.name, "invalid_type")
        if part.name in FILE_FIELDS and part.filename is None:
            raise EditError(f"Invalid type for '{part.name}': expected a file, but got a string instead.",
                            _param(part.name), "invalid_type")
        if part.filename is None:
            try:
                bytes(part.data).decode("utf-8")
            except UnicodeDecodeError:
                raise EditError(f"Invalid '{part.name}': the value is not valid UTF-8.", part.name) from None


def _json_body(form: Form) -> dict[str, Any]:
    """The text fields typed as the generation route's JSON body would carry them."""
    body: dict[str, Any] = {}
    for name, text in form.fields.items():
        if name in _INT_FIELDS:
            if not re.fullmatch(r"\s*[-+]?\d+\s*", text):
                raise EditError(f"Invalid type for '{name}': expected an integer, but got a string instead.",
                                name, "invalid_type")
            body[name] = int(text)
        elif name in _BOOL_FIELDS:
            value = _as_bool(text)
            if value is None:
                raise EditError(f"Invalid type for '{name}': expected a boolean, but got a string instead.",
                                name, "invalid_type")
            body[name] = value
        else:
            body[name] = text
    return body


def _listed(types: tuple[str, ...]) -> str:
    quoted = [f"'{t}'" for t in types]
    if len(quoted) < 3:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]


def _declared(part: Part) -> str:
    return (part.content_type or "application/octet-stream").split(";", 1)[0].strip().lower()


def _check_mimetype(part: Part, label: str, allowed: tuple[str, ...]) -> None:
    """The part's declared type is what counts, never the file name."""
    declared = _declared(part)
    if declared not in allowed:
        raise EditError(f"Invalid file '{label}': unsupported mimetype ('{declared}'). "
                        f"Supported file formats are {_listed(allowed)}.", label, "unsupported_file")


def _check_contents(part: Part, label: str, index: int) -> ImageInfo:
    """The bytes must be the image the part declares, with a header that can be read."""
    declared, actual = _declared(part), sniff(part.data)
    if actual is not None and _MIME[actual] != declared:
        raise EditError(f"Invalid file '{label}': the file's contents ('{_MIME[actual]}') do not match its "
                        f"declared mimetype ('{declared}').", label, "invalid_image_file")
    if actual is None or part.info is None:
        raise EditError(f"Invalid image file or mode for {label} {index}, please check your image file.",
                        label, "invalid_image_file")
    return part.info


def _check_images(images: list[Part], family: str, has_mask: bool) -> list[ImageInfo]:
    allowed, most, limit = _LIMITS[family]
    if not images:
        raise EditError("Missing required parameter: 'image'.", "image", "missing_required_parameter")
    if len(images) > most:
        if most == 1:
            raise EditError(f"Invalid 'image': this model edits exactly one image, but got {len(images)}.",
                            "image", "array_above_max_length")
        raise EditError(f"Invalid 'image': array too long. Expected an array with maximum length {most}, "
                        f"but got an array with length {len(images)} instead.", "image", "array_above_max_length")
    infos = []
    for index, part in enumerate(images, start=1):
        _check_mimetype(part, "image", allowed)
        if len(part.data) >= limit:
            if family == "dalle2":
                raise EditError("Uploaded image must be a PNG and less than 4 MB.", "image", "invalid_image_file")
            raise EditError(f"Invalid file 'image': file too large. Each image must be smaller than "
                            f"{limit // MB} MB, but image {index} is {len(part.data)} bytes.", "image", "file_too_large")
        info = _check_contents(part, "image", index)
        if family == "dalle2":
            _check_dalle2_image(info, has_mask)
        infos.append(info)
    return infos


def _check_dalle2_image(info: ImageInfo, has_mask: bool) -> None:
    if info.width != info.height:
        raise EditError(f"Invalid input image - image must be square, got {info.width}x{info.height}.",
                        "image", "invalid_image_format")
    if has_mask or info.alpha:
        return
    if info.mode == "L":
        raise EditError("Invalid input image - a grayscale image needs a transparent colour (tRNS) to be edited "
                        "without a mask, got L.", "image", "invalid_image_format")
    raise EditError(f"Invalid input image - format must be in ['RGBA', 'LA', 'L'], got {info.mode}.",
                    "image", "invalid_image_format")


def _check_mask(masks: list[Part], first: ImageInfo) -> None:
    if len(masks) > 1:
        raise EditError(f"Invalid 'mask': expected one file, but got {len(masks)}.", "mask", "array_above_max_length")
    (mask,) = masks
    _check_mimetype(mask, "mask", _PNG_ONLY)
    if len(mask.data) >= _MASK_LIMIT:
        raise EditError("Invalid mask image format - mask must be a PNG and less than 4 MB.", "mask",
                        "invalid_image_format")
    info = _check_contents(mask, "mask", 1)
    if not info.alpha:
        raise EditError(f"Invalid mask image format - mask image missing alpha channel, got {info.mode}.", "mask",
                        "invalid_image_format")
    if (info.width, info.height) != (first.width, first.height):
        raise EditError("Invalid mask image format - mask size does not match image size", "mask",
                        "invalid_image_format")


def _check_fidelity(body: dict[str, Any], model: str) -> None:
    value = body.get("input_fidelity")
    if value is None:
        return
    base = m.group(1) if (m := _GPT_EDIT_MODEL.match(model)) else model
    if base not in _FIDELITY_MODELS:
        raise EditError(f"Invalid 'input_fidelity': not supported for model '{model}'.", "input_fidelity",
                        "unsupported_parameter")
    if value not in ("high", "low"):
        raise EditError(f"Invalid value: '{value}'. Supported values are: 'high', 'low'.", "input_fidelity")


def _image_tokens(infos: list[ImageInfo], fidelity: str) -> int:
    """Roughly how GPT image models bill input images: a base plus a share per 512-pixel tile."""
    total = 0
    for info in infos:
        scale = min(1.0, 2048 / max(info.width, info.height))
        tiles = math.ceil(info.width * scale / 512) * math.ceil(info.height * scale / 512)
        total += (85 + 170 * tiles) * (2 if fidelity == "high" else 1)
    return total


def edit_plan(form: Form, plan: Callable[[dict[str, Any], str, str], dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """Validate ``form`` and build the generation plan with ``plan`` (the generation route's own checks of prompt,
    n, size, quality, formats...), returning it with the family name the answer is built for."""
    _check_structure(form)
    model = _model(form)
    family = edit_family(model)
    if family is None:
        supported = ", ".join(f"'{m}'" for m in _EDIT_MODELS)
        raise EditError(f"Invalid value: '{model}'. This model does not support image edits; supported models are "
                        f"{supported}.", "model")
    body = _json_body(form)
    body["model"] = model
    _check_fidelity(body, model)
    if family == "dalle2" and body.get("quality") not in (None, "standard", "auto"):
        raise EditError(f"Invalid value: '{body['quality']}'. Supported values are: 'standard', 'auto'.", "quality")
    if family == "qwen" and body.get("n", 1) != 1:
        raise EditError("qwen-image-edit edits into exactly one image per request: n must be 1.", "n")
    result = plan(body, model, family)
    masks = [p for p in form.parts if p.name == "mask"]
    infos = _check_images([p for p in form.parts if p.name in ("image", "image[]")], family, bool(masks))
    if masks:
        _check_mask(masks, infos[0])
    result["stream"] = wants_stream(form)
    if family == "gpt":
        result["input_image_tokens"] = _image_tokens(infos, body.get("input_fidelity") or "low")
    return result, family
