"""`imgen generate`: options → pipeline → report. Parsing only; the work is in pipeline.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import ExitCode, ImgenError, UsageError
from . import complete
from .common import JsonOption, ProfileOption, debug_enabled, handle_errors

GEN = "Generation"
SEED = "Seedream"
STREAM = "Streaming (GPT image models)"
BATCH = "Batch"
OUT = "Output"
CONN = "Connection"


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
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def parse_size_limit(raw: str) -> int:
    """--max-download 256M: a byte count with an optional K/M/G suffix (powers of 1024)."""
    text = raw.strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 1024, "M": 1024**2, "G": 1024**3}.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in "KMG" else text
    try:
        value = int(float(number) * scale)
    except (ValueError, OverflowError):  # OverflowError: "inf", "1e400"
        value = 0
    if value <= 0:
        raise UsageError(f"--max-download {raw!r}: expected a size such as 256M or 1G")
    return value


def read_prompt(prompt: str | None, prompt_file: Path | None) -> str:
    if prompt is not None and prompt_file is not None:
        raise UsageError("PROMPT and --prompt-file both given", "use one of them")
    if prompt_file is not None:
        try:
            text = prompt_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise UsageError(f"--prompt-file {prompt_file}: cannot read it ({reason})", "give a readable UTF-8 text file") from None
    elif prompt == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("PROMPT is '-' but stdin is a terminal", "pipe the prompt in: echo 'a cat' | imgen generate -")
        text = sys.stdin.read()
    elif prompt is None:
        raise UsageError("no prompt given", 'imgen generate "a paper boat at sunrise" (or - for stdin, or --prompt-file FILE)')
    else:
        text = prompt
    text = text.strip()
    if not text:
        raise UsageError("the prompt is empty", "describe the image you want")
    return text


def generate(
    prompt: Annotated[str | None, typer.Argument(help="What to draw. '-' reads it from stdin.", show_default=False, metavar="PROMPT")] = None,
    prompt_file: Annotated[
        Path | None, typer.Option("--prompt-file", help="Read the prompt from a file.", rich_help_panel=GEN, show_default=False)
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model id (imgen models lists them). [default: dall-e-3]", rich_help_panel=GEN, show_default=False, autocompletion=complete.model_ids)
    ] = None,
    n: Annotated[int | None, typer.Option("-n", "--n", help="Number of images.", rich_help_panel=GEN, show_default=False)] = None,
    size: Annotated[
        str | None, typer.Option("--size", "-s", help="Image size, e.g. 1024x1024 (model-dependent).", rich_help_panel=GEN, show_default=False, autocompletion=complete.sizes)
    ] = None,
    quality: Annotated[
        str | None, typer.Option("--quality", "-Q", help="standard|hd (dall-e-3), low|medium|high|auto (GPT image).", rich_help_panel=GEN, show_default=False)
    ] = None,
    style: Annotated[str | None, typer.Option("--style", help="vivid|natural (dall-e-3 only).", rich_help_panel=GEN, show_default=False)] = None,
    background: Annotated[
        str | None, typer.Option("--background", help="transparent|opaque|auto (GPT image).", rich_help_panel=GEN, show_default=False)
    ] = None,
    output_format: Annotated[
        str | None, typer.Option("--output-format", help="png|jpeg|webp (GPT image); png|jpeg (Seedream).", rich_help_panel=GEN, show_default=False)
    ] = None,
    compression: Annotated[
        int | None, typer.Option("--compression", help="0-100, jpeg/webp output only (GPT image).", rich_help_panel=GEN, show_default=False)
    ] = None,
    moderation: Annotated[str | None, typer.Option("--moderation", help="low|auto (GPT image).", rich_help_panel=GEN, show_default=False)] = None,
    response_format: Annotated[
        str | None, typer.Option("--response-format", help="url|b64_json (dall-e, Seedream; never GPT image).", rich_help_panel=GEN, show_default=False)
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="End-user id passed to the API.", rich_help_panel=GEN, show_default=False)] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="Extra body field KEY=VALUE (VALUE as JSON when it parses). Repeatable.", rich_help_panel=GEN, show_default=False),
    ] = None,
    image: Annotated[
        list[str] | None,
        typer.Option("--image", "-i", help="Reference image: a file (sent as a data URI) or a URL. Repeatable, at most 14.", rich_help_panel=SEED, show_default=False),
    ] = None,
    watermark: Annotated[
        bool | None, typer.Option("--watermark/--no-watermark", help="The 'AI Generated' mark (on by default at the API).", rich_help_panel=SEED, show_default=False)
    ] = None,
    sequential: Annotated[
        bool, typer.Option("--sequential", help="Generate a related sequence of images (with --max-images).", rich_help_panel=SEED)
    ] = False,
    max_images: Annotated[
        int | None, typer.Option("--max-images", help="Images in a --sequential run; references + images <= 15.", rich_help_panel=SEED, show_default=False)
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="-1..2147483647 (ignored by newer models).", rich_help_panel=SEED, show_default=False)] = None,
    guidance: Annotated[
        float | None, typer.Option("--guidance", help="Prompt adherence 1.0-10.0 (ignored by 5.0).", rich_help_panel=SEED, show_default=False)
    ] = None,
    stream: Annotated[bool, typer.Option("--stream", help="Stream the generation, showing partial images as they arrive.", rich_help_panel=STREAM)] = False,
    partials: Annotated[
        int | None, typer.Option("--partials", help="Partial images to stream per image, 0-3.", rich_help_panel=STREAM, show_default=False)
    ] = None,
    save_partials: Annotated[
        bool, typer.Option("--save-partials", help="Also save partials as NAME.partial-K.EXT.", rich_help_panel=STREAM)
    ] = False,
    events: Annotated[
        bool, typer.Option("--events", help="With --json: one JSON line per stream event (NDJSON).", rich_help_panel=STREAM)
    ] = False,
    batch: Annotated[
        str | None,
        typer.Option("--batch", help="Run every prompt in FILE (one per line, or JSON Lines); - for stdin.", rich_help_panel=BATCH, show_default=False),
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", "-j", help="Batch jobs in flight.", rich_help_panel=BATCH, min=1, max=64)] = 4,
    force: Annotated[bool, typer.Option("--force", help="Regenerate batch jobs already in the manifest.", rich_help_panel=BATCH)] = False,
    sidecar: Annotated[bool, typer.Option("--sidecar", help="Write IMAGE.json with each image's provenance.", rich_help_panel=BATCH)] = False,
    max_total_images: Annotated[
        int | None, typer.Option("--max-total-images", help="Stop the batch before it would make more images than this.", rich_help_panel=BATCH, show_default=False)
    ] = None,
    max_cost: Annotated[
        float | None, typer.Option("--max-cost", help="Stop the batch before its estimated cost (USD) would exceed this.", rich_help_panel=BATCH, show_default=False)
    ] = None,
    shard: Annotated[
        str | None, typer.Option("--shard", help="Run share I of N of the batch jobs (I/N, 1-based).", rich_help_panel=BATCH, show_default=False)
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Refuse model ids imgen does not know.", rich_help_panel=GEN)] = False,
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="Directory, file name (one image), or - for raw bytes on stdout. [default: .]", rich_help_panel=OUT, show_default=False),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="File name template: {date} {time} {slug} {index} {model} {hash} {ext}.", rich_help_panel=OUT, show_default=False),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing files instead of adding -2, -3...", rich_help_panel=OUT)] = False,
    no_download: Annotated[
        bool, typer.Option("--no-download", help="Print result URLs on stdout instead of saving them.", rich_help_panel=OUT)
    ] = False,
    json_out: JsonOption = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the request (key masked) and a curl equivalent; send nothing.", rich_help_panel=OUT)] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.", rich_help_panel=OUT)] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Explain: settings, retries, timings.", rich_help_panel=OUT)] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.", rich_help_panel=OUT)] = False,
    profile: ProfileOption = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="API base URL (env IMGEN_BASE_URL).", rich_help_panel=CONN, show_default=False)
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds to wait for the API, and for each download. [default: 300]", rich_help_panel=CONN, show_default=False)
    ] = None,
    retries: Annotated[
        int | None, typer.Option("--retries", help="Retries for 429/5xx/connection errors. [default: 2]", rich_help_panel=CONN, show_default=False, min=0, max=10)
    ] = None,
    max_download: Annotated[
        str | None, typer.Option("--max-download", help="Largest image accepted, e.g. 256M, 1G. [default: 256M]", rich_help_panel=CONN, show_default=False)
    ] = None,
) -> None:
    """Generate images from PROMPT and save them; print one path per line."""
    from ..report import Messages

    messages = Messages(quiet=quiet, verbose=verbose, debug=debug or debug_enabled())
    with handle_errors(messages):
        from .. import pipeline

        _check_batch_flags(
            batch,
            prompt=prompt is not None or prompt_file is not None,
            stream=stream or partials is not None or save_partials or events,
            no_download=no_download,
            name=name is not None,
            overwrite=overwrite,
            only_batch={"--force": force, "--sidecar": sidecar, "--max-total-images": max_total_images is not None, "--max-cost": max_cost is not None, "--shard": shard is not None},
            max_total_images=max_total_images,
            max_cost=max_cost,
        )
        if output == "-" and json_out and not dry_run:
            raise UsageError("-o - with --json: stdout would hold both the image bytes and the JSON", "drop one of them")
        text = read_prompt(prompt, prompt_file) if batch is None else ""
        flags = {
            "profile": profile,
            "base_url": base_url,
            "model": model,
            "name": name,
            "timeout": timeout,
            "retries": retries,
            "max_download": parse_size_limit(max_download) if max_download else None,
        }
        fields = {
            "n": n,
            "size": size,
            "quality": quality,
            "style": style,
            "background": background,
            "output_format": output_format,
            "output_compression": compression,
            "moderation": moderation,
            "response_format": response_format,
            "user": user,
            "watermark": watermark,
            "seed": seed,
            "guidance_scale": guidance,
            "sequential_image_generation": "auto" if sequential else None,
            "sequential_image_generation_options": {"max_images": max_images} if max_images is not None else None,
            "stream": True if stream else None,
            "partial_images": partials,
        }
        if image:
            from ..files.refs import load_references

            fields["image"] = load_references(image)
        if batch is not None:
            from ..batch import runner as batches
            from ..batch.jobs import parse_shard

            options = batches.BatchOptions(
                source=batch, flags=flags, fields=fields, params=parse_params(param or []), output=output, strict=strict,
                concurrency=concurrency, force=force, sidecar=sidecar, max_total_images=max_total_images, max_cost=max_cost,
                shard=parse_shard(shard) if shard is not None else None, json_out=json_out, dry_run=dry_run, quiet=quiet,
            )
            code = batches.run(options, messages)
            if code:
                raise typer.Exit(code)
            return
        plan = pipeline.prepare(
            text,
            flags=flags,
            fields=fields,
            params=parse_params(param or []),
            output=output,
            overwrite=overwrite,
            strict=strict,
            no_download=no_download,
            save_partials=save_partials,
        )
        for warning in plan.warnings:
            messages.warn(warning)
        _check_stream_flags(plan, messages, events=events, json_out=json_out, save_partials=save_partials)
        if dry_run:
            _print_dry_run(pipeline.describe_request(plan), json_out)
            return
        messages.detail(f"profile {plan.settings.profile}: {plan.dialect} API at {plan.base_url}, model {plan.request.model}")
        ndjson = events and json_out
        try:
            outcome = _run(plan, messages, quiet, events=ndjson)
        except ImgenError as exc:
            if ndjson:  # the NDJSON reader learns how the stream ended without parsing stderr
                _ndjson_line({"event": "error", **exc.to_dict()})
            raise
        _report(outcome, messages, json_out, events=ndjson)
        if outcome.exit_code != ExitCode.OK:
            raise typer.Exit(int(outcome.exit_code))


def _check_batch_flags(batch: str | None, *, prompt: bool, stream: bool, no_download: bool, name: bool, overwrite: bool, only_batch: dict[str, bool], max_total_images: int | None, max_cost: float | None) -> None:
    """The options that make no sense with --batch, or only with it; refused before any I/O."""
    if batch is None:
        given = [flag for flag, on in only_batch.items() if on]
        if given:
            raise UsageError(f"{', '.join(given)}: only with --batch FILE", "run a batch: imgen generate --batch prompts.txt")
        return
    problems = []
    if prompt:
        problems.append("PROMPT or --prompt-file with --batch: the prompts come from the batch file; give one or the other")
    if stream:
        problems.append("--stream, --partials, --save-partials and --events are for one generation, not a batch")
    if no_download:
        problems.append("--no-download with --batch: a batch saves and records its images; run single generations for URLs")
    if name:
        problems.append("--name with --batch: batch files are named by job (a JSONL \"name\", or the prompt's slug and key)")
    if overwrite:
        problems.append("--overwrite with --batch: a job always replaces its own files; --force regenerates jobs already done")
    if max_total_images is not None and max_total_images < 1:
        problems.append(f"--max-total-images {max_total_images}: must be 1 or more")
    if max_cost is not None and not max_cost > 0:
        problems.append(f"--max-cost {max_cost:g}: must be more than 0")
    if problems:
        raise UsageError(problems[0] if len(problems) == 1 else f"{len(problems)} problems:\n  " + "\n  ".join(problems), "nothing was sent")


def _run(plan, messages, quiet, *, events: bool = False):  # noqa: ANN001, ANN202
    from .. import pipeline
    from ..report import make_progress

    progress = make_progress(enabled=not quiet)
    hooks = pipeline.Hooks(
        retry=lambda text: messages.detail(f"imgen: retry: {text}"),
        waiting=progress.waiting,
        download_task=progress.task,
        stream_event=_stream_listener(progress, messages, quiet, events),
    )
    try:
        return pipeline.run(plan, hooks)
    finally:
        progress.close()


def _report(outcome, messages, json_out: bool, *, events: bool = False) -> None:  # noqa: ANN001
    from .. import pipeline
    from ..report import emit_json, emit_lines

    for failed in outcome.failed:
        messages.error(failed.error)
    if events:
        _ndjson_line({"event": "done", **pipeline.outcome_document(outcome)})
    elif json_out:
        emit_json(pipeline.outcome_document(outcome))
    else:
        emit_lines([str(s.image.path) for s in outcome.saved if s.image.path is not None] + [i.url for i in outcome.urls])
    messages.detail(f"done in {outcome.elapsed:.2f}s: {len(outcome.saved)} saved, {len(outcome.failed)} failed")


def _check_stream_flags(plan, messages, *, events: bool, json_out: bool, save_partials: bool) -> None:  # noqa: ANN001
    """The flags that only mean something on a stream, refused before anything is sent."""
    streaming = plan.request.stream
    problems = []
    if events and not (json_out and streaming):
        missing = " and ".join(flag for flag, ok in (("--json", json_out), ("--stream", streaming)) if not ok)
        problems.append(f"--events: one JSON line per stream event needs --json and --stream; add {missing}")
    if events and plan.target.stdout:
        problems.append("--events with -o -: the events and the image would share stdout; use -o DIR")
    if save_partials and not streaming:
        problems.append("--save-partials: partial images come only with --stream; add --stream (and --partials N)")
    elif save_partials and plan.target.stdout:
        problems.append("--save-partials with -o -: partial images are saved as files; use -o DIR")
    if problems:
        raise UsageError(
            problems[0] if len(problems) == 1 else f"{len(problems)} problems:\n  " + "\n  ".join(problems),
            "nothing was sent; fix the flags above",
        )
    wanted = plan.request.params.get("partial_images", plan.request.fields.get("partial_images"))
    if save_partials and not wanted:
        messages.warn("--save-partials: no partial images were asked for (the API sends none by default); add --partials 1-3")


def _stream_listener(progress, messages, quiet: bool, events: bool):  # noqa: ANN001, ANN202
    """Each partial or completed image of a stream: an NDJSON line, and a progress line on stderr
    (above the spinner on a terminal, plain elsewhere)."""
    console = getattr(progress, "console", None)

    def say(text: str) -> None:
        if console is not None:
            console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            messages.info(text)

    def on_event(update) -> None:  # noqa: ANN001
        if events:
            _ndjson_line(update.to_dict())
        if quiet:
            return
        if update.error is None:
            say(update.describe())
        elif update.kind == "partial":  # a failed final image is reported with the other errors
            say(f"imgen: warning: {update.describe()}")

    return on_event


def _ndjson_line(document: dict) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")
    sys.stdout.flush()  # each line as it happens: the reader is watching the stream


def _print_dry_run(described: dict, json_out: bool) -> None:
    from ..report import emit_json, emit_lines

    if json_out:
        emit_json(described)
        return
    if described.get("offline"):
        emit_lines([f"offline: model {described['model']} writes placeholder PNGs locally; nothing is sent", json.dumps(described["body"], indent=2, ensure_ascii=False)])
        return
    lines = [f"{described['method']} {described['url']}"]
    lines += [f"{k}: {v}" for k, v in described["headers"].items()]
    lines += ["", json.dumps(described["body"], indent=2, ensure_ascii=False), "", described["curl"]]
    cost = described["cost"]
    lines += ["", f"estimated cost: ${cost['usd']:.4f} ({cost['note']})" if cost["usd"] is not None else f"cost: unknown ({cost['note']})"]
    emit_lines(lines)
