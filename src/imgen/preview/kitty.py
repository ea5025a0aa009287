"""The kitty graphics protocol (https://sw.kovidgoyal.net/kitty/graphics-protocol/), as kitty and Ghostty speak it.

A PNG goes as it is (f=100) in base64, cut into chunks of at most 4096 bytes (a multiple of 4, all but the last) that
carry m=1, the last m=0; only the first chunk carries the other keys. a=T transmits and displays at the cursor;
q=2 silences the terminal's replies, which would otherwise arrive as typed input; C=1 leaves the cursor where it
was, so the caller (and tmux, which does not see the image) knows where it is.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

CHUNK = 4096


def encode(png: bytes, *, columns: int | None = None, rows: int | None = None, image_id: int | None = None) -> bytes:
    """The escapes that draw `png` at the cursor, scaled to `columns` or `rows` cells. Give only one: kitty computes
    the other from the image's aspect ratio, while both at once stretch the image to fill them."""
    return b"".join(chunks(png, columns=columns, rows=rows, image_id=image_id))


def chunks(png: bytes, *, columns: int | None = None, rows: int | None = None, image_id: int | None = None) -> Iterator[bytes]:
    """encode's escapes one by one, so each can be wrapped for tmux on its own (tmux caps a sequence at 1 MiB)."""
    keys = ["a=T", "f=100", "q=2", "C=1"]
    if image_id is not None:
        keys.append(f"i={image_id}")
    if columns:
        keys.append(f"c={columns}")
    if rows:
        keys.append(f"r={rows}")
    data = base64.standard_b64encode(png)
    for start in range(0, max(len(data), 1), CHUNK):
        more = 1 if start + CHUNK < len(data) else 0
        control = ",".join([*keys, f"m={more}"]) if start == 0 else f"m={more}"
        yield b"\x1b_G" + control.encode("ascii") + b";" + data[start:start + CHUNK] + b"\x1b\\"


def delete(image_id: int) -> bytes:
    """Delete the image with `image_id`, its placements and its data (d=I), without a reply."""
    return f"\x1b_Ga=d,d=I,i={image_id},q=2\x1b\\".encode("ascii")
