"""The OpenAI-compatible `POST /v1/images/edits`: multipart/form-data, answered like generations.

Each input is an `image` part (several: repeated `image[]`, as the official SDKs send them), the
mask a `mask` part; each part's Content-Type comes from the file's bytes, because the API trusts
it and refuses `application/octet-stream`. Streams (GPT image models) send `image_edit.*`
events, read by the same stream reader as generations.
"""

from __future__ import annotations

import json
from typing import Any

from ..request import GenerateRequest
from . import ApiCall, FilePart
from .openai_images import parse  # noqa: F401 - the same answer as generations

NAME = "openai_edits"
LIFECYCLE = "sync"
PATH = "/v1/images/edits"


def build(req: GenerateRequest) -> ApiCall:
    fields = {key: form_value(value) for key, value in req.body().items() if value is not None and key != "image"}
    name = "image[]" if len(req.inputs) > 1 else "image"
    files = [_part(name, image) for image in req.inputs]
    if req.mask is not None:
        files.append(_part("mask", req.mask))
    return ApiCall("POST", PATH, fields, stream=req.stream, files=tuple(files))


def form_value(value: Any) -> str:
    """A field as multipart text: JSON spelling for booleans, numbers and objects."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _part(name: str, image: Any) -> FilePart:
    return FilePart(name, image.path, image.file_name, image.content_type, image.size, image.shown)
