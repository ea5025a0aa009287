"""The task journal: `tasks.jsonl` in the per-user state directory, where a paid task (Midjourney,
Flux) is written down before its first poll, so that another process, later, can finish it.

What it guarantees:

- `add` returns once the record is on disk (written and fsync'd). Concurrent writers lose nothing:
  threads (a lock per path), processes and containers sharing the file (an flock on it), and a
  `compact` that renames a new file over the old one (a writer that locked the old file sees that
  the path now names another file, and reopens it).
- The file is JSON Lines, only appended to between compactions: one `os.write` of one complete line
  per record, `{"v": 1, "op": "add" | "update" | "forget", "id": ...}`. Unknown keys are ignored
  (and kept by `compact`); a line that does not parse is skipped, so a torn last line left by a
  crash hides nothing, and the next append starts on a fresh line.
- Reading is bounded: the file is streamed line by line, never loaded whole, and a line above
  1 MiB is skipped (`add` never writes one: a request too large gives way first).
- The journal is private: its directory is made 0700, the file 0600, and a path that is a
  symbolic link or anything but a regular file is refused (JournalError), never followed.
- Keys never reach it: `add` drops every entry named like a credential (api_key, key,
  authorization, token, secret, password and their spellings: X-Api-Key, apiKey, access_token...)
  from `request` and `extra`, at any depth.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, Any

from .. import jsontext
from ..errors import ExitCode, ImgenError
from ..redact import scrubbed, without_credentials

try:
    import fcntl
except ImportError:  # Windows: the thread lock still orders this process's own writes
    fcntl = None  # type: ignore[assignment]

JOURNAL_NAME = "tasks.jsonl"
STATE_DIR_ENV = "IMGEN_STATE_DIR"
FORMAT = 1
STATES = ("submitted", "done", "failed", "expired")
MAX_LINE = 1024 * 1024
KEEP_FINISHED = dt.timedelta(days=30)
ACQUIRE_TIMEOUT = 30.0  # seconds of finding the file replaced again and again (compactions back to back)

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted at the path must not hang the open
_TEXT = ("id", "dialect", "profile", "base_url", "model", "prompt", "created", "state", "updated", "detail")
_DICTS = ("output", "extra", "request")


class JournalError(ImgenError):
    """The journal cannot be written (or read); the message names its path. A task that cannot be
    journalled can only be fetched by its id, so the caller should say so loudly."""

    exit_code = ExitCode.CONFIG


class AmbiguousId(ValueError):
    """A prefix that starts more than one task id."""

    def __init__(self, prefix: str, candidates: list[str]) -> None:
        self.prefix = prefix
        self.candidates = candidates
        shown = ", ".join(candidates[:10]) + (f", ... ({len(candidates)} in all)" if len(candidates) > 10 else "")
        super().__init__(f"{prefix!r} starts {len(candidates)} task ids: {shown}")


def default_path() -> Path:
    """platformdirs.user_state_dir("imgen") / JOURNAL_NAME; IMGEN_STATE_DIR, when set, replaces the directory."""
    override = os.environ.get(STATE_DIR_ENV, "").strip()
    if override:
        return Path(override).expanduser() / JOURNAL_NAME
    import platformdirs

    return platformdirs.user_state_path("imgen") / JOURNAL_NAME


@dataclass(frozen=True)
class TaskRecord:
    id: str
    dialect: str
    profile: str
    base_url: str
    model: str
    prompt: str
    created: str  # ISO 8601 UTC, seconds
    state: str = "submitted"  # "submitted" (in flight) | "done" | "failed" | "expired"
    output: dict = field(default_factory=dict)  # where to save it: directory, file_name, stdout, template, overwrite
    extra: dict = field(default_factory=dict)  # the dialect's own (TaskRef.extra)
    request: dict = field(default_factory=dict)  # the fields and params sent, never the key
    job_key: str | None = None
    updated: str = ""  # ISO time of the latest record for this id
    detail: str = ""  # the last state's words: a failure's reason, the saved paths joined by "\n"

    def __post_init__(self) -> None:
        # Some providers answer with a number: ids are compared and prefixed as text everywhere.
        object.__setattr__(self, "id", str(self.id))


class Journal:
    """The task journal at `path` (default_path() when None); every method is safe to call from
    any thread or process at the same time."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()

    # --- writing

    def add(self, record: TaskRecord) -> None:
        """Append the submitted task, durably (write + fsync) before returning: the caller polls only
        after this. Entries named like a credential are dropped from request and extra."""
        if not record.id:
            raise ValueError("a task record needs an id")
        if record.state not in STATES:
            raise ValueError(f"task {record.id}: unknown state {record.state!r} (one of {', '.join(STATES)})")
        entry: dict[str, Any] = {"v": FORMAT, "op": "add", **{f.name: getattr(record, f.name) for f in fields(record)}}
        entry["request"] = without_credentials(record.request)
        entry["extra"] = without_credentials(record.extra)
        entry["updated"] = record.updated or _now()
        line = _encode(entry)
        if len(line) > MAX_LINE:
            # A line the reader skips is a lost task: the request (provenance only) gives way first.
            entry["request"] = {"omitted": f"{len(_encode(entry['request']))} bytes, above the journal's line limit"}
            line = _encode(entry)
            if len(line) > MAX_LINE:
                raise ValueError(f"task {record.id} is too large for the task journal ({len(line)} bytes)")
        with self._locked() as fd:
            _append(fd, line)

    def update(self, task_id: str, state: str, detail: str = "") -> None:
        """Append a state change for a known id (unknown or forgotten id: a no-op)."""
        if state not in STATES:
            raise ValueError(f"task {task_id}: unknown state {state!r} (one of {', '.join(STATES)})")
        task_id = str(task_id)
        if task_id not in self._live():  # the common miss costs no lock and creates no file
            return
        with self._locked() as fd:
            if task_id in self._live():  # again under the lock: a racing forget wins or loses whole
                _append(fd, _encode({"v": FORMAT, "op": "update", "id": task_id, "state": state, "detail": detail, "updated": _now()}))

    def forget(self, task_id: str) -> bool:
        """Append a tombstone; True when the id was known (and not already forgotten)."""
        task_id = str(task_id)
        if task_id not in self._live():
            return False
        with self._locked() as fd:
            if task_id not in self._live():
                return False
            _append(fd, _encode({"v": FORMAT, "op": "forget", "id": task_id, "updated": _now()}))
            return True

    def compact(self) -> None:
        """Rewrite the file keeping one folded line per live task, dropping forgotten ones and finished
        ones older than 30 days; under the lock, written to a temp file in the same directory and
        renamed over (atomic): a reader sees the old file or the new one, never a mix."""
        if not os.path.lexists(self.path):
            return
        cutoff = dt.datetime.now(dt.timezone.utc) - KEEP_FINISHED
        with self._locked() as held:
            kept = [raw for raw in self._live().values() if _record(raw).state == "submitted" or not _older(raw, cutoff)]
            data = b"".join(_encode({"v": FORMAT, "op": "add", **raw}) for raw in kept)
            size = os.fstat(held).st_size
            if size == len(data) and _bytes_at(held, 0, size) == data:
                return  # already compact: replacing it would only make appenders reopen
            fd, tmp = tempfile.mkstemp(prefix=".tasks-", suffix=".jsonl.part", dir=self.path.parent)  # 0600
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            _fsync_dir(self.path.parent)

    # --- reading

    def get(self, task_id: str) -> TaskRecord | None:
        """The task's latest view, None if unknown or forgotten. A unique prefix of an id also finds it;
        an ambiguous one raises AmbiguousId listing the candidates."""
        task_id = str(task_id)
        if not task_id:
            return None
        live = self._live()
        if task_id in live:
            return _record(live[task_id])
        matches = sorted(known for known in live if known.startswith(task_id))
        if len(matches) > 1:
            raise AmbiguousId(task_id, matches)
        return _record(live[matches[0]]) if matches else None

    def all(self) -> list[TaskRecord]:
        """Every known, not-forgotten task, newest (by created) first."""
        ordered = [(record.created, order, record) for order, record in enumerate(map(_record, self._live().values()))]
        return [record for _, _, record in sorted(ordered, key=lambda item: item[:2], reverse=True)]

    def in_flight(self, job_key: str | None = None) -> list[TaskRecord]:
        """Tasks whose state is "submitted" (only job_key's, when given), newest first."""
        return [r for r in self.all() if r.state == "submitted" and (job_key is None or r.job_key == job_key)]

    # --- the file

    def _live(self) -> dict[str, dict[str, Any]]:
        """Every live task's folded entry (as stored, unknown keys included), in the order added."""
        live: dict[str, dict[str, Any]] = {}
        for entry in self._entries():
            task_id = entry.get("id")
            if not isinstance(task_id, str) or not task_id:
                continue
            op = entry.get("op")
            if op == "add":
                live.pop(task_id, None)  # added again: as new, so it sorts as the latest
                live[task_id] = {k: v for k, v in entry.items() if k not in ("v", "op")}
            elif op == "update" and task_id in live:
                live[task_id].update({k: entry[k] for k in ("state", "detail", "updated") if isinstance(entry.get(k), str)})
            elif op == "forget":
                live.pop(task_id, None)
        return live

    def _entries(self) -> Iterator[dict[str, Any]]:
        fh = self._open_for_reading()
        if fh is None:
            return
        with fh:
            try:
                for raw in _lines(fh):
                    try:
                        entry = jsontext.loads(raw)
                    except ValueError:  # a torn or foreign line: skipped, it hides nothing else
                        continue
                    if isinstance(entry, dict):
                        yield entry
            except OSError as exc:
                raise self._error("read", exc) from exc

    def _open_for_reading(self) -> IO[bytes] | None:
        try:
            self._refuse_odd(os.lstat(self.path))
            fd = os.open(self.path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # became a link since the lstat
                raise self._refused("is a symbolic link") from None
            raise self._error("read", exc) from exc
        try:
            self._refuse_odd(os.fstat(fd))
        except BaseException:
            os.close(fd)
            raise
        return os.fdopen(fd, "rb")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        """The journal open for appending, locked against every other writer, thread or process."""
        with _thread_lock(self.path):
            try:
                fd = self._acquire()
            except OSError as exc:
                raise self._error("write", exc) from exc
            try:
                yield fd
            except OSError as exc:
                raise self._error("write", exc) from exc
            finally:
                os.close(fd)  # and with it the flock

    def _acquire(self) -> int:
        deadline = time.monotonic() + ACQUIRE_TIMEOUT
        while time.monotonic() < deadline:
            fd = self._open_for_append()
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                # A compact() may have renamed a new file over the one we waited on: what we hold is no
                # longer the journal, and a record appended to it would be lost with it.
                if _same_file(fd, self.path):
                    return fd
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        raise OSError(errno.EAGAIN, "the file keeps being replaced")

    def _open_for_append(self) -> int:
        directory = self.path.parent
        if not directory.is_dir():
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, 0o700)  # mkdir's mode passes through the umask; this states the intent
        flags = os.O_RDWR | os.O_APPEND | _NOFOLLOW | _NONBLOCK
        with contextlib.suppress(FileNotFoundError):
            self._refuse_odd(os.lstat(self.path))
        try:
            fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o600)
            created = True
        except FileExistsError:
            try:
                fd = os.open(self.path, flags)
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # became a link since the lstat
                    raise self._refused("is a symbolic link") from None
                raise
            created = False
        try:
            info = os.fstat(fd)
            self._refuse_odd(info)
            if info.st_mode & 0o077 and hasattr(os, "fchmod"):
                with contextlib.suppress(OSError):  # someone else's file: it stays as it is
                    os.fchmod(fd, 0o600)
        except BaseException:
            os.close(fd)
            raise
        if created:
            _fsync_dir(directory)  # the new name must outlive a crash as the record does
        return fd

    def _refuse_odd(self, info: os.stat_result) -> None:
        if stat.S_ISLNK(info.st_mode):
            raise self._refused("is a symbolic link")
        if not stat.S_ISREG(info.st_mode):
            raise self._refused("is not a regular file")

    def _refused(self, what: str) -> JournalError:
        return JournalError(f"the task journal {self.path} {what}; imgen does not use it",
                            f"remove it, or set {STATE_DIR_ENV} to a directory of its own")

    def _error(self, doing: str, exc: OSError) -> JournalError:
        return JournalError(
            f"cannot {doing} the task journal {self.path}: {exc.strerror or exc}",
            f"it keeps paid tasks until they are fetched: make {self.path.parent} writable, with free space, or set {STATE_DIR_ENV}",
        )


# --- helpers -----------------------------------------------------------------------------------

_path_locks: dict[str, threading.Lock] = {}
_path_locks_guard = threading.Lock()


def _thread_lock(path: Path) -> threading.Lock:
    # One per path, not per Journal: callers make a new Journal for each write.
    with _path_locks_guard:
        return _path_locks.setdefault(os.path.abspath(path), threading.Lock())


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _encode(entry: Any) -> bytes:
    """One line of UTF-8 JSON, whatever the prompt holds; a value JSON lacks is written as text."""
    entry = scrubbed(entry)  # a provider's answer kept in a task's extras may echo the key
    try:
        return (json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escaped, still valid JSON
        return (json.dumps(entry, separators=(",", ":"), default=str) + "\n").encode("ascii")


def _record(raw: dict[str, Any]) -> TaskRecord:
    """A stored entry as a TaskRecord; a value of the wrong type falls back to the field's default."""
    values: dict[str, Any] = {"id": "", "dialect": "", "profile": "", "base_url": "", "model": "", "prompt": "", "created": ""}
    values.update({k: raw[k] for k in _TEXT if isinstance(raw.get(k), str)})
    values.update({k: raw[k] for k in _DICTS if isinstance(raw.get(k), dict)})
    if isinstance(raw.get("job_key"), str):
        values["job_key"] = raw["job_key"]
    return TaskRecord(**values)


def _older(raw: dict[str, Any], cutoff: dt.datetime) -> bool:
    """Whether the entry's latest record is before cutoff; an undatable entry is never old."""
    for key in ("updated", "created"):
        try:
            when = dt.datetime.fromisoformat(raw[key])
        except (KeyError, TypeError, ValueError):
            continue
        return (when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)) < cutoff
    return False


def _lines(fh: IO[bytes]) -> Iterator[bytes]:
    """The file's lines, read one by one; a line above MAX_LINE is skipped whole."""
    while True:
        line = fh.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):  # the rest of it
                line = fh.readline(MAX_LINE)
            continue
        yield line


def _append(fd: int, line: bytes) -> None:
    size = os.fstat(fd).st_size
    if size and _bytes_at(fd, size - 1, 1) != b"\n":
        line = b"\n" + line  # a crash tore the last line: keep it from swallowing this one
    if os.write(fd, line) != len(line):
        raise OSError(errno.ENOSPC, "short write")  # the usual cause; the torn line is skipped on reading
    os.fsync(fd)


def _bytes_at(fd: int, offset: int, count: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, count, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # O_APPEND still sends every write to the end
    return os.read(fd, count)


def _same_file(fd: int, path: Path) -> bool:
    try:
        named = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # Windows cannot open a directory; its rename is durable enough
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
