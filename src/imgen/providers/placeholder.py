"""The offline `placeholder` model: deterministic PNGs, no key, no network."""

from __future__ import annotations

import time

from .. import placeholder
from ..errors import UsageError
from ..request import GenerateRequest
from ..results import GenerationResponse, ImageResult


def generate(req: GenerateRequest) -> GenerationResponse:
    try:
        images = placeholder.generate(req.prompt, req.fields.get("size"), req.n)
    except ValueError as exc:
        raise UsageError(f"--size: {exc}", "use WxH, each side 1 to 4096, e.g. -s 1024x1024") from None
    return GenerationResponse(
        items=[ImageResult(i, data=data) for i, data in enumerate(images)],
        created=int(time.time()),
        meta={"model": "placeholder"},
    )
