"""Tables on stdout: Rich on a terminal, plain aligned columns (one record a line) on a pipe."""

from __future__ import annotations

import sys


def render_table(headers: list[str], rows: list[list[str]]) -> None:
    cells = [[plain(cell) for cell in row] for row in rows]
    if not sys.stdout.isatty():
        # A pipe gets plain columns, one model a line: Rich would pad each line to its console
        # width, and under FORCE_COLOR put escape codes into the data.
        from ..report import emit_lines

        widths = [max(map(len, column)) for column in zip(headers, *cells)]
        lines = [headers, ["-" * w for w in widths], *cells]
        emit_lines(["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines])
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=sys.stdout, highlight=False, soft_wrap=False)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))  # Text: a catalog's "[...]" is not markup
    console.print(table)


def plain(cell: str) -> str:
    # Catalog text comes from a server: a newline or control character in it must not split a
    # row or reach the terminal.
    return " ".join("".join(ch if ch.isprintable() else " " for ch in cell).split())
