"""Bria text-to-image on CometAPI, `POST /bria/text-to-image`: synchronous, a list of results
each holding temporary URLs."""

from __future__ import annotations

from typing import Any

from ..errors import BadResponse, RequestRejected
from ..request import GenerateRequest
from ..results import GenerationResponse, ImageResult
from . import ApiCall

NAME = "bria"
LIFECYCLE = "sync"
PATH = "/bria/text-to-image"
COUNTS_RESULTS = True  # moderation can drop images silently: fewer than -n is reported
# Every urls[] of every result is read, as documented, without a word on how many one result holds;
# past a few, it is the server deciding how many files land on disk.
URLS_PER_RESULT = 4
_FIELDS = {"n": "num_results", "aspect_ratio": "aspect_ratio", "seed": "seed", "negative_prompt": "negative_prompt"}


def most_images(req: GenerateRequest) -> int:
    return req.most_images() * URLS_PER_RESULT


def build(req: GenerateRequest) -> ApiCall:
    body: dict[str, Any] = {"prompt": req.prompt}
    body.update({api: req.fields[name] for name, api in _FIELDS.items() if req.fields.get(name) is not None})
    body.update(req.params)
    return ApiCall("POST", PATH, body)


def parse(payload: Any) -> GenerationResponse:
    result = payload.get("result") if isinstance(payload, dict) else None
    if not isinstance(result, list):
        raise BadResponse("the API answer has no 'result' list", "check the base URL points at CometAPI's Bria endpoint")
    items: list[ImageResult] = []
    for number, entry in enumerate(result):
        urls = entry.get("urls") if isinstance(entry, dict) else None
        good = [u for u in urls if isinstance(u, str) and u] if isinstance(urls, list) else []
        if not good:
            items.append(ImageResult(len(items), error_code="no_image", error_message=f"result {number + 1} has no urls"))
            continue
        extra = {k: entry[k] for k in ("seed", "uuid") if k in entry}
        start = len(items)
        items += [ImageResult(start + i, url=url, extra=extra) for i, url in enumerate(good)]
    if not items:
        raise RequestRejected(
            "the API returned no images (content moderation may have removed them)", "change the prompt", code="no_image"
        )
    return GenerationResponse(items=items)
