"""The task lifecycle the pipeline drives for every task dialect (Midjourney, Flux...): submit
once, poll through pending states, download when done; never pay twice.

The placeholder model is spoken here as a task dialect (tests/placeholder_tasks.py, written as
any dialect module is) against the fake server's task API, whose tasks answer "pending" to a
number of polls before they are done.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

import placeholder_tasks
from conftest import API_KEY
from imgen import dialects, pipeline
from imgen.errors import ExitCode, NetworkError, RequestRejected
from imgen.models import capabilities
from imgen.models.rules import FreeSize, IntRange, Sizes


@pytest.fixture
def task_model(monkeypatch):
    """A record for `placeholder-task` whose dialect is the test's task dialect."""
    monkeypatch.setitem(dialects.DIALECTS, placeholder_tasks.NAME, placeholder_tasks)
    spec = capabilities.ModelSpec(
        id="placeholder-task",
        provider="tests",
        dialect=placeholder_tasks.NAME,
        fields={"n": IntRange(1, 4), "size": Sizes((), free=FreeSize(max_edge=4096))},
        prompt_max=1000,
        results=("url",),
        default_size=None,
        features=("text-to-image",),
    )
    monkeypatch.setattr(capabilities, "SPECS", (*capabilities.SPECS, spec))
    return spec


def plan_for(server, outdir, *, n=1, timeout=30.0, params=None):
    return pipeline.prepare(
        "a lighthouse",
        flags={"base_url": server.base_url, "model": "placeholder-task", "timeout": timeout, "retries": 2, "metadata": "none"},
        fields={"n": n},
        params=params or {},
        output=str(outdir),
        environ={"IMGEN_API_KEY": API_KEY},
    )


def run(plan):
    said: list[str] = []
    hooks = pipeline.Hooks(task_progress=said.append, task_submitted=lambda ref: said.append(f"task {ref.id} submitted"))
    outcome = pipeline.run(plan, hooks)
    return outcome, said


def test_the_model_record_names_the_dialect_and_the_plan_follows_it(task_model, server, outdir):
    plan = plan_for(server, outdir)
    assert plan.dialect == "placeholder-task" and plan.module.LIFECYCLE == "task"


def test_submit_two_pending_polls_then_done(task_model, server, outdir):
    outcome, said = run(plan_for(server, outdir, n=2))
    assert outcome.exit_code == ExitCode.OK
    (submit,) = server.api_requests()
    assert submit.json["prompt"] == "a lighthouse" and submit.headers["authorization"] == f"Bearer {API_KEY}"
    polls = server.polls()
    assert len(polls) == 3  # pending, pending, done
    task_id = submit_id = outcome.response.meta["task_id"]
    assert all(p.path == f"/placeholder/v1/tasks/{submit_id}" for p in polls)
    shown = [re.sub(r" · \d+s$", "", text) for text in said]  # each poll also says how long it has waited
    assert shown == [f"task {task_id} submitted", f"task {task_id} pending 33%", f"task {task_id} pending 67%"]
    served = {s["sha256"] for s in server.served}
    saved = [Path(s.image.path) for s in outcome.saved]
    assert len(saved) == 2 and {hashlib.sha256(p.read_bytes()).hexdigest() for p in saved} == served
    assert all("authorization" not in d.headers for d in server.downloads())  # the key stays with the API


def test_a_failed_poll_is_asked_again_not_a_failed_task(task_model, server, outdir):
    server.fault("poll_status", status=503)
    server.fault("poll_reset")
    outcome, _ = run(plan_for(server, outdir))
    assert outcome.exit_code == ExitCode.OK and len(outcome.saved) == 1
    assert len(server.api_requests()) == 1  # the task was never submitted again


def test_a_dropped_submit_is_reported_never_resubmitted(task_model, server, outdir):
    server.fault("reset")
    with pytest.raises(NetworkError, match="the task may exist and be paid for") as info:
        run(plan_for(server, outdir))
    assert "did not send it again" in info.value.hint
    assert len(server.api_requests()) == 1 and server.polls() == []
    assert list(outdir.iterdir()) == []


def test_a_submit_refused_with_503_is_sent_again(task_model, server, outdir):
    server.fault("status", status=503, headers={"Retry-After": "0"})
    outcome, _ = run(plan_for(server, outdir))
    assert outcome.exit_code == ExitCode.OK
    assert len(server.api_requests()) == 2  # nothing was created by the refused one


def test_a_failed_task_is_an_error_naming_the_task(task_model, server, outdir):
    server.fault("task_failed", message="content moderated")
    with pytest.raises(RequestRejected, match=r"task pt-[0-9a-f]+: content moderated"):
        run(plan_for(server, outdir))
    assert list(outdir.iterdir()) == [] and server.downloads() == []


def test_a_task_that_outlasts_the_wait_says_it_still_runs(task_model, server, outdir):
    server.task_pending_polls = 10_000
    with pytest.raises(pipeline.TaskStillRunning, match=r"task pt-[0-9a-f]+ was not done after 0.3s") as info:
        run(plan_for(server, outdir, timeout=0.3))
    assert "still runs at the provider" in info.value.hint
    assert len(server.api_requests()) == 1 and list(outdir.iterdir()) == []


def test_the_api_error_of_a_submit_comes_through_the_one_classifier(task_model, server, outdir):
    # FastAPI's {"detail": [{"loc", "msg"}]}: the message and the field are found, the kind decided once.
    with pytest.raises(RequestRejected, match="answered 422: field required") as info:
        run(plan_for(server, outdir, params={"prompt": " "}))
    assert info.value.hint == "change prompt and try again"


def test_dry_run_shows_the_submit(task_model, server, outdir):
    shown = pipeline.describe_request(plan_for(server, outdir))
    assert shown["method"] == "POST" and shown["url"] == server.base_url + "/placeholder/v1/tasks"
    assert server.requests == []
