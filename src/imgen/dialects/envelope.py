"""The envelope gateway: `POST /api/v1/image/generation`, answered with
`{"code", "message", "request_id", "data": {"urls", ...}}`. Success is code 0, whatever the
HTTP status says."""

from __future__ import annotations

from typing import Any

from .. import faults
from ..errors import BadResponse
from ..faults import Fault, classify
from ..request import GenerateRequest
from ..results import GenerationResponse, ImageResult
from . import ApiCall

NAME = "envelope"
LIFECYCLE = "sync"
PATH = "/api/v1/image/generation"
# The gateway's document marks these required; the values are what the API itself defaults to.
REQUIRED_DEFAULTS: dict[str, Any] = {"n": 1, "size": "auto", "stream": False, "output_compression": 100}
FINISHED = {"succeeded", "success", "succeed", "completed", "finished", "done"}


def build(req: GenerateRequest) -> ApiCall:
    body = {"prompt": req.prompt, "model": req.model, **REQUIRED_DEFAULTS, **req.fields, **req.params}
    return ApiCall("POST", PATH, body, stream=False)


def read_fault(body: Any) -> Fault:
    """The envelope's `{"code", "message"}`; its codes are HTTP statuses where they can be
    (401, 429, 500) and the gateway's own numbers otherwise."""
    if not isinstance(body, dict) or "code" not in body:
        return faults.read_fault(body)  # an error from in front of the gateway, in another shape
    if body.get("code") in (None, 0):
        return Fault()
    code = body["code"]
    number = int(code) if isinstance(code, int) or (isinstance(code, str) and code.isdigit()) else None
    message = str(body.get("message") or "no message")
    if number is not None and 100 <= number < 600:
        return Fault(message, str(code), status=number)
    # The gateway's own codes (1001, ...) are refusals of the request, not failures at its end.
    return Fault(message, str(code), type="invalid_request")


def parse(payload: Any) -> GenerationResponse:
    if not isinstance(payload, dict) or "code" not in payload:
        raise BadResponse("the gateway answered without its {code, data} envelope", "check the base URL and --profile")
    request_id = payload.get("request_id") if isinstance(payload.get("request_id"), str) else None
    code = payload.get("code")
    if code != 0:
        raise classify(read_fault(payload), what="the gateway refused the request", request_id=request_id)
    data = payload.get("data")
    if not isinstance(data, dict):
        raise BadResponse("the gateway's answer has no 'data' object", "retry later", request_id=request_id)
    meta = {k: data[k] for k in ("expired", "task_id", "task_status") if data.get(k) is not None}
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else None
    urls = data.get("urls")
    if not isinstance(urls, list) or not urls:
        status = meta.get("task_status")
        if status and str(status).lower() not in FINISHED:
            raise BadResponse(
                f"the gateway queued the job as task {meta.get('task_id', '?')} (status {status!r}) and sent no images",
                "the gateway documents no way to fetch a task later; retry the request, or ask its support about the task id",
                request_id=request_id,
            )
        raise BadResponse("the gateway reported success but sent no image URLs", "retry later", request_id=request_id)
    items = [
        ImageResult(i, url=u) if isinstance(u, str) and u else ImageResult(i, error_code="no_image", error_message=f"url {i + 1} is not a string")
        for i, u in enumerate(urls)
    ]
    return GenerationResponse(items=items, usage=usage, request_id=request_id, meta=meta)
