"""How big a preview is: in terminal cells, and in the pixels drawn into them."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import IO

DEFAULT_CELL = (8, 16)  # pixels; what most terminals' cells are at their default font size
DEFAULT_COLUMNS = 80


@dataclass(frozen=True)
class Screen:
    columns: int
    lines: int | None  # None when the stream is not a terminal that says
    cell: tuple[int, int]  # (width, height) in pixels


@dataclass(frozen=True)
class Box:
    """Where an image goes: `columns` x `rows` cells, the image scaled to `width` x `height` pixels within them.
    `rows_bind` tells which limit the size came from (the rows, or else the width)."""

    columns: int
    rows: int
    width: int
    height: int
    rows_bind: bool


def screen_of(stream: IO, columns: int | None = None) -> Screen:
    """The terminal behind `stream`: its size from TIOCGWINSZ, and its cell size from the pixel size the same call
    reports (many terminals report 0 there; then DEFAULT_CELL). `columns` overrides the width."""
    size = _winsize(stream)
    cols = columns or (size[1] if size and size[1] else None) or _env_columns() or DEFAULT_COLUMNS
    lines = size[0] if size and size[0] else None
    cell = DEFAULT_CELL
    if size and size[0] and size[1] and size[2] and size[3]:
        cell = (max(1, size[2] // size[1]), max(1, size[3] // size[0]))
    return Screen(max(1, cols), lines, cell)


def _winsize(stream: IO) -> tuple[int, int, int, int] | None:
    """(rows, columns, x pixels, y pixels) of the terminal `stream` writes to, or None."""
    try:
        import fcntl
        import struct
        import termios

        fd = stream.fileno()
        packed = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
        return struct.unpack("HHHH", packed)
    except (ImportError, AttributeError, ValueError, OSError):
        return None


def _env_columns() -> int | None:
    try:
        return int(os.environ.get("COLUMNS", "")) or None
    except ValueError:
        return None


def fit(width: int, height: int, max_columns: int, max_rows: int, cell: tuple[int, int] = DEFAULT_CELL) -> Box:
    """The largest size of a `width` x `height` image, aspect ratio kept, that fits `max_columns` x `max_rows` cells
    of `cell` pixels; small images are scaled up to it, so every preview has the same height."""
    cw, ch = cell
    scale = min(max_columns * cw / width, max_rows * ch / height)
    rows_bind = max_rows * ch / height <= max_columns * cw / width
    px_w = min(max_columns * cw, max(1, round(width * scale)))
    px_h = min(max_rows * ch, max(1, round(height * scale)))
    return Box(min(max_columns, math.ceil(px_w / cw)), min(max_rows, math.ceil(px_h / ch)), px_w, px_h, rows_bind)


def fit_blocks(width: int, height: int, max_columns: int, max_rows: int, cell: tuple[int, int] = DEFAULT_CELL) -> Box:
    """fit, for half-blocks: each cell shows two pixels stacked, each a cell wide and half a cell high, so `width` and
    `height` of the Box are in those pixels (one per column, two per row)."""
    cw, ch = cell
    scale = min(max_columns * cw / width, max_rows * ch / height)
    rows_bind = max_rows * ch / height <= max_columns * cw / width
    px_w = min(max_columns, max(1, round(width * scale / cw)))
    px_h = min(2 * max_rows, max(1, round(height * scale * 2 / ch)))
    return Box(px_w, math.ceil(px_h / 2), px_w, px_h, rows_bind)


def row_limit(rows: int, screen: Screen) -> int:
    """`rows`, kept a line short of the screen's height: the cursor must be able to come back up to the image's top."""
    return max(1, min(rows, screen.lines - 1)) if screen.lines else max(1, rows)
