"""Streamed generation (GPT image models, `"stream": true`): partial images as they arrive.

The body is read as it comes in, through sse.SSEDecoder, so a partial image can be shown (and
saved) while the model is still working. What the body *is* is decided by its first bytes, not
its Content-Type: gateways answer stream requests with plain JSON, error envelopes and normal
images responses alike, sometimes labelled text/event-stream. A JSON answer goes back to the
pipeline and is handled exactly like a non-streamed one.

Numbering. Images count from 1, as everywhere in imgen's output ({index} in names, `index` in
--json). Partials count from 1 too: partial k is the API's `partial_image_index` k-1, so the
progress line "partial 2/3", the file `NAME.partial-2.png` and the NDJSON `"partial": 2` agree.

Matching. The events carry no image index, so with n > 1 the order of `completed` events defines
the images: image k is the k-th completed event, and every partial that arrives after the
(k-1)-th completed event and before the k-th belongs to image k.

Names. Partials are saved as `STEM.partial-K.EXT` next to where the final image will go. STEM is
settled when the image's first partial arrives, as the first free name the template gives (so a
rerun's partials and final image share the same `-2` suffix); the final image then takes
`STEM.EXT`, through the same verified, atomic, never-overwriting save as any other image.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import faults, jsontext
from ..errors import BadResponse, ImgenError
from ..files import imagetype, names
from ..files.writer import ImageWriter, iter_b64, write_all
from ..files.writer import Session as SaveSession
from ..results import Failed, GenerationResponse, ImageResult, Saved, SavedImage
from ..transport import answer
from ..transport.sse import Event, EventTooLarge, SSEDecoder
from ..units import human_size
from .outcome import Outcome
from .plan import Plan
from .provenance import Keeper
from .saving import item_error, name_for, to_stdout

# Generations send image_generation.*, edits image_edit.*: the same frames under two names.
SSE_EVENT_LIMIT = 128 * 1024 * 1024  # one event holds one image's base64: a 4K PNG is well under it
MAX_PARTIALS = 3  # the most partial_images the API takes; a server sending more per image is ignored past it
IMAGE_EVENTS = frozenset(f"{kind}.{what}" for kind in ("image_generation", "image_edit") for what in ("partial_image", "completed"))
EVENT_META = ("size", "quality", "background", "output_format")
_BOM = b"\xef\xbb\xbf"


@dataclass
class Update:
    """One partial or completed image, as the user interface hears of it (never the base64)."""

    kind: str  # "partial" | "completed"
    image: int  # counts from 1
    images: int  # how many were asked for
    bytes: int
    partial: int | None = None  # counts from 1
    partials: int | None = None  # how many were asked for, per image
    path: Path | None = None
    saved: SavedImage | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # size, quality, background, output_format, usage
    error: ImgenError | None = None
    data: bytes | None = field(default=None, repr=False)  # a partial's image bytes, when the reader was asked for pixels

    def to_dict(self) -> dict[str, Any]:
        """The NDJSON line for --events. The base64 is left out on purpose: a line of several
        megabytes breaks line-based consumers (jq, grep, log shippers) and the bytes are on disk."""
        out: dict[str, Any] = {"event": "partial_image" if self.kind == "partial" else "completed", "image": self.image}
        if self.partial is not None:
            out["partial"] = self.partial
        out["bytes"] = self.bytes
        if self.path is not None:
            out["path"] = str(self.path)
        if self.saved is not None:
            out["sha256"] = self.saved.sha256
            out["format"] = self.saved.format
        out.update(self.meta)
        if self.error is not None:
            out["error"] = self.error.to_dict()
        return out

    def describe(self) -> str:
        """One progress line for stderr."""
        of_images = f"{self.image}/{self.images}" if self.images > 1 else f"{self.image}"
        if self.kind == "partial":
            count = f"{self.partial}/{self.partials}" if self.partials else f"{self.partial}"
            text = f"partial {count} of image {of_images}: {human_size(self.bytes)}"
        else:
            text = f"image {of_images} completed: {human_size(self.bytes)}"
        if self.error is not None:
            return f"{text}, not saved: {self.error.message}"
        if self.path is not None:
            return f"{text} -> {self.path}"
        return text


def event_error(
    body: Any, what: str, *, status: int | None = None, request_id: str | None = None, read: Callable[[Any], faults.Fault] = faults.read_fault
) -> ImgenError:
    """An `{"error": {...}}` that came inside a stream (or as a 2xx body): no HTTP status says
    what kind of failure it is, so the API's code and type do (`read` is the dialect's reader)."""
    return faults.classify(read(body), status=status, what=what, request_id=request_id)


class StreamReader:
    """Turns the bytes of one stream response into saved images and Updates.

    `read` returns a GenerationResponse when the body turned out to be a plain JSON images
    response (the caller saves it like any other), else the Outcome of the stream.
    """

    def __init__(self, plan: Plan, on_update: Callable[[Update], None] | None = None, note: Callable[[str], None] = lambda text: None,
                 warn: Callable[[str], None] = lambda text: None, pixels: bool = False) -> None:
        self.plan = plan
        self.pixels = pixels
        self.on_update = on_update
        self.note = note
        self.warn = warn
        self.n = plan.request.n
        self.most = plan.request.most_images()  # completed images beyond it are the server's surplus, not saved
        wanted_partials = plan.request.params.get("partial_images", plan.request.fields.get("partial_images"))
        self.partials_wanted = wanted_partials if isinstance(wanted_partials, int) and wanted_partials > 0 else None
        self.surplus = {"images": 0, "partials": 0}
        self.now = dt.datetime.now()  # one {date}/{time} for every file of the run
        self.items: list[ImageResult] = []  # completed images, in arrival order
        self.partials: dict[int, list[dict[str, Any]]] = {}  # image index -> its partials
        self.stems: dict[int, str] = {}  # image index -> the stem its partials and final image share
        self.saved: list[Saved] = []
        self.failed: list[Failed] = []
        self.usage: dict[str, Any] | None = None
        self.created: int | None = None
        self.meta: dict[str, Any] = {}
        self.events = 0
        self.request_id: str | None = None
        self.directory = plan.target.directory  # for -o -, the staging directory pipeline.run made
        self.session = SaveSession()  # one run's names: two images never share one, --overwrite or not
        self.read_fault = plan.read_fault

    # --- reading -----------------------------------------------------------------------------

    def read(
        self,
        chunks: Iterable[bytes],
        *,
        read_errors: tuple[type[BaseException], ...] = (),
        status: int = 200,
        content_type: str = "?",
        request_id: str | None = None,
    ) -> Any:
        self.request_id = request_id
        it = iter(chunks)
        stopped: ImgenError | None = None
        broke = False
        head = b""
        try:
            head = _first_bytes(it)
            start = head.removeprefix(_BOM).lstrip()[:1]
            if start in (b"{", b"["):
                body = head + b"".join(it)
                return self._json_answer(body, status, content_type, request_id)
            if start == b"<":
                raise BadResponse(
                    f"the API answered the stream request with a page, not an event stream ({content_type}: {_snippet(head)!r})",
                    "check the base URL points at an image API; retry later if it is a proxy error page",
                )
            stopped = self._events(_chain(head, it))
        except read_errors as exc:  # the connection broke: what was completed stays saved
            broke = True
            timeout = "timeout" in type(exc).__name__.lower()
            if timeout and answer.past_deadline():
                overdue = answer.overdue()
                stopped = _cut(overdue.message, exc, hint=overdue.hint)
            else:
                stopped = _cut(
                    f"no data arrived in time ({_reason(exc)})" if timeout else f"the connection broke ({_reason(exc)})",
                    exc,
                    hint="raise --timeout, or retry" if timeout else None,
                )
        if self.events == 0 and not self.items and not broke:
            # Nothing recognisable came: say what did, rather than call it a cut stream.
            if not head.strip():
                raise BadResponse("the API answered the stream request with an empty body", "retry; if it persists, try without --stream")
            if stopped is None or "event-stream" not in content_type.lower():
                raise BadResponse(
                    f"the API's answer to the stream request holds no events ({content_type}: {_snippet(head)!r})",
                    "check the base URL points at an image API that streams; retry without --stream",
                )
        return self._outcome(stopped)

    def _events(self, chunks: Iterable[bytes]) -> ImgenError | None:
        """Dispatch every event; the error that ended the stream early, if one did."""
        decoder = SSEDecoder(max_event=min(self.plan.max_answer, SSE_EVENT_LIMIT))
        try:
            for chunk in chunks:
                for event in decoder.feed(chunk):
                    ended = self._handle(event)
                    if ended is not None:
                        return None if ended is True else ended
        except EventTooLarge as exc:
            return BadResponse(
                f"the stream sent an event larger than {human_size(exc.limit)} (the most one image may take); it was not read further",
                "raise --max-answer if the images are really that large; otherwise the API's stream is broken",
                code="event_too_large",
            )
        decoder.flush()
        if decoder.pending:
            # Complete lines missing only the blank line after them: a sloppy end, not a cut,
            # as long as their data is whole (a [DONE], or JSON that parses).
            partial = decoder.partial
            if partial is not None and _whole(partial.data):
                ended = self._handle(partial)
                return None if ended in (None, True) else ended
            return _cut(f"it ended in the middle of an event ({decoder.pending_bytes} bytes of it had arrived)")
        return None

    def _handle(self, event: Event) -> ImgenError | bool | None:
        """None to go on; True when the stream says it is done; an error to stop with."""
        data = event.data.strip()
        if data == "[DONE]":
            return True
        try:
            payload = jsontext.loads(data)
        except ValueError:
            if event.event in IMAGE_EVENTS or event.event == "error":
                return BadResponse(
                    f"the stream sent a {event.event} event that is not valid JSON ({_snippet(data.encode())!r})",
                    "retry; if it persists, try without --stream",
                    code="bad_event",
                )
            return None  # a keep-alive or some event of no interest
        if not isinstance(payload, dict):
            return None
        self.events += 1
        kind = str(payload.get("type") or event.event)
        if payload.get("error") or kind == "error" or event.event == "error":
            return event_error(payload, "the API reported an error during the stream", request_id=self.request_id, read=self.read_fault)
        if kind.endswith("partial_image"):
            self._partial(payload)
        elif kind.endswith(".completed") or kind == "completed":
            self._completed(payload)
        return None

    # --- partials and finals -------------------------------------------------------------------

    def _partial(self, payload: dict[str, Any]) -> None:
        index = len(self.items)
        if index >= self.most or len(self.partials.get(index, ())) >= (self.partials_wanted or MAX_PARTIALS):
            self.surplus["partials"] += 1  # an endless run of previews fills no disk
            return
        mine = self.partials.setdefault(index, [])
        api_index = payload.get("partial_image_index")
        number = api_index + 1 if isinstance(api_index, int) and api_index >= 0 else len(mine) + 1
        b64 = payload.get("b64_json") if isinstance(payload.get("b64_json"), str) else ""
        record: dict[str, Any] = {"partial": number, "bytes": _b64_size(b64)}
        update = Update(
            "partial", index + 1, self.n, record["bytes"], partial=number, partials=self.partials_wanted,
            meta={k: payload[k] for k in EVENT_META if k in payload},
        )
        if self.pixels and b64:
            try:
                update.data = b"".join(iter_b64(b64))
            except BadResponse:
                pass  # an undecodable partial is previewed as nothing; saving it reports the error
        if self.plan.save_partials and not self.plan.target.stdout:
            try:
                if not b64:
                    raise BadResponse(f"partial {number} of image {index + 1} carries no image data", "nothing to save")
                ext = imagetype.EXTENSIONS.get(str(payload.get("output_format")), "png")
                stem = self._stem(index, ext)
                saved = self._write(
                    b64, lambda ext: f"{stem}.partial-{number}.{ext}", f"partial {number} of image {index + 1}"
                )
            except ImgenError as exc:  # a preview that cannot be saved does not end the stream
                update.error = exc
            else:
                record.update(path=str(saved.path), sha256=saved.sha256, bytes=saved.bytes)
                update.path, update.saved, update.bytes = saved.path, saved, saved.bytes
        mine.append(record)
        self._tell(update)

    def _completed(self, payload: dict[str, Any]) -> None:
        index = len(self.items)
        if index >= self.most:
            self.surplus["images"] += 1
            return
        b64 = payload.get("b64_json") if isinstance(payload.get("b64_json"), str) and payload.get("b64_json") else None
        usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else None
        item = ImageResult(index, b64_json=b64, size=payload.get("size") if isinstance(payload.get("size"), str) else None)
        if b64 is None:
            item.error_code, item.error_message = "no_image", "the completed event carries no image data"
        if usage is not None:
            item.extra["usage"] = usage
            self.usage = _add_usage(self.usage, usage)
        if self.partials.get(index):
            item.extra["partials"] = self.partials[index]
        if self.created is None and isinstance(payload.get("created_at"), int):
            self.created = payload["created_at"]
        self.meta.update({k: payload[k] for k in EVENT_META if k in payload})
        self.items.append(item)
        meta = {k: payload[k] for k in EVENT_META if k in payload}
        if usage is not None:
            meta["usage"] = usage
        update = Update("completed", index + 1, self.n, _b64_size(b64 or ""), meta=meta)
        if item.failed:
            update.error = item_error(item)
            self.failed.append(Failed(item, update.error))
        else:
            keeper = Keeper(self.plan, item, self.note, request_id=self.request_id)
            try:
                saved = self._write(b64 or "", self._final_name(index), f"image {index + 1}", keeper.finish)
                keeper.after(saved.path if not self.plan.target.stdout else None)
            except ImgenError as exc:
                update.error = exc
                self.failed.append(Failed(item, exc))
            else:
                self.saved.append(Saved(item, saved))
                update.bytes, update.saved = saved.bytes, saved
                update.path = saved.path if not self.plan.target.stdout else None
        item.b64_json = None  # saved or not, n images of tens of MiB need not stay in memory
        self._tell(update)

    def _tell(self, update: Update) -> None:
        if self.on_update is not None:
            self.on_update(update)

    def _write(self, b64: str, name_for: Callable[[str], str], source: str, finish: Any = None) -> SavedImage:
        with ImageWriter(self.directory, max_bytes=self.plan.max_bytes, source=source, session=self.session) as writer:
            writer.finish = finish  # a final image's provenance; partials carry none
            write_all(writer, iter_b64(b64))
            return writer.commit(name_for, overwrite=self.plan.overwrite)

    def _template_name(self, index: int) -> Callable[[str], str]:
        return name_for(self.plan, index, self.now)

    def _stem(self, index: int, ext: str) -> str:
        if index not in self.stems:
            with self.session.lock:
                taken = {p.name for p in self.session.claimed} | {f"{stem}.{ext}" for stem in self.stems.values()}
            name = names.unique_path(self.directory, self._template_name(index)(ext), taken=taken, overwrite=self.plan.overwrite).name
            self.stems[index] = name[: -len(ext) - 1] if name.lower().endswith("." + ext) else name
        return self.stems[index]

    def _final_name(self, index: int) -> Callable[[str], str]:
        if index in self.stems:
            stem = self.stems[index]
            return lambda ext: f"{stem}.{ext}"
        return self._template_name(index)

    # --- the end -----------------------------------------------------------------------------

    def _outcome(self, stopped: ImgenError | None) -> Outcome:
        if self.surplus["images"] or self.surplus["partials"]:
            said = [f"{count} {what}" for what, count in (("completed images", self.surplus["images"]), ("partial images", self.surplus["partials"])) if count]
            self.warn(f"the stream sent more than was asked for; ignored {' and '.join(said)}")
            self.meta["surplus"] = dict(self.surplus)
        missing = range(len(self.items), self.n)
        if missing and stopped is None:
            got = len(self.items)
            stopped = _cut(
                f"it ended after {got} of {self.n} images" if got else "it ended before any image was completed",
                code="stream_incomplete",
            )
        for index in missing:
            arrived = len(self.partials.get(index, []))
            item = ImageResult(index, error_code=stopped.code or "stream_cut", error_message=stopped.message)
            if self.partials.get(index):
                item.extra["partials"] = self.partials[index]
            self.failed.append(Failed(item, self._missing_error(stopped, index, arrived)))
        response = GenerationResponse(
            items=[*self.items, *(f.item for f in self.failed if f.item.index >= len(self.items))],
            created=self.created,
            usage=self.usage,
            request_id=self.request_id,
            meta={**self.meta, "stream": {"completed": len(self.items), "partial_images": sum(map(len, self.partials.values()))}},
        )
        outcome = Outcome(plan=self.plan, response=response, saved=self.saved, failed=self.failed)
        outcome.failed.sort(key=lambda f: f.item.index)
        if self.plan.target.stdout:
            to_stdout(outcome)
        return outcome

    def _missing_error(self, stopped: ImgenError, index: int, arrived: int) -> ImgenError:
        saved = sum(1 for p in self.partials.get(index, []) if p.get("path"))
        count = f"{arrived} partial image{'' if arrived == 1 else 's'} of it arrived" if arrived else "no partial image of it arrived"
        if saved:
            count += f" ({saved} saved)"
        which = "the image" if self.n == 1 else f"image {index + 1} of {self.n}"
        hint = stopped.hint or "retry"
        if self.saved:
            hint += "; the completed images were kept"
        error = type(stopped)(
            f"{stopped.message}; {which} was not completed: {count}",
            hint,
            code=stopped.code,
            status=stopped.status,
            request_id=stopped.request_id or self.request_id,
        )
        error.__cause__ = stopped.__cause__
        return error

    def _json_answer(self, body: bytes, status: int, content_type: str, request_id: str | None) -> GenerationResponse:
        from ..transport.http import json_body

        payload = json_body(body, what=f"the API answered the stream request {status} with a body that", content_type=content_type)
        dialect = self.plan.module
        if not self.read_fault(payload).empty:
            raise event_error(payload, f"the API answered {status}", status=status, request_id=request_id, read=self.read_fault)
        parsed = dialect.parse(payload)
        parsed.request_id = parsed.request_id or request_id
        return parsed



# --- small helpers ----------------------------------------------------------------------------


def _first_bytes(it: Iterator[bytes]) -> bytes:
    """Read until something other than blanks (or a BOM) has arrived, or the body ends."""
    head = b""
    for chunk in it:
        head += chunk
        if head.removeprefix(_BOM).lstrip() and (len(head) >= len(_BOM) or not _BOM.startswith(head)):
            break
    return head


def _chain(head: bytes, it: Iterator[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    yield from it


def _whole(data: str) -> bool:
    text = data.strip()
    if text == "[DONE]":
        return True
    try:
        return isinstance(jsontext.loads(text), dict)
    except ValueError:
        return False


def _cut(reason: str, exc: BaseException | None = None, *, code: str = "stream_cut", hint: str | None = None) -> BadResponse:
    error = BadResponse(
        f"the stream was cut short: {reason}",
        hint or "retry; nothing of an unfinished image was kept under a final name",
        code=code,
    )
    error.__cause__ = exc
    return error


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _snippet(data: bytes) -> str:
    return data.removeprefix(_BOM).strip()[:60].decode("utf-8", "replace")


def _b64_size(text: str) -> int:
    """Decoded size of base64 text, without decoding it."""
    text = text.strip()
    if text.startswith("data:") and "," in text[:100]:
        text = text.split(",", 1)[1]
    return max(0, len(text) * 3 // 4 - len(text) + len(text.rstrip("=")))


def _add_usage(total: dict[str, Any] | None, more: dict[str, Any]) -> dict[str, Any]:
    """Token counts summed over the completed events, nested details included."""
    if total is None:
        return json.loads(json.dumps(more))
    out = dict(total)
    for key, value in more.items():
        if isinstance(value, bool) or key not in out:
            out.setdefault(key, value)
        elif isinstance(value, (int, float)) and isinstance(out[key], (int, float)):
            out[key] = out[key] + value
        elif isinstance(value, dict) and isinstance(out[key], dict):
            out[key] = _add_usage(out[key], value)
    return out
