"""`imgen inspect FILE...` (what an image says about itself) and `imgen rerun FILE` (make it again
from its record, any flag overriding)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import UsageError
from . import options as o
from .common import JsonOption, debug_enabled, handle_errors
from .generate import check_stdout, generate_one, read_prompt

# The keys a record of this imgen has; a newer imgen's others are reported, never dropped silently.
RECORD_KEYS = frozenset({
    "imgen", "format", "created", "profile", "api_host", "dialect", "model", "prompt", "fields", "params", "index", "revised_prompt",
    "seed", "request_id", "task_id", "sources",
})
SOURCE_SCAN_LIMIT = 2000  # files looked at beside an image when finding an edit's sources by sha256


def _found(path: Path) -> tuple[dict[str, Any], dict[str, Any] | None, str | None]:
    """(what the file holds, imgen's record, where the record came from)."""
    from ..files import imageinfo, metadata
    from ..generation.provenance import read_sidecar

    if not path.is_file():
        raise UsageError(f"{path}: no such file", "give an image file")
    try:
        if imageinfo.probe(path) is None:
            raise UsageError(f"{path}: not an image (png, jpeg, webp and gif are)", "give an image file")
        held = metadata.read(path)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror})", "check its permissions") from None
    except ValueError as exc:
        raise UsageError(f"{path}: cannot read its metadata ({exc})", "is it a complete image?") from None
    if isinstance(held.get("imgen"), dict):
        return held, held["imgen"], "embedded"
    sidecar = read_sidecar(path)
    return held, sidecar, "sidecar" if sidecar else None


def inspect(files: Annotated[list[Path], typer.Argument(help="Image files.", metavar="FILE...", show_default=False)],
            json_out: JsonOption = False) -> None:
    """What each image says about itself: imgen's record, AUTOMATIC1111 parameters, ComfyUI's
    prompt and workflow, XMP and EXIF fields, Content Credentials (C2PA), a sidecar."""
    with handle_errors():
        docs = []
        for path in files:
            held, rec, where = _found(path)
            unknown = sorted(set(rec) - RECORD_KEYS) if rec else []
            docs.append({"file": str(path), **held, "imgen": rec, "record_from": where, "unknown_record_keys": unknown,
                         "sidecar": str(path.with_name(path.name + ".json")) if where == "sidecar" else None})
        if json_out:
            from ..report import emit_json

            emit_json(docs[0] if len(docs) == 1 else docs)
            return
        sys.stdout.write("\n".join(line for doc in docs for line in _describe(doc)) + "\n")


def _describe(doc: dict[str, Any]) -> list[str]:
    lines = [f"{doc['file']}: {doc.get('format')} {doc.get('width')}x{doc.get('height')}"]
    rec = doc.get("imgen")
    if rec:
        lines.append(f"  imgen {rec.get('imgen', '?')} record ({doc['record_from']}): {rec.get('model')} over the {rec.get('dialect')} API "
                     f"at {rec.get('api_host')}, {rec.get('created')}")
        lines.append(f"  prompt: {rec.get('prompt')}")
        if rec.get("revised_prompt"):
            lines.append(f"  revised prompt: {rec['revised_prompt']}")
        if rec.get("fields"):
            lines.append("  fields: " + json.dumps(rec["fields"], ensure_ascii=False))
        for key in ("seed", "request_id", "task_id"):
            if rec.get(key) is not None:
                lines.append(f"  {key}: {rec[key]}")
        for source in rec.get("sources") or ():
            lines.append(f"  source {source.get('role')}: {source.get('name')} (sha256 {source.get('sha256')})")
        if doc["unknown_record_keys"]:
            lines.append("  written by a newer imgen; keys this one does not know: " + ", ".join(doc["unknown_record_keys"]))
    if doc.get("parameters") and not rec:
        lines.append("  parameters (AUTOMATIC1111): " + _flat(doc["parameters"]))
    if doc.get("comfyui"):
        lines.append("  ComfyUI: " + ", ".join(k for k, v in doc["comfyui"].items() if v))
    for kind in ("xmp", "exif"):
        if doc.get(kind):
            lines.append(f"  {kind.upper()}: " + ", ".join(f"{k}={_flat(v)}" for k, v in doc[kind].items() if v))
    c2pa = doc.get("c2pa")
    if c2pa:
        lines.append(f"  Content Credentials (C2PA): present; claim generator: {c2pa.get('claim_generator') or 'not read'}")
    if len(lines) == 1:
        lines.append("  nothing recorded about how it was made")
    return lines


def _flat(value: Any) -> str:
    """One line per field: a multi-line value's lines joined, so a line never starts mid-field."""
    return " | ".join(str(value).splitlines())


IMAGE_FILE = o.Opt("file", Annotated[Path, typer.Argument(help="An image imgen saved (its record embedded or in FILE.json).", metavar="FILE",
                                                          show_default=False)])
RERUN_OPTIONS = (IMAGE_FILE, *o.GENERATION, *o.SEEDREAM, *o.TASK_OPTIONS, *o.STREAMING, o.STRICT, o.SIDECAR, *o.OUTPUT, *o.CONNECTION)


@o.command(RERUN_OPTIONS)
def rerun(args: o.Args) -> None:
    """Make FILE again from its record (same model, prompt and fields); any flag given overrides
    the record's. An edit needs its source images: found by sha256 beside FILE, or given with -i."""
    from ..files import inputs
    from ..report import Messages

    messages = Messages(quiet=args.quiet, verbose=args.verbose, debug=args.debug or debug_enabled())
    with handle_errors(messages):
        check_stdout(args)
        _, rec, _ = _found(args.file)
        if not rec or not isinstance(rec.get("prompt"), str) or not isinstance(rec.get("model"), str):
            raise UsageError(f"{args.file}: holds no imgen record to make it again from", f"imgen inspect {args.file} shows what it holds")
        unknown = sorted(set(rec) - RECORD_KEYS)
        if unknown:
            messages.warn(f"{args.file}: written by a newer imgen; these keys of its record are not used: {', '.join(unknown)}")
        text = read_prompt(None, args.prompt_file, verb="rerun") if args.prompt_file is not None else rec["prompt"]
        sources = [s for s in rec.get("sources") or () if isinstance(s, dict)]
        given = list(args.image or ())
        if sources:
            args["image"] = None  # an edit's -i are its sources, not references
        parts = o.request_parts(args, RERUN_OPTIONS)
        recorded = {k: v for k, v in (rec.get("fields") or {}).items() if not (k == "image" or _placeholder(v))}
        if (rec.get("fields") or {}).get("image") and not sources and not given:
            messages.warn(f"{args.file}: it was made with reference images, which its record names but does not hold; "
                          "give them again with -i")
        parts.fields = {**recorded, **{k: v for k, v in parts.fields.items() if v is not None}}
        parts.params = {**(rec.get("params") or {}), **parts.params}
        if parts.flags.get("model") is None:
            parts.flags["model"] = rec["model"]
        if not sources:
            generate_one(text, args, parts, messages)
            return
        problems: list[str] = []
        found = _sources(sources, args.file.parent, given, problems)
        loaded = [inputs.load(str(p), "-i", problems) for p, s in found if s.get("role") == "image"]
        masks = [inputs.load(str(p), "--mask", problems) for p, s in found if s.get("role") == "mask"]
        if problems:
            raise UsageError.of(problems, "give the edit's source images with -i (in order), or put them beside FILE")
        generate_one(text, args, parts, messages, inputs=loaded, mask=masks[0] if masks else None)


def _placeholder(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("<data URI")


def _sources(sources: list[dict], near: Path, given: list[str], problems: list[str]) -> list[tuple[Path, dict]]:
    """Each source of an edit: the -i files in order, else a file beside FILE with its sha256."""
    if given:
        if len(given) != len(sources):
            problems.append(f"-i: the edit had {len(sources)} source images (mask included), {len(given)} given")
        return [(Path(g), s) for g, s in zip(given, sources)]
    wanted = {s.get("sha256"): s for s in sources}
    found: dict[str, Path] = {}
    for number, candidate in enumerate(sorted(near.iterdir())):
        if number >= SOURCE_SCAN_LIMIT or len(found) == len(wanted):
            break
        if candidate.is_file() and not candidate.is_symlink() and candidate.stat().st_size <= 64 * 1024 * 1024:
            digest = hashlib.sha256(candidate.read_bytes()).hexdigest()
            if digest in wanted:
                found.setdefault(digest, candidate)
    for source in sources:
        if source.get("sha256") not in found:
            problems.append(f"the edit's {source.get('role')} {source.get('name')} (sha256 {str(source.get('sha256'))[:12]}...) is not beside the file")
    return [(found[s["sha256"]], s) for s in sources if s.get("sha256") in found]
