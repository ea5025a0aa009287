"""The offline `placeholder` model: deterministic PNGs with no key and no network.

A dialect like the others (see dialects/__init__.py) whose server is `answer()`, run in-process:
the pipeline builds the call, gets the answer and parses it exactly as it would over HTTP.

Each image is a few vertical bands, each a top-to-bottom gradient between two colours drawn
from SHA-256 of the prompt and the image's index: the same request gives the same bytes,
and the images of one run look different. Rows are built by repeating byte strings and
identical rows are compressed once as a run, so even 4096x4096 stays fast in pure Python.
"""

from __future__ import annotations

import hashlib
import re
import struct
import time
import zlib
from itertools import groupby
from typing import Any

from ..errors import UsageError
from ..request import GenerateRequest
from ..results import GenerationResponse, ImageResult
from . import ApiCall

NAME = "placeholder"
LIFECYCLE = "sync"
OFFLINE = True

MAX_SIDE = 4096
DEFAULT_SIZE = (1024, 1024)

# zlib's default level: on these long runs it takes about twice level 1's time (some 0.2 s
# at 4096x4096) for files two and a half times smaller; 9 buys little more.
_ZLIB_LEVEL = 6
_SIZE = re.compile(r"\s*([0-9]+)\s*[xX]\s*([0-9]+)\s*")
# Colour steps from top to bottom: rows within a step are byte-identical.
_LEVELS = 256


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def _palette(prompt: str, index: int) -> list[tuple[bytes, bytes]]:
    """(top, bottom) RGB colours of each band, from the prompt and the index."""
    seed = hashlib.sha256(f"{index}\x00{prompt}".encode("utf-8", "surrogatepass")).digest()
    bands = 3 + seed[0] % 4
    # Six bands need 1 + 6 * 6 = 37 bytes, more than one digest holds.
    stream = seed + hashlib.sha256(seed).digest()
    return [(stream[1 + 6 * i : 4 + 6 * i], stream[4 + 6 * i : 7 + 6 * i]) for i in range(bands)]


def _row(palette: list[tuple[bytes, bytes]], edges: list[int], level: int) -> bytes:
    parts = [b"\x00"]  # filter type 0: deflate already finds the repeats a filter would expose
    for (top, bottom), start, end in zip(palette, edges, edges[1:]):
        colour = bytes((a * (_LEVELS - 1 - level) + b * level) // (_LEVELS - 1) for a, b in zip(top, bottom))
        parts.append(colour * (end - start))
    return b"".join(parts)


def render_png(prompt: str, width: int, height: int, index: int = 0) -> bytes:
    """A width x height RGB PNG that depends only on (prompt, width, height, index)."""
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ValueError(f"each side must be 1 to {MAX_SIDE}, got {width}x{height}")
    palette = _palette(prompt, index)
    edges = [round(i * width / len(palette)) for i in range(len(palette) + 1)]
    compressor = zlib.compressobj(_ZLIB_LEVEL)
    idat: list[bytes] = []
    steps = max(height - 1, 1)
    for level, rows in groupby(range(height), key=lambda y: y * (_LEVELS - 1) // steps):
        idat.append(compressor.compress(_row(palette, edges, level) * sum(1 for _ in rows)))
    idat.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", b"".join(idat)),
            _chunk(b"IEND", b""),
        )
    )


def parse_size(size: str | None) -> tuple[int, int]:
    """(width, height) from "WxH"; None and "auto" mean the default 1024x1024."""
    if size is None or size.strip().lower() == "auto":
        return DEFAULT_SIZE
    match = _SIZE.fullmatch(size)
    if not match:
        raise ValueError(f"expected WxH such as 1024x1024, got {size!r}")
    width, height = int(match[1]), int(match[2])
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ValueError(f"each side must be 1 to {MAX_SIDE}, got {size!r}")
    return width, height


def generate(prompt: str, size: str | None, n: int) -> list[bytes]:
    """`n` placeholder PNGs of `size` ("WxH", default 1024x1024), image i drawn with index i."""
    width, height = parse_size(size)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return [render_png(prompt, width, height, i) for i in range(n)]


def build(req: GenerateRequest) -> ApiCall:
    return ApiCall("LOCAL", "placeholder", req.body())


def answer(call: ApiCall) -> dict[str, Any]:
    """What a server would answer, made here: the PNGs themselves."""
    body = call.body or {}
    n = body.get("n", 1)
    try:
        images = generate(str(body.get("prompt", "")), body.get("size"), n if isinstance(n, int) and n > 0 else 1)
    except ValueError as exc:
        raise UsageError(f"--size: {exc}", "use WxH, each side 1 to 4096, e.g. -s 1024x1024") from None
    return {"created": int(time.time()), "images": images}


def parse(payload: dict[str, Any]) -> GenerationResponse:
    return GenerationResponse(
        items=[ImageResult(i, data=data) for i, data in enumerate(payload["images"])],
        created=payload["created"],
        meta={"model": "placeholder"},
    )
