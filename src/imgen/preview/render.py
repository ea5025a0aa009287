"""Drawing one image on a stream, and redrawing over it (streamed partial images).

Each protocol leaves the cursor somewhere else after an image (iTerm2 on the image's last row, WezTerm below it,
sixel terminals as their scrolling mode says, kitty with C=1 where it was), so the cursor is never left to them: the
rows are reserved first with newlines (scrolling the screen now, not mid-image), the cursor goes back up to the
first of them and is saved, the image is drawn, and the cursor is restored and moved down past the rows. The image
then takes exactly the rows counted, which is what lets the next one be drawn over it.
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from . import blocks, fit, iterm, kitty, sixel
from .detect import Choice
from .images import NeedsPillow, PreviewError, decode, png, scaled

Source = str | os.PathLike | bytes

SAVE, RESTORE = b"\x1b7", b"\x1b8"


@dataclass(frozen=True)
class Drawn:
    """What a draw left on screen: the rows it took (the cursor is at the start of the row below them) and the kitty
    image id, if any, to delete when drawing over it."""

    rows: int
    image_id: int | None = None


def draw(
    source: Source,
    stream: IO,
    choice: Choice,
    rows: int = 8,
    columns: int | None = None,
    replace: Drawn | None = None,
    *,
    image_id: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> Drawn:
    """Draw the image (a path, or its bytes) at the start of the cursor's line on `stream`, at most `rows` rows
    high and `columns` (default: the terminal's) wide. `stream` is binary, or text (then its `.buffer` gets the
    bytes, or for a text stream without one, such as StringIO, the text). `replace`, what the previous draw
    returned, draws over that image instead of below it; nothing else may have been written in between.
    `image_id` names a kitty image so a later draw can replace it. Raises NeedsPillow when this protocol or
    format needs Pillow and it is not installed, PreviewError when the bytes are not an image it can read."""
    if choice.protocol == "none":
        return Drawn(0)
    data, name = _read(source)
    environ = os.environ if environ is None else environ
    screen = fit.screen_of(stream, columns)
    max_rows = fit.row_limit(rows, screen)
    out = bytearray()
    if replace is not None and replace.rows:
        out += b"\x1b[%dA\r" % replace.rows
        if replace.image_id is not None:
            out += choice.wrap(kitty.delete(replace.image_id))
        out += b"\x1b[J"  # erase the old rows: a smaller image must not leave the old one's edges
    if choice.protocol == "blocks":
        drawn, body = _blocks(data, screen, max_rows, environ)
        out += b"\r" + body
    else:
        drawn, body = _graphics(choice, data, name, screen, max_rows, image_id)
        n = drawn.rows
        out += b"\r" + b"\n" * n + b"\x1b[%dA" % n + SAVE + body + RESTORE + b"\x1b[%dB" % n
    _write(stream, bytes(out))
    return drawn


def _read(source: Source) -> tuple[bytes, str | None]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), None
    path = Path(source)
    return path.read_bytes(), path.name


def _size(data: bytes) -> tuple[str, int, int]:
    from ..files.imageinfo import probe_bytes

    info = probe_bytes(data)
    if info is None:
        raise PreviewError("not an image (png, jpeg, webp and gif are)")
    if info.width and info.height:
        return info.format, info.width, info.height
    width, height = decode(data).size  # a header the reader could not follow: Pillow may still read the file
    return info.format, width, height


def _graphics(choice: Choice, data: bytes, name: str | None, screen: fit.Screen, max_rows: int,
              image_id: int | None) -> tuple[Drawn, bytes]:
    fmt, width, height = _size(data)
    box = fit.fit(width, height, screen.columns, max_rows, screen.cell)
    if choice.protocol == "iterm":
        return Drawn(box.rows), choice.wrap(iterm.encode(data, columns=box.columns, rows=box.rows, name=name))
    if choice.protocol == "kitty":
        if fmt != "png":
            try:
                data = png(decode(data))
            except NeedsPillow:
                raise NeedsPillow(f"a {fmt.upper()} preview with the kitty protocol needs Pillow: "
                                  f"pip install 'imgen[preview]' (PNG needs nothing)") from None
        # One of c and r: the one that bound the size, so kitty keeps the aspect ratio.
        sized = {"rows": box.rows} if box.rows_bind else {"columns": box.columns}
        body = b"".join(choice.wrap(c) for c in kitty.chunks(data, image_id=image_id, **sized))
        return Drawn(box.rows, image_id), body
    if choice.protocol == "sixel":
        image = scaled(decode(data, (box.width, box.height)), (box.width, box.height))
        return Drawn(box.rows), choice.wrap(sixel.encode(image))
    raise ValueError(f"unknown protocol {choice.protocol!r}")


def _blocks(data: bytes, screen: fit.Screen, max_rows: int, environ: Mapping[str, str]) -> tuple[Drawn, bytes]:
    _, width, height = _size(data)
    box = fit.fit_blocks(width, height, screen.columns, max_rows, screen.cell)
    image = scaled(decode(data, (box.width, box.height)), (box.width, box.height))
    return Drawn(box.rows), blocks.encode(image, truecolor=blocks.has_truecolor(environ))


def _write(stream: IO, data: bytes) -> None:
    if isinstance(stream, io.TextIOBase):
        buffer = getattr(stream, "buffer", None)
        if buffer is None:
            stream.write(data.decode("utf-8"))
        else:
            stream.flush()  # text written before must come out before these bytes
            buffer.write(data)
            buffer.flush()
    else:
        stream.write(data)
    stream.flush()


class Previewer:
    """Shows image after image in the same place: each `show` draws over the previous one (a streamed image's
    partials, then the final image). Nothing else may be written to the stream between two shows."""

    def __init__(self, stream: IO, choice: Choice, rows: int = 8, columns: int | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        self.stream = stream
        self.choice = choice
        self.rows = rows
        self.columns = columns
        self.environ = environ
        # Ids are global to the terminal (and to every tmux pane in it): a random one does not clash with another
        # program's, or with another imgen's.
        self.image_id = random.randint(1, 2**32 - 1) if choice.protocol == "kitty" else None
        self.last: Drawn | None = None

    def show(self, source: Source) -> Drawn:
        self.last = draw(source, self.stream, self.choice, self.rows, self.columns, self.last,
                         image_id=self.image_id, environ=self.environ)
        return self.last
