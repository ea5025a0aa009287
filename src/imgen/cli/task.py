"""`imgen task`: the tasks imgen submitted to task APIs (Midjourney, Flux), from the journal.

list, show, wait (poll and save, as if the original command had gone on), forget, and action
(a Midjourney button of a finished task, which makes a new task).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from typing import Annotated, Any

import typer

from ..errors import ExitCode, UsageError
from .common import JsonOption, debug_enabled, handle_errors
from .generate import run_logged, say_buttons
from .table import render_table

app = typer.Typer(help="Follow the tasks of task APIs (Midjourney, Flux): list, show, wait, forget, action.", no_args_is_help=True)

IdsArgument = Annotated[list[str], typer.Argument(help="Task ids (a unique start of one is enough).", show_default=False, metavar="ID...")]
IdArgument = Annotated[str, typer.Argument(help="Task id (a unique start of one is enough).", show_default=False, metavar="ID")]
OutputOption = Annotated[
    str | None, typer.Option("--output", "-o", help="Save here instead of where the task's command would have. [default: its own]",
                             show_default=False)
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")]


def _journal():  # noqa: ANN202
    from ..tasks.journal import Journal

    return Journal()


def _find(task_id: str):  # noqa: ANN202
    from ..tasks.journal import AmbiguousId

    try:
        record = _journal().get(task_id)
    except AmbiguousId as exc:
        raise UsageError(f"task {task_id}: {exc}", "give more of the id") from None
    if record is None:
        raise UsageError(f"task {task_id}: not in the task journal", "imgen task list shows the tasks imgen knows")
    return record


def _age(created: str) -> str:
    try:
        seconds = (dt.datetime.now(dt.timezone.utc) - dt.datetime.fromisoformat(created)).total_seconds()
    except ValueError:
        return "?"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size:.0f}{unit}"
    return f"{max(seconds, 0):.0f}s"


def _document(record: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(record)


@app.command("list")
def list_tasks(json_out: JsonOption = False, every: Annotated[bool, typer.Option("--all", help="Also the finished ones.")] = False) -> None:
    """The tasks in flight (with --all, every task the journal remembers), newest first."""
    with handle_errors():
        records = [r for r in _journal().all() if every or r.state == "submitted"]
        if json_out:
            from ..report import emit_json

            emit_json([_document(r) for r in records])
            return
        prompt = lambda text: text if len(text) <= 40 else text[:39] + "…"  # noqa: E731
        render_table(["id", "model", "state", "age", "prompt"], [[r.id, r.model, r.state, _age(r.created), prompt(r.prompt)] for r in records])


@app.command("show")
def show(task_id: IdArgument, json_out: JsonOption = False) -> None:
    """The journal's record and the provider's latest view of the task (one poll)."""
    with handle_errors():
        record = _find(task_id)
        plan, dialect, ref = _resume(record, None)
        state, payload = _fetch(plan, dialect, ref)
        if json_out:
            from ..report import emit_json

            emit_json({"journal": _document(record), "provider": payload})
            return
        lines = [f"task {record.id}  ({record.model}, {record.dialect} API at {record.base_url})", f"  prompt: {record.prompt}",
                 f"  journal: {record.state}, submitted {_age(record.created)} ago" + (f"; {record.detail}" if record.detail else "")]
        lines.append(f"  provider: {_describe(state)}")
        buttons = _buttons(dialect, payload)
        if buttons:
            lines.append("  buttons (imgen task action ID LABEL): " + ", ".join(b["label"] or b["customId"] for b in buttons))
        sys.stdout.write("\n".join(lines) + "\n")


@app.command("wait")
def wait(task_ids: IdsArgument, output: OutputOption = None, json_out: JsonOption = False, quiet: QuietOption = False) -> None:
    """Poll each task until it is done and save its images, as its own command would have; one path per line."""
    from ..report import Messages

    messages = Messages(quiet=quiet, debug=debug_enabled())
    with handle_errors(messages):
        worst = ExitCode.OK
        documents = []
        for task_id in task_ids:
            record = _find(task_id)
            if record.state == "done" and output is None:
                # Waiting again would save the same image twice (and a Flux sample may be gone).
                messages.info(f"imgen: task {record.id} is done already; it saved: {record.detail or 'nothing'}")
                continue
            plan, _, ref = _resume(record, output)
            outcome = run_logged(plan, messages, quiet, kind="task", resume=ref)
            documents.append(_report(outcome, messages, json_out))
            worst = max(worst, outcome.exit_code)
        if json_out and documents:
            from ..report import emit_json

            emit_json(documents[0] if len(documents) == 1 else documents)
        if worst != ExitCode.OK:
            raise typer.Exit(int(worst))


@app.command("forget")
def forget(task_ids: IdsArgument) -> None:
    """Drop tasks from the journal (the provider keeps them)."""
    with handle_errors():
        journal = _journal()
        for task_id in task_ids:
            record = _find(task_id)
            journal.forget(record.id)
        journal.compact()  # the moment the journal shrinks is the moment to rewrite it


@app.command("action")
def action(
    task_id: IdArgument,
    label: Annotated[str, typer.Argument(help="The button: U1-U4, V1-V4, reroll, or a label imgen task show lists.", metavar="LABEL")],
    output: OutputOption = None,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Press a button of a finished Midjourney task (upscale, vary, reroll...): a new task, polled and saved."""
    from ..dialects import midjourney
    from ..report import Messages

    messages = Messages(quiet=quiet, debug=debug_enabled())
    with handle_errors(messages):
        record = _find(task_id)
        if record.dialect != midjourney.NAME:
            raise UsageError(f"task {record.id}: a {record.dialect} task has no buttons", "buttons are Midjourney's")
        plan, dialect, ref = _resume(record, output)
        state, payload = _fetch(plan, dialect, ref)
        from ..dialects import Done

        if not isinstance(state, Done):
            raise UsageError(f"task {record.id} is not finished ({_describe(state)})", f"wait for it first: imgen task wait {record.id}")
        found = midjourney.buttons(payload)
        button = midjourney.find_button(found, label)
        if button is None:
            labels = ", ".join(b["label"] or b["customId"] for b in found) or "none"
            raise UsageError(f"task {record.id} has no button {label!r}; its buttons: {labels}", "pick one of them")
        submit = midjourney.action(record.id, button["customId"], plan.request.fields.get("mj_speed"))
        messages.info(f"imgen: {button['label'] or label} on task {record.id}")
        outcome = run_logged(plan, messages, quiet, kind="task", submit=submit)
        doc = _report(outcome, messages, json_out)
        if json_out:
            from ..report import emit_json

            emit_json(doc)
        if outcome.exit_code != ExitCode.OK:
            raise typer.Exit(int(outcome.exit_code))


# --- shared -----------------------------------------------------------------------------------


def _resume(record: Any, output: str | None):  # noqa: ANN202
    """The plan the task's own command had, rebuilt from the journal (its profile's key read
    again, never stored), with its output or `output`."""
    from ..dialects import TaskRef
    from ..pipeline import prepare

    out = record.output or {}
    if output is None:
        directory = str(out.get("directory") or ".")
        output = "-" if out.get("stdout") else os.path.join(directory, out["file_name"]) if out.get("file_name") else directory + os.sep
    fields = {k: v for k, v in (record.request.get("fields") or {}).items() if k != "image"}
    plan = prepare(
        record.prompt, flags={"profile": record.profile, "base_url": record.base_url, "model": record.model}, fields=fields,
        params=dict(record.request.get("params") or {}), output=output, overwrite=bool(out.get("overwrite")),
    )
    plan.dialect = record.dialect
    plan.template = out.get("template") or plan.template  # unused when the output is one file
    return plan, plan.module, TaskRef(record.id, record.dialect, dict(record.extra))


def _fetch(plan: Any, dialect: Any, ref: Any) -> tuple[Any, Any]:
    """One poll: (the dialect's reading of it, the provider's answer as it came)."""
    from ..generation.client import client_for, json_of
    from ..transport import answer, http

    call = dialect.poll(ref)
    with client_for(plan, None) as (client, policy):
        with answer.deadline(plan.max_time):
            reply = http.send(client, call.method, call.path, json_body=call.body, policy=policy, target="the API", read=plan.read_fault,
                              max_answer=plan.max_answer)
        payload = json_of(reply.content, reply)
    return dialect.progress(payload, ref), payload


def _describe(state: Any) -> str:
    from ..dialects import Done, Pending

    if isinstance(state, Pending):
        return state.status + (f" {state.progress:.0%}" if state.progress is not None else "")
    if isinstance(state, Done):
        return "done: " + ", ".join(i.url or "" for i in state.response.items)
    return f"failed: {state.error.message}"


def _buttons(dialect: Any, payload: Any) -> list[dict[str, str]]:
    finder = getattr(dialect, "buttons", None)
    return finder(payload) if finder is not None and isinstance(payload, dict) else []


def _report(outcome: Any, messages: Any, json_out: bool) -> dict[str, Any]:
    from .. import pipeline
    from ..report import emit_lines

    for failed in outcome.failed:
        messages.error(failed.error)
    say_buttons(outcome, messages)
    if not json_out:
        emit_lines([str(s.image.path) for s in outcome.saved if s.image.path is not None] + [i.url for i in outcome.urls])
    return pipeline.outcome_document(outcome)

