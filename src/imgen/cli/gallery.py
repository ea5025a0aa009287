"""`imgen gallery DIR`: the images of a folder as one static HTML page (a contact sheet) with their
prompts, models, sizes, dates and costs, to open from disk or publish as a CI artifact."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from .common import JsonOption, debug_enabled, handle_errors


def gallery(
    directory: Annotated[Path, typer.Argument(help="The folder of images.", metavar="DIR", show_default=False)],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="The page to write (default: DIR/index.html); links are relative to it.",
                                                metavar="FILE", show_default=False)] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Include the images in subfolders (links are never followed).")] = False,
    no_thumbs: Annotated[bool, typer.Option("--no-thumbs", help="Show the image files themselves, not embedded thumbnails.")] = False,
    json_out: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")] = False,
) -> None:
    """Write a static HTML contact sheet of the images in DIR: thumbnails, prompts, models, sizes,
    dates and costs from the batch manifest, sidecars or the files' own records, with a filter. One
    self-contained file (no network); it prints the page's path."""
    from ..report import Messages

    with handle_errors(Messages(quiet=quiet, debug=debug_enabled())) as messages:
        from ..gallery import PAGE_NAME, build

        built = build(directory, output, recursive=recursive, thumbs=not no_thumbs)
        shown = str(output if output is not None else directory / PAGE_NAME)
        for note in built.found.notes:
            messages.info(f"gallery: {note}")
        if built.thumbs_unavailable:
            messages.info("gallery: thumbnails need Pillow (pip install 'imgen[preview]'); the cards show the image files themselves")
        count = len(built.found.entries)
        if count:
            messages.info(f"gallery: {count} image{'' if count == 1 else 's'}, {built.with_prompts} with prompts → {shown}")
        else:
            messages.info(f"gallery: no images in {directory} → {shown}")
        if json_out:
            from ..report import emit_json

            emit_json(built.document(shown))
            return
        sys.stdout.write(shown + "\n")
        sys.stdout.flush()
