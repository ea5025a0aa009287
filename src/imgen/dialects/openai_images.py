"""The OpenAI-compatible `POST /v1/images/generations` (CometAPI, OpenAI, Seedream on CometAPI)."""

from __future__ import annotations

from typing import Any

from ..errors import BadResponse
from ..request import GenerateRequest
from ..results import GenerationResponse, ImageResult
from . import ApiCall

NAME = "openai"
LIFECYCLE = "sync"
PATH = "/v1/images/generations"
META_KEYS = ("background", "output_format", "quality", "size", "model")


def build(req: GenerateRequest) -> ApiCall:
    """The body is the request's fields as given: nothing the API would default is added.
    `"stream": true` asks for an event stream (generation/stream.py reads it)."""
    return ApiCall("POST", PATH, req.body(), stream=req.stream)


def parse(payload: Any) -> GenerationResponse:
    if not isinstance(payload, dict):
        raise BadResponse("the API answered with JSON that is not an object", "check the base URL points at an image API")
    data = payload.get("data")
    if data is None:
        raise BadResponse("the API answer has no 'data' list of images", "check the base URL points at an image API")
    if not isinstance(data, list):
        raise BadResponse(f"the API answer's 'data' is a {type(data).__name__}, not a list", "check the base URL points at an image API")
    items = [parse_item(i, item) for i, item in enumerate(data)]
    if not items:
        raise BadResponse("the API answered with no images", "retry, or change the prompt")
    usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else None
    created = payload.get("created") if isinstance(payload.get("created"), int) else None
    meta = {k: payload[k] for k in META_KEYS if k in payload}
    return GenerationResponse(items=items, created=created, usage=usage, meta=meta)


def parse_item(index: int, item: Any) -> ImageResult:
    if not isinstance(item, dict):
        return ImageResult(index, error_code="bad_item", error_message=f"image {index + 1} is not a JSON object")
    error = item.get("error")
    if isinstance(error, dict):
        return ImageResult(
            index,
            error_code=str(error.get("code") or "error"),
            error_message=str(error.get("message") or "the API reported an error for this image"),
        )
    url = item.get("url") if isinstance(item.get("url"), str) and item.get("url") else None
    b64 = item.get("b64_json") if isinstance(item.get("b64_json"), str) and item.get("b64_json") else None
    if url is None and b64 is None:
        return ImageResult(index, error_code="no_image", error_message=f"image {index + 1} has neither a url nor b64_json")
    return ImageResult(
        index,
        url=url,
        b64_json=b64,
        revised_prompt=item.get("revised_prompt") if isinstance(item.get("revised_prompt"), str) else None,
        size=item.get("size") if isinstance(item.get("size"), str) else None,
    )
