"""Task APIs (Midjourney, Flux): a submit is paid for on arrival, so it is sent once (again only
when it surely did not arrive), written to the journal before the first poll, then polled at the
dialect's pace until it is done, failed, out of time or interrupted. A task left running is in
the journal, and `imgen task wait ID` finishes it in another process, as if this one had gone on.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ..dialects import ApiCall, Done, NotAccepted, Pending, TaskFailed, TaskRef
from ..errors import ExitCode, ImgenError, NetworkError
from ..transport import answer
from .client import client_for, json_of
from .hooks import Connections, Hooks
from .plan import Plan

GROWTH = 1.5  # each wait this much longer than the last, up to the dialect's cap


@dataclass
class PollPolicy:
    """How often to ask and for how long: the dialect's first interval growing to its cap (a
    profile's poll_interval scales both), for task_timeout seconds (default: the dialect's)."""

    interval: float
    cap: float
    timeout: float
    sleep: Any = time.sleep

    @classmethod
    def for_plan(cls, plan: Plan, dialect: ModuleType) -> PollPolicy:
        first = float(getattr(dialect, "POLL_INTERVAL", 2.0))
        cap = float(getattr(dialect, "POLL_CAP", max(first, 5.0)))
        chosen = plan.settings.get("poll_interval")
        scale = float(chosen) / first if chosen else 1.0
        timeout = plan.settings.get("task_timeout") or getattr(dialect, "TASK_TIMEOUT", None) or plan.settings["timeout"]
        return cls(first * scale, cap * scale, float(timeout))


class TaskStillRunning(NetworkError):
    """The wait ran out, not the task: it may still finish at the provider."""


class TaskInterrupted(ImgenError):
    """Ctrl-C or SIGTERM while a paid task runs: it is in the journal, to fetch later."""

    exit_code = ExitCode.INTERRUPTED


def run_task(plan: Plan, dialect: ModuleType, hooks: Hooks, connections: Connections | None, *,
             resume: TaskRef | None = None, submit: ApiCall | None = None) -> Any:
    """The task's answer (a GenerationResponse): a new one submitted (`submit`: another call
    than the dialect's build, e.g. a Midjourney button), or `resume`'s, polled from now on."""
    tell = hooks.task_progress or (lambda text: None)
    with client_for(plan, connections) as (client, policy):
        if resume is None:
            ref = _submit(plan, dialect, client, policy, hooks, submit or dialect.build(plan.request))
            _journal(plan, ref, tell)
            if hooks.task_submitted is not None:
                hooks.task_submitted(ref)
        else:
            ref = resume
        try:
            return _poll(plan, dialect, client, policy, hooks, ref, tell)
        except KeyboardInterrupt:
            raise TaskInterrupted(
                f"task {ref.id} still runs at the provider (it is paid for)",
                f"fetch it later with: imgen task wait {ref.id}", code="interrupted",
            ) from None


def _submit(plan: Plan, dialect: ModuleType, client: Any, policy: Any, hooks: Hooks, call: ApiCall) -> TaskRef:
    from ..transport import http

    attempt = 0
    while True:
        # billed: a dropped connection after sending may have made the task; never sent again.
        try:
            with answer.deadline(plan.max_time):
                response = http.send(
                    client, call.method, call.path, json_body=call.body, policy=policy, on_retry=hooks.retry, target="the API",
                    read=plan.read_fault, billed=True, max_answer=plan.max_answer,
                )
        except NetworkError as exc:
            if isinstance(exc.__cause__, http.NOT_SENT_EXCEPTIONS):
                raise
            raise NetworkError(
                f"the submit was sent, but no answer came back ({exc.message}): the task may exist and be paid for",
                "imgen did not send it again; check the provider's task list before submitting it once more",
                code="submit_unknown",
            ) from exc
        try:
            return dialect.task_ref(json_of(response.content, response))
        except NotAccepted as exc:  # turned away before a task existed (a full queue): safe to send again
            if attempt >= policy.retries:
                raise
            delay = policy.delay(attempt, None)
            hooks.retry(f"{exc.message}; submitting again in {delay:.1f}s")
            policy.sleep(delay)
            attempt += 1


def _poll(plan: Plan, dialect: ModuleType, client: Any, policy: Any, hooks: Hooks, ref: TaskRef, tell: Any) -> Any:
    from ..transport import http

    polls = PollPolicy.for_plan(plan, dialect)
    started = time.monotonic()
    deadline = started + polls.timeout
    wait = polls.interval
    while True:
        polls.sleep(min(wait, max(0.0, deadline - time.monotonic())))
        call = dialect.poll(ref)
        try:
            with answer.deadline(plan.max_time):
                polled = http.send(client, call.method, call.path, json_body=call.body, policy=policy, on_retry=hooks.retry,
                                   target="the API", read=plan.read_fault, max_answer=plan.max_answer)
            state = dialect.progress(json_of(polled.content, polled), ref)
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
            mark(ref.id, "failed", err.message)
            raise type(err)(f"task {ref.id}: {err.message}", err.hint, code=err.code, status=err.status, request_id=err.request_id)
        shown = f" {state.progress:.0%}" if state.progress is not None else ""
        tell(f"task {ref.id} {state.status}{shown} · {time.monotonic() - started:.0f}s")
        if time.monotonic() >= deadline:
            raise TaskStillRunning(
                f"task {ref.id} was not done after {polls.timeout:g}s (last state {state.status})",
                f"it still runs at the provider and is paid for: imgen task wait {ref.id} saves it when it is done",
                code="task_timeout",
            )
        wait = min(polls.cap, wait * GROWTH)


# --- the journal -------------------------------------------------------------------------------


def _journal(plan: Plan, ref: TaskRef, tell: Any) -> None:
    """The task, written down before the first poll; a journal that cannot be written is said
    loudly (the id is the only way back to a paid image) but does not stop the wait."""
    from ..tasks.journal import Journal, TaskRecord

    target = plan.target
    fields = {k: (f"<{len(v)} images>" if k == "image" else v) for k, v in plan.request.fields.items() if v is not None}
    record = TaskRecord(
        id=ref.id, dialect=ref.dialect, profile=plan.settings.profile, base_url=plan.base_url, model=plan.request.model,
        prompt=plan.request.prompt, created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        output={"directory": str(target.directory.resolve()), "file_name": target.file_name, "stdout": target.stdout,
                "template": plan.template, "overwrite": plan.overwrite},
        extra=dict(ref.extra), request={"fields": fields, "params": dict(plan.request.params)}, job_key=plan.job_key,
    )
    try:
        Journal().add(record)
    except (ImgenError, OSError, ValueError) as exc:
        tell(f"imgen: warning: task {ref.id} could not be written to the task journal ({exc}); note its id")


def mark(task_id: str, state: str, detail: str = "") -> None:
    """A journalled task's new state; a journal that cannot be written costs no image."""
    from ..tasks.journal import Journal

    try:
        Journal().update(task_id, state, detail)
    except (ImgenError, OSError, ValueError):
        pass
