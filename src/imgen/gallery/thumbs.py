"""Small thumbnails embedded in the page as data: URIs, when Pillow is there (the `preview` extra).

imgen itself never decodes images; this is the one place that does, so Pillow is imported lazily and
any failure (a file Pillow cannot read, a truncated one, a decompression bomb) only means the card
references the original file instead.
"""

from __future__ import annotations

import base64
import functools
import io
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .collect import Entry

EDGE = 256  # the long edge, in CSS pixels: a card is about this wide
QUALITY = 80
# libwebp's effort, 0-6: 1 encodes a 256-pixel thumbnail about 3x faster than the default 4 at much the same size
# (measured: 1.9 vs 6.1 ms, 9.9 vs 10.7 KB for a photo-like picture).
WEBP_METHOD = 1
# Past this a decode costs seconds and hundreds of MiB for a 256-pixel picture; below Pillow's own bomb limit.
MAX_PIXELS = 64_000_000
# Pillow releases the GIL while it decodes and encodes, so threads overlap; more than the cores only adds memory.
WORKERS = max(1, min(4, os.cpu_count() or 1))


_PIL_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")  # what collect lets through; no other decoder gets a look at the bytes
_ORIENTATION = 0x0112  # the EXIF tag


@dataclass(frozen=True)
class Thumb:
    uri: str
    width: int
    height: int


def available() -> bool:
    try:
        import PIL  # noqa: F401 - only its package: the decoders load when a thumbnail is made
    except ImportError:
        return False
    return True


def made(entries: list[Entry], workers: int = WORKERS, batch: int = 64) -> Iterator[Thumb | None]:
    """Each entry's thumbnail, in order, made a batch at a time: only a batch of them is ever held at once."""
    if workers <= 1 or len(entries) < 2:
        yield from map(make, entries)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(entries), batch):
            yield from pool.map(make, entries[start:start + batch])


def make(entry: Entry) -> Thumb | None:
    """A thumbnail of the image, or None when it cannot be made."""
    if entry.width is None or entry.height is None or entry.width * entry.height > MAX_PIXELS:
        return None
    try:
        return _encode(entry.path)
    except Exception:  # noqa: BLE001 - whatever Pillow raises, the card falls back to the file itself
        return None


@functools.cache
def _turns() -> dict[int, Any]:
    """EXIF orientation -> the Image.Transpose that shows the image upright."""
    from PIL.Image import Transpose as T

    return {2: T.FLIP_LEFT_RIGHT, 3: T.ROTATE_180, 4: T.FLIP_TOP_BOTTOM, 5: T.TRANSPOSE, 6: T.ROTATE_270, 7: T.TRANSVERSE, 8: T.ROTATE_90}


def _encode(path: Path) -> Thumb:
    from PIL import Image, features

    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    with open(os.open(path, flags), "rb") as f, Image.open(f, formats=_PIL_FORMATS) as image:
        image.draft("RGB", (EDGE, EDGE))  # JPEG: decode at 1/2, 1/4 or 1/8 scale, far faster
        turn = _turns().get(image.getexif().get(_ORIENTATION, 1))
        alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
        mode = "RGBA" if alpha else "RGB"
        if image.mode != mode:
            image = image.convert(mode)
        image.thumbnail((EDGE, EDGE), Image.Resampling.BICUBIC, reducing_gap=2.0)
        if turn is not None:  # browsers turn the original by its EXIF orientation; turned after the shrink, it costs nothing
            image = image.transpose(turn)
        out = io.BytesIO()
        if features.check("webp"):
            image.save(out, "WEBP", quality=QUALITY, method=WEBP_METHOD)
            mime = "image/webp"
        else:
            if alpha:
                image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image)
            image.convert("RGB").save(out, "JPEG", quality=QUALITY, optimize=True)
            mime = "image/jpeg"
        width, height = image.size
    return Thumb(f"data:{mime};base64,{base64.b64encode(out.getvalue()).decode('ascii')}", width, height)
