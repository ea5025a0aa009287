"""Getting image bytes onto disk: streamed, verified, atomic, never over an existing file.

Bytes go to a hidden temporary file in the target directory while they are hashed and
counted; only once they are known to be a complete image of a supported format is the file
linked under its final name. Any failure, Ctrl-C included, removes the temporary file.
"""

from __future__ import annotations

import binascii
import errno
import hashlib
import os
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from . import imagetype
from .errors import BadResponse, DownloadError, ImgenError

B64_CHUNK = 4 * 1024 * 1024  # characters decoded at a time: a multiple of 4
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


class WriteError(ImgenError):
    """The output could not be written (permissions, full disk)."""

    exit_code = BadResponse.exit_code


@dataclass
class SavedImage:
    path: Path | None  # None when the bytes went to stdout
    bytes: int
    sha256: str
    format: str


def _complete(fmt: str, head: bytes, tail: bytes, total: int) -> bool:
    """Whether the file ends where its format says it ends: catches downloads cut short."""
    if fmt == "png":
        return tail.endswith(b"IEND\xaeB`\x82")
    if fmt == "jpeg":
        return tail.rstrip(b"\x00").endswith(b"\xff\xd9")
    if fmt == "webp":
        return len(head) >= 8 and int.from_bytes(head[4:8], "little") + 8 <= total
    if fmt == "gif":
        return tail.endswith(b";")
    return True


def _write_error(exc: OSError, directory: Path) -> WriteError:
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        return WriteError(f"no space left on the device holding {directory}", "free some space or choose another -o directory")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return WriteError(f"cannot write to {directory}: {exc.strerror}", "choose a writable directory with -o")
    return WriteError(f"cannot write to {directory}: {exc.strerror or exc}", "check the output directory")


class ImageWriter:
    """A temporary file that becomes a verified image under a unique final name, or nothing."""

    def __init__(self, directory: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, source: str = "the download") -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.source = source
        self.size = 0
        self.head = b""
        self.tail = b""
        self._hash = hashlib.sha256()
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self.tmp = directory / f".imgen-{secrets.token_hex(6)}.part"
            self._fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as exc:
            raise _write_error(exc, directory) from exc

    def write(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise DownloadError(
                f"{self.source} is larger than the {self.max_bytes // (1024 * 1024)} MiB limit",
                "raise the limit with --max-download if the image is really that large",
            )
        if len(self.head) < imagetype.HEAD_BYTES:
            self.head += chunk[: imagetype.HEAD_BYTES - len(self.head)]
        self.tail = (self.tail + chunk[-16:])[-16:]
        self._hash.update(chunk)
        try:
            view = memoryview(chunk)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            raise _write_error(exc, self.directory) from exc

    def verify(self, expected_length: int | None = None) -> str:
        if expected_length is not None and self.size != expected_length:
            raise DownloadError(
                f"{self.source} was cut short: got {self.size} of {expected_length} bytes",
                "retry; the link may have expired",
            )
        fmt = imagetype.sniff(self.head)
        if fmt not in imagetype.SAVE_FORMATS:
            preview = self.head[:40].decode("utf-8", "replace").strip()
            raise BadResponse(
                f"{self.source} is not an image (starts with {preview!r})" if self.size else f"{self.source} is empty",
                "the server sent an error page instead of an image; retry later",
            )
        if not _complete(fmt, self.head, self.tail, self.size):
            raise DownloadError(f"{self.source} was cut short: the {fmt} data is incomplete", "retry")
        return fmt

    def commit(self, name_for: Callable[[str], str], *, overwrite: bool = False, expected_length: int | None = None) -> SavedImage:
        """Verify, then link under name_for(ext): never over an existing file unless overwrite."""
        fmt = self.verify(expected_length)
        try:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            final = self._link(name_for(imagetype.EXTENSIONS[fmt]), overwrite)
        except OSError as exc:
            self.abort()
            raise _write_error(exc, self.directory) from exc
        except BaseException:
            self.abort()
            raise
        return SavedImage(final, self.size, self._hash.hexdigest(), fmt)

    def _link(self, name: str, overwrite: bool) -> Path:
        from .names import unique_path

        if overwrite:
            final = self.directory / name
            os.replace(self.tmp, final)
            return final
        taken: set[str] = set()
        while True:
            final = unique_path(self.directory, name, taken=taken)
            try:
                os.link(self.tmp, final)  # fails if the name appeared meanwhile: no race, no overwrite
            except FileExistsError:
                taken.add(final.name)
                continue
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                    raise
                if final.exists():  # file systems without hard links: best effort
                    taken.add(final.name)
                    continue
                os.replace(self.tmp, final)
                return final
            os.unlink(self.tmp)
            return final

    def abort(self) -> None:
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = -1
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass

    def __enter__(self) -> ImageWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def iter_b64(text: str, chunk: int = B64_CHUNK) -> Iterable[bytes]:
    """Decode base64 a slice at a time, so a 32 MiB image never needs a second full copy."""
    text = text.strip()
    if text.startswith("data:") and "," in text[:100]:
        text = text.split(",", 1)[1]
    try:
        for start in range(0, len(text), chunk):
            yield binascii.a2b_base64(text[start : start + chunk], strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise BadResponse(f"the API sent invalid base64 image data ({exc})", "retry; if it persists, try response_format url") from None


def write_all(writer: ImageWriter, chunks: Iterable[bytes]) -> None:
    for piece in chunks:
        writer.write(piece)
