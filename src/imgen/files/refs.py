"""Reference images (`-i/--image`): a URL is sent as is; a local file becomes a data URI whose
type comes from its bytes, not its name."""

from __future__ import annotations

import base64
from pathlib import Path

from ..errors import UsageError
from . import imagetype

MAX_REFERENCE_BYTES = 10 * 1024 * 1024  # Seedream's documented per-image limit


# A file as it was loaded: resolved path, st_mtime_ns, st_size.
FileKey = tuple[Path, int, int]


def load_references(values: list[str], cache: dict[FileKey, str] | None = None) -> list[str]:
    return [load_reference(v, cache) for v in values]


def load_reference(value: str, cache: dict[FileKey, str] | None = None) -> str:
    """`value` as it is sent. With a `cache` (one per run), a file that many batch lines share is
    read and encoded once and its data URI shared: each copy is a third larger than the file."""
    if value.startswith(("https://", "http://", "data:image/")):
        return value
    path = Path(value).expanduser()
    flag = f"--image {value}"
    if not path.exists():
        raise UsageError(f"{flag}: no such file", "give an existing image file or an https:// URL")
    if not path.is_file():
        raise UsageError(f"{flag}: not a regular file", "give an image file or an https:// URL")
    try:
        stat = path.stat()
        size = stat.st_size
        key = (path.resolve(), stat.st_mtime_ns, size)
        if cache is not None and key in cache:
            return cache[key]
        if size > MAX_REFERENCE_BYTES:
            raise UsageError(
                f"{flag}: {size / 1024 / 1024:.1f} MiB is over the {MAX_REFERENCE_BYTES // 1024 // 1024} MiB limit for a reference image",
                "shrink or recompress it, or upload it and pass its URL",
            )
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{flag}: cannot read it ({exc.strerror})", "check the file's permissions") from None
    fmt = imagetype.sniff(data[: imagetype.HEAD_BYTES])
    if fmt not in imagetype.REFERENCE_FORMATS:
        raise UsageError(
            f"{flag}: not an image imgen can send (allowed: {', '.join(sorted(imagetype.REFERENCE_FORMATS))})",
            "convert it to png or jpeg",
        )
    encoded = base64.b64encode(data).decode("ascii")
    _SOURCES[hash(encoded)] = value
    uri = f"data:image/{fmt};base64,{encoded}"
    if cache is not None:
        cache[key] = uri
    return uri


# The file each inline image came from, by the hash of its base64 (the string itself is megabytes):
# a dry run shows a curl command that reads the file rather than pasting the bytes.
_SOURCES: dict[int, str] = {}


def source_of(text: str) -> str | None:
    """The file a data URI's (or a bare base64 string's) bytes were read from, if imgen read them."""
    payload = text.split(",", 1)[1] if text.startswith("data:") and "," in text[:100] else text
    return _SOURCES.get(hash(payload))
