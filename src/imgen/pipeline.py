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
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .dialects import ApiCall
from .errors import ImgenError, NetworkError
from .files.writer import ImageWriter, check_writable
from .generation import body
from .generation.hooks import Connections, Hooks
from .generation.outcome import Outcome
from .generation.outcome import document as outcome_document
from .generation.plan import Plan, describe_request, prepare, require_key
from .generation.saving import save_all, staging
from .results import GenerationResponse, ImageResult

# What a command needs of a generation, in one place: prepare a plan, show it, run it, report it.
__all__ = ["Hooks", "Plan", "TaskStillRunning", "call_api", "describe_request", "outcome_document", "prepare", "run"]


def run(plan: Plan, hooks: Hooks | None = None) -> Outcome:
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
                response = call_api(plan, hooks)
            outcome = Outcome(plan=plan, response=response)
            save_all(plan, response, hooks, outcome)
    outcome.elapsed = time.monotonic() - started
    return outcome


def call_api(plan: Plan, hooks: Hooks, connections: Connections | None = None) -> GenerationResponse:
    """The API's answer, parsed: one call (sync), a task followed to its end, or offline."""
    dialect = plan.module
    if plan.offline:
        return dialect.parse(dialect.answer(dialect.build(plan.request)))
    if dialect.LIFECYCLE == "task":
        return _run_task(plan, dialect, hooks, connections)
    return _call_sync(plan, dialect, hooks, connections)


# --- sync: one call, one answer -----------------------------------------------------------------


def _call_sync(plan: Plan, dialect: ModuleType, hooks: Hooks, connections: Connections | None) -> GenerationResponse:
    if getattr(dialect, "INLINE_REFERENCES", False):
        from .generation.inline import inline_references

        inline_references(plan, hooks)
    call = dialect.build(plan.request)
    spools: list[ImageWriter] = []
    try:
        with _client(plan, connections) as (client, policy):
            response = _send(plan, client, policy, call, hooks)
            try:
                raw = body.read(response, plan.target.directory, plan.max_bytes, spools, key=getattr(dialect, "B64_KEY", body.B64_KEY))
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
            stream=True, read=plan.read_fault, files=call.files, on_upload=upload.update if upload is not None else None,
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

    reader = StreamReader(plan, on_update=hooks.stream_event)
    waiting = hooks.waiting(f"generating with {plan.request.model} (streaming)") if hooks.waiting else contextlib.nullcontext()
    with _client(plan, None) as (client, policy), waiting:
        # The client asks for JSON by default; a server that honours Accept must still stream.
        client.headers["Accept"] = "text/event-stream, application/json"
        response = _send(plan, client, policy, call, hooks)
        with contextlib.closing(response):
            answer = reader.read(
                response.iter_bytes(),
                read_errors=(httpx.HTTPError,),
                status=response.status_code,
                content_type=response.headers.get("content-type", "?"),
                request_id=response.headers.get("x-request-id"),
            )
    if isinstance(answer, GenerationResponse):  # a plain JSON answer to the stream request
        outcome = Outcome(plan=plan, response=answer)
        save_all(plan, answer, hooks, outcome)
        return outcome
    return answer


# --- task: submit once, then poll -------------------------------------------------------------


@dataclass
class PollPolicy:
    """How often to ask: from the dialect's first interval, growing to its cap; for at most
    --timeout seconds in all."""

    interval: float
    cap: float
    timeout: float
    sleep: Any = time.sleep

    @classmethod
    def for_plan(cls, plan: Plan, dialect: ModuleType) -> PollPolicy:
        interval = float(getattr(dialect, "POLL_INTERVAL", 2.0))
        return cls(interval, float(getattr(dialect, "POLL_CAP", max(interval, 5.0))), float(plan.settings["timeout"]))


class TaskStillRunning(NetworkError):
    """The wait ran out, not the task: it may still finish at the provider."""


def _run_task(plan: Plan, dialect: ModuleType, hooks: Hooks, connections: Connections | None) -> GenerationResponse:
    from .dialects import Done, Pending, TaskFailed
    from .transport import http

    tell = hooks.task_progress or (lambda text: None)
    read = plan.read_fault
    submit = dialect.build(plan.request)
    with _client(plan, connections) as (client, policy):
        # Billed on arrival: sent again only when it surely did not arrive (see http.send).
        response = http.send(
            client, submit.method, submit.path, json_body=submit.body, policy=policy, on_retry=hooks.retry,
            target="the API", read=read, billed=True,
        )
        ref = dialect.task_ref(_json(response.content, response))
        tell(f"task {ref.id} submitted")
        polls = PollPolicy.for_plan(plan, dialect)
        deadline = time.monotonic() + polls.timeout
        wait = polls.interval
        while True:
            polls.sleep(min(wait, max(0.0, deadline - time.monotonic())))
            call = dialect.poll(ref)
            try:
                answer = http.send(
                    client, call.method, call.path, json_body=call.body, policy=policy, on_retry=hooks.retry,
                    target="the API", read=read,
                )
                state = dialect.progress(_json(answer.content, answer), ref)
            except ImgenError as exc:
                # A poll that failed is not a task that failed: ask again while there is time.
                if not (exc.retryable or isinstance(exc, NetworkError)):
                    raise
                state = Pending(f"poll failed ({exc.message})")
            if isinstance(state, Done):
                state.response.meta.setdefault("task_id", ref.id)
                return state.response
            if isinstance(state, TaskFailed):
                err = state.error
                raise type(err)(f"task {ref.id}: {err.message}", err.hint, code=err.code, status=err.status, request_id=err.request_id)
            shown = f" {state.progress:.0%}" if state.progress is not None else ""
            tell(f"task {ref.id} {state.status}{shown}")
            if time.monotonic() >= deadline:
                raise TaskStillRunning(
                    f"task {ref.id} was not done after {polls.timeout:g}s (last state {state.status})",
                    "it still runs at the provider and has been paid for; raise --timeout next time",
                    code="task_timeout",
                )
            wait = min(polls.cap, wait * 1.5)


# --- shared by the API paths ---------------------------------------------------------------------


@contextlib.contextmanager
def _client(plan: Plan, connections: Connections | None):  # noqa: ANN202 - a context manager
    """(client, retry policy): a batch's shared ones, or a client of this call's own."""
    from .transport import http

    shared = connections or Connections()
    policy = shared.policy or http.RetryPolicy(retries=int(plan.settings["retries"]))
    if shared.api is not None:
        yield shared.api, policy
        return
    with http.api_client(plan.base_url, require_key(plan), float(plan.settings["timeout"])) as client:
        yield client, policy


def _json(raw: bytes, response: Any) -> Any:
    from .transport.http import json_body

    return json_body(
        raw, what=f"the API answered {response.status_code} with a body that", content_type=response.headers.get("content-type")
    )
