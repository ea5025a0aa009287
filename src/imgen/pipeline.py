"""One generation, top to bottom:

    prepare   settings (flag > env > profile > default) → the model's dialect → the capability
              check (every problem at once, before any I/O) → the output target   [generation/plan]
    run       the dialect builds the call (pure) → transport sends it (retries, one error
              classifier) → the dialect parses the answer:
                sync      one call, one answer (a stream is read as it arrives)    [generation/stream]
                task      submit once, poll until done, failed or out of time
                offline   the dialect answers itself (the placeholder)
              → save each image (decode or download → verify → atomic write)        [generation/saving]
              → the Outcome, which the command reports                             [generation/outcome]
"""

from __future__ import annotations

import contextlib
import time
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .dialects import ApiCall, TaskRef
from .files.writer import ImageWriter, check_writable
from .generation import body
from .generation.client import client_for as _client
from .generation.client import json_of as _json
from .generation.hooks import Connections, Hooks
from .generation.outcome import Outcome
from .generation.outcome import document as outcome_document
from .generation.plan import Plan, describe_request, prepare
from .generation.saving import save_all, staging
from .results import GenerationResponse, ImageResult
from .transport import answer

if TYPE_CHECKING:
    from .generation.tasks import TaskInterrupted, TaskStillRunning

# What a command needs of a generation, in one place: prepare a plan, show it, run it, report it.
__all__ = [
    "Hooks", "Plan", "TaskInterrupted", "TaskStillRunning", "call_api", "describe_request", "mark_task", "outcome_document", "prepare", "run",
]


def __getattr__(name: str) -> Any:
    # The task machinery loads with the first task dialect run, not with every generation.
    if name in ("TaskInterrupted", "TaskStillRunning"):
        from .generation import tasks

        return getattr(tasks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run(plan: Plan, hooks: Hooks | None = None, *, resume: TaskRef | None = None, submit: ApiCall | None = None) -> Outcome:
    """One generation. For a task dialect: `resume` polls a task already submitted (imgen task
    wait), `submit` sends another call than the request's own (a Midjourney button)."""
    hooks = hooks or Hooks()
    started = time.monotonic()
    if not plan.target.stdout and not plan.no_download:
        check_writable(plan.target.directory)  # before the API call: an unwritable -o costs nothing
    with staging(plan):
        stream_call = _stream_call(plan)
        if stream_call is not None:
            outcome = _run_stream(plan, stream_call, hooks)  # images are saved as their events arrive
        else:
            waiting = hooks.waiting(f"generating with {plan.request.model}") if hooks.waiting else contextlib.nullcontext()
            with waiting:
                response = call_api(plan, hooks, resume=resume, submit=submit)
            outcome = Outcome(plan=plan, response=response)
            save_all(plan, response, hooks, outcome)
            mark_task(outcome)
    outcome.elapsed = time.monotonic() - started
    return outcome


def call_api(plan: Plan, hooks: Hooks, connections: Connections | None = None, *, resume: TaskRef | None = None,
             submit: ApiCall | None = None) -> GenerationResponse:
    """The API's answer, parsed: one call (sync), a task followed to its end, or offline."""
    dialect = plan.module
    if plan.offline:
        return dialect.parse(dialect.answer(dialect.build(plan.request)))
    if dialect.LIFECYCLE == "task":
        from .generation.tasks import run_task

        if resume is None and getattr(dialect, "INLINE_REFERENCES", False):
            from .generation.inline import inline_references

            inline_references(plan, hooks)
        return keep_asked(run_task(plan, dialect, hooks, connections, resume=resume, submit=submit), plan, hooks)
    return keep_asked(_call_sync(plan, dialect, hooks, connections), plan, hooks)


def keep_asked(parsed: GenerationResponse, plan: Plan, hooks: Hooks) -> GenerationResponse:
    """The server does not decide how many images land on disk: what was asked for (n, or a
    sequence's most) is kept, the rest dropped with a warning (and their spooled bytes removed)."""
    most = getattr(plan.module, "most_images", None)  # a dialect whose answers may hold more than n
    limit = most(plan.request) if most else plan.request.most_images()
    if len(parsed.items) <= limit:
        return parsed
    surplus = parsed.items[limit:]
    del parsed.items[limit:]
    for item in surplus:
        if item.spooled is not None:
            item.spooled.abort()
            item.spooled = None
    parsed.meta["surplus"] = len(surplus)
    hooks.warn(f"the API returned {limit + len(surplus)} images where {limit} {'was' if limit == 1 else 'were'} asked for; "
               f"kept the first {limit}, ignored {len(surplus)}")
    return parsed


def mark_task(outcome: Outcome) -> None:
    """The journal learns how a task ended once its images are on disk (or are not)."""
    if not outcome.response.meta.get("task_id"):
        return
    from .generation.tasks import mark

    paths = "\n".join(str(s.image.path) for s in outcome.saved if s.image.path is not None)
    mark(outcome.response.meta["task_id"], "done" if outcome.saved or outcome.urls else "failed", paths or "no image saved")


# --- sync: one call, one answer -----------------------------------------------------------------


def _call_sync(plan: Plan, dialect: ModuleType, hooks: Hooks, connections: Connections | None) -> GenerationResponse:
    if getattr(dialect, "INLINE_REFERENCES", False):
        from .generation.inline import inline_references

        inline_references(plan, hooks)
    call = dialect.build(plan.request)
    spools: list[ImageWriter] = []
    try:
        with _client(plan, connections) as (client, policy), answer.deadline(plan.max_time):
            response = _send(plan, client, policy, call, hooks)
            try:
                raw = body.read(response, plan.target.directory, plan.max_bytes, spools, key=getattr(dialect, "B64_KEY", body.B64_KEY),
                                max_answer=plan.max_answer)
            finally:
                response.close()
        parsed = dialect.parse(_json(raw, response))
        body.attach(parsed, spools)
    except BaseException:
        for writer in spools:
            writer.abort()
        raise
    parsed.request_id = parsed.request_id or response.headers.get("x-request-id")
    if getattr(dialect, "COUNTS_RESULTS", False):
        _count_results(parsed, plan.request.n)
    return parsed


def _send(plan: Plan, client: Any, policy: Any, call: ApiCall, hooks: Hooks) -> Any:
    """The generation call, its answer left open to be read as it arrives; an upload (an edit's
    files) shows its progress."""
    from .transport import http

    upload = None
    if call.files and hooks.upload_task is not None:
        count = len(call.files)
        upload = hooks.upload_task(f"uploading {count} image{'s' if count > 1 else ''}", sum(f.size for f in call.files))
    try:
        return http.send(
            client, call.method, call.path, json_body=call.body, policy=policy, on_retry=hooks.retry, target="the API",
            stream=True, read=plan.read_fault, max_answer=plan.max_answer, files=call.files, on_upload=upload.update if upload is not None else None,
        )
    finally:
        if upload is not None:
            upload.done()


def _count_results(parsed: GenerationResponse, asked: int) -> None:
    """Images the API dropped without a word become failures, so the run says how many came."""
    got = len(parsed.items)
    why = f"the API returned {got} of the {asked} images asked for (content moderation may have removed the others)"
    parsed.items += [ImageResult(got + i, error_code="missing", error_message=why) for i in range(asked - got)]


def _stream_call(plan: Plan) -> ApiCall | None:
    """The call to send as a stream, when this request is one (only dialects that can stream say so)."""
    if not plan.request.stream or plan.offline:
        return None
    call = plan.module.build(plan.request)
    return call if call.stream else None


def _run_stream(plan: Plan, call: ApiCall, hooks: Hooks) -> Outcome:
    import httpx

    from .generation.stream import StreamReader

    reader = StreamReader(plan, on_update=hooks.stream_event, note=hooks.note, warn=hooks.warn, pixels=hooks.stream_pixels)
    waiting = hooks.waiting(f"generating with {plan.request.model} (streaming)") if hooks.waiting else contextlib.nullcontext()
    with _client(plan, None) as (client, policy), waiting, answer.deadline(plan.max_time):
        # The client asks for JSON by default; a server that honours Accept must still stream.
        client.headers["Accept"] = "text/event-stream, application/json"
        response = _send(plan, client, policy, call, hooks)
        with contextlib.closing(response):
            result = reader.read(
                answer.chunks(response, plan.max_answer),
                read_errors=(httpx.HTTPError,),
                status=response.status_code,
                content_type=response.headers.get("content-type", "?"),
                request_id=response.headers.get("x-request-id"),
            )
    if isinstance(result, GenerationResponse):  # a plain JSON answer to the stream request
        outcome = Outcome(plan=plan, response=keep_asked(result, plan, hooks))
        save_all(plan, outcome.response, hooks, outcome)
        return outcome
    return result
