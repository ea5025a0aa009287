"""HTTP: client factories, the retry policy, and sending with retries.

What an error status means is decided by faults.classify, from the body as the dialect reads it;
this module decides only when to send again.

Two clients, never one: the API client carries the key; the download client has no auth at
all, so a signed link (or a redirect from it) can never receive the key.
"""

from __future__ import annotations

import email.utils
import functools
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from .. import __version__, jsontext
from ..errors import BadResponse, ImgenError, NetworkError, RequestRejected
from ..faults import Fault, classify, read_fault
from . import answer, upload

USER_AGENT = f"imgen/{__version__}"
MAX_RETRY_AFTER = 60.0


@functools.lru_cache(maxsize=1)
def _tls() -> object:
    # One context for both clients, so the CA bundle (~20 ms) is read at most once, and only when
    # an https connection is made.
    from .tls import client_context

    return client_context()


def api_client(base_url: str, api_key: str | None, timeout: float) -> httpx.Client:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json", "Accept-Encoding": answer.ACCEPT_ENCODING}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    # Own transports (the proxies' too, which httpx would otherwise build from the environment) so
    # that each read is bounded by the call's deadline, not only by the wait between bytes.
    transport = _with_backend(httpx.HTTPTransport(trust_env=True, verify=_tls()), answer.timed_backend)
    mounts = {
        pattern: None if proxy is None else _with_backend(httpx.HTTPTransport(proxy=proxy, verify=_tls()), answer.timed_backend)
        for pattern, proxy in environment_proxies().items()
    }
    return httpx.Client(
        base_url=base_url,
        headers=headers,
        # Generation takes tens of seconds, sometimes minutes: the read timeout is the long one.
        timeout=httpx.Timeout(timeout, connect=min(15.0, timeout)),
        follow_redirects=False,
        trust_env=True,
        transport=transport,
        mounts=mounts,
    )


def _with_backend(transport: httpx.HTTPTransport, wrap: Callable[[Any], Any]) -> httpx.HTTPTransport:
    """The transport with its connection pool's network backend wrapped. httpx does not expose the
    backend; where it cannot be reached, the checks above it (per-read timeouts, per-URL policy) remain."""
    pool = getattr(transport, "_pool", None)
    if pool is not None and hasattr(pool, "_network_backend"):
        pool._network_backend = wrap(pool._network_backend)
    return transport


def download_client(timeout: float) -> httpx.Client:
    """A client for result URLs: no key, no redirects followed by httpx, and new connections
    checked against the URL policy that download.fetch makes active for its thread."""
    from . import rawbody, urlpolicy

    # The split goes outermost: it must see the bytes h11 sees, after TLS (rawbody explains why).
    guarded = lambda inner: rawbody.split_backend(urlpolicy.guarded_backend(inner))  # noqa: E731
    transport = _with_backend(httpx.HTTPTransport(trust_env=True, verify=_tls()), guarded)
    # httpx reads the proxy variables only when it builds the transport itself, so the proxy
    # routes are mounted here: behind a mandatory proxy the (paid) API call would otherwise
    # succeed and every download fail. The proxied transports go unguarded, as the address they
    # connect to is the proxy's, often a private one; download.fetch still checks every URL.
    mounts = {
        pattern: None if proxy is None else httpx.HTTPTransport(proxy=proxy, verify=_tls())
        for pattern, proxy in environment_proxies().items()
    }
    return httpx.Client(
        # identity: Content-Length must describe the bytes we count, and no decompression bombs.
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        timeout=httpx.Timeout(min(timeout, 60.0), connect=min(15.0, timeout)),
        follow_redirects=False,
        trust_env=True,
        transport=transport,
        mounts=mounts,
    )


def environment_proxies() -> dict[str, str | None]:
    """httpx mount patterns for the proxy variables, read as httpx reads them for the API client
    (a None route means "no proxy": NO_PROXY's hosts)."""
    import ipaddress
    import urllib.request

    found = urllib.request.getproxies()
    routes: dict[str, str | None] = {}
    for scheme in ("http", "https", "all"):
        if found.get(scheme):
            proxy = found[scheme]
            routes[f"{scheme}://"] = proxy if "://" in proxy else f"http://{proxy}"
    for host in (h.strip() for h in found.get("no", "").split(",")):
        if host == "*":
            return {}
        if not host:
            continue
        if "://" in host:
            routes[host] = None
            continue
        try:
            ip = ipaddress.ip_address(host.split("/")[0])  # a network (10.0.0.0/8) is kept whole
        except ValueError:
            ip = None
        if ip is not None:
            routes[f"all://[{host}]" if ip.version == 6 else f"all://{host}"] = None
        elif host.lower() == "localhost":
            routes[f"all://{host}"] = None
        else:
            # curl's rule: "example.com" covers it and its subdomains, ".example.com" only the latter.
            routes[f"all://*{host}"] = None
    return routes


def parse_retry_after(headers: httpx.Headers | dict) -> float | None:
    """Seconds to wait, from `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class RetryPolicy:
    retries: int = 2
    base: float = 0.5
    cap: float = 20.0
    sleep: Callable[[float], None] = time.sleep
    # Shared by every job of a batch so one 429 slows them all, not only the one that got it.
    pause_until: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)
        backoff = min(self.cap, self.base * (2**attempt))
        return backoff * (0.5 + random.random() / 2)  # jitter: spread simultaneous retries apart

    def hold(self, seconds: float) -> None:
        with self.lock:
            self.pause_until = max(self.pause_until, time.monotonic() + seconds)

    def wait_turn(self) -> None:
        while True:
            with self.lock:
                remaining = self.pause_until - time.monotonic()
            if remaining <= 0:
                return
            self.sleep(remaining)


def _body_json(response: httpx.Response) -> object:
    try:
        return jsontext.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None


API_HINT = "check the base URL points at an image API; retry later if it is a proxy error page"


def json_body(body: bytes, *, what: str, content_type: str | None, hint: str = API_HINT) -> object:
    """Parse a JSON answer, or say plainly what came instead (the first bytes, the type)."""
    try:
        return jsontext.loads(body)
    except jsontext.TooDeep as exc:
        raise BadResponse(f"{what} is JSON that {exc}", "the API's answer is malformed; retry, or report it to the provider") from None
    except (ValueError, UnicodeDecodeError):
        snippet = body.removeprefix(b"\xef\xbb\xbf").strip()[:60].decode("utf-8", "replace")
        raise BadResponse(f"{what} is not JSON ({content_type or 'no content type'}: {snippet!r})", hint) from None


def error_for_status(
    response: httpx.Response, *, what: str = "the API", read: Callable[[object], Fault] = read_fault
) -> ImgenError:
    """The classified error of a response with an error status; `read` is the dialect's reader."""
    return classify(
        read(_body_json(response)),
        status=response.status_code,
        what=what,
        request_id=response.headers.get("x-request-id"),
        location=response.headers.get("location"),
        content_type=response.headers.get("content-type", ""),
        origin=_origin(response),
    )


def _origin(response: httpx.Response) -> str | None:
    try:
        return str(response.request.url)
    except RuntimeError:  # a response built without its request
        return None


def _host(exc: httpx.HTTPError) -> str | None:
    try:
        return exc.request.url.host or None
    except (RuntimeError, AttributeError):
        return None


def network_error(exc: httpx.HTTPError, target: str) -> ImgenError:
    """The message for a transport failure; the host is named, never the path or query (a
    signed link's query is a credential)."""
    host = _host(exc)
    where = f"{target} ({host})" if host else target
    api = target == "the API"
    if api and isinstance(exc, httpx.TimeoutException) and answer.past_deadline():
        return answer.overdue()
    if isinstance(exc, httpx.ConnectTimeout):
        return NetworkError(f"timed out connecting to {where}", "check the network and the base URL, or raise --timeout")
    if isinstance(exc, httpx.ReadTimeout):
        if api:
            return NetworkError(
                f"{where} did not answer in time",
                "raise --timeout; the request may still have been billed, so check before retrying",
            )
        return NetworkError(f"{where} stopped sending in time", "raise --timeout, or retry when the network is faster")
    if isinstance(exc, httpx.TimeoutException):
        return NetworkError(f"timed out talking to {where}", "raise --timeout or retry later")
    if isinstance(exc, httpx.ConnectError):
        text = str(exc)
        if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text or "No address associated" in text:
            hint = "check the base URL's host name and DNS" if api else "check DNS; the API handed out a link to a host that does not resolve"
            return NetworkError(f"could not resolve {host} ({target})" if host else f"could not resolve the host of {target}", hint)
        if "refused" in text.lower():
            hint = "check the base URL and that the service is running" if api else "the download host is not accepting connections; retry later"
            return NetworkError(f"{where} refused the connection", hint)
        return NetworkError(f"could not connect to {where}: {text or type(exc).__name__}", "check the base URL and the network")
    if isinstance(exc, httpx.TooManyRedirects):
        return BadResponse(f"too many redirects from {where}", "the link redirects in a loop")
    if isinstance(exc, (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError)):
        return NetworkError(f"{where} dropped the connection ({exc or type(exc).__name__})", "retry later")
    return NetworkError(f"connection to {where} failed: {exc or type(exc).__name__}", "retry later")


# Nothing came back: connect failures, and connections dropped before an answer (a reset).
RETRYABLE_EXCEPTIONS = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
    httpx.PoolTimeout,
)
# Of those, the ones raised before a byte of the request left: safe to repeat even when billed.
NOT_SENT_EXCEPTIONS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def _read_into(response: httpx.Response, read: Callable[[], bytes]) -> None:
    """The body, read within bounds, as response.content (httpx keeps what read() returned
    there; the same attribute, set by us, so .content and .json() work as usual)."""
    try:
        response._content = read()
    finally:
        response.close()


def read_error_body(response: httpx.Response) -> None:
    """An error answer's first bytes, as response.content: error_for_status reads them there."""
    _read_into(response, lambda: answer.read_error_body(response))


def send(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    json_body: dict | None = None,
    stream: bool = False,
    policy: RetryPolicy,
    on_retry: Callable[[str], None] | None = None,
    target: str = "the API",
    read: Callable[[object], Fault] = read_fault,
    billed: bool = False,
    files: Sequence[Any] = (),
    on_upload: Callable[[int, int], None] | None = None,
    max_answer: int = answer.DEFAULT_MAX_ANSWER,
) -> httpx.Response:
    """Send with retries; return a successful response (streamed responses are left open).

    Retried: connect errors (nothing was sent), dropped connections before an answer, and the
    statuses faults.classify calls retryable (408/409/429/5xx, but not insufficient_quota).
    `billed` (a task submit, paid on arrival): a connection dropped after sending may have
    created the task, so it is reported, never sent again.
    `files` (dialects.FilePart) make it multipart/form-data, `json_body` its text fields; they
    stream from disk, and `on_upload(sent, total)` follows them.
    Bodies are read by answer.chunks, never by httpx: a successful one (unless `stream`) up to
    `max_answer` decoded bytes, an error's up to answer.ERROR_BODY_LIMIT.
    """
    with upload.open_parts(files, on_upload) as parts:
        attempt = 0
        while True:
            policy.wait_turn()
            try:
                if parts:
                    request = client.build_request(method, url, data=json_body, files=parts)
                else:
                    request = client.build_request(method, url, json=json_body)
                response = client.send(request, stream=True)
                if response.status_code < 300 and not stream:
                    _read_into(response, lambda: answer.read(response, max_answer))
            except RETRYABLE_EXCEPTIONS as exc:
                if attempt >= policy.retries or (billed and not isinstance(exc, NOT_SENT_EXCEPTIONS)):
                    raise network_error(exc, target) from exc
                delay = policy.delay(attempt, None)
                if on_retry:
                    on_retry(f"{network_error(exc, target).message}; retrying in {delay:.1f}s")
            except httpx.HTTPError as exc:
                raise network_error(exc, target) from exc
            except httpx.InvalidURL:
                # httpx reads a redirect's Location even when not following it, and refuses a malformed one.
                raise RequestRejected(f"{target} answered with a redirect to a malformed location",
                                      "the API redirected; imgen does not follow it: check the base URL (--base-url)") from None
            else:
                if response.status_code < 300:
                    return response
                try:
                    read_error_body(response)
                except httpx.HTTPError as exc:
                    raise network_error(exc, target) from exc
                error = error_for_status(response, what=target, read=read)
                if not error.retryable or attempt >= policy.retries:
                    raise error
                retry_after = parse_retry_after(response.headers)
                delay = policy.delay(attempt, error.retry_after if retry_after is None else retry_after)
                if on_retry:
                    on_retry(f"{target} answered {response.status_code}; retrying in {delay:.1f}s")
                if response.status_code == 429:
                    policy.hold(delay)  # wait_turn() sleeps it off, for every job sharing the policy
                    delay = 0.0
            if delay:
                policy.sleep(delay)
            attempt += 1
