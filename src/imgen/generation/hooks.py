"""What a caller lends a generation: callbacks into its user interface (the pipeline never
prints) and, for a batch, connections shared between generations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Hooks:
    retry: Callable[[str], None] = lambda text: None
    note: Callable[[str], None] = lambda text: None  # what -v says: where an image's provenance went, and why
    warn: Callable[[str], None] = lambda text: None  # what is always said: e.g. surplus images the API sent and imgen ignored
    waiting: Callable[[str], Any] | None = None  # a context manager shown while the API works
    download_task: Callable[[str, int | None], Any] | None = None
    upload_task: Callable[[str, int | None], Any] | None = None  # an edit's files going up: .update(sent, total), .done()
    stream_event: Callable[[Any], None] | None = None  # each partial/completed image of a stream (stream.Update)
    stream_pixels: bool = False  # each partial's Update carries its image bytes (a preview draws them)
    task_progress: Callable[[str], None] | None = None  # a task's state at each poll: "IN_PROGRESS 45%"
    task_submitted: Callable[[Any], None] | None = None  # a task was created (dialects.TaskRef): a batch records it


@dataclass
class Connections:
    """What the generations of a batch share: open clients (pooled connections, left open for
    the next job) and one RetryPolicy, so a 429 pauses every job, not only the one that got it."""

    api: Any = None  # transport.http.api_client(...) for the plan's base URL and key
    downloads: Any = None  # transport.http.download_client(...)
    policy: Any = None  # transport.http.RetryPolicy
