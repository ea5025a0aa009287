"""Gemini `POST /v1beta/models/{model}:generateContent`: one image per call, inline base64.

The answer holds the model's thoughts (draft images among them) before the final parts; only
the last image that is not a thought is the result. Keys come camelCase or snake_case.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from ..errors import BadResponse, RequestRejected
from ..request import GenerateRequest
from ..results import GenerationResponse, ImageResult
from . import ApiCall

NAME = "gemini"
LIFECYCLE = "sync"
B64_KEY = b'"data"'  # where inline images sit: the body reader decodes these as they arrive
INLINE_REFERENCES = True  # reference URLs are fetched and sent inline: the API takes no URL

# Finish reasons that mean the image was withheld, not that the model chose to write text.
BLOCKED = frozenset({
    "SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT", "BLOCKLIST", "SPII",
    "RECITATION", "IMAGE_RECITATION", "IMAGE_OTHER", "NO_IMAGE",
})
_DATA_URI = re.compile(r"data:(image/[\w.+-]+);base64,([A-Za-z0-9+/=\s]+)")
_MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*(data:image/[^)\s]+|https?://[^)\s]+)\s*\)")


def build(req: GenerateRequest) -> ApiCall:
    parts: list[dict[str, Any]] = [{"text": req.prompt}]
    parts += [_inline(ref) for ref in req.fields.get("image") or ()]
    image_config = {
        key: req.fields[name] for name, key in (("aspect_ratio", "aspectRatio"), ("size", "imageSize")) if req.fields.get(name) is not None
    }
    config: dict[str, Any] = {"responseModalities": ["TEXT", "IMAGE"]}
    if image_config:
        config["imageConfig"] = image_config
    body = merge({"contents": [{"role": "user", "parts": parts}], "generationConfig": config}, req.params)
    return ApiCall("POST", f"/v1beta/models/{quote(req.model, safe='')}:generateContent", body)


def merge(body: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """--param into the body: objects merge key by key (generationConfig={"temperature":1}
    keeps the image settings), anything else replaces."""
    out = dict(body)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


def _inline(ref: str) -> dict[str, Any]:
    match = _DATA_URI.fullmatch(ref)
    if match:
        return {"inlineData": {"mimeType": match[1], "data": match[2]}}
    # Only --dry-run sees this: before sending, the pipeline fetches the URL and inlines it.
    return {"inlineData": {"mimeType": "image/*", "data": f"<{ref}: fetched and inlined when sent>"}}


def _get(obj: Any, camel: str) -> Any:
    if not isinstance(obj, dict):
        return None
    if camel in obj:
        return obj[camel]
    return obj.get(re.sub(r"[A-Z]", lambda m: "_" + m[0].lower(), camel))


def parse(payload: Any) -> GenerationResponse:
    if not isinstance(payload, dict):
        raise BadResponse("the API answered with JSON that is not an object", "check the base URL points at the Gemini API")
    usage = _get(payload, "usageMetadata")
    candidates = _get(payload, "candidates")
    feedback = _get(payload, "promptFeedback")
    block = _get(feedback, "blockReason")
    if block and not candidates:
        raise RequestRejected(
            f"Gemini blocked the prompt (blockReason {block}); nothing was generated",
            "rephrase the prompt; a blocked prompt is not retried", code="prompt_blocked",
        )
    if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], dict):
        raise BadResponse("the API answer has no candidates", "check the base URL points at the Gemini API, and retry")
    candidate = candidates[0]
    finish = _get(candidate, "finishReason")
    parts = _get(_get(candidate, "content"), "parts")
    parts = [p for p in parts if isinstance(p, dict) and not _get(p, "thought")] if isinstance(parts, list) else []
    texts = (_MARKDOWN_IMAGE.sub("", p["text"]).strip() for p in parts if isinstance(p.get("text"), str))
    text = "\n".join(t for t in texts if t)
    item = _last_image(parts)
    if item is None:
        if finish in BLOCKED or (finish and not parts):
            raise RequestRejected(
                f"Gemini withheld the image (finishReason {finish})" + (f": {_short(text)}" if text else ""),
                "change the prompt or the reference images; a withheld image is not retried", code="image_blocked",
            )
        raise RequestRejected(
            "Gemini answered with text and no image" + (f": {_short(text)}" if text else ""),
            "ask for an image plainly (\"draw ...\", \"generate an image of ...\"); the answer is not retried",
            code="no_image",
        )
    meta: dict[str, Any] = {"model": _get(payload, "modelVersion")} if _get(payload, "modelVersion") else {}
    if text:
        meta["text"] = text
    if finish:
        meta["finish_reason"] = finish
    response = GenerationResponse(items=[item], usage=usage if isinstance(usage, dict) else None, meta=meta)
    response_id = _get(payload, "responseId")
    response.request_id = response_id if isinstance(response_id, str) else None
    return response


def _last_image(parts: list[dict[str, Any]]) -> ImageResult | None:
    found: ImageResult | None = None
    for part in parts:
        inline = _get(part, "inlineData")
        data = _get(inline, "data")
        if isinstance(data, str) and data:
            found = ImageResult(0, b64_json=data, extra={"mime_type": _get(inline, "mimeType")})
            continue
        text = part.get("text")
        # Some gateways put the image in the text, as Markdown: a data URI or a hosted link.
        for target in _MARKDOWN_IMAGE.findall(text) if isinstance(text, str) else ():
            uri = _DATA_URI.fullmatch(target)
            if uri:
                found = ImageResult(0, b64_json=re.sub(r"\s", "", uri[2]), extra={"mime_type": uri[1]})
            else:
                found = ImageResult(0, url=target)
    return found


def _short(text: str) -> str:
    return text if len(text) <= 300 else text[:300] + "..."
