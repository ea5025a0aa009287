"""The images an edit starts from (IMAGE, -i, --mask): each one found, sized and typed from its
headers before anything is sent, so a bad input costs no upload and no billed round trip.

Files are read only as far as their headers here (imageinfo); the upload streams them from disk
later. `-` (image bytes on stdin) is spooled to a file in a directory the caller owns, so it can
be sized, checked and streamed like any other file.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from . import imageinfo, imagetype

STDIN_LIMIT = 64 * 1024 * 1024  # above every input limit a model has (GPT image: 50 MB)
STDIN_STEM = "stdin"


@dataclass(frozen=True)
class InputImage:
    """One input as the user named it (`shown`), and what its headers say."""

    shown: str  # the path, URL or '-' as given
    flag: str  # how messages name it: "IMAGE photo.png", "-i b.png", "--mask m.png"
    path: Path | None = None  # a local file (stdin spooled to one); None for a URL
    url: str | None = None
    info: imageinfo.ImageInfo | None = None
    size: int = 0  # bytes on disk

    @property
    def format(self) -> str | None:
        return self.info.format if self.info else None

    @property
    def dimensions(self) -> tuple[int, int] | None:
        info = self.info
        return (info.width, info.height) if info and info.width and info.height else None

    @property
    def content_type(self) -> str:
        return imagetype.MIME.get(self.format or "", "application/octet-stream")

    @property
    def file_name(self) -> str:
        """The name the upload carries: the file's own, with the extension its bytes call for."""
        stem = self.stem
        return f"{stem}.{imagetype.EXTENSIONS.get(self.format or '', 'bin')}"

    @property
    def stem(self) -> str:
        if self.shown == "-":
            return STDIN_STEM
        if self.url is not None:
            return (not self.url.startswith("data:") and Path(urlsplit(self.url).path).stem) or "image"
        return Path(self.shown).stem or "image"

    @functools.cached_property
    def sha256(self) -> str | None:
        """The bytes' digest (a batch job's key, provenance); None for a URL."""
        if self.path is None:
            return None
        digest = hashlib.sha256()
        with open(self.path, "rb") as f:
            for chunk in iter(lambda: f.read(1024 * 1024), b""):
                digest.update(chunk)
        return digest.hexdigest()

    def describe(self) -> dict:
        out: dict = {"input": self.shown, "format": self.format, "bytes": self.size}
        if self.dimensions:
            out["width"], out["height"] = self.dimensions
        return out


def is_url(value: str) -> bool:
    """A URL, or a data URI: sent as given where the model takes references, never read here."""
    return value.startswith(("https://", "http://", "data:image/"))


def load(
    value: str, flag: str, problems: list[str], *, spool_dir: Path | None = None, stdin: BinaryIO | None = None, shown: str | None = None
) -> InputImage | None:
    """The input `value` names, or None after adding why it cannot be used to `problems`.
    `shown`: how messages name it, when not as `value` (a batch line's path, before its directory)."""
    named = f"{flag} {shown or value}"
    if is_url(value):
        return InputImage(value, named, url=value)
    if value == "-":
        path = _spool_stdin(named, problems, spool_dir, stdin)
        if path is None:
            return None
    else:
        path = Path(value).expanduser()
    try:
        st = path.stat()
    except FileNotFoundError:
        problems.append(f"{named}: no such file")
        return None
    except OSError as exc:
        problems.append(f"{named}: cannot read it ({exc.strerror})")
        return None
    if not path.is_file():
        problems.append(f"{named}: not a regular file; give an image file")
        return None
    try:
        info = imageinfo.probe(path)
    except OSError as exc:
        problems.append(f"{named}: cannot read it ({exc.strerror})")
        return None
    if info is None:
        problems.append(f"{named}: not an image (png, jpeg, webp and gif are; imgen reads the bytes, not the name)")
        return None
    return InputImage(value, named, path=path, info=info, size=st.st_size)


def _spool_stdin(named: str, problems: list[str], spool_dir: Path | None, stdin: BinaryIO | None) -> Path | None:
    source = stdin if stdin is not None else getattr(sys.stdin, "buffer", None)
    if source is None or (hasattr(source, "isatty") and source.isatty()):
        problems.append(f"{named}: stdin is a terminal; pipe the image in: imgen generate ... -o - | imgen edit - PROMPT")
        return None
    if spool_dir is None:
        raise ValueError("reading an image from stdin needs a spool directory")
    path = spool_dir / "stdin.img"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "wb") as out:
        # One byte past the limit tells "too big" from "exactly the limit" without holding it all.
        copied = _copy_limited(source, out, STDIN_LIMIT + 1)
    if copied > STDIN_LIMIT:
        problems.append(f"{named}: more than {STDIN_LIMIT // 1024 // 1024} MiB on stdin; no model takes an input that large")
        return None
    if copied == 0:
        problems.append(f"{named}: stdin was empty; pipe an image in")
        return None
    return path


def _copy_limited(source: BinaryIO, out: BinaryIO, limit: int) -> int:
    copied = 0
    while copied < limit:
        chunk = source.read(min(1024 * 1024, limit - copied))
        if not chunk:
            break
        out.write(chunk)
        copied += len(chunk)
    return copied

