"""`imgen generate`: options → pipeline → report. Parsing only; the work is in pipeline.py."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import typer

from ..errors import ExitCode, ImgenError, UsageError
from . import options as o
from .common import debug_enabled, handle_errors

# The order --help shows them in; panels (Generation, Seedream, ...) come from each record.
OPTIONS = (o.PROMPT, *o.GENERATION, *o.SEEDREAM, *o.TASK_OPTIONS, *o.STREAMING, *o.BATCHES, o.STRICT, *o.OUTPUT, *o.CONNECTION)


def read_prompt(prompt: str | None, prompt_file: Path | None, verb: str = "generate") -> str:
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
            raise UsageError("PROMPT is '-' but stdin is a terminal", "pipe the prompt in: " + ("echo 'make it night' | imgen edit photo.png -" if verb == "edit" else "echo 'a cat' | imgen generate -"))
        text = _utf8(sys.stdin.buffer.read(), "the prompt on stdin")
    elif prompt is None:
        # `echo "a cat" | imgen generate`: a prompt piped in needs no "-", as with llm.
        piped = sys.stdin is not None and not sys.stdin.isatty() and verb == "generate"
        text = _utf8(sys.stdin.buffer.read(), "the prompt on stdin") if piped else ""
        if not text.strip():
            example = 'edit photo.png "make it night"' if verb == "edit" else 'generate "a paper boat at sunrise"'
            raise UsageError("no prompt given", f"imgen {example} (or pipe it in, or --prompt-file FILE)")
    else:
        text = prompt
        check_utf8(text, "PROMPT")
    text = text.strip()
    if not text:
        raise UsageError("the prompt is empty", "describe the image you want")
    return text


def _utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{what} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                         "convert it to UTF-8 first, e.g. with iconv -t UTF-8; nothing was sent") from None


def check_utf8(text: str, what: str) -> None:
    """Arguments that were not UTF-8 reach Python as lone surrogates, which no request can carry."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raw = text[exc.start].encode("utf-8", "surrogateescape")
        raise UsageError(f"{what} is not valid UTF-8 (byte 0x{raw[0]:02x} at character {exc.start})",
                         "pass text in UTF-8 (check the terminal's or the script's encoding); nothing was sent") from None


@o.command(OPTIONS)
def generate(args: o.Args) -> None:
    """Generate images from PROMPT and save them; print one path per line.

    Examples:

    \b
      imgen generate "a paper boat at sunrise"
      imgen generate -m gpt-image-1 -s 1536x1024 -Q high -n 2 -o renders/ "a lighthouse"
      echo "a fox in the snow" | imgen generate -m placeholder
      imgen generate -m flux-pro-1.1 --aspect 16:9 --preview "a misty valley"
      imgen generate --batch prompts.jsonl -o assets/ -j 4 --max-cost 5
    """
    from ..report import Messages

    messages = Messages(quiet=args.quiet, verbose=args.verbose, debug=args.debug or debug_enabled())
    with handle_errors(messages):
        _check_batch_flags(args)
        check_stdout(args)
        text = read_prompt(args.prompt, args.prompt_file) if args.batch is None else ""
        parts = o.request_parts(args, OPTIONS)
        if args.batch is not None:
            _run_batch(args, parts, messages)
            return
        generate_one(text, args, parts, messages)


def generate_one(text: str, args: o.Args, parts: o.RequestParts, messages, **edit: Any) -> None:  # noqa: ANN001
    """One generation (or, given `edit`'s inputs, one edit) from prepare to report: the same
    output options, the same code, for both verbs."""
    from .. import pipeline

    plan = pipeline.prepare(
        text, flags=parts.flags, fields=parts.fields, params=parts.params, output=args.output, overwrite=args.overwrite,
        strict=args.strict, no_download=args.no_download, save_partials=args.save_partials, **edit,
    )
    plan.sidecar = bool(args.get("sidecar"))
    for warning in plan.warnings:
        messages.warn(warning)
    for note in plan.notes:
        messages.info(f"imgen: note: {note}")
    _check_stream_flags(plan, messages, events=args.events, json_out=args.json_out, save_partials=args.save_partials)
    if args.dry_run:
        _print_dry_run(pipeline.describe_request(plan), args.json_out)
        return
    messages.detail(f"profile {plan.settings.profile}: {plan.dialect} API at {plan.base_url}, model {plan.request.model}")
    ndjson = args.events and args.json_out
    try:
        outcome = run_logged(plan, messages, args.quiet, events=ndjson)
    except ImgenError as exc:
        if ndjson:  # the NDJSON reader learns how the stream ended without parsing stderr
            _ndjson_line({"event": "error", **exc.to_dict()})
        raise
    _report(outcome, messages, args.json_out, events=ndjson)
    if outcome.exit_code != ExitCode.OK:
        raise typer.Exit(int(outcome.exit_code))


def check_stdout(args: o.Args) -> None:
    if args.output == "-" and args.json_out and not args.dry_run:
        raise UsageError("-o - with --json: stdout would hold both the image bytes and the JSON", "drop one of them")


def _run_batch(args: o.Args, parts: o.RequestParts, messages) -> None:  # noqa: ANN001
    from ..batch import runner
    from ..batch.jobs import parse_shard

    options = runner.BatchOptions(
        source=args.batch, flags=parts.flags, fields=parts.fields, params=parts.params, output=args.output, strict=args.strict,
        concurrency=args.concurrency, force=args.force, sidecar=args.sidecar, max_total_images=args.max_total_images,
        max_cost=args.max_cost, shard=parse_shard(args.shard, note=messages.info) if args.shard is not None else None, json_out=args.json_out,
        dry_run=args.dry_run, quiet=args.quiet, wait_lock=args.wait_lock,
    )
    code = runner.run(options, messages)
    if code:
        raise typer.Exit(code)


def _check_batch_flags(args: o.Args) -> None:
    """The options that make no sense with --batch, or only with it; refused before any I/O."""
    if args.batch is None:
        only_batch = {
            "--force": args.force, "--max-total-images": args.max_total_images is not None,
            "--max-cost": args.max_cost is not None, "--shard": args.shard is not None, "--wait-lock": args.wait_lock,
        }
        given = [flag for flag, on in only_batch.items() if on]
        if given:
            raise UsageError(f"{', '.join(given)}: only with --batch FILE", "run a batch: imgen generate --batch prompts.txt")
        return
    prompt = args.prompt is not None or args.prompt_file is not None
    stream = args.stream or args.partials is not None or args.save_partials or args.events
    no_download, name, overwrite = args.no_download, args.name is not None, args.overwrite
    max_total_images, max_cost = args.max_total_images, args.max_cost
    problems = []
    if args.preview:
        problems.append("--preview is for one generation; see a batch's images with imgen gallery DIR")
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
        raise UsageError.of(problems, "nothing was sent")


def run_logged(plan, messages, quiet: bool, *, events: bool = False, kind: str | None = None, **how: Any):  # noqa: ANN001, ANN201
    """Run `plan` (pipeline.run's `how`: a task to resume, another submit) with progress on a
    terminal, and its ledger row written however it ends."""
    from .. import pipeline
    from ..ledger import record
    from ..report import make_progress
    from .previews import previews_for

    progress = make_progress(enabled=not quiet)
    previews = previews_for(plan, messages, progress)
    hooks = pipeline.Hooks(
        retry=lambda text: messages.detail(f"imgen: retry: {text}"),
        waiting=progress.waiting,
        download_task=progress.task,
        upload_task=progress.task,
        note=messages.detail,
        warn=messages.warn,
        stream_event=_stream_listener(progress, messages, quiet, events, previews),
        stream_pixels=bool(previews and previews.on),
        task_progress=progress.status,  # the state, percent and time beside the spinner; nothing on a pipe
        task_submitted=lambda ref: messages.info(f"imgen: task {ref.id} submitted"),  # the id, in every log
    )
    started, clock = record.now(), time.monotonic()

    def log(**how_it_ended: Any) -> None:
        record.write(plan, started=started, duration=time.monotonic() - clock, kind=kind, warn=messages.warn, **how_it_ended)

    try:
        outcome = pipeline.run(plan, hooks, **how)
    except ImgenError as exc:
        log(error=exc)
        raise
    finally:
        progress.close()
    log(outcome=outcome)
    if previews is not None and "stream" not in outcome.response.meta:  # a stream's were drawn as they came
        for saved in outcome.saved:
            previews.show(saved.image.path)
    return outcome


def say_buttons(outcome, messages) -> None:  # noqa: ANN001
    """A Midjourney grid's buttons: what can be done with it next."""
    buttons = outcome.response.meta.get("buttons")
    if buttons:
        task_id = outcome.response.meta.get("task_id")
        messages.info(f"imgen: buttons (imgen task action {task_id} LABEL): " + ", ".join(b["label"] or b["customId"] for b in buttons))


def _report(outcome, messages, json_out: bool, *, events: bool = False) -> None:  # noqa: ANN001
    from .. import pipeline
    from ..report import emit_json, emit_lines

    said = outcome.response.meta.get("text")
    if said:  # what the model wrote beside the image (Gemini): worth reading, never on stdout
        messages.info(f"imgen: {outcome.plan.request.model} says: {said}")
    for failed in outcome.failed:
        messages.error(failed.error)
    for note in changes(outcome):
        messages.info(f"imgen: note: {note}")
    for saved in outcome.saved:
        if saved.item.revised_prompt:  # dall-e-3 rewrites prompts: what it drew is worth knowing
            messages.detail(f"imgen: image {saved.item.index + 1}: revised prompt: {saved.item.revised_prompt}")
    say_buttons(outcome, messages)
    say_cost(outcome, messages)
    if events:
        _ndjson_line({"event": "done", **pipeline.outcome_document(outcome)})
    elif json_out:
        emit_json(pipeline.outcome_document(outcome))
    else:
        emit_lines([str(s.image.path) for s in outcome.saved if s.image.path is not None] + [i.url for i in outcome.urls])
    messages.detail(f"done in {outcome.elapsed:.2f}s: {len(outcome.saved)} saved, {len(outcome.failed)} failed")


def say_cost(outcome, messages) -> None:  # noqa: ANN001
    """What the run cost, when known, as the last line on a terminal (scripts read --json or imgen cost)."""
    from ..report import progress_allowed

    if not outcome.saved or not progress_allowed(messages.stream):
        return
    from ..generation.plan import cost_of

    price = cost_of(outcome.plan, outcome.response.usage)
    if price["usd"] is not None:
        mark = "" if price.get("basis") == "billed" else "~"
        messages.info(f"imgen: cost: {mark}${price['usd']:.4f} ({price['note']})")


def changes(outcome) -> list[str]:  # noqa: ANN001
    """What was saved otherwise than asked, worth a line: the user would look for the file asked for."""
    plan, said = outcome.plan, []
    wanted = plan.target.file_name
    for saved in outcome.saved:
        path = saved.image.path
        if wanted and path is not None and path.suffix.lower() != Path(wanted).suffix.lower():
            said.append(f"-o {wanted}: the image is {saved.image.format.upper()}, so it was saved as {path.name}")
    if plan.no_download and outcome.saved:
        said.append(f"--no-download: {plan.request.model} sent the image itself, not a URL, so it was saved")
    return said


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
        raise UsageError.of(problems, "nothing was sent; fix the flags above")
    wanted = plan.request.params.get("partial_images", plan.request.fields.get("partial_images"))
    if save_partials and not wanted:
        messages.warn("--save-partials: no partial images were asked for (the API sends none by default); add --partials 1-3")


def _stream_listener(progress, messages, quiet: bool, events: bool, previews=None):  # noqa: ANN001, ANN202
    """Each partial or completed image of a stream: an NDJSON line, and a progress line on stderr
    (above the spinner on a terminal, plain elsewhere), or the image itself with --preview."""
    console = getattr(progress, "console", None)

    def say(text: str) -> None:
        if console is not None:
            console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            messages.info(text)

    def on_event(update) -> None:  # noqa: ANN001
        if events:
            _ndjson_line(update.to_dict())
        if previews is not None and previews.streamed(update):
            return  # the partial drawn says it; a text line would come between it and the next one
        if quiet:
            return
        if update.error is None:
            say(update.describe())
        elif update.kind == "partial":  # a failed final image is reported with the other errors
            say(f"imgen: warning: {update.describe()}")

    return on_event


def _ndjson_line(document: dict) -> None:
    from ..redact import scrubbed

    sys.stdout.write(json.dumps(scrubbed(document), ensure_ascii=False) + "\n")
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
    lines += ["", json.dumps(_abbreviated(described["body"]), indent=2, ensure_ascii=False)]
    lines += [f"{f['field']}: {f['path']} ({f['content_type']}, {f['bytes']} bytes)" for f in described.get("files", ())]
    lines += ["", described["curl"]]
    cost = described["cost"]
    lines += ["", f"estimated cost: ${cost['usd']:.4f} ({cost['note']})" if cost["usd"] is not None else f"cost: unknown ({cost['note']})"]
    emit_lines(lines)


def _abbreviated(value: Any) -> Any:
    """The body for reading: an inline image's base64 (megabytes of it) shown by its length;
    --json keeps it whole."""
    if isinstance(value, dict):
        return {k: _abbreviated(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_abbreviated(v) for v in value]
    if isinstance(value, str) and len(value) > 200 and " " not in value:
        from ..units import human_size

        head, _, payload = value.partition(",") if value.startswith("data:") else ("", "", value)
        shown = f"{head}," if head else ""
        return f"{shown}{payload[:4]}…({human_size(len(payload) * 3 // 4)})"
    return value
