"""Wire formats: one module per API dialect, each pure (no I/O, no typer, no rich, no httpx).

A dialect turns a checked GenerateRequest into ApiCalls and turns the API's answers into
results; pipeline.py does the sending, the polling, the retries and the saving. Every module
here has the same shape:

    NAME        the name model records and profiles use ("openai", "envelope", ...)
    LIFECYCLE   "sync": one call, one answer | "task": submit, then poll until done
    build(req) -> ApiCall                     the request (for a task: the submit), pure
    read_fault(body) -> Fault                 optional: where this API's error body keeps its
                                              message and code (default faults.read_fault);
                                              faults.classify decides what the error means
  sync:
    parse(payload) -> GenerationResponse      the answer's images (url | b64_json | data)
  task:
    task_ref(payload) -> TaskRef              the submit's answer: the task's id
    poll(ref) -> ApiCall                      how to ask how the task is doing
    progress(payload, ref) -> Pending | Done | TaskFailed
                                              one poll's answer: still running (with progress
                                              when the API gives it), done (its images), or
                                              failed (an ImgenError; never retried)
  offline (the placeholder): OFFLINE = True and answer(call) -> payload stands in for the server.

Optional names a task dialect sets: POLL_INTERVAL and POLL_CAP (seconds: the first wait and the
longest, growing by half each poll), TASK_TIMEOUT (the default wait in all), INLINE_REFERENCES;
a submit turned away before any task exists raises NotAccepted (sent again after a pause).

Optional flags a sync dialect sets: B64_KEY (the JSON key whose string values are base64 images,
decoded as the body arrives; default b'"b64_json"'), INLINE_REFERENCES (reference URLs are
fetched and given to build() as data URIs), COUNTS_RESULTS (fewer images than n is reported).

Raising an ImgenError from parse or progress is how a dialect says the answer is unusable.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import ConfigError, ImgenError, RateLimited
from ..results import GenerationResponse

# name -> module; adding a wire format is one module here and its records in models/capabilities.py.
DIALECTS: dict[str, str | ModuleType] = {
    "openai": "openai_images",
    "gemini": "gemini",
    "bria": "bria",
    "midjourney": "midjourney",
    "flux": "flux",
    "envelope": "envelope",
    "placeholder": "placeholder",
}
# Reached only through a model's edit route (models/capabilities.EditSpec), never named by a
# profile: a profile that speaks openai edits over the same API.
EDIT_DIALECTS: dict[str, str | ModuleType] = {"openai_edits": "openai_edits"}
REQUIRED = {"sync": ("build", "parse"), "task": ("build", "task_ref", "poll", "progress")}


@dataclass(frozen=True)
class FilePart:
    """A file of a multipart body, streamed from disk when the call is sent."""

    name: str  # the form field: "image", "image[]", "mask"
    path: Path
    file_name: str
    content_type: str  # from the file's bytes, never its name
    size: int
    shown: str = ""  # as the user named it ('-' for stdin, whose bytes were spooled to `path`)


@dataclass
class ApiCall:
    """One HTTP request, relative to the profile's base URL (a query string rides in the path).
    With `files` it is multipart/form-data: `body` holds the text fields (as strings)."""

    method: str
    path: str
    body: dict[str, Any] | None = field(default_factory=dict)  # JSON; None for a GET
    stream: bool = False
    files: tuple[FilePart, ...] = ()


@dataclass(frozen=True)
class TaskRef:
    """What is needed to ask about a task again, in this process or a later one."""

    id: str
    dialect: str
    extra: dict[str, Any] = field(default_factory=dict)  # a dialect's own (a polling URL, an action)


@dataclass
class Pending:
    status: str  # the API's own word (IN_PROGRESS, Pending, ...)
    progress: float | None = None  # 0..1 when the API says


@dataclass
class Done:
    response: GenerationResponse


@dataclass
class TaskFailed:
    error: ImgenError


class NotAccepted(RateLimited):
    """A submit the API turned away before creating a task (a full queue): safe to send again."""

    retryable = True


def get(name: str) -> ModuleType:
    module = DIALECTS.get(name) or EDIT_DIALECTS.get(name)
    if module is None:
        raise ConfigError(f"api = {name!r}: unknown API dialect", hint="use one of: " + ", ".join(DIALECTS))
    dialect = module if isinstance(module, ModuleType) else importlib.import_module(f"{__name__}.{module}")
    missing = [fn for fn in REQUIRED[getattr(dialect, "LIFECYCLE", "sync")] if not hasattr(dialect, fn)]
    if missing:  # a dialect module that does not keep the contract above is a bug, found at once
        raise TypeError(f"dialect {name!r} lacks {', '.join(missing)}")
    return dialect
