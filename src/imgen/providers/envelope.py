"""The envelope gateway: `POST /api/v1/image/generation`, answered with
`{"code", "message", "request_id", "data": {"urls", ...}}`. Success is code 0, whatever the
HTTP status says."""

from __future__ import annotations

from typing import Any

from ..errors import AuthError, BadResponse, ImgenError, RateLimited, RequestRejected, ServerError
from ..request import GenerateRequest
from ..results import GenerationResponse, ImageResult
from . import ApiCall

PATH = "/api/v1/image/generation"
# The gateway's document marks these required; the values are what the API itself defaults to.
REQUIRED_DEFAULTS: dict[str, Any] = {"n": 1, "size": "auto", "stream": False, "output_compression": 100}
FINISHED = {"succeeded", "success", "succeed", "completed", "finished", "done"}


def build_request(req: GenerateRequest) -> ApiCall:
    body = {"prompt": req.prompt, "model": req.model, **REQUIRED_DEFAULTS, **req.fields, **req.params}
    return ApiCall("POST", PATH, body, stream=False)


def envelope_error(code: Any, message: str, request_id: str | None) -> ImgenError:
    text = f"the gateway refused the request: {message} (code {code})"
    kw = {"code": str(code), "request_id": request_id}
    if code in (401, 403, "401", "403"):
        return AuthError(text, "check the key: imgen config show -P dianming", **kw)
    if code in (429, "429"):
        return RateLimited(text, "slow down or retry later", **kw)
    if isinstance(code, int) and 500 <= code < 600:
        return ServerError(text, "the gateway is having trouble: retry later", **kw)
    return RequestRejected(text, "change the request and try again", **kw)


def parse(payload: Any) -> GenerationResponse:
    if not isinstance(payload, dict) or "code" not in payload:
        raise BadResponse("the gateway answered without its {code, data} envelope", "check the base URL and --profile")
    request_id = payload.get("request_id") if isinstance(payload.get("request_id"), str) else None
    code = payload.get("code")
    if code != 0:
        raise envelope_error(code, str(payload.get("message") or "no message"), request_id)
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
