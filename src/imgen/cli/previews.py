"""--preview: each saved image drawn in the terminal on stderr, and with --stream each partial image
drawn over the one before, as it arrives. The protocol is chosen once (imgen.preview.choose); on a
pipe, under CI or with TERM=dumb nothing is drawn, and nothing ever goes to stdout."""

from __future__ import annotations

import os
import sys
from contextlib import nullcontext
from typing import Any


class Previews:
    def __init__(self, rows: int, messages: Any, pause: Any = None) -> None:
        """`pause()`: a context manager that takes the progress display off the screen while an image
        is drawn (a live display redrawing itself would overwrite the image, or be overwritten)."""
        from .. import preview

        self.rows = rows
        self.messages = messages
        self.pause = pause or nullcontext
        try:
            self.choice = preview.choose(os.environ, sys.stderr)
        except ValueError as exc:
            messages.warn(f"{exc}; no previews")
            self.choice = preview.Choice("none")
        self.on = self.choice.protocol != "none"
        if not self.on:
            messages.detail("imgen: --preview: stderr is not a terminal that can show images; nothing drawn")
        self._stream: tuple[int, Any] | None = None  # (image number, its Previewer) while a stream draws it
        self._said = False

    def show(self, source: Any) -> None:
        """A saved image, below whatever came before."""
        from .. import preview

        self._draw(lambda: preview.draw(source, sys.stderr, self.choice, rows=self.rows))

    def streamed(self, update: Any) -> bool:
        """A stream's partial (its bytes) or completed image (its file), drawn over that image's last
        partial. True when drawn: the caller then leaves out the text line that would sit in between."""
        from .. import preview

        if not self.on or update.error is not None:
            return False
        source = update.data if update.kind == "partial" else update.path
        if source is None:
            return False
        if self._stream is None or self._stream[0] != update.image:
            self._stream = (update.image, preview.Previewer(sys.stderr, self.choice, rows=self.rows))
        previewer = self._stream[1]
        drawn = self._draw(lambda: previewer.show(source))
        if update.kind == "completed":
            self._stream = None  # the next image starts below this one
        return drawn and update.kind == "partial"

    def _draw(self, draw: Any) -> bool:
        from .. import preview

        if not self.on:
            return False
        try:
            with self.pause():
                draw()
        except preview.NeedsPillow as exc:
            self.on = False
            self._note(str(exc))
            return False
        except (preview.PreviewError, OSError) as exc:  # a preview that fails never fails the run
            self._note(f"no preview: {exc}")
            return False
        return True

    def _note(self, text: str) -> None:
        if not self._said:
            self._said = True
            self.messages.info(f"imgen: note: {text}")


def previews_for(plan: Any, messages: Any, progress: Any = None) -> Previews | None:
    if not plan.settings.get("preview") or plan.target.stdout:
        return None
    return Previews(int(plan.settings.get("preview_rows") or 8), messages, progress.paused if progress is not None else None)

