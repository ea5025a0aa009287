"""What imgen knows of each image it saves, kept with the image: written into the file during the
save (files/metadata.py: a PNG iTXt chunk and an AUTOMATIC1111 `parameters` chunk, JPEG XMP, WebP
XMP), or beside it as NAME.json.

A file that carries Content Credentials (C2PA) is saved byte for byte as received, whatever was
asked: any change to it reads as tampering. Its provenance goes to the sidecar instead.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from .. import __version__, jsontext
from ..files.writer import write_atomic
from ..redact import for_record
from ..results import ImageResult
from .plan import Plan

MODES = ("embed", "sidecar", "both", "none")
FORMAT = 1


def record(plan: Plan, item: ImageResult, request_id: str | None = None, task_id: str | None = None) -> dict[str, Any]:
    """The document: enough to know how the image was made and to make it again; never the key."""
    request = plan.request
    fields = for_record({k: v for k, v in request.fields.items() if v is not None})
    doc: dict[str, Any] = {
        "imgen": __version__, "format": FORMAT, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "profile": plan.settings.profile, "api_host": urlsplit(plan.base_url).netloc, "dialect": plan.dialect, "model": request.model,
        "prompt": request.prompt, "fields": fields, "params": for_record(request.params), "index": item.index + 1,
    }
    seed = item.extra.get("seed", request.fields.get("seed"))
    optional = {
        "revised_prompt": item.revised_prompt, "seed": seed, "request_id": request_id, "task_id": task_id,
    }
    doc.update({k: v for k, v in optional.items() if v is not None})
    sources = [{"role": "image", "name": i.file_name, "sha256": i.sha256} for i in request.inputs if i.path is not None]
    if request.mask is not None:
        sources.append({"role": "mask", "name": request.mask.file_name, "sha256": request.mask.sha256})
    if sources:
        doc["sources"] = sources
    return doc


def parameters(doc: dict[str, Any]) -> str:
    """The AUTOMATIC1111 `parameters` text other viewers show: prompt, negative prompt, settings."""
    fields = doc.get("fields") or {}
    lines = [doc["prompt"]]
    if fields.get("negative_prompt"):
        lines.append(f"Negative prompt: {fields['negative_prompt']}")
    settings = [("Steps", fields.get("steps")), ("Seed", doc.get("seed")), ("Size", fields.get("size")), ("Model", doc["model"])]
    lines.append(", ".join(f"{name}: {value}" for name, value in settings if value is not None))
    return "\n".join(lines)


class Keeper:
    """One image's provenance through its save: `finish` embeds it (the writer's last step), and
    `after` writes the sidecar when one is wanted or the file could not take the record."""

    def __init__(self, plan: Plan, item: ImageResult, note: Callable[[str], None], *, request_id: str | None = None,
                 task_id: str | None = None) -> None:
        self.mode = str(plan.settings.get("metadata") or "embed")
        self.sidecar = plan.sidecar or self.mode in ("sidecar", "both")
        self._made = lambda: record(plan, item, request_id, task_id)
        self.note = note

    @functools.cached_property
    def doc(self) -> dict[str, Any]:
        """Made only when it is written: with --metadata none an edit's inputs are not hashed for it."""
        return self._made()

    # As a files.writer.Insertion: a PNG gets its chunks as it is written, not in a second copy.
    head_bytes = 33  # metadata.PNG_HEAD, without importing metadata for every image

    def plan(self, head: bytes) -> bytes | None:
        from ..files import metadata

        if self.mode not in ("embed", "both"):
            return None
        return metadata.png_insertion(head, self.doc, parameters(self.doc))

    def keep(self, path: Path, offset: int, length: int, fmt: str) -> bool:
        from ..files import metadata

        return fmt == "png" and metadata.png_insertion_stands(path, offset, length)

    def finish(self, tmp: Path, rewritten: Path, fmt: str) -> bool:
        from ..files import metadata

        if self.mode not in ("embed", "both"):
            return False
        if metadata.has_c2pa(tmp):
            self.note("the image carries Content Credentials (C2PA): saved as received, its provenance in a sidecar")
            self.sidecar = True
            return False
        try:
            metadata.embed(tmp, rewritten, fmt, self.doc, parameters(self.doc))
        except ValueError as exc:
            self.note(f"the record could not be written into the {fmt} file ({exc}): it goes to a sidecar")
            self.sidecar = True
            return False
        return True

    def after(self, path: Path | None) -> Path | None:
        if not self.sidecar or path is None:
            return None
        target = path.with_name(path.name + ".json")
        write_atomic(target, (json.dumps(self.doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8", "surrogatepass"))
        return target


def read_sidecar(image: Path) -> dict[str, Any] | None:
    path = image.with_name(image.name + ".json")
    try:
        if path.is_symlink() or path.stat().st_size > 4 * 1024 * 1024:
            return None
        doc = jsontext.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
