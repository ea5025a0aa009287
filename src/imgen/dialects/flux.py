"""Flux (Black Forest Labs) through CometAPI: `POST /flux/v1/{model}`, then
`GET /flux/v1/get_result?id=` on the profile's own host, with its key.

The submit's `polling_url` may point at another host (api.bfl.ai): it is kept for the record and
never asked, so the key never leaves for a host the profile does not name. A Ready result's
`sample` is a signed link that expires within minutes: the pipeline saves it at once.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ..errors import BadResponse, RequestRejected, ServerError
from ..request import GenerateRequest
from ..results import GenerationResponse, ImageResult
from . import ApiCall, Done, Pending, TaskFailed, TaskRef

NAME = "flux"
LIFECYCLE = "task"
POLL_INTERVAL = 0.5  # most images are ready in seconds, and the sample expires soon after
POLL_CAP = 3.0
TASK_TIMEOUT = 300.0
PENDING = frozenset({"Pending", "Processing", "Queued"})
MODERATED = frozenset({"Request Moderated", "Content Moderated"})
# Request fields under another name in Flux's body.
RENAMED = {"guidance_scale": "guidance"}


def build(req: GenerateRequest) -> ApiCall:
    body: dict[str, Any] = {"prompt": req.prompt}
    for name, value in req.fields.items():
        if value is None or name in ("n", "image"):
            continue
        if name == "size":
            width, _, height = str(value).lower().partition("x")
            body["width"], body["height"] = int(width), int(height)
        else:
            body[RENAMED.get(name, name)] = value
    for number, ref in enumerate(req.fields.get("image") or (), 1):
        body[_image_field(req.model, number)] = _raw(ref)
    body.update(req.params)
    return ApiCall("POST", f"/flux/v1/{quote(req.model, safe='')}", body)


def _image_field(model: str, number: int) -> str:
    if model.startswith(("flux-kontext", "flux-2")):
        return "input_image" if number == 1 else f"input_image_{number}"
    return "image_prompt"  # FLUX.1: a reference to follow, not an image to edit


def _raw(ref: str) -> str:
    """A data URI as the bare base64 Flux takes; a URL as it is."""
    head, sep, data = ref.partition(";base64,")
    return data if sep and head.startswith("data:") else ref


def task_ref(payload: Any) -> TaskRef:
    task_id = payload.get("id") if isinstance(payload, dict) else None
    if not isinstance(task_id, str) or not task_id:
        raise BadResponse("Flux answered the submit without a task id", "check the base URL points at the Flux API")
    polling_url = payload.get("polling_url")
    return TaskRef(task_id, NAME, {"polling_url": polling_url} if isinstance(polling_url, str) else {})


def poll(ref: TaskRef) -> ApiCall:
    return ApiCall("GET", f"/flux/v1/get_result?id={quote(ref.id, safe='')}", None)


def progress(payload: Any, ref: TaskRef) -> Pending | Done | TaskFailed:
    if not isinstance(payload, dict):
        return TaskFailed(BadResponse("get_result answered with JSON that is not an object", "retry: imgen task wait " + ref.id))
    status = str(payload.get("status") or "")
    if status in PENDING:
        value = payload.get("progress")
        return Pending(status, float(value) if isinstance(value, (int, float)) and 0 <= value <= 1 else None)
    if status == "Ready":
        result = payload.get("result") if isinstance(payload.get("result"), dict) else {}
        sample = result.get("sample")
        if not isinstance(sample, str) or not sample:
            return TaskFailed(BadResponse("it is Ready without a sample link", "ask the provider"))
        item = ImageResult(0, url=sample, extra={k: result[k] for k in ("seed",) if k in result})
        return Done(GenerationResponse(items=[item], meta={"task_id": ref.id, **({"seed": result["seed"]} if "seed" in result else {})}))
    if status in MODERATED:
        return TaskFailed(RequestRejected(f"Flux: {status}{_reasons(payload)}", "change the prompt (or the input image) and try again",
                                          code="moderated"))
    if status in ("Error", "Failed"):
        said = payload.get("error") or payload.get("details") or "no message"
        return TaskFailed(ServerError(f"Flux: the task failed: {said}", "submit it again later", code="task_failed"))
    if status == "Task not found":
        return TaskFailed(RequestRejected(
            "Flux does not know it: its result expired (results are kept minutes) or the id is wrong",
            "submit it again; save results as soon as they are ready", code="task_not_found",
        ))
    return TaskFailed(BadResponse(f"it is in a state imgen does not know: {status!r}", "ask the provider"))


def _reasons(payload: dict[str, Any]) -> str:
    details = payload.get("details")
    reasons = details.get("Moderation Reasons") if isinstance(details, dict) else None
    return f" ({', '.join(map(str, reasons))})" if isinstance(reasons, list) and reasons else ""
