"""`imgen show FILE...`: each image drawn in the terminal, on stderr (stdout stays for data)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError
from .common import handle_errors

FORCE_HINT = "IMGEN_PREVIEW=kitty|iterm|sixel|blocks draws anyway, IMGEN_PREVIEW=none never"


def show(
    files: Annotated[list[Path], typer.Argument(help="Image files.", metavar="FILE...", show_default=False)],
    rows: Annotated[int, typer.Option("--preview-rows", "-r", min=1, max=200, help="Rows of the terminal each image may take.")] = 8,
) -> None:
    """Draw each image in the terminal, on stderr, with its name above it: kitty graphics, iTerm2 inline images, sixel
    or coloured half-blocks, whichever the terminal speaks (IMGEN_PREVIEW=kitty|iterm|sixel|blocks|none chooses)."""
    with handle_errors() as messages:
        from .. import preview

        _check(files)
        try:
            choice = preview.choose(os.environ, sys.stderr)
        except ValueError as exc:
            raise UsageError(str(exc), f"unset it, or {FORCE_HINT}") from None
        if choice.protocol == "none":
            if os.environ.get("IMGEN_PREVIEW", "").strip().lower() == "none":
                messages.info("imgen: note: IMGEN_PREVIEW=none turns previews off")
            else:
                messages.info(f"imgen: note: previews need a terminal on stderr (and neither CI nor TERM=dumb); {FORCE_HINT}")
            return
        for path in files:
            sys.stderr.write(f"{path}\n")
            sys.stderr.flush()
            try:
                preview.draw(path, sys.stderr, choice, rows=rows)
            except preview.NeedsPillow as exc:
                messages.info(f"imgen: note: {exc}")
                return
            except preview.PreviewError as exc:
                raise UsageError(f"{path}: {exc}", "give an image file") from None


def _check(files: list[Path]) -> None:
    """Every file, before anything is drawn: a bad one is reported with all the others, not after half the previews."""
    from ..files import imageinfo

    problems = []
    for path in files:
        if not path.is_file():
            problems.append(f"{path}: no such file")
            continue
        try:
            if imageinfo.probe(path) is None:
                problems.append(f"{path}: not an image (png, jpeg, webp and gif are)")
        except OSError as exc:
            problems.append(f"{path}: cannot read it ({exc.strerror})")
    if problems:
        raise UsageError.of(problems, "give image files")
