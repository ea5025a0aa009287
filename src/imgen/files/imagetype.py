"""What a run of bytes really is, judged by its leading bytes alone.

APIs and gateways label bodies carelessly (an HTML error page served as image/png, a JSON error
inside a 200), so imgen never trusts a Content-Type or a file name: it sniffs the first
`HEAD_BYTES` bytes and names and verifies files by what they contain.
"""

from __future__ import annotations

import struct

# Enough for every signature below and for the PNG IHDR read by `png_size` (8 + 8 + 8 bytes).
HEAD_BYTES = 32

# `.jpg` rather than `.jpeg`: it is what cameras, browsers and most tools write, so saved files
# sort and glob together with the user's other JPEGs.
EXTENSIONS: dict[str, str] = {
    "png": "png",
    "jpeg": "jpg",
    "webp": "webp",
    "gif": "gif",
    "bmp": "bmp",
    "tiff": "tiff",
}

MIME: dict[str, str] = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
}

# What imgen accepts as a generated image; bmp and tiff only ever arrive as the user's references.
SAVE_FORMATS: frozenset[str] = frozenset({"png", "jpeg", "webp", "gif"})

# What Seedream accepts as a reference image.
REFERENCE_FORMATS: frozenset[str] = frozenset(MIME)

_PNG = b"\x89PNG\r\n\x1a\n"

# "BM" alone would match any text body that happens to start with those two letters, so the
# size of the DIB header that follows the 14-byte file header must also be one Windows defines.
_BMP_DIB_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})


def sniff(head: bytes) -> str | None:
    """The format of an image starting with `head`, or None when it is not one imgen knows.

    A head too short to hold the whole signature is not an image: a cut body must not pass.
    """
    head = bytes(head[:HEAD_BYTES])
    if head.startswith(_PNG):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(head) >= 12 and head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if len(head) >= 18 and head.startswith(b"BM"):
        (dib_size,) = struct.unpack_from("<I", head, 14)
        if dib_size in _BMP_DIB_SIZES:
            return "bmp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    return None


def png_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, or None when `head` is not a well-formed PNG head.

    IHDR must be the first chunk, so the first 24 bytes are enough.
    """
    if len(head) < 24 or not head.startswith(_PNG):
        return None
    length, kind, width, height = struct.unpack_from(">I4sII", head, 8)
    # The PNG spec caps each side at 2**31 - 1; anything else is corrupt, not merely large.
    if length != 13 or kind != b"IHDR" or not (0 < width < 2**31 and 0 < height < 2**31):
        return None
    return width, height
