"""The options of the generating verbs, as data: one record per option, grouped in the panels
`--help` shows, each saying which API field or setting it fills.

A verb lists the panels it takes and `command()` builds the function signature Typer reads, so
an API's new options are records in a panel here, not parameters of a longer function; and
`request_parts()` turns the parsed command line into what the pipeline takes, for every verb.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import UsageError
from . import complete
from .common import JsonOption, ProfileOption

GEN = "Generation"
SEED = "Seedream"
STREAM = "Streaming (GPT image models)"
TASKS = "Tasks (Midjourney, Flux)"
BATCH = "Batch"
OUT = "Output"
CONN = "Connection"


@dataclass(frozen=True)
class Opt:
    name: str  # the parameter name: args.NAME
    annotation: Any  # Annotated[type, typer.Option(...)]
    default: Any = None
    field: str | None = None  # the API body field it sets
    to_field: Callable[[Any], Any] | None = None  # value -> field value (None: leave unset)
    setting: str | None = None  # the setting it overrides (flag > env > profile > default)


def option(name: str, type_: Any, *decls: str, panel: str, default: Any = None, field: str | None = None,
           to_field: Callable[[Any], Any] | None = None, setting: str | None = None, **kw: Any) -> Opt:
    stated = _STATED_DEFAULT.search(kw.get("help", ""))
    if stated:
        # The default a setting falls back to, not the None the flag holds: shown by Typer itself
        # (as help text, Rich would read "[default: ...]" as markup and drop it).
        kw["help"], kw["show_default"] = kw["help"][: stated.start()], stated.group(1)
    if default is None:
        kw.setdefault("show_default", False)
    return Opt(name, Annotated[type_, typer.Option(*decls, rich_help_panel=panel, **kw)], default, field, to_field, setting)


_STATED_DEFAULT = re.compile(r"\s*\[default: ([^\]]+)\]$")


def parse_size_limit(raw: str, flag: str = "--max-download") -> int:
    """--max-download 256M: a byte count with an optional K/M/G suffix (powers of 1024)."""
    text = raw.strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 1024, "M": 1024**2, "G": 1024**3}.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in "KMG" else text
    try:
        value = int(float(number) * scale)
    except (ValueError, OverflowError):  # OverflowError: "inf", "1e400"
        value = 0
    if value <= 0:
        raise UsageError(f"{flag} {raw!r}: expected a size such as 256M or 1G")
    return value


PROMPT = Opt("prompt", Annotated[str | None, typer.Argument(help="What to draw. '-' reads it from stdin.", show_default=False, metavar="PROMPT")])
PROMPT_FILE = option("prompt_file", Path | None, "--prompt-file", help="Read the prompt from a file.", panel=GEN)

# Every model: what to make and how it comes back.
GENERATION = (
    PROMPT_FILE,
    option("model", str | None, "--model", "-m", help="Model id (imgen models lists them). [default: dall-e-3]", panel=GEN,
           autocompletion=complete.model_ids, setting="model"),
    option("n", int | None, "-n", help="Number of images. [default: 1]", panel=GEN, field="n", metavar="N"),
    option("size", str | None, "--size", "-s", help="Image size, e.g. 1024x1024, or 1K|2K|4K (Gemini; a scale with --aspect).", panel=GEN,
           autocompletion=complete.sizes, field="size"),
    option("aspect", str | None, "--aspect", "-a", help="Shape W:H, e.g. 16:9: mapped to each model's ratio or size.", panel=GEN,
           autocompletion=complete.field_values("aspect"),
           field="aspect"),
    option("negative_prompt", str | None, "--negative-prompt", help="What to keep out of the image (Bria).", panel=GEN, field="negative_prompt"),
    option("image", list[str] | None, "--image", "-i", help="Reference image: a file or a URL (Seedream, Gemini). Repeatable, at most 14.",
           panel=GEN),
    option("quality", str | None, "--quality", "-Q", help="standard|hd (dall-e-3), low|medium|high|auto (GPT image).", panel=GEN, field="quality",
           autocompletion=complete.field_values("quality")),
    option("style", str | None, "--style", help="vivid|natural (dall-e-3 only).", panel=GEN, field="style",
           autocompletion=complete.field_values("style")),
    option("background", str | None, "--background", help="transparent|opaque|auto (GPT image).", panel=GEN, field="background",
           autocompletion=complete.field_values("background")),
    option("output_format", str | None, "--output-format", help="png|jpeg|webp (GPT image); png|jpeg (Seedream).", panel=GEN, field="output_format",
           autocompletion=complete.field_values("output_format")),
    option("compression", int | None, "--compression", help="0-100, jpeg/webp output only (GPT image).", panel=GEN, field="output_compression"),
    option("moderation", str | None, "--moderation", help="low|auto (GPT image).", panel=GEN, field="moderation"),
    option("response_format", str | None, "--response-format", help="url|b64_json (dall-e, Seedream; never GPT image).", panel=GEN,
           field="response_format"),
    option("user", str | None, "--user", help="End-user id passed to the API.", panel=GEN, field="user"),
    option("param", list[str] | None, "--param", help="Extra body field KEY=VALUE (VALUE as JSON when it parses). Repeatable.", panel=GEN),
)

SEEDREAM = (
    option("watermark", bool | None, "--watermark/--no-watermark", help="The 'AI Generated' mark (on by default at the API).", panel=SEED,
           field="watermark"),
    option("sequential", bool, "--sequential", help="Generate a related sequence of images (with --max-images).", panel=SEED, default=False,
           field="sequential_image_generation", to_field=lambda on: "auto" if on else None),
    option("max_images", int | None, "--max-images", help="Images in a --sequential run; references + images <= 15.", panel=SEED,
           field="sequential_image_generation_options", to_field=lambda n: {"max_images": n}),
    option("seed", int | None, "--seed", help="Seedream -1..2147483647 (ignored by newer models); Flux, Bria 0..2147483647.", panel=SEED,
           field="seed"),
    option("guidance", float | None, "--guidance", help="Prompt adherence: Seedream 1.0-10.0 (ignored by 5.0); Flux 1.5-5 (flex: 10).",
           panel=SEED, field="guidance_scale"),
)

TASK_OPTIONS = (
    option("steps", int | None, "--steps", help="Flux: denoising steps, 1-50 (flux-pro, flux-dev, flux-2-flex).", panel=TASKS, field="steps"),
    option("safety_tolerance", int | None, "--safety-tolerance", help="Flux: 0 (strict) to 6 (FLUX.2: 5).", panel=TASKS, field="safety_tolerance"),
    option("mj_speed", str | None, "--mj-speed", help="Midjourney: fast|relax|turbo (default: the account's).", panel=TASKS, field="mj_speed"),
    option("task_timeout", float | None, "--task-timeout", help="Seconds to wait for a task; then imgen task wait ID. [default: per API]",
           panel=TASKS, setting="task_timeout"),
)

STREAMING = (
    option("stream", bool, "--stream", help="Stream the generation, showing partial images as they arrive.", panel=STREAM, default=False,
           field="stream", to_field=lambda on: True if on else None),
    option("partials", int | None, "--partials", help="Partial images to stream per image, 0-3.", panel=STREAM, field="partial_images"),
    option("save_partials", bool, "--save-partials", help="Also save partials as NAME.partial-K.EXT.", panel=STREAM, default=False),
    option("events", bool, "--events", help="With --json: one JSON line per stream event (NDJSON).", panel=STREAM, default=False),
)

SIDECAR = option("sidecar", bool, "--sidecar", help="Also write IMAGE.json with each image's provenance.", panel=OUT, default=False)

BATCHES = (
    option("batch", str | None, "--batch", help="Run every prompt in FILE (one per line, or JSON Lines); - for stdin.", panel=BATCH),
    option("concurrency", int, "--concurrency", "-j", help="Batch jobs in flight.", panel=BATCH, default=4, min=1, max=64),
    option("force", bool, "--force", help="Regenerate batch jobs already in the manifest.", panel=BATCH, default=False),
    SIDECAR,
    option("max_total_images", int | None, "--max-total-images", help="Stop the batch before it would make more images than this.", panel=BATCH),
    option("max_cost", float | None, "--max-cost", help="Stop the batch before its estimated cost (USD) would exceed this.", panel=BATCH),
    option("shard", str | None, "--shard", help="Run share I of N of the batch jobs: I/N (1-based), or auto from the CI system's variables (docs/ci.md).", panel=BATCH),
    option("wait_lock", bool, "--wait-lock", help="Wait for another batch run on the same output directory to finish instead of refusing "
           "to start.", panel=BATCH, default=False),
)

STRICT = option("strict", bool, "--strict", help="Refuse model ids imgen does not know.", panel=GEN, default=False)

OUTPUT = (
    option("output", str | None, "--output", "-o", help="Directory, file name (one image), or - for raw bytes on stdout. [default: .]", panel=OUT),
    option("name", str | None, "--name", help="File name template: {date} {time} {slug} {index} {model} {hash} {ext}.", panel=OUT, setting="name"),
    option("overwrite", bool, "--overwrite", help="Replace existing files instead of adding -2, -3...", panel=OUT, default=False),
    option("no_download", bool, "--no-download", help="Print result URLs on stdout instead of saving them.", panel=OUT, default=False),
    Opt("json_out", JsonOption, False),
    option("dry_run", bool, "--dry-run", help="Show the request (key masked) and a curl equivalent; send nothing.", panel=OUT, default=False),
    option("metadata", str | None, "--metadata", help="embed|sidecar|both|none: the provenance in the file, beside it, both or not. "
           "[default: embed]", panel=OUT, setting="metadata"),
    option("log", bool | None, "--log/--no-log", help="Record it in the history and cost ledger (imgen log). [default: log]", panel=OUT,
           setting="log"),
    option("preview", bool | None, "--preview/--no-preview", help="Draw each saved image in the terminal (stderr), partials as they "
           "stream in. [default: no]", panel=OUT, setting="preview"),
    option("preview_rows", int | None, "--preview-rows", help="Terminal rows a preview may take. [default: 8]", panel=OUT, min=1, max=200,
           setting="preview_rows"),
    option("quiet", bool, "--quiet", "-q", help="Only errors on stderr.", panel=OUT, default=False),
    option("verbose", bool, "--verbose", "-v", help="Explain: settings, retries, timings.", panel=OUT, default=False),
    option("debug", bool, "--debug", help="Show tracebacks.", panel=OUT, default=False),
)

CONNECTION = (
    Opt("profile", ProfileOption, None, setting="profile"),
    option("base_url", str | None, "--base-url", help="API base URL (env IMGEN_BASE_URL).", panel=CONN, setting="base_url"),
    option("timeout", float | None, "--timeout", help="Seconds to wait for the API, and for each download. [default: 300]", panel=CONN,
           setting="timeout"),
    option("retries", int | None, "--retries", help="Retries for 429/5xx/connection errors. [default: 2]", panel=CONN, min=0, max=10,
           setting="retries"),
    option("max_time", float | None, "--max-time", help="Seconds an API call may take in all, however slowly it answers. [default: 900]",
           panel=CONN, setting="max_time"),
    option("max_download", str | None, "--max-download", help="Largest image accepted, e.g. 256M, 1G. [default: 256M]", panel=CONN,
           setting="max_download"),
    option("max_answer", str | None, "--max-answer", help="Largest API answer read, base64 images included. [default: 256M]",
           panel=CONN, setting="max_answer"),
)

SETTING_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "max_download": lambda raw: parse_size_limit(raw, "--max-download"),
    "max_answer": lambda raw: parse_size_limit(raw, "--max-answer"),
}


class Args(dict):
    """The parsed command line: args.size, args["size"]."""

    __getattr__ = dict.__getitem__


def command(options: Sequence[Opt]) -> Callable[[Callable[[Args], None]], Callable[..., None]]:
    """A Typer command taking `options`, which hands `body` the parsed values as one Args."""

    def wrap(body: Callable[[Args], None]) -> Callable[..., None]:
        def cmd(**values: Any) -> None:
            body(Args(values))

        params = [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default, annotation=o.annotation) for o in options]
        cmd.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        cmd.__annotations__ = {o.name: o.annotation for o in options}
        cmd.__name__, cmd.__qualname__, cmd.__doc__ = body.__name__, body.__qualname__, body.__doc__
        cmd.options = tuple(options)  # type: ignore[attr-defined]
        return cmd

    return wrap


def parse_params(values: list[str]) -> dict[str, Any]:
    """--param KEY=VALUE: VALUE is JSON when it parses (true, 3, {"a":1}), else a string."""
    params: dict[str, Any] = {}
    for raw in values:
        key, sep, value = raw.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--param {raw!r}: expected KEY=VALUE", "e.g. --param watermark=false --param seed=42")
        if key in ("prompt", "model"):
            raise UsageError(f"--param {key}: set it with {'PROMPT' if key == 'prompt' else '--model'} instead")
        params[key] = _param_value(key, value)
    return params


def _param_value(key: str, value: str) -> Any:
    from ..jsontext import TooDeep, loads

    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"--param {key}: the value is not valid UTF-8", "pass text in UTF-8; nothing was sent") from None
    try:
        return loads(value, finite=True)
    except TooDeep as exc:
        raise UsageError(f"--param {key}: {exc}", "send a flatter value") from None
    except ValueError as exc:
        if "JSON" in str(exc):  # NaN, Infinity, 1e999: JSON has no such numbers
            raise UsageError(f"--param {key}={value}: {exc}", f"give a finite number, or send it as text: --param '{key}=\"{value}\"'") from None
        return value  # not JSON: the text itself


@dataclass
class RequestParts:
    """The command line as the pipeline takes it: settings flags, API fields, pass-through params."""

    flags: dict[str, Any]
    fields: dict[str, Any]
    params: dict[str, Any]


def request_parts(args: Args, options: Sequence[Opt]) -> RequestParts:
    flags: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    for opt in options:
        value = args.get(opt.name)
        if opt.setting:
            convert = SETTING_CONVERTERS.get(opt.setting)
            flags[opt.setting] = convert(value) if convert and value else value
        if opt.field:
            fields[opt.field] = opt.to_field(value) if opt.to_field and value is not None else value
    if args.get("image"):
        from ..files.refs import load_references

        fields["image"] = load_references(args["image"])
    return RequestParts(flags, fields, parse_params(args.get("param") or []))
