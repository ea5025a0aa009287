"""What the user sees. stdout carries data only (paths, URLs or one JSON document); progress,
warnings and errors go to stderr. Rich is only imported when a progress display is shown."""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any

from .errors import ExitCode, ImgenError
from .redact import scrub, scrubbed
from .units import human_size


def progress_allowed(stream: IO[str] | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """A live display only on a real terminal: never under CI, TERM=dumb, or because of FORCE_COLOR."""
    stream = stream or sys.stderr
    environ = os.environ if environ is None else environ
    if environ.get("CI") or environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def color_allowed(stream: IO[str], environ: Mapping[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    if "NO_COLOR" in environ or environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Messages:
    """stderr messages, filtered by -q / -v."""

    def __init__(self, quiet: bool = False, verbose: bool = False, debug: bool = False, stream: IO[str] | None = None) -> None:
        self.quiet = quiet
        self.verbose = verbose or debug
        self.debug_mode = debug
        self.stream = stream or sys.stderr
        self.color = color_allowed(self.stream)

    def _paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def _write(self, text: str) -> None:
        self.stream.write(scrub(text) + "\n")
        self.stream.flush()

    def info(self, text: str) -> None:
        if not self.quiet:
            self._write(text)

    def detail(self, text: str) -> None:
        if self.verbose and not self.quiet:
            self._write(text)

    def warn(self, text: str) -> None:
        if not self.quiet:
            self._write(f"imgen: {self._paint('warning', '33')}: {text}")

    def error(self, err: ImgenError | str, hint: str | None = None) -> None:
        message = err.message if isinstance(err, ImgenError) else err
        hint = err.hint if isinstance(err, ImgenError) else hint
        self._write(f"imgen: {self._paint('error', '31;1')}: {message}")
        if isinstance(err, ImgenError) and err.request_id:
            self._write(f"  request id: {err.request_id}")
        if hint:
            self._write(f"  hint: {hint}")

    def traceback(self) -> None:
        if self.debug_mode:
            self.stream.write(traceback.format_exc())


class NoProgress:
    def waiting(self, text: str):  # noqa: ANN201 - a context manager
        return _nullcontext()

    def paused(self):  # noqa: ANN201 - a context manager
        return _nullcontext()

    def status(self, text: str) -> None:
        pass  # a pipe or a log gets no running commentary

    def task(self, description: str, total: int | None = None) -> Any:
        return _NullTask()

    def close(self) -> None:
        pass


class _NullTask:
    def update(self, completed: int, total: int | None = None) -> None:
        pass

    def done(self) -> None:
        pass


@contextmanager
def _nullcontext() -> Iterator[None]:
    yield


class RichProgress:
    """A spinner while the API works, then one bar per download; all on stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, TextColumn
        from rich.text import Text

        class Amount(ProgressColumn):
            """Bytes and speed in binary units, as every other size imgen prints; while nothing has
            arrived (the API still generating), the time it has taken instead of a stalled 0/?."""

            def render(self, task):  # noqa: ANN001, ANN202
                if not task.completed:
                    return Text(f"{task.elapsed or 0:.0f}s", style="progress.elapsed")
                done = human_size(int(task.completed))
                total = f"/{human_size(int(task.total))}" if task.total else ""
                speed = f" {human_size(int(task.speed))}/s" if task.speed else ""
                return Text(f"{done}{total}{speed}", style="progress.download")

        self.console = Console(stderr=True)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            Amount(),  # beside the description: "generating with gpt-image-1… 12s"
            BarColumn(),
            console=self.console,
            transient=True,
        )
        self._waiting: list[tuple[Any, str]] = []
        self.progress.start()

    @contextmanager
    def waiting(self, text: str) -> Iterator[None]:
        task = self.progress.add_task(f"{text}…", total=None)
        self._waiting.append((task, text))
        try:
            yield
        finally:
            self._waiting.remove((task, text))
            self.progress.remove_task(task)

    def status(self, text: str) -> None:
        """What the API says it is doing (a task's state), beside the spinner that waits for it."""
        if self._waiting:
            task, first = self._waiting[-1]
            self.progress.update(task, description=f"{first}… {text}")

    def task(self, description: str, total: int | None = None) -> Any:
        progress = self.progress
        task_id = progress.add_task(description, total=total)

        class _Task:
            def update(self, completed: int, total: int | None = None) -> None:
                progress.update(task_id, completed=completed, total=total)

            def done(self) -> None:
                progress.remove_task(task_id)

        return _Task()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The display off the screen (it is transient) while something else draws there, an image."""
        self.progress.stop()
        try:
            yield
        finally:
            self.progress.start()

    def close(self) -> None:
        self.progress.stop()


def make_progress(enabled: bool) -> NoProgress | RichProgress:
    return RichProgress() if enabled and progress_allowed() else NoProgress()


def emit_json(document: Any, stream: IO[str] | None = None) -> None:
    stream = stream or sys.stdout
    stream.write(json.dumps(scrubbed(document), ensure_ascii=False, indent=2) + "\n")
    stream.flush()


def error_document(error: ImgenError) -> dict[str, Any]:
    """What `--json` prints on stdout when a command fails, whatever the failure:

        {
          "ok": false,
          "error": {
            "type": "auth",              # the kind of failure: the exit code's name, snake_case (usage,
                                         # config, auth, rejected, rate_limit, network, server,
                                         # bad_response, interrupted, internal)
            "code": "invalid_api_key",   # the API's own error code when it sent one, else the type
            "message": "...",            # what happened (the line after `imgen: error:` on stderr)
            "hint": "...",               # what to do next, or null
            "exit_code": 4,              # the process's exit status
            "status": 401,               # the HTTP status, or null when no answer came
            "request_id": "req_..."      # the API's request id, or null
          }
        }

    The same error is also written to stderr as text. A run that saved some images and lost
    others is not a failure of this kind: its own --json document lists both (exit code 10).
    """
    kind = _error_type(error)
    return {
        "ok": False,
        "error": {
            "type": kind,
            "code": error.code or kind,
            "message": error.message,
            "hint": error.hint,
            "exit_code": int(error.exit_code),
            "status": error.status,
            "request_id": error.request_id,
        },
    }


def _error_type(error: ImgenError) -> str:
    # Named after the exit code, not the class: a subclass (DownloadError) is still a bad_response.
    try:
        return ExitCode(error.exit_code).name.lower()
    except ValueError:
        return "internal"


def emit_error(error: ImgenError, *, one_line: bool = False, stream: IO[str] | None = None) -> None:
    """The error document on stdout; `one_line` where stdout is JSON Lines (a batch, --ndjson)."""
    stream = stream or sys.stdout
    document = error_document(error)
    try:
        if one_line:
            stream.write(json.dumps(scrubbed(document), ensure_ascii=False) + "\n")
            stream.flush()
        else:
            emit_json(document, stream)
    except (BrokenPipeError, ValueError):
        pass  # nobody reads stdout any more (or it is closed): stderr already has the error


def emit_lines(lines: list[str], stream: IO[str] | None = None) -> None:
    stream = stream or sys.stdout
    for line in lines:
        stream.write(line + "\n")
    stream.flush()
