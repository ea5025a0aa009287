"""Work a large file's writer hands off so that receiving never waits for it: the SHA-256 of what is
on disk, computed by a thread reading the file behind the writer (from the page cache, so it costs
no disk reads), and early writeback, so the final fsync has little left to do.

On a 2-core machine hashing 512 MiB takes about 350 ms and its fsync 300-600 ms; done one after the
other on the receiving thread they cost more than receiving itself.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

BLOCK = 1024 * 1024  # per read: large enough that the hash releases the GIL for nearly all of it
NUDGE = 4 * 1024 * 1024  # the writer wakes the hasher once this much more has been written


class TrailingDigest:
    """hash.update(every byte of fd from `start` to the end the writer reports), on its own thread."""

    def __init__(self, fd: int, digest: Any, start: int) -> None:
        self._fd = fd
        self._digest = digest
        self._done = start  # hashed up to here
        self._written = start  # the writer's progress as last reported
        self._told = start
        self._final = False
        self._cancelled = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="imgen-hash", daemon=True)
        self._thread.start()

    def advance(self, written: int) -> None:
        """The writer's progress; wakes the hasher only every NUDGE bytes (a lock per chunk is cheap, but not free)."""
        self._written = written
        if written - self._told >= NUDGE:
            self._told = written
            with self._cond:
                self._cond.notify()

    def finish(self, written: int) -> Any:
        """The digest once the file's first `written` bytes are hashed."""
        with self._cond:
            self._written, self._final = written, True
            self._cond.notify()
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._digest

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        view = memoryview(bytearray(BLOCK))  # one buffer for the whole file: memory stays flat
        try:
            while True:
                with self._cond:
                    while not self._cancelled and self._done >= self._written and not self._final:
                        self._cond.wait()
                    if self._cancelled or (self._final and self._done >= self._written):
                        return
                    end = self._written
                while self._done < end:
                    n = _read_at(self._fd, view[: min(BLOCK, end - self._done)], self._done)
                    if not n:
                        raise OSError("the file shrank while it was hashed")
                    self._digest.update(view[:n])
                    self._done += n
                    if self._cancelled:
                        return
        except BaseException as exc:  # handed to finish(): the writer reports it
            self._error = exc


def _read_at(fd: int, view: memoryview, offset: int) -> int:
    if hasattr(os, "preadv"):
        return os.preadv(fd, [view], offset)
    block = os.pread(fd, len(view), offset)  # Windows: a copy more
    view[: len(block)] = block
    return len(block)


WRITEBACK_EVERY = 16 * 1024 * 1024
_SYNC_FILE_RANGE_WRITE = 2


def _sync_file_range() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    call.restype = ctypes.c_int
    return call


_starter: Any = False  # not looked up yet


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing this range to disk now, without waiting for it (Linux's
    sync_file_range; elsewhere nothing: the fsync at the end does it all)."""
    global _starter
    if _starter is False:
        _starter = _sync_file_range()
    if _starter is not None:
        _starter(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # a failure only leaves more for fsync
