"""What an API handed back, whatever its dialect: image items and response metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ImageResult:
    """One image slot of a response: a URL to fetch, base64 to decode, raw bytes, or an error."""

    index: int
    url: str | None = None
    b64_json: str | None = None
    data: bytes | None = None  # already-decoded bytes (the offline placeholder, streamed images)
    spooled: Any = None  # a save.ImageWriter the base64 was decoded into as the body arrived
    error_code: str | None = None
    error_message: str | None = None
    revised_prompt: str | None = None
    size: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.error_code is not None or self.error_message is not None


@dataclass
class GenerationResponse:
    items: list[ImageResult]
    created: int | None = None
    usage: dict[str, Any] | None = None
    request_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # background, output_format, quality, size, expired, task_id...
