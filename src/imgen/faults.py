"""The one place that turns what an API said went wrong into an ImgenError.

Every path that meets an API error comes here: an HTTP error status (`transport.http.send`, the
downloads), an error inside a 200 body (the envelope gateway's `code`, a Midjourney `code`), an
`error` event in a stream, and an image item that failed. A dialect only says where its body
keeps the message and the code (a `read_fault` function returning a Fault); what kind of failure
that is, what exit code it gets, whether a retry can help and what to tell the user is decided
here, the same way for every API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from .errors import AuthError, BadResponse, ImgenError, RateLimited, RequestRejected, ServerError

# Worth another try when the HTTP status says so: nothing was done, or the service was busy.
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})

AUTH_HINT = "check the API key (imgen config show) and that it is valid for this base URL"
QUOTA_HINT = "the account is out of quota: add credit or use another key; retrying will not help"
MODERATION_HINT = "the prompt was refused by moderation: rephrase it"


@dataclass(frozen=True)
class Fault:
    """What an error body says, wherever the API keeps it."""

    message: str | None = None
    code: str | None = None
    type: str | None = None
    param: str | None = None
    status: int | None = None  # an HTTP-like status the body itself states (the envelope's code 429)
    retry_after: float | None = None  # seconds the body asks a retry to wait (Google's RetryInfo)

    @property
    def empty(self) -> bool:
        return self.message is None and self.code is None


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def read_fault(body: Any) -> Fault:
    """The error of any body shape imgen has met: OpenAI's and CometAPI's `{"error": {...}}`
    (Google's adds `status`), the envelope's `{"code", "message"}` with a code other than 0,
    midjourney-proxy's `{"code", "description"}`, FastAPI's `{"detail": [{"msg"}]}` and
    `{"Message", "Code"}`. An empty Fault when the body names no error."""
    if not isinstance(body, dict):
        return Fault()
    err = body.get("error")
    if isinstance(err, dict):
        code = err.get("code")
        status = code if isinstance(code, int) and 100 <= code < 600 else None
        # Google's {"code": 400, "status": "INVALID_ARGUMENT"}: the status word is the code.
        word = err.get("status") if status is not None and isinstance(err.get("status"), str) else None
        return Fault(
            _text(err.get("message")),
            _text(word or code or err.get("type")),
            _text(err.get("type")),
            _text(err.get("param")),
            status,
            _retry_delay(err.get("details")),
        )
    if isinstance(err, str) and err:
        return Fault(err, _text(body.get("code")))
    if isinstance(body.get("Message"), str):
        return Fault(body["Message"], _text(body.get("Code")))
    code = body.get("code")
    if code not in (None, 0, "0"):
        message = body.get("message") if isinstance(body.get("message"), str) else body.get("description")
        if isinstance(message, str):
            status = code if isinstance(code, int) and 100 <= code < 600 else None
            return Fault(message.strip() or None, str(code), _text(body.get("type")), status=status)
    detail = body.get("detail")
    if isinstance(detail, list) and detail and all(isinstance(d, dict) for d in detail):
        first = detail[0]
        where = first.get("loc")
        param = str(where[-1]) if isinstance(where, list) and where else None
        return Fault("; ".join(str(d.get("msg", "")) for d in detail[:3]), _text(first.get("type")), param=param)
    if isinstance(detail, str) and detail:
        return Fault(detail)
    return Fault()


def _retry_delay(details: Any) -> float | None:
    """Google's `{"@type": ".../google.rpc.RetryInfo", "retryDelay": "1.5s"}`, in seconds."""
    for detail in details if isinstance(details, list) else ():
        delay = detail.get("retryDelay") if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo") else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                seconds = float(delay[:-1])
            except ValueError:
                return None
            return seconds if 0 <= seconds < float("inf") else None
    return None


def classify(
    fault: Fault,
    *,
    status: int | None = None,
    what: str = "the API",
    request_id: str | None = None,
    location: str | None = None,
    content_type: str = "",
    origin: str | None = None,
) -> ImgenError:
    """The ImgenError for `fault`. With an HTTP error `status` the text says "WHAT answered
    STATUS: ..."; without one (the error came inside a successful answer) "WHAT: ...".
    The result's `retryable` says whether sending the same request again can succeed."""
    answered = status is not None and status >= 300
    effective = status if answered else fault.status
    code, param = fault.code, fault.param
    if answered:
        message = fault.message or f"HTTP {status} with {'an HTML page' if 'html' in content_type else 'no error details'}"
        detail = f"{what} answered {status}: {message}"
    else:
        detail = f"{what}: {fault.message or 'no details given'}"
    if code:
        detail += f" (code {code})"
    kw: dict[str, Any] = {"code": code, "status": status, "request_id": request_id}
    key = f"{code or ''} {fault.type or ''}".lower()
    retryable = answered and status in RETRY_STATUSES

    if answered and 300 <= status < 400:
        # The API is never followed across a redirect (the key would go along). Its target is
        # offered to copy only when it is the same API moved (same host, or its https form).
        base = moved_to(location, origin)
        if base:
            hint = f"the API moved: use --base-url {base}"
        elif location:
            hint = "the API redirected to another host or scheme; imgen does not follow it: check the base URL (--base-url)"
        else:
            hint = "check the base URL (--base-url)"
        error: ImgenError = RequestRejected(f"{what} answered {status}: a redirect" + (f" to {base}" if base else ""), hint, **kw)
    elif effective in (401, 403) or "invalid_api_key" in key or "authentication" in key:
        error = AuthError(detail, AUTH_HINT, **kw)
    elif "insufficient_quota" in key:
        error, retryable = RateLimited(detail, QUOTA_HINT, **kw), False
    elif effective == 429 or "rate_limit" in key or "resource_exhausted" in key:
        hint = "slow down or retry later (--retries raises the retry budget)" if answered else "slow down or retry later"
        error = RateLimited(detail, hint, **kw)
    elif "moderation" in key:
        error = RequestRejected(detail, MODERATION_HINT, **kw)
    elif effective is not None and effective >= 500:
        hint = "the service is having trouble: retry later"
        error = ServerError(detail, hint, **kw)
    elif effective == 404:
        error = RequestRejected(detail, "check the base URL (--base-url) and the model id (--model)", **kw)
    elif effective == 413:
        error = RequestRejected(detail, "send smaller reference images", **kw)
    elif effective is None and not ("invalid_request" in key or "user_error" in key or param):
        # An error inside an answer that says nothing of its kind: the service failed at its end.
        error = ServerError(detail, "the service failed while generating: retry later", **kw)
    else:
        hint = f"change {param} and try again" if param else "change the request (prompt, size, options) and try again"
        error = RequestRejected(detail, hint, **kw)
    error.retryable = retryable
    error.retry_after = fault.retry_after
    return error


def moved_to(location: str | None, origin: str | None) -> str | None:
    """The base URL a redirect from `origin` points at, if it is one worth suggesting: http(s), the
    same host, never from https down to http, nothing hidden in it (user info, control characters)."""
    if not location or not origin or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in location):
        return None
    try:
        target, source = urlsplit(urljoin(origin, location)), urlsplit(origin)
        same_host = bool(target.hostname) and target.hostname == source.hostname
        target.port  # noqa: B018 - a port out of range raises here
    except ValueError:
        return None
    if target.scheme not in ("http", "https") or not same_host or target.username or target.password:
        return None
    if source.scheme == "https" and target.scheme != "https":
        return None
    absolute = target.geturl()
    return absolute.split("/v1/", 1)[0].split("/api/", 1)[0].split("/v1beta/", 1)[0].rstrip("/") or None


def item_error(code: str | None, message: str | None, index: int) -> ImgenError:
    """One failed image of an answer that otherwise succeeded."""
    text = f"image {index + 1} failed: {message} (code {code})"
    if code in ("no_image", "bad_item", "invalid_base64", "too_large"):
        return BadResponse(text, "the API answered with an unusable item; retry", code=code)
    if code and "moderation" in code.lower():
        return RequestRejected(text, MODERATION_HINT, code=code)
    return RequestRejected(text, "change the prompt or options for this image and try again", code=code)
