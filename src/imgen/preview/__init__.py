"""Inline image previews in the terminal: kitty graphics, iTerm2 inline images, sixel, or coloured half-blocks.

    choice = choose(os.environ, sys.stderr)        # Choice("kitty", tmux_passthrough=False), ...
    if choice.protocol != "none":
        draw(path, sys.stderr, choice, rows=8)     # or Previewer(sys.stderr, choice).show(path) to redraw in place

Pillow (the `preview` extra) is needed for sixel, half-blocks and non-PNG images with kitty, and imported only then.
"""

from __future__ import annotations

from .detect import PROTOCOLS, Choice, choose, from_environment, query_device_attributes, tmux_allows_passthrough, wrap_tmux
from .images import NeedsPillow, PreviewError
from .render import Drawn, Previewer, draw

__all__ = [
    "PROTOCOLS", "Choice", "Drawn", "NeedsPillow", "PreviewError", "Previewer", "choose", "draw", "from_environment",
    "query_device_attributes", "tmux_allows_passthrough", "wrap_tmux",
]
