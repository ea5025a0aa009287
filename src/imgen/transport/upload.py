"""Files of a multipart request, streamed from disk by httpx's encoder (64 KiB at a time, never
the whole file in memory), counted for the upload progress bar."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, BinaryIO


class _Counted:
    """A file as httpx reads it: read/seek/tell/fileno (fileno gives the Content-Length)."""

    def __init__(self, f: BinaryIO, moved: Callable[[], None]) -> None:
        self._f = f
        self._moved = moved

    def read(self, size: int = -1) -> bytes:
        chunk = self._f.read(size)
        self._moved()
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        # httpx rewinds each file before every attempt: a retry starts the count again.
        position = self._f.seek(offset, whence)
        self._moved()
        return position

    def tell(self) -> int:
        return self._f.tell()

    def fileno(self) -> int:
        return self._f.fileno()


@contextlib.contextmanager
def open_parts(parts: Sequence[Any], on_progress: Callable[[int, int], None] | None = None) -> Iterator[list[tuple[str, tuple]]]:
    """httpx `files=` for `parts` (dialects.FilePart), open for the duration of the request.
    `on_progress(sent, total)` hears of every chunk read."""
    total = sum(p.size for p in parts)
    with contextlib.ExitStack() as stack:
        opened = [stack.enter_context(open(p.path, "rb")) for p in parts]

        def moved() -> None:
            if on_progress is not None:
                on_progress(sum(f.tell() for f in opened), total)

        yield [(p.name, (p.file_name, _Counted(f, moved), p.content_type)) for p, f in zip(parts, opened)]
