"""Reading a synchronous answer: small bodies are read whole; in a large one each base64 image
is decoded into a temporary file as it arrives, so memory stays flat whatever the image size."""

from __future__ import annotations

from typing import Any

from ..errors import BadResponse, NetworkError
from ..files import b64split
from ..files.writer import ImageWriter
from ..results import GenerationResponse
from ..transport import answer
from ..units import human_size

SMALL_BODY = 4 * 1024 * 1024
MAX_TEXT = 16 * 1024 * 1024  # an answer without its base64 images: URLs, revised prompts, usage; a few KiB
B64_KEY = b64split.KEY


def read(response: Any, directory: Any, max_bytes: int, spools: list[ImageWriter], *, key: bytes = B64_KEY,
         max_answer: int = answer.DEFAULT_MAX_ANSWER) -> bytes:
    """The body, with its large base64 strings (the values of `key`) replaced by placeholders
    whose images went into `spools` (the caller aborts them if anything fails). Content-Length
    only chooses the way; the decoded bytes are what count against `max_answer`."""
    import httpx

    length = response.headers.get("content-length")
    try:
        if length is not None and length.isdigit() and int(length) <= SMALL_BODY and not response.headers.get("content-encoding"):
            return answer.read(response, max_answer)

        def spool(index: int) -> ImageWriter:
            writer = ImageWriter(directory, max_bytes=max_bytes, source=f"image {index + 1}")
            spools.append(writer)
            return writer

        body, streams = b64split.split(answer.chunks(response, max_answer), spool, key=key, max_text=min(max_answer, MAX_TEXT))
    except b64split.TextTooLarge as exc:
        raise BadResponse(f"the API's answer holds more than {human_size(exc.limit)} besides its images; it was not read further",
                          "the answer is malformed or hostile; retry, or report it to the provider") from None
    except httpx.HTTPError as exc:
        if isinstance(exc, httpx.TimeoutException) and answer.past_deadline():
            raise answer.overdue() from exc
        raise NetworkError(
            f"the connection dropped while reading the API's answer ({type(exc).__name__})",
            "retry; the request may already have been billed",
        ) from exc
    for writer, stream_ in zip(spools, streams):
        if stream_.error:
            writer.spool_error = stream_.error
    return body


def attach(parsed: GenerationResponse, spools: list[ImageWriter]) -> None:
    """Give each parsed image whose base64 was spooled its writer; abort the rest."""
    used: set[int] = set()
    for item in parsed.items:
        if item.b64_json and item.b64_json.startswith(b64split.PLACEHOLDER) and not item.failed:
            number = int(item.b64_json[len(b64split.PLACEHOLDER) :])
            writer = spools[number]
            item.b64_json = None
            if writer.spool_error:
                item.error_code, item.error_message = writer.spool_error
            else:
                item.spooled = writer
                used.add(number)
    for number, writer in enumerate(spools):
        if number not in used:  # failed, or a b64_json where no image item was: nothing to keep
            writer.abort()
