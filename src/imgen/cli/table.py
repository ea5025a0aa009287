"""Tables on stdout: Rich on a terminal, plain aligned columns (one record a line) on a pipe.

On a terminal a table is fitted to the console's width by hiding its least important columns and
wrapping text between words, never inside one: a model id or a price split over two lines reads
as two values, and cannot be copied."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table

# Between two columns: a pad on the right of the first and SIMPLE_HEAD's divider, two spaces as on a pipe.
GAP = 2


@dataclass(frozen=True)
class Column:
    header: str
    whole: bool = False  # an id or a price: its cells are never wrapped, even between words
    rank: int | None = None  # None: always shown; else shown if it still fits, rank 1 tried first


@dataclass(frozen=True)
class Layout:
    shown: list[int]  # indexes of the columns shown, in table order
    widths: list[int]  # their text widths, padding aside
    hidden: list[str]  # headers of the columns left out

    @property
    def total(self) -> int:
        return sum(self.widths) + GAP * max(len(self.widths) - 1, 0)


def render_table(headers: Sequence[str | Column], rows: list[list[str]], *, wide: bool = False) -> list[str]:
    """Print the table; return the headers of the columns a terminal too narrow for them hides."""
    columns = [h if isinstance(h, Column) else Column(h) for h in headers]
    cells = [[plain(cell) for cell in row] for row in rows]
    if not sys.stdout.isatty():
        _render_plain([c.header for c in columns], cells)
        return []
    from rich.console import Console

    console = Console(file=sys.stdout, highlight=False, soft_wrap=False)
    layout = fit(columns, cells, console.width, wide=wide)
    if layout.total > console.width:
        # Only the columns that may never be hidden (or --wide) are left: the terminal wraps
        # the long lines, which the reader asked for, rather than Rich breaking ids to fit.
        console = Console(file=sys.stdout, highlight=False, soft_wrap=False, width=layout.total)
    console.print(_rich_table(columns, cells, layout))
    return layout.hidden


def fit(columns: Sequence[Column], cells: list[list[str]], width: int, *, wide: bool = False) -> Layout:
    """The columns shown at `width` and their widths: every word whole, ids and prices on one line."""
    texts = [[c.header, *(row[i] for row in cells)] for i, c in enumerate(columns)]
    naturals = [max(map(_cell_len, column)) for column in texts]
    # A header is never wrapped either: it names the column, the one line to read it by.
    floors = [natural if c.whole else max(_cell_len(c.header), _longest_word(column[1:]))
              for c, natural, column in zip(columns, naturals, texts)]
    shown = list(range(len(columns))) if wide else _choose(columns, floors, width)
    widths = {i: floors[i] for i in shown}
    spare = width - Layout(shown, list(widths.values()), []).total
    _widen(widths, naturals, spare)
    hidden = [c.header for i, c in enumerate(columns) if i not in widths]
    return Layout(shown, [widths[i] for i in shown], hidden)


def _choose(columns: Sequence[Column], floors: list[int], width: int) -> list[int]:
    # The most important columns that fit: a narrow, less important column may take the room a
    # wider, more important one cannot use.
    shown = [i for i, c in enumerate(columns) if c.rank is None]
    used = sum(floors[i] for i in shown) + GAP * max(len(shown) - 1, 0)
    optional = sorted((i for i, c in enumerate(columns) if c.rank is not None), key=lambda i: columns[i].rank)
    for i in optional:
        cost = floors[i] + (GAP if shown else 0)
        if used + cost <= width:
            shown.append(i)
            used += cost
    return sorted(shown)


def _widen(widths: dict[int, int], naturals: list[int], spare: int) -> None:
    # The nearly unwrapped columns first: one more column on one line reads better than the
    # same room spread thin over all of them.
    for i in sorted(widths, key=lambda i: naturals[i] - widths[i]):
        grow = min(max(spare, 0), naturals[i] - widths[i])
        widths[i] += grow
        spare -= grow


def _rich_table(columns: Sequence[Column], cells: list[list[str]], layout: Layout) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    for i, w in zip(layout.shown, layout.widths):
        table.add_column(columns[i].header, width=w, no_wrap=columns[i].whole, overflow="fold")
    for row in cells:
        table.add_row(*(Text(row[i]) for i in layout.shown))  # Text: a catalog's "[...]" is not markup
    return table


def _render_plain(headers: list[str], cells: list[list[str]]) -> None:
    # A pipe gets plain columns, one record a line: Rich would pad each line to its console
    # width, and under FORCE_COLOR put escape codes into the data.
    from ..report import emit_lines

    widths = [max(map(len, column)) for column in zip(headers, *cells)]
    lines = [headers, ["-" * w for w in widths], *cells]
    emit_lines(["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines])


def _cell_len(text: str) -> int:
    from rich.cells import cell_len

    return cell_len(text)


def _longest_word(texts: list[str]) -> int:
    return max((_cell_len(word) for text in texts for word in text.split()), default=1)


def plain(cell: str) -> str:
    # Catalog text comes from a server: a newline or control character in it must not split a
    # row or reach the terminal.
    return " ".join("".join(ch if ch.isprintable() else " " for ch in cell).split())
