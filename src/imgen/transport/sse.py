"""An incremental server-sent events reader, per the WHATWG event-stream rules.

Own code rather than httpx-sse: its EventSource refuses a response whose Content-Type is not
text/event-stream and works on already-decoded lines, while imgen must judge a stream by the
bytes that arrive (gateways send JSON error bodies, sometimes labelled event-stream) and must
notice a stream cut in the middle of an event.

Lines are split on the raw bytes (CR and LF never occur inside a UTF-8 sequence), so a character
split across chunks needs no special care, and each chunk is scanned once: an event carrying
megabytes of base64 costs time in proportion to its size, however finely it is chunked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_BOM = b"\xef\xbb\xbf"
_EOL = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One dispatched event. `id` is the stream's last event id (None while it is empty) and
    `retry` its reconnection time in ms (None until the server sets one): both persist
    across events, as the spec keeps them."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class StreamCut(Exception):
    """The input ended inside an event: the server or the network cut the stream short.

    `partial` is the event the complete lines so far would have made (None when they hold no
    data): a caller may choose to accept, say, a final `[DONE]` missing only its blank line.
    """

    def __init__(self, pending_bytes: int, partial: Event | None = None) -> None:
        self.pending_bytes = pending_bytes
        self.partial = partial
        super().__init__(f"event stream ended inside an event ({pending_bytes} bytes unfinished)")


class EventTooLarge(Exception):
    """An event (or a line without its end) grew past the decoder's limit: it is not held further."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"an event of more than {limit} bytes")


class SSEDecoder:
    """Feed bytes as they arrive, get the events they complete; `max_event` bounds what one
    unfinished event may hold in memory."""

    def __init__(self, max_event: int | None = None) -> None:
        self._max_event = max_event
        self._head = b""  # the first bytes, held until we know whether they start with a BOM
        self._started = False
        self._skip_lf = False  # the last chunk ended in CR: an LF opening the next one ends no line
        self._skip_lf_counts = False  # ...and that CR ended a field line, so the LF is event bytes
        self._line: list[bytes] = []  # the unfinished line, in pieces, joined once it ends
        self._line_bytes = 0
        self._data: list[str] = []
        self._event_type = ""
        self._last_id = ""
        self._retry: int | None = None
        self._fields_seen = False  # a field line since the last blank line
        self._event_bytes = 0  # bytes since the last blank line
        self._ended = False

    @property
    def retry(self) -> int | None:
        return self._retry

    @property
    def last_event_id(self) -> str:
        return self._last_id

    @property
    def pending(self) -> bool:
        """True when the input so far stops inside an event: report it as a cut if it ends here.

        Comments alone are not an event; an unfinished line is, unless it is a comment.
        """
        unfinished = bool(self._line) and not self._line[0].startswith(b":")
        return self._fields_seen or unfinished or bool(self._head)

    @property
    def pending_bytes(self) -> int:
        """How many bytes of the unfinished event have arrived (0 when nothing is pending)."""
        if not self.pending:
            return 0
        return self._event_bytes + self._line_bytes + len(self._head)

    @property
    def partial(self) -> Event | None:
        """The event a blank line would dispatch now, from complete lines only."""
        return self._make_event()

    def feed(self, chunk: bytes) -> list[Event]:
        if self._ended:
            raise ValueError("feed() after flush()")
        if not chunk:
            return []
        chunk = bytes(chunk)
        if not self._started:
            # One leading BOM is dropped, and it may arrive a byte at a time.
            self._head += chunk
            if len(self._head) < len(_BOM) and _BOM.startswith(self._head):
                return []
            chunk = self._head.removeprefix(_BOM)
            self._head = b""
            self._started = True
        events: list[Event] = []
        pos = 0
        if self._skip_lf:
            self._skip_lf = False
            if chunk.startswith(b"\n"):
                pos = 1
                # Counted as if the CRLF had arrived whole, so pending_bytes ignores chunking.
                self._event_bytes += self._skip_lf_counts
        line = b""
        for match in _EOL.finditer(chunk, pos):
            piece = chunk[pos : match.start()]
            if self._line:
                self._line.append(piece)
                line = b"".join(self._line)
                self._line.clear()
                self._line_bytes = 0
            else:
                line = piece
            self._line_done(line, match.end() - match.start(), events)
            pos = match.end()
        if chunk.endswith(b"\r"):
            self._skip_lf = True
            self._skip_lf_counts = bool(line)
        if pos < len(chunk):
            self._line.append(chunk[pos:])
            self._line_bytes += len(chunk) - pos
        if self._max_event is not None and self._event_bytes + self._line_bytes > self._max_event:
            raise EventTooLarge(self._max_event)
        return events

    def flush(self) -> list[Event]:
        """Mark the end of the input. Returns no events: the spec never dispatches at EOF, so
        an unfinished event is dropped and `pending`, `pending_bytes` and `partial` say whether
        and what. Kept list-returning so callers treat it like a final `feed`."""
        self._ended = True
        return []

    def _line_done(self, raw: bytes, eol_len: int, events: list[Event]) -> None:
        if not raw:
            event = self._make_event()
            if event is not None:
                events.append(event)
            self._data.clear()
            self._event_type = ""
            self._fields_seen = False
            self._event_bytes = 0
            return
        self._event_bytes += len(raw) + eol_len
        if raw.startswith(b":"):
            return
        self._fields_seen = True
        line = raw.decode("utf-8", "replace")
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event_type = value
        elif name == "id":
            if "\x00" not in value:
                self._last_id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self._retry = int(value)

    def _make_event(self) -> Event | None:
        if not self._data:
            return None
        return Event(
            data="\n".join(self._data),
            event=self._event_type or "message",
            id=self._last_id or None,
            retry=self._retry,
        )


def iter_events(chunks: Iterable[bytes]) -> Iterator[Event]:
    """The events of a byte stream; StreamCut if it ends inside an event."""
    decoder = SSEDecoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)
    yield from decoder.flush()
    if decoder.pending:
        raise StreamCut(decoder.pending_bytes, decoder.partial)
