"""The placeholder model spoken as a task dialect, against the fake server's task API.

Written exactly as a task dialect in src/imgen/dialects/ is (see that package's docstring), so
the tests drive the pipeline's task lifecycle end to end: submit, pending polls, done, download.
"""

from __future__ import annotations

from typing import Any

from imgen.dialects import ApiCall, Done, Pending, TaskFailed, TaskRef
from imgen.errors import BadResponse, RequestRejected
from imgen.request import GenerateRequest
from imgen.results import GenerationResponse, ImageResult

NAME = "placeholder-task"
LIFECYCLE = "task"
POLL_INTERVAL = 0.01
POLL_CAP = 0.05
PATH = "/placeholder/v1/tasks"


def build(req: GenerateRequest) -> ApiCall:
    return ApiCall("POST", PATH, req.body())


def task_ref(payload: Any) -> TaskRef:
    if not isinstance(payload, dict) or not payload.get("id"):
        raise BadResponse("the task API answered the submit without a task id", "retry later")
    return TaskRef(str(payload["id"]), NAME)


def poll(ref: TaskRef) -> ApiCall:
    return ApiCall("GET", f"{PATH}/{ref.id}", None)


def progress(payload: Any, ref: TaskRef) -> Pending | Done | TaskFailed:
    status = payload.get("status") if isinstance(payload, dict) else None
    if status == "pending":
        value = payload.get("progress")
        return Pending("pending", float(value) if isinstance(value, (int, float)) else None)
    if status == "done":
        urls = payload.get("urls") or []
        return Done(GenerationResponse(items=[ImageResult(i, url=u) for i, u in enumerate(urls)]))
    if status == "failed":
        return TaskFailed(RequestRejected(str(payload.get("error") or "failed"), "change the prompt and try again", code="failed"))
    return TaskFailed(BadResponse(f"the task is in an unknown state {status!r}", "retry later"))
