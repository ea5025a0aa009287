"""Getting image bytes onto disk: streamed, verified, atomic, never over an existing file.

Bytes go to a hidden temporary file in the target directory while they are hashed and
counted; only once they are known to be a complete image of a supported format is the file
linked under its final name. Any failure, Ctrl-C included, removes the temporary file.
"""

from __future__ import annotations

import binascii
import errno
import functools
import hashlib
import os
import re
import secrets
import shutil
import socket
import stat
import tempfile
import threading
import time
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no locks to tell a live file from a leftover, so no sweep
    fcntl = None  # type: ignore[assignment]

from ..errors import BadResponse, DownloadError, ImgenError, Interrupted, UsageError
from ..results import SavedImage
from ..units import human_size
from . import b64, imagetype, trailing

B64_CHUNK = 4 * 1024 * 1024  # characters decoded at a time: a multiple of 4
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
TRAIL_FROM = 8 * 1024 * 1024  # past this the hash moves off the receiving thread (files/trailing.py)


# Temporary names carry host and pid for whoever finds one, but a file's owner is known by its lock:
# each writer holds an exclusive flock on its temporary file until it is linked or removed. Two
# containers sharing a volume and a host name, or two machines on NFS, cannot tell each other's pids
# apart; a lock they can (it dies with the process, SIGKILL included). A file is made as `.new`,
# locked, then renamed `.part` (the rename keeps the inode and its lock): a `.part` is never there
# unlocked while its writer lives.
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
_TEMP = re.compile(r"\.imgen-([0-9a-f]{6})-(\d+)-[0-9a-f]+\.(part|new)")
# An unlocked leftover goes at once when its name says it is this host's and its pid is dead here;
# any other only once it is this old: a file system whose locks do not reach another machine must
# never cost a live run there its image.
STALE_AFTER = 15 * 60
_swept: set[Path] = set()
_sweep_lock = threading.Lock()


def _temp_name(directory: Path, suffix: str) -> Path:
    return directory / f".imgen-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}{suffix}"


def _lock(fd: int, wait: bool = True) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError:  # held elsewhere; or ENOLCK, a file system that cannot lock: treat it as held
        return False
    return True


def sweep_stale(directory: Path, now: float | None = None) -> None:
    """Remove imgen temporary files nobody holds: this host's of dead processes, any once older than
    STALE_AFTER; once per directory."""
    if fcntl is None:
        return
    key = directory.absolute()
    with _sweep_lock:
        if key in _swept:
            return
        _swept.add(key)
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    now = time.time() if now is None else now
    for entry in entries:
        named = _TEMP.fullmatch(entry.name)
        if named:
            host, pid, kind = named[1], int(named[2]), named[3]
            _remove_if_abandoned(entry.path, now, dead_here=kind == "part" and host == _HOST and pid != os.getpid() and not _alive(pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_if_abandoned(path: str, now: float, dead_here: bool) -> None:
    try:
        before = os.lstat(path)
        if not stat.S_ISREG(before.st_mode) or (not dead_here and now - before.st_mtime < STALE_AFTER):
            return
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return
    try:
        held = os.fstat(fd)
        if (held.st_dev, held.st_ino) != (before.st_dev, before.st_ino) or not _lock(fd, wait=False):
            return
        after = os.lstat(path)  # still the file we locked, not one put under its name since
        if (after.st_dev, after.st_ino) == (held.st_dev, held.st_ino):
            os.unlink(path)
    except OSError:
        pass
    finally:
        os.close(fd)


class WriteError(ImgenError):
    """The output could not be written (permissions, full disk)."""

    exit_code = BadResponse.exit_code


class IncompleteImage(DownloadError):
    """The bytes stop before the image does: a cut transfer, worth another try."""


@dataclass
class Session:
    """What the images of one run share: the names already given out (so two images of a run
    never land on one name, --overwrite or not) and a cancel switch for Ctrl-C, which only
    reaches the main thread while downloads run on workers."""

    cancelled: threading.Event = field(default_factory=threading.Event)
    claimed: set[Path] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cancel(self) -> None:
        self.cancelled.set()

    def check(self) -> None:
        if self.cancelled.is_set():
            raise Interrupted("interrupted", None)


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
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        what = "no space left" if code == errno.ENOSPC else "the disk quota is used up"
        return WriteError(f"{what} on the device holding {directory}; nothing was saved", "free some space or choose another -o directory")
    if code == errno.EFBIG:
        return WriteError(
            f"the image is larger than the largest file allowed in {directory}; nothing was saved",
            "raise the file size limit (ulimit -f) or choose another -o directory on a file system that takes large files",
        )
    if code == errno.EROFS:
        return WriteError(f"cannot write to {directory}: it is on a read-only file system", "choose a writable directory with -o")
    if code in (errno.EACCES, errno.EPERM):
        return WriteError(f"cannot write to {directory}: permission denied", "choose a writable directory with -o, or fix its permissions")
    if code in (errno.ENOTDIR, errno.EEXIST):
        return WriteError(f"cannot write to {directory}: part of that path is a file, not a directory", "give -o a directory (or a new one to create)")
    return WriteError(f"cannot write to {directory}: {exc.strerror or exc}", "check the output directory")


class Unwritable(UsageError):
    """The output location cannot take a file: found before anything is sent, so a usage error."""


def check_writable(directory: Path) -> None:
    """Refuse an output directory that cannot take files, before anything is paid for.

    A file is created and removed in the directory, or in its nearest existing ancestor when it is
    still to be made (the rest is created at save time): permission bits, read-only mounts and
    pseudo file systems (/proc) all answer the one question that matters. Full disks can only show
    at write time.
    """
    path = Path(directory).expanduser().absolute()
    probe = path
    while not probe.exists():
        if probe.is_symlink():  # dangling: mkdir would fail on it
            raise Unwritable(f"cannot write to {directory}: {probe} is a broken symbolic link", "give -o a directory (or a new one to create)")
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        _refuse(OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)), path)
    try:
        fd, name = tempfile.mkstemp(prefix=".imgen-probe-", dir=probe)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM) and _read_only(probe):
            exc = OSError(errno.EROFS, os.strerror(errno.EROFS))
        _refuse(exc, path)
    os.close(fd)
    os.unlink(name)


def _read_only(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _refuse(exc: OSError, path: Path) -> typing.NoReturn:
    error = _write_error(exc, path)
    if exc.errno == errno.ENOENT:  # /proc and its kind: the directory cannot be made there
        error = WriteError(f"cannot write to {path}: no files can be created there", "choose a writable directory with -o")
    raise Unwritable(f"{error.message}; nothing was sent", error.hint) from None


class Insertion(typing.Protocol):
    """Bytes to put into a file while it is written, after its first `head_bytes`: `plan` sees them and
    says what (or None); once the whole file is there, `keep` says whether the insertion may stay
    (the path, where it went, its length, the format). When it may not, the writer takes it out
    again and the file is the bytes received."""

    head_bytes: int

    def plan(self, head: bytes) -> bytes | None: ...

    def keep(self, path: Path, offset: int, length: int, fmt: str) -> bool: ...


def _without(cut: tuple[int, int], src: Path, dst: Path, fmt: str) -> bool:
    """dst: src without the `cut` (offset, length) range."""
    offset, length = cut
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with open(src, "rb") as f, os.fdopen(fd, "wb") as out:
            out.write(f.read(offset))
            f.seek(offset + length)
            shutil.copyfileobj(f, out, 1024 * 1024)
    except BaseException:
        dst.unlink(missing_ok=True)
        raise
    return True


class ImageWriter:
    """A temporary file that becomes a verified image under a unique final name, or nothing."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        source: str = "the download",
        session: Session | None = None,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.source = source
        self.session = session
        self.spool_error: tuple[str, str] | None = None  # set when base64 decoding into it failed
        # finish(tmp, rewritten, fmt) -> bool: a last rewrite before the commit (provenance written
        # into the file); True when it wrote `rewritten`, which then replaces the bytes received.
        self.finish: Callable[[Path, Path, str], bool] | None = None
        # Something to put into the file as it is written (provenance, after a PNG's header), so that
        # a large image is not written twice; see Insertion. Set before the first write.
        self.insertion: Insertion | None = None
        self._held: bytearray | None = None  # the first bytes, until the insertion has seen them
        self._inserted: tuple[int, int] | None = None  # (offset, length) of what it put in
        self._fd = -1
        self.size = 0  # bytes received
        self.written = 0  # bytes on disk: those received, and any inserted
        self.head = b""
        self.tail = b""
        self._hash = hashlib.sha256()
        self._trailing: trailing.TrailingDigest | None = None
        self._flushed = 0  # written back up to here
        try:
            directory.mkdir(parents=True, exist_ok=True)
            sweep_stale(directory)
            made = _temp_name(directory, ".new")
            self._fd = os.open(made, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)  # read back by the hashing thread
            if fcntl is not None:
                _lock(self._fd)
            self.tmp = made.with_suffix(".part")
            os.rename(made, self.tmp)
        except OSError as exc:
            raise _write_error(exc, directory) from exc

    def arm(self, insertion: Insertion | None) -> None:
        """Use `insertion` on this file's first bytes (before any write)."""
        self.insertion = insertion
        self._held = bytearray() if insertion is not None else None

    def expect(self, length: int | None) -> None:
        """Refuse at once a body whose announced length is over the limit."""
        if length is not None and length > self.max_bytes:
            raise self._too_large(f"{human_size(length)} announced")

    def _too_large(self, seen: str) -> DownloadError:
        return DownloadError(
            f"{self.source} is larger than the {human_size(self.max_bytes)} limit ({seen}); nothing was saved",
            "raise the limit with --max-download (e.g. --max-download 1G) if the image is really that large",
        )

    def write(self, chunk: bytes | memoryview) -> None:
        if self.session is not None:
            self.session.check()
        if not chunk:
            return
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise self._too_large(f"over {human_size(self.max_bytes)} received")
        if len(self.head) < imagetype.HEAD_BYTES:
            self.head += chunk[: imagetype.HEAD_BYTES - len(self.head)]
        self.tail = (self.tail + chunk[-16:])[-16:]
        if self._held is None:
            self._put(chunk)
            return
        self._held += chunk
        if len(self._held) >= self.insertion.head_bytes:
            self._insert()

    def _insert(self) -> None:
        """The bytes held back so far, with what the insertion puts after the first head_bytes of them."""
        held, self._held = self._held, None
        cut = self.insertion.head_bytes
        extra = self.insertion.plan(bytes(held[:cut])) if len(held) >= cut else None
        if not extra:
            self._put(held)
            return
        self._put(held[:cut])
        self._put(extra)
        self._inserted = (cut, len(extra))
        self._put(held[cut:])

    def _put(self, data: bytes | bytearray | memoryview) -> None:
        """Onto disk, into the hash (here, or behind the writer past TRAIL_FROM), written back every so often."""
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            raise _write_error(exc, self.directory) from exc
        self.written += len(data)
        if self._trailing is not None:
            self._trailing.advance(self.written)
        else:
            self._hash.update(data)
            if self.written >= TRAIL_FROM:
                self._trailing = trailing.TrailingDigest(self._fd, self._hash, self.written)
        if self.written - self._flushed >= trailing.WRITEBACK_EVERY:
            trailing.start_writeback(self._fd, self._flushed, self.written - self._flushed)
            self._flushed = self.written

    def digest(self) -> str:
        """The SHA-256 of the bytes on disk (the hashing thread joined, if there is one)."""
        if self._trailing is not None:
            self._hash, self._trailing = self._trailing.finish(self.written), None
        return self._hash.hexdigest()

    def verify(self, expected_length: int | None = None) -> str:
        if self._held is not None:  # shorter than the insertion's head: nothing was inserted
            self._insert()
        if expected_length is not None and self.size != expected_length:
            raise IncompleteImage(
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
            raise IncompleteImage(f"{self.source} was cut short: the {fmt} data stops before its end ({self.size} bytes)", "retry later")
        return fmt

    def commit(self, name_for: Callable[[str], str], *, overwrite: bool = False, expected_length: int | None = None) -> SavedImage:
        """Verify, then link under name_for(ext): never over an existing file unless overwrite."""
        try:
            fmt = self.verify(expected_length)
            if self.session is not None:
                self.session.check()
            self.digest()
            if self._inserted is not None and not self.insertion.keep(self.tmp, *self._inserted, fmt):
                self._rewrite(functools.partial(_without, self._inserted), fmt)  # back to the bytes received
                self._inserted = None
            rewritten = self._inserted is None and self.finish is not None and self._rewrite(self.finish, fmt)
            if not rewritten:
                os.fsync(self._fd)  # a rewritten file was synced by _rewrite
            final = self._claim(name_for(imagetype.EXTENSIONS[fmt]), overwrite)
        except OSError as exc:
            self.abort()
            raise _write_error(exc, self.directory) from exc
        except BaseException:
            self.abort()
            raise
        self._close()
        return SavedImage(final, self.written, self.digest(), fmt)

    def _rewrite(self, write: Callable[[Path, Path, str], bool], fmt: str) -> bool:
        """Let `write` make the file anew (under a `.new` name); then its bytes,
        size and sha256 are the ones reported, and what it wrote is on disk before the link."""
        rewritten = _temp_name(self.directory, ".new")
        try:
            if not write(self.tmp, rewritten, fmt):
                return False
            digest, size = hashlib.sha256(), 0
            fd = os.open(rewritten, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            try:
                if fcntl is not None:
                    _lock(fd)  # held before it takes the temporary name, as the first one was
                while chunk := os.read(fd, 1024 * 1024):
                    digest.update(chunk)
                    size += len(chunk)
                os.fsync(fd)
                os.replace(rewritten, self.tmp)
            except BaseException:
                os.close(fd)
                raise
            self._close()
            self._fd = fd
        except BaseException:
            rewritten.unlink(missing_ok=True)
            raise
        self._hash, self.written = digest, size
        return True

    def _claim(self, name: str, overwrite: bool) -> Path:
        if self.session is None:
            return self._link(name, overwrite, set())
        with self.session.lock:  # choosing and linking together: two workers never pick one name
            here = Path(self.directory).absolute()
            taken = {p.name for p in self.session.claimed if p.parent == here}
            final = self._link(name, overwrite, taken)
            self.session.claimed.add(here / final.name)
            return final

    def _link(self, name: str, overwrite: bool, taken: set[str]) -> Path:
        from .names import unique_path

        if overwrite:
            # --overwrite replaces what earlier runs left, never an image of this run.
            final = unique_path(self.directory, name, taken=taken, overwrite=True)
            os.replace(self.tmp, final)
            return final
        taken = set(taken)
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

    def _close(self) -> None:
        if self._trailing is not None:
            self._trailing.cancel()
            self._trailing = None
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = -1

    def abort(self) -> None:
        try:
            os.unlink(self.tmp)
        except OSError:
            pass  # gone already; a failure to clean up must not hide the error being reported
        self._close()  # after the unlink: a sweep never sees the file unlocked while it is there

    def __enter__(self) -> ImageWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


class InvalidBase64(BadResponse):
    """Base64 image data that does not decode."""


def iter_b64(text: str, chunk: int = B64_CHUNK) -> Iterable[bytes]:
    """Decode base64 a slice at a time, so a 32 MiB image never needs a second full copy."""
    text = text.strip()
    if text.startswith("data:") and "," in text[:100]:
        text = text.split(",", 1)[1]
    try:
        for start in range(0, len(text), chunk):
            yield b64.decode(text[start : start + chunk])
    except (binascii.Error, ValueError) as exc:
        raise InvalidBase64(f"the API sent invalid base64 image data ({exc})", _B64_HINT) from None


_B64_HINT = "retry; if it keeps happening, the API (or a proxy in between) is corrupting its answers"


def write_all(writer: ImageWriter, chunks: Iterable[bytes]) -> None:
    try:
        for piece in chunks:
            writer.write(piece)
    except InvalidBase64 as exc:
        raise InvalidBase64(f"{writer.source}: {exc.message}", exc.hint) from None


def write_atomic(path: Path, data: bytes | Iterable[bytes], *, mode: int | None = None, suffix: str = ".json.part") -> None:
    """A reader sees the old file or the whole new one, never half of it; a symlink at `path` is
    replaced by the rename, never written through. `data` may come in pieces (a page streamed as it
    is made); `mode` replaces mkstemp's 0600 (a page a web server must read)."""
    fd, tmp = tempfile.mkstemp(prefix=".imgen-", suffix=suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), mode)
            for piece in [data] if isinstance(data, bytes | bytearray) else data:
                fh.write(piece)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
