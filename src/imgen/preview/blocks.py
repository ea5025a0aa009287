"""Coloured half-blocks: works in any terminal with colour. Each cell is U+2580 (upper half block), its foreground
the upper pixel and its background the lower one, in 24-bit colour where COLORTERM says the terminal has it, else
the nearest of the 256-colour palette's cube and grey ramp. A transparent pixel shows the terminal's own
background (ESC [ 49 m), so an upper transparent pixel flips the cell to U+2584 (lower half block)."""

from __future__ import annotations

import typing
from collections.abc import Mapping

if typing.TYPE_CHECKING:
    from PIL.Image import Image

UPPER = "\u2580"
LOWER = "\u2584"
RESET = "\x1b[0m"
_CUBE = (0, 95, 135, 175, 215, 255)  # the xterm 256-colour cube's levels (indices 16-231)

Pixel = tuple[int, int, int] | None  # None: transparent


def has_truecolor(environ: Mapping[str, str]) -> bool:
    return environ.get("COLORTERM", "").lower() in ("truecolor", "24bit")


def encode(image: Image, *, truecolor: bool) -> bytes:
    """Lines of half-blocks for `image` at its own size: one column per pixel, one line per two pixel rows (an odd
    last row leaves the lower halves transparent). Each line ends with a reset and a newline."""
    width, height = image.size
    data = image.convert("RGBA").tobytes()

    def pixel(x: int, y: int) -> Pixel:
        if y >= height:
            return None
        at = 4 * (y * width + x)
        return None if data[at + 3] < 128 else (data[at], data[at + 1], data[at + 2])

    colour = _rgb if truecolor else _indexed
    lines = []
    for top in range(0, height, 2):
        cells = []
        fg = bg = ""
        for x in range(width):
            upper, lower = pixel(x, top), pixel(x, top + 1)
            if upper is None and lower is None:
                glyph, want_fg, want_bg = " ", fg, "49"  # a space shows only its background
            elif upper is None:
                glyph, want_fg, want_bg = LOWER, colour(38, lower), "49"
            else:
                glyph, want_fg, want_bg = UPPER, colour(38, upper), "49" if lower is None else colour(48, lower)
            codes = [c for c, had in ((want_fg, fg), (want_bg, bg)) if c != had]
            if codes:
                cells.append("\x1b[" + ";".join(codes) + "m")
            fg, bg = want_fg, want_bg
            cells.append(glyph)
        lines.append("".join(cells) + RESET + "\n")
    return "".join(lines).encode("utf-8")


def _rgb(base: int, rgb: tuple[int, int, int]) -> str:
    return f"{base};2;{rgb[0]};{rgb[1]};{rgb[2]}"


def _indexed(base: int, rgb: tuple[int, int, int]) -> str:
    return f"{base};5;{nearest_256(rgb)}"


def nearest_256(rgb: tuple[int, int, int]) -> int:
    """The xterm palette index nearest to `rgb` among the colour cube (16-231) and the grey ramp (232-255); the first
    16 are left out, as every terminal theme redefines them."""
    levels = [min(range(6), key=lambda i: abs(_CUBE[i] - v)) for v in rgb]
    cube = tuple(_CUBE[i] for i in levels)
    grey_step = min(23, max(0, round((sum(rgb) / 3 - 8) / 10)))
    grey = 8 + 10 * grey_step
    if _distance(rgb, (grey, grey, grey)) < _distance(rgb, cube):
        return 232 + grey_step
    return 16 + 36 * levels[0] + 6 * levels[1] + levels[2]


def _distance(a: tuple[int, int, int], b: tuple[int, int, int]) -> int:
    return sum((x - y) ** 2 for x, y in zip(a, b))
