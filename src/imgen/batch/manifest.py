"""The batch manifest: `imgen-manifest.jsonl` in the output directory, one JSON line per finished
job, and the `IMAGE.json` sidecars made from the same records.

Appended, never rewritten. Each record is one `os.write` of one complete line on an O_APPEND
descriptor, under a thread lock and an flock (two shards may share a directory), then fsync'd.
A crash can at worst leave a torn last line: the reader ignores it, and the next append starts
on a fresh line so the torn bytes never swallow a good record.

A record says which files a job made and their sha256; a rerun trusts it only while every file
is still there with that hash, inside the output directory (a record is data: one naming a file
elsewhere is ignored). The manifest itself is opened without following a symbolic link, and must
be a regular file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import jsontext
from ..errors import ImgenError, UsageError
from ..files.writer import WriteError, write_atomic
from ..redact import scrubbed
from . import paths

if TYPE_CHECKING:
    from ..generation.outcome import Outcome
    from ..generation.plan import Plan
    from .jobs import Job

MANIFEST_NAME = "imgen-manifest.jsonl"
FORMAT = 1

try:
    import fcntl
except ImportError:  # Windows: the thread lock still orders this process's own appends
    fcntl = None  # type: ignore[assignment]


def read(path: Path, root: Path | None = None) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The latest successful record of each job key, and warnings about unreadable lines. With
    `root`, a record naming a file outside it is ignored with a warning: its job runs again."""
    found, warnings = _records(path, root)
    return {r["key"]: r for r in found if r.get("status") == "ok"}, warnings


def check(path: Path) -> None:
    """Refuse a manifest that is not a plain file before anything is sent: a symbolic link would
    have records appended wherever it points, and a directory or FIFO is found out only after
    the first job is paid for (a FIFO even hangs the reader)."""
    try:
        st = path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise UsageError(f"cannot inspect the batch manifest {path}: {exc.strerror or exc}", "check the output directory") from None
    if stat.S_ISREG(st.st_mode):
        return
    what = _kind(st.st_mode, path)
    raise UsageError(
        f"the batch manifest {path} is {what}, not a regular file; nothing was sent",
        "remove it (a batch creates its manifest), or choose another -o directory",
    )


def _kind(mode: int, path: Path) -> str:
    if stat.S_ISLNK(mode):
        try:
            return f"a symbolic link to {os.readlink(path)}"
        except OSError:
            return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device"


class NotRegular(OSError):
    """Opened without following a link, the path turned out to be no plain file."""


def open_regular(path: Path, flags: int, mode: int = 0o644) -> int:
    """A descriptor on `path`, refused (NotRegular) when it is a symbolic link or not a plain file.

    O_NONBLOCK: opening a FIFO waits for a writer otherwise, so the check would hang before it ran.
    """
    extra = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags | extra, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegular(errno.ELOOP, "it is a symbolic link, which imgen does not follow") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(errno.EINVAL, f"it is {_kind(st.st_mode, path)}, not a regular file")
        if extra & getattr(os, "O_NONBLOCK", 0) and hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: Path) -> bytes:
    fd = open_regular(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def tasks_in_flight(path: Path) -> dict[str, dict[str, Any]]:
    """Job key -> the task it submitted and has not finished ({"id", "dialect", "extra"}): a
    re-run polls it instead of paying for another. A later record of the key ends it, unless
    that record says its task still runs (the wait ran out, or the run was interrupted)."""
    found, _ = _records(path)
    tasks: dict[str, dict[str, Any]] = {}
    for record in found:
        task = record.get("task")
        if isinstance(task, dict) and task.get("in_flight") and isinstance(task.get("id"), str):
            tasks[record["key"]] = task
        else:
            tasks.pop(record["key"], None)
    return tasks


def task_record(job: Job, ref: Any) -> dict[str, Any]:
    """A job's task, written the moment it is submitted, before its first poll."""
    return {
        "format": FORMAT, "key": job.key, "line": job.line, "status": "submitted",
        "submitted": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "task": {"id": ref.id, "dialect": ref.dialect, "extra": dict(ref.extra), "in_flight": True},
    }


def _records(path: Path, root: Path | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Every record in file order, and warnings about unreadable lines.

    A line that does not parse is skipped; only one that is not the last is worth a warning,
    since a torn last line is what an interrupted append leaves.
    """
    try:
        data = read_regular(path)
    except (FileNotFoundError, NotADirectoryError):  # -o under a file: refused later, once, by the writability check
        return [], []
    except OSError as exc:
        return [], [f"cannot read {path} ({exc.strerror}); every job runs again"]
    lines = data.split(b"\n")
    found: list[dict[str, Any]] = []
    warnings: list[str] = []
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = jsontext.loads(raw)
        except (ValueError, UnicodeDecodeError):
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("key"), str):
            if number - 1 != last:
                warnings.append(f"{path} line {number} is not a manifest record; ignored")
            continue
        outside = _outside(record, root) if root is not None else None
        if outside:
            warnings.append(f"{path} line {number}: {outside}; the record is ignored and its job runs again")
            continue
        found.append(record)
    return found, warnings


def _outside(record: dict[str, Any], root: Path) -> str | None:
    """Why a record's image path leads out of `root`, or None when none does."""
    images = record.get("images")
    for image in images if isinstance(images, list) else ():
        raw = image.get("path") if isinstance(image, dict) else None
        if not isinstance(raw, str):
            continue
        try:
            paths.inside(root, raw)
        except paths.Outside as exc:
            return f"image path {json.dumps(raw, ensure_ascii=False)} {exc}"
    return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verified_files(record: dict[str, Any], root: Path) -> list[Path] | None:
    """The record's files, if every one is inside `root` and present with its recorded sha256; else None."""
    images = record.get("images")
    if not isinstance(images, list) or not images:
        return None
    found = []
    for image in images:
        if not isinstance(image, dict) or not isinstance(image.get("path"), str):
            return None
        try:
            path = paths.inside(root, image["path"])
            # The resolved file, opened without following a link: what was checked is what is hashed.
            if _regular_sha256(path.resolve()) != image.get("sha256"):
                return None
        except (paths.Outside, OSError):
            return None
        found.append(path)
    return found


def _regular_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with os.fdopen(open_regular(path, os.O_RDONLY), "rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def relative(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def encode(document: Any, indent: int | None = None) -> bytes:
    """One line of UTF-8 JSON (or an indented document), whatever the prompt holds; never a key a
    server echoed (the response's extras are kept)."""
    document = scrubbed(document)
    separators = (",", ":") if indent is None else (",", ": ")
    try:
        return (json.dumps(document, ensure_ascii=False, indent=indent, separators=separators) + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate in a prompt: escaped, but still valid JSON
        return (json.dumps(document, indent=indent, separators=separators) + "\n").encode("ascii")


class Manifest:
    """Appends records to one manifest file; safe to share between the threads of a batch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1
        self._lock = threading.Lock()

    def append(self, record: dict[str, Any]) -> None:
        data = encode(record)
        with self._lock:
            try:
                fd = self._open()
                with _flocked(fd):
                    size = os.fstat(fd).st_size
                    if size and _byte_at(fd, size - 1) != b"\n":
                        data = b"\n" + data
                    _write_whole(fd, data, size)
                    os.fsync(fd)
            except OSError as exc:
                raise WriteError(
                    f"cannot append to {self.path}: {exc.strerror or exc}",
                    "the images were saved but not recorded; free space and run again (they are regenerated)",
                ) from exc

    def open(self) -> None:
        """Open (or create) the manifest now, before any job is sent: a manifest that cannot take
        records must stop the batch while nothing is paid for. Every append then goes to this one
        descriptor, so the path turning into a symbolic link later changes nothing."""
        with self._lock:
            try:
                self._open()
            except NotRegular as exc:
                raise UsageError(
                    f"the batch manifest {self.path}: {exc.strerror}; nothing was sent",
                    "remove it (a batch creates its manifest), or choose another -o directory",
                ) from None
            except OSError as exc:
                raise WriteError(f"cannot open {self.path}: {exc.strerror or exc}; nothing was sent",
                                 "check the output directory's permissions and free space") from exc

    def _open(self) -> int:
        if self._fd < 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = open_regular(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
        return self._fd

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def _write_whole(fd: int, data: bytes, size: int) -> None:
    """One write of the whole line, or none of it: a short write (a full disk, a file size limit)
    is cut back off, so a failed append leaves no torn line in the middle of the manifest."""
    try:
        written = os.write(fd, data)
    except OSError:
        _cut(fd, size)
        raise
    if written != len(data):
        _cut(fd, size)
        raise OSError(errno.ENOSPC, "short write (the disk is full, or a file size limit was reached)")


def _cut(fd: int, size: int) -> None:
    try:
        os.ftruncate(fd, size)
    except OSError:
        pass  # the reader skips a torn line; the error being reported matters more


def _byte_at(fd: int, offset: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, 1, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # O_APPEND still sends every write to the end
    return os.read(fd, 1)


@contextlib.contextmanager
def _flocked(fd: int) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def write_json_atomic(path: Path, document: Any) -> None:
    write_atomic(path, encode(document, indent=2))


# --------------------------------------------------------------------------- records


def shown_request(body: dict[str, Any]) -> dict[str, Any]:
    """The request as recorded: a reference image sent inline is named by its hash, not copied."""

    def short(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("data:") and len(value) > 200:
            digest = hashlib.sha256(value.encode()).hexdigest()[:16]
            return f"{value.split(',', 1)[0]},... ({len(value)} chars, sha256 {digest})"
        if isinstance(value, list):
            return [short(v) for v in value]
        return value

    return {k: short(v) for k, v in body.items() if v is not None}


def url_expiry(plan: Plan, response: Any) -> str | None:
    """When a result URL stops working: the gateway's own word, else the provider's documented lifetime."""
    if response.meta.get("expired"):
        return str(response.meta["expired"])
    model = plan.request.model
    if plan.dialect == "openai" and model.startswith("dall-e-"):
        return "60 min"
    if plan.dialect == "openai" and model.startswith("doubao-seedream-"):
        return "24 h"
    return None


def build_record(job: Job, outcome: Outcome | None, error: ImgenError | None, root: Path, elapsed: float,
                 task: Any = None) -> dict[str, Any]:
    """A finished job as one manifest line: its files and their provenance, or its error; and
    its `task` (dialects.TaskRef), still in flight when the error says it still runs."""
    request = job.plan.request
    record: dict[str, Any] = {
        "format": FORMAT,
        "key": job.key,
        "line": job.line,
        "status": "failed" if error else "ok",
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "elapsed": round(elapsed, 3),
        "prompt": request.prompt,
        "model": request.model,
        "dialect": job.plan.dialect,
        "base_url": job.plan.base_url,
        "request": shown_request({**request.fields, **request.params}),
        "images": [],
    }
    if outcome is not None:
        resp = outcome.response
        from_url = False
        for s in outcome.saved:
            entry: dict[str, Any] = {"index": s.item.index + 1, "path": relative(s.image.path, root), "sha256": s.image.sha256, "bytes": s.image.bytes, "format": s.image.format}
            for key in ("revised_prompt", "size"):
                if getattr(s.item, key):
                    entry[key] = getattr(s.item, key)
            from_url = from_url or bool(s.item.url and not s.item.b64_json and s.item.data is None)
            record["images"].append(entry)
        for key, value in (("created", resp.created), ("request_id", resp.request_id), ("usage", resp.usage)):
            if value is not None:
                record[key] = value
        from ..generation.plan import cost_of

        price = cost_of(job.plan, resp.usage)
        if price["usd"] is not None:
            record["cost_usd"] = price["usd"]
            record["cost_note"] = price["note"]
        expiry = url_expiry(job.plan, resp) if from_url else None
        if expiry:
            record["url_expires"] = expiry
        extras = {k: v for k, v in resp.meta.items() if k not in ("expired", "model")}
        if extras:
            record["response"] = extras
    if error is not None:
        record["error"] = error.to_dict()
    if task is not None:
        still_running = error is not None and error.code in STILL_RUNNING
        record["task"] = {"id": task.id, "dialect": task.dialect, "extra": dict(task.extra), "in_flight": still_running}
    return record


# Errors after which a job's task still runs at the provider: a re-run waits for it.
STILL_RUNNING = frozenset({"task_timeout", "interrupted"})


SIDECAR_KEYS = ("key", "prompt", "model", "request", "created", "request_id", "usage", "cost_usd", "cost_note", "url_expires", "response")


def write_sidecars(record: dict[str, Any], root: Path) -> None:
    """`<image>.json` beside each image. usage and cost are the whole request's, shared by its images."""
    for image in record.get("images", []):
        try:
            path = paths.inside(root, image["path"])
        except paths.Outside:
            continue  # verified_files refused this record already; a sidecar is never written out of root
        sidecar = path.with_name(path.name + ".json")
        document = {"image": path.name, **{k: record[k] for k in SIDECAR_KEYS if k in record}}
        document.update({k: v for k, v in image.items() if k != "path"})
        try:
            existing = jsontext.loads(read_regular(sidecar).decode("utf-8"))
        except (OSError, ValueError):
            existing = None
        if existing != document:
            try:
                write_json_atomic(sidecar, document)
            except OSError as exc:
                raise WriteError(f"cannot write {sidecar}: {exc.strerror or exc}", "check the output directory's permissions and free space") from exc
