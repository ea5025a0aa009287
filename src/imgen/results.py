"""What came back and what was saved, whatever the dialect: image items, response metadata,
saved files, and the failures beside them. Below every layer that uses them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for the annotation only; errors.py imports nothing of imgen
    from .errors import ImgenError


@dataclass
class ImageResult:
    """One image slot of a response: a URL to fetch, base64 to decode, raw bytes, or an error."""

    index: int
    url: str | None = None
    b64_json: str | None = None
    data: bytes | None = None  # already-decoded bytes (the offline placeholder, streamed images)
    spooled: Any = None  # a files.writer.ImageWriter the base64 was decoded into as the body arrived
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


@dataclass
class SavedImage:
    path: Path | None  # None when the bytes went to stdout
    bytes: int
    sha256: str
    format: str


@dataclass
class Saved:
    item: ImageResult
    image: SavedImage


@dataclass
class Failed:
    item: ImageResult
    error: ImgenError
