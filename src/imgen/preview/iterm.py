"""iTerm2's inline images (https://iterm2.com/documentation-images.html), also drawn by WezTerm, Konsole and mintty.

ESC ] 1337 ; File=<key=value;...> : <base64 of the file> BEL. The file goes as it is: the terminal decodes it (PNG,
JPEG and GIF everywhere; WebP where the system's image decoder reads it). width and height in cells (a bare number)
with preserveAspectRatio=1 fit the image inside that box without stretching it.
"""

from __future__ import annotations

import base64


def encode(data: bytes, *, columns: int, rows: int, name: str | None = None) -> bytes:
    keys = []
    if name:
        keys.append("name=" + base64.standard_b64encode(name.encode("utf-8")).decode("ascii"))
    keys += [f"size={len(data)}", f"width={columns}", f"height={rows}", "preserveAspectRatio=1", "inline=1"]
    return b"\x1b]1337;File=" + ";".join(keys).encode("ascii") + b":" + base64.standard_b64encode(data) + b"\x07"
