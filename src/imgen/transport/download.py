"""Fetching a result URL into an ImageWriter: the URL string exactly as received, no key sent.

Signed object-storage links break if a single byte changes, so the URL is handed to httpx as
the string it arrived as (never rebuilt through `params=`). Redirects are followed by hand so
every hop is checked against the URL policy; the download client checks the addresses each new
connection goes to against the same policy (see urlpolicy.guarded_backend).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from urllib.parse import urljoin, urlsplit

import httpx

from ..errors import DownloadError, ImgenError, NetworkError
from ..files.writer import ImageWriter, IncompleteImage
from ..results import SavedImage
from . import rawbody, urlpolicy
from .http import RetryPolicy, error_for_status, network_error, parse_retry_after, read_error_body

MAX_REDIRECTS = 5
PROGRESS_EVERY = 0.05  # seconds between progress updates: a display needs no more, a 64 KiB chunk no fewer


def fetch(
    client: httpx.Client,
    url: str,
    make_writer: Callable[[], ImageWriter],
    name_for: Callable[[str], str],
    *,
    policy: RetryPolicy,
    url_policy: urlpolicy.UrlPolicy,
    deadline: float | None = None,
    overwrite: bool = False,
    on_progress: Callable[[int, int | None], None] | None = None,
    on_retry: Callable[[str], None] | None = None,
) -> SavedImage:
    """Download url and commit it; retried on dropped connections, cut bodies and 5xx/429,
    never past the deadline."""
    attempt = 0
    while True:
        try:
            with make_writer() as writer, urlpolicy.active(url_policy):
                expected = _stream_into(client, url, writer, url_policy, deadline, on_progress)
                try:
                    return writer.commit(name_for, overwrite=overwrite, expected_length=expected)
                except IncompleteImage as exc:
                    # Without a Content-Length a cut looks like a clean end: only the image's
                    # own structure tells, and then it is as retryable as any other cut.
                    raise _Retryable(exc) from None
        except _Retryable as exc:
            if attempt >= policy.retries:
                raise exc.error from None
            delay = policy.delay(attempt, exc.retry_after)
            if deadline is not None and time.monotonic() + delay >= deadline:
                raise exc.error from None  # no time left for another try
            if on_retry:
                on_retry(f"{exc.error.message}; retrying the download in {delay:.1f}s")
            policy.sleep(delay)
            attempt += 1


class _Retryable(Exception):
    def __init__(self, error: ImgenError, retry_after: float | None = None) -> None:
        self.error = error
        self.retry_after = retry_after


def _too_slow(writer: ImageWriter, expected: int | None) -> NetworkError:
    got = f"{writer.size} of {expected} bytes" if expected is not None else f"{writer.size} bytes"
    return NetworkError(
        f"{writer.source} did not finish downloading in the time --timeout allows (got {got}); nothing was saved",
        "raise --timeout, or retry when the network is faster",
    )


def _request_timeout(client: httpx.Client, deadline: float | None) -> httpx.Timeout:
    """The client's timeouts, shortened so that no single wait outlives the overall deadline."""
    base = client.timeout
    if deadline is None:
        return base
    left = max(0.01, deadline - time.monotonic())
    cap = lambda value: left if value is None else min(value, left)  # noqa: E731
    return httpx.Timeout(connect=cap(base.connect), read=cap(base.read), write=cap(base.write), pool=cap(base.pool))


def _stream_into(
    client: httpx.Client,
    url: str,
    writer: ImageWriter,
    url_policy: urlpolicy.UrlPolicy,
    deadline: float | None,
    on_progress: Callable[[int, int | None], None] | None,
) -> int | None:
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        url_policy.check(current)
        if _proxied(client, current):
            url_policy.check_name(urlsplit(current).hostname or "")
        if deadline is not None and time.monotonic() >= deadline:
            raise _too_slow(writer, None)
        try:
            request = client.build_request("GET", current, timeout=_request_timeout(client, deadline))
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError) as exc:
            raise DownloadError(
                f"refusing to download from a malformed URL: {exc}",
                "the API sent a link no client can use; retry, or report it to the provider",
            ) from None
        try:
            response = client.send(request, stream=True)
            try:
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise DownloadError("the download redirected without a Location", "retry later")
                    current = urljoin(current, location)
                    continue
                if response.status_code != 200:
                    read_error_body(response)
                    _raise_status(response)
                expected = _content_length(response)
                writer.expect(expected)
                raw = rawbody.reader(response, timeout=request.extensions["timeout"].get("read"), deadline=deadline)
                _drain(raw.pieces() if raw is not None else response.iter_raw(), writer, expected, deadline, on_progress)
                if expected is not None and writer.size != expected:
                    raise _Retryable(
                        DownloadError(
                            f"{writer.source} was cut short: got {writer.size} of {expected} bytes", "retry later"
                        )
                    )
                return expected
            finally:
                response.close()
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError, httpx.WriteError) as exc:
            if writer.size:
                raise _Retryable(DownloadError(f"{writer.source} was cut short after {writer.size} bytes ({exc})", "retry later")) from exc
            raise _Retryable(network_error(exc, "the download host")) from exc
        except httpx.TimeoutException as exc:
            if deadline is not None and time.monotonic() >= deadline - 0.05:
                raise _too_slow(writer, None) from exc
            raise _Retryable(network_error(exc, "the download host")) from exc
        except httpx.HTTPError as exc:
            raise network_error(exc, "the download host") from exc
    raise DownloadError(f"the download redirected more than {MAX_REDIRECTS} times", "the link redirects in a loop; generate again")


def _drain(pieces: Iterable[bytes | memoryview], writer: ImageWriter, expected: int | None, deadline: float | None,
           on_progress: Callable[[int, int | None], None] | None) -> None:
    shown = 0.0
    for piece in pieces:
        writer.write(piece)
        now = time.monotonic()
        if on_progress and now - shown >= PROGRESS_EVERY:
            on_progress(writer.size, expected)
            shown = now
        if deadline is not None and now > deadline:
            raise _too_slow(writer, expected)
    if on_progress:
        on_progress(writer.size, expected)


def _proxied(client: httpx.Client, url: str) -> bool:
    """Whether `url` goes through a proxy, where the connect-time address check cannot follow it."""
    try:
        return client._transport_for_url(httpx.URL(url)) is not client._transport
    except (AttributeError, httpx.InvalidURL, ValueError):  # a private method: if it ever goes, assume the worst
        return True


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _raise_status(response: httpx.Response) -> None:
    status = response.status_code
    if status in (401, 403):
        base = error_for_status(response, what="the download host")
        raise DownloadError(
            f"{base.message}: the signed link was altered or has expired",
            "generate again for a fresh link; signed links must be used exactly as received and expire (60 min to 24 h)",
            code=base.code,
            status=status,
        )
    err = error_for_status(response, what="the download host")
    if err.retryable:
        raise _Retryable(err, parse_retry_after(response.headers))
    raise DownloadError(err.message, "the link is not downloadable; generate again", code=err.code, status=status)
