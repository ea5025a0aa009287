"""Decoding and scaling, with Pillow imported only here and only when a protocol needs pixels: kitty with a PNG and
iTerm2 with any image need none, since the size comes from the file's header."""

from __future__ import annotations

import io
import typing

if typing.TYPE_CHECKING:
    from PIL.Image import Image

INSTALL = "pip install 'imgen[preview]'"


class NeedsPillow(RuntimeError):
    """The preview needs Pillow, which is not installed; the message says what to install."""

    def __init__(self, message: str = f"previews in this terminal need Pillow: {INSTALL}") -> None:
        super().__init__(message)


class PreviewError(ValueError):
    """The image cannot be previewed: not an image, or one Pillow cannot decode."""


def pillow() -> typing.Any:
    """PIL.Image, or NeedsPillow."""
    try:
        from PIL import Image
    except ImportError:
        raise NeedsPillow() from None
    return Image


def decode(data: bytes, target: tuple[int, int] | None = None) -> Image:
    """The image in `data` (an animation's first frame) as RGBA. `target`, the size it will be scaled to, lets a
    JPEG decode at a fraction of its size, which is several times faster for a preview."""
    Image = pillow()
    try:
        image = Image.open(io.BytesIO(data))
        if target and image.format == "JPEG":
            image.draft("RGB", target)
        image.load()
        return image.convert("RGBA")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise PreviewError(f"cannot decode the image: {exc}") from None


def scaled(image: Image, size: tuple[int, int]) -> Image:
    """`image` at `size`: averaged over each target pixel's area when shrinking (no ringing at sharp edges), each
    pixel repeated when growing (a small image stays crisp)."""
    if image.size == size:
        return image
    Image = pillow()
    shrinking = size[0] < image.size[0] or size[1] < image.size[1]
    return image.resize(size, Image.Resampling.BOX if shrinking else Image.Resampling.NEAREST)


def png(image: Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)  # sent once and thrown away: speed over size
    return out.getvalue()
