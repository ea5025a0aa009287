"""The images of a folder and what each one says about itself.

A folder handed to `imgen gallery` may hold anything, and the page may be published, so nothing is
trusted: files are identified by their bytes (imageinfo), symbolic links are never followed (they
could point anywhere, and the page would then show and link files from outside the folder), only
regular files are opened (a FIFO would block the open), and the walk is capped.

Where an image's story comes from, best first: the batch manifest of its folder (the whole job: cost
and finish time), its `NAME.json` sidecar, the record embedded in the file, and last the AUTOMATIC1111
`parameters` text, which holds a prompt and perhaps a model. Each field is taken from the best source
that has it; the file's mtime dates an image nothing else dates.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..batch import manifest
from ..files import imageinfo, metadata
from ..generation.provenance import read_sidecar

FORMATS = frozenset({"png", "jpeg", "webp", "gif"})
MAX_IMAGES = 20_000  # a contact sheet larger than this is no longer one page anybody can use
MAX_FILES = 100_000  # files looked at, images or not: bounds the time a huge folder costs
MAX_MANIFEST_BYTES = 64 << 20  # manifest.read holds the whole file in memory


@dataclass
class Entry:
    path: Path  # absolute, as reached from DIR (never through a link)
    name: str  # relative to DIR, with "/" between folders
    format: str
    width: int | None
    height: int | None
    bytes: int
    mtime: float
    prompt: str | None = None
    model: str | None = None
    date: dt.datetime | None = None  # aware; the file's mtime when nothing records one
    dated_by: str = "mtime"
    cost_usd: float | None = None
    cost_shared_by: int = 1  # the record's cost is its job's: this many images share it
    source: str | None = None  # where the prompt came from: manifest, sidecar, embedded, parameters


@dataclass
class Collection:
    root: Path
    entries: list[Entry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped_links: int = 0


def collect(root: Path, recursive: bool = False) -> Collection:
    """Every image under `root` (absolute), newest first; notes say what was skipped or cut."""
    found = Collection(root)
    files, manifests = _walk(root, recursive, found)
    index = _manifest_index(manifests, root, found.notes)
    for path, st, info in _images(files, found):
        entry = Entry(path, path.relative_to(root).as_posix(), info.format, info.width, info.height, st.st_size, st.st_mtime)
        _tell(entry, index.get(path))
        found.entries.append(entry)
    found.entries.sort(key=lambda e: (-e.date.timestamp() if e.date else 0.0, e.name))
    return found


# --------------------------------------------------------------------------- the walk


def _walk(root: Path, recursive: bool, found: Collection) -> tuple[list[Path], list[Path]]:
    """(candidate files, manifests) in a stable order: names sorted, folders depth first, so a capped
    walk always keeps the same files."""
    files: list[Path] = []
    manifests: list[Path] = []
    pending = [root]
    while pending:
        directory = pending.pop(0)
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            found.notes.append(f"cannot read {_shown(directory, root)} ({exc.strerror or exc}); skipped")
            continue
        folders = []
        for e in entries:
            if e.name.startswith("."):
                continue  # hidden files, and the temporary files of writers still at work
            if e.is_symlink():
                found.skipped_links += 1
                continue
            if e.is_dir(follow_symlinks=False):
                if recursive:
                    folders.append(Path(e.path))
            elif e.name == manifest.MANIFEST_NAME:
                manifests.append(Path(e.path))
            elif e.is_file(follow_symlinks=False):
                if len(files) >= MAX_FILES:
                    found.notes.append(f"stopped looking after {MAX_FILES:,} files; the rest are not shown")
                    return files, manifests
                files.append(Path(e.path))
        pending[:0] = folders
    return files, manifests


def _images(files: list[Path], found: Collection) -> Iterator[tuple[Path, os.stat_result, imageinfo.ImageInfo]]:
    count = 0
    for path in files:
        probed = probe_image(path)
        if probed is None:
            continue
        if count >= MAX_IMAGES:
            found.notes.append(f"only the first {MAX_IMAGES:,} images are shown")
            return
        count += 1
        yield path, *probed


def probe_image(path: Path) -> tuple[os.stat_result, imageinfo.ImageInfo] | None:
    """imageinfo.probe, on a descriptor that cannot follow a link or block on a FIFO swapped in after the walk."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    with open(fd, "rb") as f:
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            info = imageinfo.read_info(f)
        except OSError:
            return None
    if info is None or info.format not in FORMATS:
        return None
    return st, info


def _shown(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path != root else "."


# --------------------------------------------------------------------------- the manifests


def _manifest_index(manifests: list[Path], root: Path, notes: list[str]) -> dict[Path, tuple[dict[str, Any], dict[str, Any]]]:
    """Image path -> (the latest ok record naming it, its image entry). A record whose path leads out of
    DIR is ignored: a manifest is data, and must not make the page describe files elsewhere."""
    index: dict[Path, tuple[dict[str, Any], dict[str, Any]]] = {}
    for path in manifests:
        try:
            st = path.lstat()
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_MANIFEST_BYTES:
            notes.append(f"{_shown(path, root)} is not a regular file under {MAX_MANIFEST_BYTES >> 20} MiB; ignored")
            continue
        records, warnings = manifest.read(path)
        notes.extend(w.replace(str(path), _shown(path, root)) for w in warnings)  # the page may be published: no absolute paths
        outside = 0
        for record in records.values():
            images = record.get("images")
            for image in images if isinstance(images, list) else ():
                if not isinstance(image, dict) or not isinstance(image.get("path"), str):
                    continue
                target = Path(os.path.normpath(path.parent / image["path"]))
                if not target.is_relative_to(root):
                    outside += 1
                    continue
                held = index.get(target)
                if held is None or _stamp(record.get("finished")) >= _stamp(held[0].get("finished")):
                    index[target] = (record, image)
        if outside:
            notes.append(f"{_shown(path, root)}: {outside} record(s) name files outside the folder; ignored")
    return index


def _stamp(value: Any) -> float:
    when = parse_date(value)
    return when.timestamp() if when else -math.inf


# --------------------------------------------------------------------------- the story


def _tell(entry: Entry, held: tuple[dict[str, Any], dict[str, Any]] | None) -> None:
    """Fill each field from the best source that has it; the file is only parsed when the
    manifest and sidecar leave the prompt, model or date unknown."""
    if held is not None:
        record, image = held
        if not isinstance(image.get("bytes"), int) or image["bytes"] == entry.bytes:  # else the file was replaced
            images = record.get("images")
            _take(entry, "manifest", record.get("prompt"), record.get("model"), record.get("finished"), record.get("cost_usd"),
                  len(images) if isinstance(images, list) else 1)
    if _done(entry):
        return
    sidecar = read_sidecar(entry.path)
    if sidecar is not None:
        _take(entry, "sidecar", sidecar.get("prompt"), sidecar.get("model"), sidecar.get("created"), sidecar.get("cost_usd"))
    if _done(entry):
        return
    try:
        held_in_file = metadata.read(entry.path)
    except (OSError, ValueError):
        held_in_file = {}
    record = held_in_file.get("imgen")
    if isinstance(record, dict):
        _take(entry, "embedded", record.get("prompt"), record.get("model"), record.get("created"), None)
    text = held_in_file.get("parameters")
    if isinstance(text, str):
        prompt, model = parse_parameters(text)
        _take(entry, "parameters", prompt, model, None, None)
    if entry.date is None:
        entry.date = dt.datetime.fromtimestamp(int(entry.mtime), dt.timezone.utc)


def _done(entry: Entry) -> bool:
    return entry.prompt is not None and entry.model is not None and entry.date is not None


def _take(entry: Entry, source: str, prompt: Any, model: Any, date: Any, cost: Any, shared_by: int = 1) -> None:
    if entry.prompt is None and isinstance(prompt, str) and prompt.strip():
        entry.prompt, entry.source = prompt, source
    if entry.model is None and isinstance(model, str) and model.strip():
        entry.model = model.strip()
    when = parse_date(date)
    if entry.date is None and when is not None:
        entry.date, entry.dated_by = when, source
    if entry.cost_usd is None and isinstance(cost, (int, float)) and not isinstance(cost, bool) and math.isfinite(cost) and cost >= 0:
        entry.cost_usd, entry.cost_shared_by = float(cost), max(shared_by, 1)


def parse_date(value: Any) -> dt.datetime | None:
    """An ISO 8601 string (naive ones read as UTC) or Unix seconds, as APIs' `created` are."""
    if isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 32503680000:  # before year 3000
        return dt.datetime.fromtimestamp(value, dt.timezone.utc)
    return None


# A1111's settings line ("Steps: 20, Sampler: Euler a, ..."), which ends the prompt; imgen's own starts with whichever it has.
_SETTINGS = re.compile(r"(Steps|Sampler|CFG scale|Seed|Size|Model|Model hash|Schedule type|Denoising strength): ")
_MODEL = re.compile(r"(?:^|, )Model: ([^,\n]+)", re.M)


def parse_parameters(text: str) -> tuple[str | None, str | None]:
    """(prompt, model) of an AUTOMATIC1111 `parameters` text: the prompt is everything before the
    negative prompt or the settings line."""
    lines = text.splitlines()
    cut = next((i for i, line in enumerate(lines) if line.startswith("Negative prompt:") or _SETTINGS.match(line)), len(lines))
    prompt = "\n".join(lines[:cut]).strip() or None
    model = _MODEL.search("\n".join(lines[cut:]))
    return prompt, model.group(1).strip() if model else None
