"""One batch runner per output directory, so two runs never pay twice for the same jobs.

Each run holds an exclusive flock on a lock file in the directory for as long as it runs: the
kernel drops it when the process ends however it ends (exit, Ctrl-C, SIGTERM, SIGKILL), so a
killed runner never leaves a stale lock and nothing has to be cleaned up. The file stays; it is
never unlinked, since a runner that deleted it could leave the next two locking different files.

Why a file of its own and not the manifest: appends flock the manifest one record at a time, and
shards that share a directory must go on sharing it. Shards split the jobs by key, so shard I/N
and shard J/N (I != J) never run the same job and may run together; each holds the lock of its
own share (`imgen-batch.I-of-N.lock`; no --shard is 1/1, `imgen-batch.lock`). Shares of another
N do overlap: a run refuses to start while a lock of another N is held.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

try:
    import fcntl
except ImportError:  # Windows: no flock; a second runner is not detected there
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "imgen-batch.lock"
_SHARD_LOCK = re.compile(r"imgen-batch\.(\d+)-of-(\d+)\.lock")
_HOST = socket.gethostname()
RETRY_PAUSE = 0.5  # seconds between attempts while waiting for a runner of another shard count


def lock_name(shard: tuple[int, int] | None) -> str:
    index, count = shard or (1, 1)
    return LOCK_NAME if count == 1 else f"imgen-batch.{index}-of-{count}.lock"


def _count_of(name: str) -> int | None:
    if name == LOCK_NAME:
        return 1
    found = _SHARD_LOCK.fullmatch(name)
    return int(found[2]) if found else None


@dataclass
class Held:
    """Another runner's lock: where, and who holds it (as far as its file says)."""

    path: Path
    owner: str


class BatchLock:
    """The run's lock; `release()` (or the end of the process) gives it up."""

    def __init__(self, fd: int | None, path: Path) -> None:
        self.fd = fd
        self.path = path

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the only descriptor drops the flock
            self.fd = None

    def __enter__(self) -> BatchLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire(root: Path, shard: tuple[int, int] | None, *, wait: bool = False,
            on_wait: Callable[[str], None] | None = None) -> BatchLock:
    """The lock of this run's share of `root`, or UsageError naming the runner that holds it
    (with `wait`, block until it is free instead)."""
    path = root / lock_name(shard)
    if fcntl is None:
        return BatchLock(None, path)
    told = False
    while True:
        fd = _open(root, path)
        if fd is None:
            return BatchLock(None, path)
        try:
            held = _take(fd, path) or _other_count(root, path, shard)
            if held is None:
                _stamp(fd, shard)
                return BatchLock(fd, path)
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        if not wait:
            raise _refusal(root, held)
        if on_wait and not told:
            on_wait(f"imgen: batch: waiting for the batch run {held.owner} on {root} to finish")
            told = True
        _wait_for(held.path)


def _open(root: Path, path: Path) -> int | None:
    """The lock file's descriptor; None when the directory cannot take it, since a directory no
    one can write to cannot be paid for twice: the writability check refuses it before any request."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _not_plain(path, "a symbolic link") from None
        if exc.errno == errno.EISDIR:
            raise _not_plain(path, "a directory") from None
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST, errno.ENOENT):
            return None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _not_plain(path, "not a regular file")
    return fd


def _take(fd: int, path: Path) -> Held | None:
    """None once this process holds the lock; else who does."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return Held(path, _owner(path))
    return None


def _other_count(root: Path, mine: Path, shard: tuple[int, int] | None) -> Held | None:
    """A held lock of a share that overlaps this one: another shard count (a plain run is 1/1).

    Two runs that start together may each see the other's lock and both refuse; neither ever
    runs beside an overlapping one, which is what matters."""
    count = (shard or (1, 1))[1]
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return None
    for name in names:
        other = _count_of(name)
        if other is None or other == count or root / name == mine:
            continue
        if _is_held(root / name):
            return Held(root / name, _owner(root / name))
    return None


def _is_held(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _wait_for(path: Path) -> None:
    """Until the holder of `path` lets go (Ctrl-C still stops the wait). This run holds nothing
    meanwhile: two runs each holding a lock while waiting for the other's would wait for ever."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | os.O_NONBLOCK)
    except OSError:
        time.sleep(RETRY_PAUSE)
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    finally:
        os.close(fd)


def _stamp(fd: int, shard: tuple[int, int] | None) -> None:
    """Who holds the lock, for the message a second runner prints; only ever read, never trusted."""
    share = f" shard {shard[0]}/{shard[1]}" if shard else ""
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} host {_HOST}{share}\n".encode(), 0)
    except OSError:
        pass  # a full disk: the lock holds all the same, the message just names no pid


def _owner(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | os.O_NONBLOCK)
        try:
            text = os.read(fd, 200).decode("utf-8", "replace")
        finally:
            os.close(fd)
    except OSError:
        return "(pid unknown)"
    found = re.match(r"pid (\d+) host (\S+)( shard \d+/\d+)?", text)
    if not found:
        return "(pid unknown)"
    pid, host, share = found[1], found[2], (found[3] or "").strip()
    where = "" if host == _HOST else f" on {host}"
    return f"(pid {pid}{where}{', ' + share if share else ''})"


def _refusal(root: Path, held: Held) -> UsageError:
    return UsageError(
        f"another imgen batch run {held.owner} is using the output directory {root}; nothing was sent",
        "wait for it to finish (or stop it) and run again, add --wait-lock to wait, or give this run another -o directory",
    )


def _not_plain(path: Path, what: str) -> UsageError:
    return UsageError(f"the batch lock file {path} is {what}; nothing was sent", "remove it, or choose another -o directory")
