"""`imgen gallery`: a folder of images as one static HTML contact sheet. collect finds the images and
what each says about itself, thumbs makes the optional embedded thumbnails (Pillow), page writes the
escaped HTML, and build puts them together and writes the page atomically."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from . import collect
from . import thumbs as thumbnails
from .collect import Collection, probe_image
from .page import href, render

PAGE_NAME = "index.html"


@dataclass
class Built:
    page: Path  # absolute
    found: Collection
    thumbnails: int  # cards with an embedded thumbnail; the others reference their file
    thumbs_unavailable: bool  # thumbnails were wanted but Pillow is not installed

    @property
    def with_prompts(self) -> int:
        return sum(1 for e in self.found.entries if e.prompt)

    def document(self, shown_page: str) -> dict[str, Any]:
        """What --json prints: the page, its counts, and each card's data."""
        page_dir = self.page.parent
        return {
            "page": shown_page, "images": len(self.found.entries), "with_prompts": self.with_prompts, "thumbnails": self.thumbnails,
            "skipped_links": self.found.skipped_links, "notes": self.found.notes,
            "entries": [{
                "name": e.name, "href": href(e.path, page_dir), "format": e.format, "width": e.width, "height": e.height, "bytes": e.bytes,
                "prompt": e.prompt, "model": e.model, "date": e.date.isoformat() if e.date else None, "dated_by": e.dated_by,
                "cost_usd": e.cost_usd, "cost_shared_by": e.cost_shared_by, "source": e.source,
            } for e in self.found.entries],
        }


def check_directory(directory: Path) -> Path:
    """The folder, absolute but with its links as given: the page's links are computed the way a browser
    resolves them, from the path, not from where links lead."""
    if not directory.exists():
        raise UsageError(f"{directory}: no such directory", "give the folder that holds the images")
    if not directory.is_dir():
        raise UsageError(f"{directory}: not a directory", "give the folder that holds the images, not a file in it")
    try:
        os.scandir(directory).close()
    except OSError as exc:
        raise UsageError(f"{directory}: cannot read it ({exc.strerror or exc})", "check its permissions") from None
    return Path(os.path.abspath(directory))


def check_page(page: Path) -> Path:
    """Refuse a page path that is a link (the rename would replace the link, not write where it points,
    and either is a surprise), a directory, something other than a file, or an image."""
    from ..files.writer import check_writable

    if page.is_symlink():
        raise UsageError(f"{page}: is a symbolic link; the page is never written through or over one", "give the path of a regular file")
    if page.is_dir():
        raise UsageError(f"{page}: is a directory", f"give the page's file name, e.g. -o {page / PAGE_NAME}")
    if page.exists():
        if not page.is_file():
            raise UsageError(f"{page}: is not a regular file", "give the path of a regular file")
        if probe_image(page) is not None:
            raise UsageError(f"{page}: is an image; the page would replace it", f"give another file name, e.g. {PAGE_NAME}")
    check_writable(page.parent)
    return Path(os.path.abspath(page))


def build(directory: Path, page: Path | None = None, *, recursive: bool = False, thumbs: bool = True) -> Built:
    root = check_directory(directory)
    target = check_page(directory / PAGE_NAME if page is None else page)
    found = collect.collect(root, recursive)
    if found.skipped_links:
        found.notes.append(f"skipped {found.skipped_links} symbolic link{'s' if found.skipped_links != 1 else ''}: links are never followed")
    wanted = thumbs and bool(found.entries)
    usable = wanted and thumbnails.available()
    made = [0]

    def counted() -> Iterator[thumbnails.Thumb | None]:
        for thumb in thumbnails.made(found.entries):
            made[0] += thumb is not None
            yield thumb

    chunks = render(found.entries, counted() if usable else itertools.repeat(None), target, title=root.name or str(root), notes=found.notes)
    write_page(target, chunks)
    return Built(target, found, made[0], wanted and not usable)


def write_page(path: Path, chunks: Iterable[str]) -> None:
    """A reader (a web server publishing the folder) sees the old page or the whole new one, and can
    read it: 0644, not mkstemp's 0600."""
    from ..files.writer import WriteError, write_atomic

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, (chunk.encode("utf-8") for chunk in chunks), mode=0o644, suffix=".html.part")
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}", "check the folder's permissions and free space") from None
