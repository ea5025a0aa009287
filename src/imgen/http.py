"""HTTP: client factories, the retry policy, and the one map from HTTP status to ImgenError.

Two clients, never one: the API client carries the key; the download client has no auth at
all, so a signed link (or a redirect from it) can never receive the key.
"""

from __future__ import annotations

import email.utils
import functools
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from . import __version__
from .errors import (
    AuthError,
    BadResponse,
    ImgenError,
    NetworkError,
    RateLimited,
    RequestRejected,
    ServerError,
)

USER_AGENT = f"imgen/{__version__}"
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0


@functools.lru_cache(maxsize=1)
def _tls() -> object:
    # Loading the CA bundle costs ~20 ms a context: build it once for both clients.
    return httpx.create_ssl_context(trust_env=True)


def api_client(base_url: str, api_key: str | None, timeout: float) -> httpx.Client:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return httpx.Client(
        base_url=base_url,
        headers=headers,
        # Generation takes tens of seconds, sometimes minutes: the read timeout is the long one.
        timeout=httpx.Timeout(timeout, connect=min(15.0, timeout)),
        follow_redirects=False,
        trust_env=True,
        verify=_tls(),
    )


def download_client(timeout: float) -> httpx.Client:
    """A client for result URLs: no key, no redirects followed by httpx, and new connections
    checked against the URL policy that download.fetch makes active for its thread."""
    from . import urlpolicy

    transport = httpx.HTTPTransport(trust_env=True, verify=_tls())
    pool = getattr(transport, "_pool", None)
    if pool is not None and hasattr(pool, "_network_backend"):
        # httpx does not expose the backend; without it the per-hop URL check still applies.
        pool._network_backend = urlpolicy.guarded_backend(pool._network_backend)
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


def api_error_fields(body: object) -> tuple[str | None, str | None, str | None]:
    """(message, code, param) from an OpenAI-style `{"error": {...}}` body, where present."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        msg, code, param = err.get("message"), err.get("code") or err.get("type"), err.get("param")
        return (str(msg) if msg else None, str(code) if code else None, str(param) if param else None)
    if isinstance(body, dict) and isinstance(body.get("Message"), str):
        return body["Message"], body.get("Code"), None
    if isinstance(body, dict) and isinstance(body.get("message"), str) and body.get("code") not in (None, 0):
        return body["message"], str(body["code"]), None  # the envelope gateway's shape
    return None, None, None


def _body_json(response: httpx.Response) -> object:
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None


API_HINT = "check the base URL points at an image API; retry later if it is a proxy error page"


def json_body(body: bytes, *, what: str, content_type: str | None, hint: str = API_HINT) -> object:
    """Parse a JSON answer, or say plainly what came instead (the first bytes, the type)."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        snippet = body.removeprefix(b"\xef\xbb\xbf").strip()[:60].decode("utf-8", "replace")
        raise BadResponse(f"{what} is not JSON ({content_type or 'no content type'}: {snippet!r})", hint) from None


def error_for_status(response: httpx.Response, *, what: str = "the API") -> ImgenError:
    status = response.status_code
    body = _body_json(response)
    message, code, param = api_error_fields(body)
    request_id = response.headers.get("x-request-id")
    if message is None:
        ctype = response.headers.get("content-type", "")
        kind = "an HTML page" if "html" in ctype else "no error details"
        message = f"HTTP {status} with {kind}"
    detail = f"{what} answered {status}: {message}" + (f" (code {code})" if code else "")
    kw = {"code": code, "status": status, "request_id": request_id}
    if status in (401, 403):
        return AuthError(detail, "check the API key (imgen config show) and that it is valid for this base URL", **kw)
    if status == 429:
        if code == "insufficient_quota":
            return RateLimited(detail, "the account is out of quota: add credit or use another key; retrying will not help", **kw)
        return RateLimited(detail, "slow down or retry later (--retries raises the retry budget)", **kw)
    if status >= 500:
        return ServerError(detail, "the service is having trouble: retry later", **kw)
    if status == 404:
        return RequestRejected(detail, "check the base URL (--base-url) and the model id (--model)", **kw)
    if 300 <= status < 400:
        # The API is never followed across a redirect (the key would go along): name the target.
        location = response.headers.get("location", "")
        base = location.split("/v1/", 1)[0].split("/api/", 1)[0] if location else ""
        hint = f"the API moved: use --base-url {base}" if base else "check the base URL (--base-url)"
        return RequestRejected(f"{what} answered {status}: a redirect" + (f" to {base}" if base else ""), hint, **kw)
    if code == "moderation_blocked":
        return RequestRejected(detail, "the prompt was refused by moderation: rephrase it", **kw)
    hint = f"change {param} and try again" if param else "change the request (prompt, size, options) and try again"
    if status == 413:
        hint = "send smaller reference images"
    return RequestRejected(detail, hint, **kw)


def should_retry(response: httpx.Response) -> bool:
    if response.status_code not in RETRY_STATUSES:
        return False
    if response.status_code == 429:
        _, code, _ = api_error_fields(_body_json(response))
        return code != "insufficient_quota"
    return True


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
) -> httpx.Response:
    """Send with retries; return a successful response (streamed responses are left open).

    Retried: connect errors and dropped connections (nothing was answered), 408/409/429/5xx.
    Never retried: other 4xx, and a 429 whose code is insufficient_quota.
    """
    attempt = 0
    while True:
        policy.wait_turn()
        try:
            request = client.build_request(method, url, json=json_body)
            response = client.send(request, stream=stream)
        except RETRYABLE_EXCEPTIONS as exc:
            if attempt >= policy.retries:
                raise network_error(exc, target) from exc
            delay = policy.delay(attempt, None)
            if on_retry:
                on_retry(f"{network_error(exc, target).message}; retrying in {delay:.1f}s")
        except httpx.HTTPError as exc:
            raise network_error(exc, target) from exc
        else:
            if response.status_code < 300:
                return response
            if stream:
                try:
                    response.read()
                except httpx.HTTPError as exc:
                    response.close()
                    raise network_error(exc, target) from exc
            response.close()
            if not should_retry(response) or attempt >= policy.retries:
                raise error_for_status(response, what=target)
            retry_after = parse_retry_after(response.headers)
            delay = policy.delay(attempt, retry_after)
            if on_retry:
                on_retry(f"{target} answered {response.status_code}; retrying in {delay:.1f}s")
            if response.status_code == 429:
                policy.hold(delay)  # wait_turn() sleeps it off, for every job sharing the policy
                delay = 0.0
        if delay:
            policy.sleep(delay)
        attempt += 1
