"""Batch input: the lines of a batch file as jobs, each job's key, shard selection, and the
checked job (its plan, key and fixed file names). All but the check are pure.

A batch file is one prompt per line, or JSON Lines (every non-blank line an object) where each
object holds a prompt and any `imgen generate` option; once one line is an object, all must be. Blank lines and `#` comments are skipped
in both. Line numbers are the file's own, so every message can point at the line to fix.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import jsontext
from ..errors import UsageError
from ..files import names
from ..generation.plan import Plan, prepare
from . import paths

# A JSONL key -> (the API field it sets, or a batch-level role; the JSON type it takes).
# Only per-request options: connection and output-mode flags are the batch's, not a job's.
FIELD_KEYS: dict[str, tuple[str, str]] = {
    "n": ("n", "int"),
    "size": ("size", "str"),
    "quality": ("quality", "str"),
    "style": ("style", "str"),
    "background": ("background", "str"),
    "output_format": ("output_format", "str"),
    "compression": ("output_compression", "int"),
    "output_compression": ("output_compression", "int"),
    "moderation": ("moderation", "str"),
    "response_format": ("response_format", "str"),
    "user": ("user", "str"),
    "watermark": ("watermark", "bool"),
    "seed": ("seed", "int"),
    "guidance": ("guidance_scale", "float"),
    "guidance_scale": ("guidance_scale", "float"),
    "steps": ("steps", "int"),
    "safety_tolerance": ("safety_tolerance", "int"),
    "mj_speed": ("mj_speed", "str"),
    "sequential": ("sequential_image_generation", "bool"),
    "max_images": ("sequential_image_generation_options", "int"),
    "aspect": ("aspect", "str"),
    "negative_prompt": ("negative_prompt", "str"),
}
OTHER_KEYS: dict[str, str] = {
    "prompt": "str",
    "model": "str",
    "image": "images",
    "mask": "str",
    "params": "object",
    "name": "str",
    "output": "str",
}
ALLOWED_KEYS: tuple[str, ...] = (*OTHER_KEYS, *FIELD_KEYS)
NAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")  # dropped from a `name`: the bytes decide


@dataclass
class JobLine:
    """One job as written: its prompt and the options its line sets (None = not set there)."""

    line: int
    prompt: str
    model: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # API field name -> value; None clears a default
    params: dict[str, Any] = field(default_factory=dict)
    images: list[str] | None = None  # the images to edit as written: files or URLs (the first one is IMAGE)
    mask: str | None = None
    name: str | None = None
    output: str | None = None


def is_jsonl(lines: list[str]) -> bool:
    """JSON Lines when any line is an object: a mixed file is then refused line by line, since
    sending the JSON text of its other lines as prompts would cost money for nothing."""
    return any(line.lstrip().startswith("{") for line in lines)


def parse(text: str) -> tuple[list[JobLine], list[str]]:
    """Every job in `text`, and every problem as `line N: ...` (all of them, not the first)."""
    lines = text.removeprefix("\ufeff").splitlines()
    jobs: list[JobLine] = []
    problems: list[str] = []
    structured = is_jsonl(lines)
    for number, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not structured:
            jobs.append(JobLine(number, stripped))
            continue
        if not stripped.startswith("{"):
            problems.append(f"line {number}: not a JSON object, but other lines are; write it as {{\"prompt\": \"...\"}}")
            continue
        try:
            obj = jsontext.loads(stripped, finite=True)
        except json.JSONDecodeError as exc:
            problems.append(f"line {number}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        except ValueError as exc:  # nested too deeply, or a number JSON cannot send (NaN, 1e999)
            problems.append(f"line {number}: {exc}")
            continue
        if not isinstance(obj, dict):
            problems.append(f"line {number}: expected a JSON object")
            continue
        job, found = parse_object(number, obj)
        problems.extend(found)
        if job is not None:
            jobs.append(job)
    return jobs, problems


def parse_object(number: int, obj: dict[str, Any]) -> tuple[JobLine | None, list[str]]:
    problems: list[str] = []
    at = f"line {number}"
    for key in obj:
        if key not in ALLOWED_KEYS:
            close = difflib.get_close_matches(key, ALLOWED_KEYS, n=1, cutoff=0.7)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{at}: unknown key {key!r}{guess}; allowed: {', '.join(ALLOWED_KEYS)}")
    for key, value in obj.items():
        kind = FIELD_KEYS[key][1] if key in FIELD_KEYS else OTHER_KEYS.get(key)
        if kind is None or value is None:
            continue
        fault = _type_fault(kind, value)
        if fault:
            problems.append(f"{at}: {key} {json.dumps(value)[:60]} {fault}")
    prompt = obj.get("prompt")
    if prompt is None:
        problems.append(f'{at}: no prompt; every object needs "prompt": "..."')
    elif isinstance(prompt, str) and not prompt.strip():
        problems.append(f"{at}: the prompt is empty")
    name = obj.get("name")
    if isinstance(name, str) and ("/" in name or "\\" in name or name in ("", ".", "..")):
        problems.append(f"{at}: name {name!r} must be a plain file name; put the directory in \"output\"")
    elif isinstance(name, str) and name.startswith("~"):
        # Harmless as a file name today, but one expanduser() away from a home directory.
        problems.append(f"{at}: name {name!r} must not start with ~; it names a file in the output directory")
    if problems:
        return None, problems

    job = JobLine(number, prompt.strip(), model=obj.get("model"), name=obj.get("name"), output=obj.get("output"), mask=obj.get("mask"))
    for key, (api_name, _) in FIELD_KEYS.items():
        if key not in obj:
            continue
        value = obj[key]
        if key == "sequential":
            value = "auto" if value else None
        elif key == "max_images":
            value = {"max_images": value} if value is not None else None
        job.fields[api_name] = value
    if obj.get("params") is not None:
        job.params = dict(obj["params"])
    image = obj.get("image")
    if image is not None:
        job.images = [image] if isinstance(image, str) else list(image)
    return job, []


def _type_fault(kind: str, value: Any) -> str | None:
    if kind == "int":
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be a whole number"
    if kind == "float":
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "must be a number"
    if kind == "bool":
        return None if isinstance(value, bool) else "must be true or false"
    if kind == "object":
        return None if isinstance(value, dict) else "must be an object"
    if kind == "images":
        ok = isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        return None if ok else "must be a file or URL, or a list of them"
    return None if isinstance(value, str) else "must be a string"


# --------------------------------------------------------------------------- keys and shards


def _normal(value: Any) -> Any:
    """5 and 5.0 send the same request: one key for both."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def job_key(
    *, dialect: str, base_url: str, model: str, fields: dict[str, Any], params: dict[str, Any], prompt: str, uploads: list[str] | None = None
) -> str:
    """sha256 of everything that decides what the API makes, and nothing that decides where it goes.

    Fields and params merge as in the request body (params win), then serialise with sorted keys,
    so the order options were written in never changes the key. `uploads`: the sha256 of the
    files an edit uploads (the mask last), which are in no field.
    """
    request = {k: v for k, v in {**fields, **params}.items() if v is not None}
    doc = {
        "dialect": dialect,
        "base_url": base_url.rstrip("/"),
        "model": model,
        "request": _normal(request),
        "prompt": prompt,
    }
    if uploads:
        doc["uploads"] = uploads
    # ensure_ascii: a lone surrogate from a mis-decoded prompt still hashes.
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


# `--shard auto`: where each CI system says which of its parallel copies of a job this is. Each
# source is (system, index variable, total variable, the first index). GitHub Actions has none of
# its own: the convention is IMGEN_SHARD=I/N, set from the matrix (docs/ci.md).
SHARD_ENV = "IMGEN_SHARD"
SHARD_SOURCES: tuple[tuple[str, str, str, int], ...] = (
    ("GitLab CI", "CI_NODE_INDEX", "CI_NODE_TOTAL", 1),
    ("CircleCI", "CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", 0),
    ("Buildkite", "BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", 0),
)
SHARD_VARIABLES = ", ".join([SHARD_ENV, *(f"{i}/{n}" for _, i, n, _ in SHARD_SOURCES)])
_SHARD_HINT = "N machines each run one share: --shard 1/N ... --shard N/N"


def parse_shard(
    raw: str, env: Mapping[str, str] | None = None, note: Callable[[str], None] | None = None
) -> tuple[int, int]:
    """`I/N` (1-based) -> (I, N); `auto` -> the share the CI system's variables in `env` (default
    os.environ) name. With none of them set, `auto` is the whole batch (1/1, said through `note`,
    default stderr) on a developer's machine, and an error where CI is set: a CI job that forgot
    its variables would otherwise make every image once per machine."""
    if raw.strip().lower() == "auto":
        return _auto_shard(os.environ if env is None else env, note or _stderr_note)
    return _parse_share(raw, f"--shard {raw!r}")


def _parse_share(raw: str, what: str) -> tuple[int, int]:
    index, sep, count = raw.strip().partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i = n = 0
    if not sep or n < 1 or not 1 <= i <= n:
        raise UsageError(f"{what}: expected I/N with 1 <= I <= N, like 2/4", _SHARD_HINT)
    return i, n


def _auto_shard(env: Mapping[str, str], note: Callable[[str], None]) -> tuple[int, int]:
    own = env.get(SHARD_ENV, "").strip()
    if own:
        return _parse_share(own, f"--shard auto: {SHARD_ENV}={own!r}")
    for system, index_var, total_var, first in SHARD_SOURCES:
        index, total = env.get(index_var, "").strip(), env.get(total_var, "").strip()
        if not index and not total:
            continue
        if not index and total == "1":
            return 1, 1  # GitLab sets CI_NODE_TOTAL=1, and no index, for a job without `parallel:`
        last = "N" if first == 1 else "N-1"
        try:
            i, n = int(index), int(total)
        except ValueError:
            i, n = -1, 0
        if n < 1 or not first <= i < first + n:
            raise UsageError(
                f"--shard auto: {index_var}={index!r} {total_var}={total!r} ({system}): expected whole numbers, "
                f"{index_var} from {first} to {last} of {total_var}=N ({first}-based)",
                f"set both, or give the share yourself: --shard I/N (1-based); --shard auto reads {SHARD_VARIABLES}",
            )
        return i - first + 1, n
    if env.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        raise UsageError(
            f"--shard auto: CI is set but none of {SHARD_VARIABLES} is, so every parallel job would make the whole batch",
            f"GitHub Actions: set {SHARD_ENV}: ${{{{ matrix.shard }}}}/${{{{ strategy.job-total }}}}; GitLab: `parallel: N`; "
            f"one job for the whole batch: {SHARD_ENV}=1/1 (see docs/ci.md)",
        )
    note(f"imgen: --shard auto: none of {SHARD_VARIABLES} is set: running the whole batch (1/1)")
    return 1, 1


def _stderr_note(text: str) -> None:
    print(text, file=sys.stderr)


def in_shard(key: str, shard: tuple[int, int] | None) -> bool:
    """By key, not by position: inserting a line does not move every other job to another shard."""
    if shard is None:
        return True
    index, count = shard
    return int(key, 16) % count == index - 1


# --------------------------------------------------------------------------- checked jobs


@dataclass
class Defaults:
    """The command line's options: every job starts from them, and its own fields win."""

    flags: dict[str, Any]
    fields: dict[str, Any]
    params: dict[str, Any]
    strict: bool = False


@dataclass
class Job:
    """A checked job: its plan (whose template fixes the job's file names), key and directory."""

    spec: JobLine
    plan: Plan
    key: str
    directory: Path
    stem: str
    images: int  # the most images it can make: what the budget counts
    cost: float | None = None  # estimated before sending, when --max-cost asks
    resume: Any = None  # dialects.TaskRef: a task an earlier run submitted, polled instead of paid for again

    @property
    def line(self) -> int:
        return self.spec.line


def plan_all(specs: list[JobLine], defaults: Defaults, root: Path, base_dir: Path) -> tuple[list[Job], list[str], list[str]]:
    """Every job checked through pipeline.prepare (config is read, reference files loaded, nothing
    sent): the jobs, every problem in line order, and each distinct warning once."""
    problems: list[str] = []
    warnings: dict[str, None] = {}
    references: dict = {}  # lines that share a reference file share its one data URI
    planned = [
        job for spec in specs if (job := plan_job(spec, defaults, root, base_dir, problems, warnings, references)) is not None
    ]
    planned = drop_repeats(planned, problems, warnings)
    return planned, sorted(problems, key=line_of), list(warnings)


def line_of(problem: str) -> int:
    head = problem.split(":", 1)[0].removeprefix("line ")
    return int(head) if head.isdigit() else 0


def plan_job(
    spec: JobLine,
    defaults: Defaults,
    root: Path,
    base_dir: Path,
    problems: list[str],
    warnings: dict[str, None],
    references: dict | None = None,
) -> Job | None:
    """The job, checked like a single run; None after adding its problems to `problems`."""
    at = f"line {spec.line}"
    flags = dict(defaults.flags)
    if spec.model is not None:
        flags["model"] = spec.model
    fields = {**defaults.fields, **spec.fields}
    edit = _edit_inputs(spec, base_dir, at, problems)
    if edit is None:
        return None
    directory = _job_directory(spec, root, at, problems)
    if directory is None:
        return None
    try:
        # A trailing separator: `output` is always a directory, even one named like "x.png".
        plan = prepare(
            spec.prompt,
            flags=flags,
            fields=fields,
            params={**defaults.params, **spec.params},
            output=str(directory) + os.sep,
            overwrite=True,
            strict=defaults.strict,
            references=references,
            **edit,
        )
    except UsageError as exc:
        problems.extend(f"{at}: {p}" for p in _problem_lines(exc.message))
        return None
    if plan.request.stream:
        problems.append(f"{at}: streaming is not available in a batch; drop stream")
        return None
    for warning in plan.warnings:
        warnings[warning] = None
    request = plan.request
    uploads = [i.sha256 for i in (*request.inputs, request.mask) if i is not None and i.sha256] if plan.dialect == "openai_edits" else None
    key = job_key(
        dialect=plan.dialect, base_url=plan.base_url, model=request.model, fields=request.fields, params=request.params, prompt=request.prompt,
        uploads=uploads,
    )
    stem = _stem(spec.name) if spec.name else f"{names.slugify(request.prompt)}-{key[:8]}"
    count = plan.request.most_images()
    indexed = count > 1 or plan.request.sequential
    escaped = stem.replace("{", "{{").replace("}", "}}")
    plan.template = f"{escaped}-{{index}}.{{ext}}" if indexed else f"{escaped}.{{ext}}"
    try:
        names.render(plan.template, prompt=request.prompt, index=1, ext="png", model=request.model)
    except ValueError as exc:
        problems.append(f"{at}: name {spec.name!r}: {exc}")
        return None
    plan.job_key = key
    return Job(spec=spec, plan=plan, key=key, directory=directory, stem=stem, images=count)


def _job_directory(spec: JobLine, root: Path, at: str, problems: list[str]) -> Path | None:
    """Where the job writes: its `output` below the batch's directory, never beside or above it,
    since a line that could name any directory could replace any file the user may write."""
    if not spec.output:
        return root
    try:
        return paths.inside(root, spec.output)
    except paths.Outside as exc:
        problems.append(f"{at}: output {json.dumps(spec.output, ensure_ascii=False)} {exc}")
        return None


def _edit_inputs(spec: JobLine, base_dir: Path, at: str, problems: list[str]) -> dict[str, Any] | None:
    """A job with "image" (and "mask") is an edit of them: prepare()'s inputs, or None after
    adding why a file cannot be used to `problems`."""
    if spec.images is None and spec.mask is None:
        return {}
    from ..files import inputs

    found: list[str] = []
    loaded = [inputs.load(_from_dir(base_dir, v), "image", found, shown=v) for v in spec.images or ()]
    mask = inputs.load(_from_dir(base_dir, spec.mask), "mask", found, shown=spec.mask) if spec.mask is not None else None
    if spec.mask is not None and not spec.images:
        found.append('mask without "image": a mask marks what to change in the job\'s first image')
    problems.extend(f"{at}: {p}" for p in found)
    return None if found else {"inputs": loaded, "mask": mask}


def _from_dir(base_dir: Path, value: str) -> str:
    if value.startswith(("https://", "http://", "data:")) or Path(value).expanduser().is_absolute():
        return value
    return str(base_dir / value)


def _problem_lines(message: str) -> list[str]:
    """prepare() lists several problems under an 'N problems:' heading, one per indented line."""
    parts = message.split("\n  ")
    return parts[1:] if len(parts) > 1 and parts[0].endswith("problems:") else parts


def _stem(name: str) -> str:
    base, dot, ext = name.rpartition(".")
    if dot and base and "." + ext.lower() in NAME_SUFFIXES:
        name = base  # the extension comes from the bytes, whatever the line says
    return names.safe_name(name)


def file_names(job: Job) -> list[str]:
    """The stems a job may write (extensions vary with the bytes)."""
    if job.plan.template.endswith("-{index}.{ext}"):
        return [f"{job.stem}-{i}" for i in range(1, job.images + 1)]
    return [job.stem]


def drop_repeats(loaded: list[Job], problems: list[str], warnings: dict[str, None]) -> list[Job]:
    """One job per key, and no two jobs writing the same names."""
    by_key: dict[str, Job] = {}
    owner: dict[tuple[str, str], Job] = {}
    kept: list[Job] = []
    for job in loaded:
        first = by_key.get(job.key)
        if first is not None:
            if (first.directory, first.stem) == (job.directory, job.stem):
                warnings[f"line {job.line} repeats line {first.line} (same prompt and options): it runs once"] = None
            else:
                problems.append(
                    f"line {job.line}: the same request as line {first.line} under another name; "
                    "ask for more images of one prompt with \"n\", or change the prompt or options"
                )
            continue
        by_key[job.key] = job
        where = os.path.normcase(os.path.abspath(job.directory))
        clash = next((owner[(where, s.casefold())] for s in file_names(job) if (where, s.casefold()) in owner), None)
        if clash is not None:
            problems.append(f"line {job.line}: would write the same files as line {clash.line} ({job.stem}.* in {job.directory}); give one of them another \"name\"")
            continue
        owner.update({(where, s.casefold()): job for s in file_names(job)})
        kept.append(job)
    return kept
