"""DEC sixel graphics, as foot, mlterm, Konsole, Windows Terminal, WezTerm and xterm (as a VT340) draw it.

DCS P1;P2;P3 q, where P2=1 keeps pixels no colour touches as they were (transparent); raster attributes "1;1;W;H
(square pixels, the image's size); the palette, #n;2;r;g;b in percent; then bands six pixels high, one pass per
colour: #n selects it, each character 0x3F + a six-bit column (least significant bit on top) paints it, !count char
repeats a character, $ returns to the band's start for the next colour and - goes to the next band; ST ends it.
"""

from __future__ import annotations

import re
import typing

if typing.TYPE_CHECKING:
    from PIL.Image import Image

TRANSPARENT = 255  # palette index kept for pixels left undrawn when an image has transparency
_SIXEL_CHARS = bytes(range(63, 127)) + bytes(256 - 64)  # a six-bit column value to its character
_RUN = re.compile(rb"(.)\1{3,}")  # !n c is shorter than the run only from four repeats on


def encode(image: Image) -> bytes:
    """The sixel escapes for `image` at its own size (resize it first): at most 256 colours, or 255 and
    transparency when some pixels have alpha below half."""
    from PIL import Image as PILImage

    width, height = image.size
    rgba = image.convert("RGBA")
    alpha = rgba.getchannel("A").point(lambda a: 255 if a >= 128 else 0).tobytes()
    clear = b"\0" in alpha
    quantized = rgba.convert("RGB").quantize(colors=255 if clear else 256, method=PILImage.Quantize.MEDIANCUT,
                                             dither=PILImage.Dither.NONE)
    indices = quantized.tobytes()
    if clear:
        indices = _mask(indices, alpha)
    palette = quantized.getpalette() or []
    used = sorted(set(indices) - ({TRANSPARENT} if clear else set()))
    out = [b"\x1bP0;1;0q", b'"1;1;%d;%d' % (width, height)]
    for n in used:
        r, g, b = palette[3 * n:3 * n + 3]
        out.append(b"#%d;2;%d;%d;%d" % (n, _percent(r), _percent(g), _percent(b)))
    bands = []
    for top in range(0, height, 6):
        rows = [indices[y * width:(y + 1) * width] for y in range(top, min(top + 6, height))]
        passes = []
        for n in sorted(set(b"".join(rows)) - ({TRANSPARENT} if clear else set())):
            passes.append(b"#%d" % n + _compress(_band(rows, n, width)))
        bands.append(b"$".join(passes))
    out.append(b"-".join(bands))
    out.append(b"\x1b\\")
    return b"".join(out)


def _percent(value: int) -> int:
    return (value * 100 + 127) // 255


def _mask(indices: bytes, alpha: bytes) -> bytes:
    """TRANSPARENT where alpha (0 or 255 per pixel) is 0, else the index: the inverted alpha OR-ed into the indices,
    as two integers the size of the image, so no Python loop runs per pixel."""
    size = len(indices)
    inverted = (~int.from_bytes(alpha, "big")) & ((1 << (8 * size)) - 1)
    return (int.from_bytes(indices, "big") | inverted).to_bytes(size, "big")


def _band(rows: list[bytes], colour: int, width: int) -> bytes:
    """One colour's sixel characters across a band: each row, as 0/1 per pixel, shifted to its bit and summed as one
    big integer; no byte carries, as six rows add up to at most 63."""
    table = bytearray(256)
    table[colour] = 1
    total = 0
    for bit, row in enumerate(rows):
        total += int.from_bytes(row.translate(table), "big") << bit
    return total.to_bytes(width, "big").translate(_SIXEL_CHARS).rstrip(b"?")


def _compress(chars: bytes) -> bytes:
    return _RUN.sub(lambda m: b"!%d%c" % (len(m.group(0)), m.group(1)[0]), chars)
