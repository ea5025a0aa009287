"""The remote model catalog: `GET {base}/api/models` (no key needed), every page, image models
only, cached per base URL.

The catalog is a convenience, so it degrades rather than fails: a stale cached copy beats an
error when the server is down. httpx is imported inside fetch(): listing the built-in table
must not pay for it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import jsontext
from ..errors import BadResponse, ImgenError, NetworkError, RateLimited, ServerError
from .catalogpath import cache_dir, cache_path, normalize

CACHE_TTL = 24 * 3600.0
PAGE_SIZE = 100
MAX_PAGES = 50  # 5000 models: far above today's ~300, low enough to stop a server that never ends
TIMEOUT = 15.0
CACHE_FORMAT = 1
OFFLINE_HINT = "imgen models (without --remote) lists the built-in table offline"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Pricing:
    currency: str | None = None
    input: float | None = None  # per million tokens, when priced by tokens
    output: float | None = None
    per_request: float | None = None
    per_second: float | None = None

    @classmethod
    def from_raw(cls, raw: Any) -> Pricing | None:
        if not isinstance(raw, Mapping):
            return None
        currency = raw.get("currency")
        price = cls(
            currency=currency if isinstance(currency, str) else None,
            **{k: _number(raw.get(k)) for k in ("input", "output", "per_request", "per_second")},
        )
        return price if price.known else None

    @property
    def known(self) -> bool:
        return any(v is not None for v in (self.input, self.output, self.per_request, self.per_second))

    def summary(self) -> str:
        if self.per_request is not None:
            return f"${self.per_request:g}/request"
        if self.input is not None or self.output is not None:
            return f"${self.input or 0:g} in / ${self.output or 0:g} out per M tokens"
        if self.per_second is not None:
            return f"${self.per_second:g}/s"
        return "-"

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("currency", "input", "output", "per_request", "per_second")}


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    name: str | None
    provider: str | None
    features: tuple[str, ...]
    endpoints: Mapping[str, Any] | None  # parsed from the JSON-in-a-string the API sends
    endpoints_raw: str | None  # the string as received
    endpoints_malformed: bool
    pricing: Pricing | None
    created: int | None

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> CatalogEntry:
        endpoints, text, malformed = _endpoints(raw.get("endpoints"))
        features = raw.get("features")
        return cls(
            id=str(raw["id"]),
            name=raw.get("name") if isinstance(raw.get("name"), str) else None,
            provider=raw.get("provider") if isinstance(raw.get("provider"), str) else None,
            features=tuple(f for f in features if isinstance(f, str)) if isinstance(features, list) else (),
            endpoints=endpoints,
            endpoints_raw=text,
            endpoints_malformed=malformed,
            pricing=Pricing.from_raw(raw.get("pricing")),
            created=raw.get("created") if isinstance(raw.get("created"), int) else None,
        )

    def to_dict(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "name": self.name,
            "provider": self.provider,
            "features": list(self.features),
            "endpoints": dict(self.endpoints) if self.endpoints is not None else None,
            "endpoints_malformed": self.endpoints_malformed,
            "pricing": self.pricing.to_dict() if self.pricing else None,
            "created": self.created,
        }
        if self.endpoints_malformed:
            out["endpoints_raw"] = self.endpoints_raw
        return out


def _endpoints(value: Any) -> tuple[Mapping[str, Any] | None, str | None, bool]:
    """(parsed, raw text, malformed). One bad record must not cost the user the whole listing."""
    if value is None or value == "":
        return None, None, False
    if isinstance(value, Mapping):
        return value, None, False
    if not isinstance(value, str):
        return None, repr(value), True
    try:
        parsed = jsontext.loads(value)
    except ValueError:
        return None, value, True
    return (parsed, value, False) if isinstance(parsed, dict) else (None, value, True)


@dataclass
class Catalog:
    base_url: str
    fetched_at: float
    entries: list[CatalogEntry]
    from_cache: bool = False
    warnings: list[str] = field(default_factory=list)

    def age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.fetched_at

    def get(self, model_id: str) -> CatalogEntry | None:
        return next((e for e in self.entries if e.id == model_id), None)


def _image_models(raws: list[Any]) -> list[CatalogEntry]:
    return [
        CatalogEntry.from_raw(r)
        for r in raws
        if isinstance(r, Mapping) and r.get("model_type") == "image" and isinstance(r.get("id"), str) and r["id"]
    ]


# --------------------------------------------------------------------------- fetching


def fetch(
    base_url: str,
    *,
    page_size: int = PAGE_SIZE,
    max_pages: int = MAX_PAGES,
    timeout: float = TIMEOUT,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every record of every page (all model types), and warnings about the listing itself."""
    import httpx

    from .. import __version__

    url = normalize(base_url) + "/api/models"
    records: list[dict[str, Any]] = []
    seen: set[Any] = set()
    received = 0
    warnings: list[str] = []
    headers = {"User-Agent": f"imgen/{__version__}", "Accept": "application/json"}
    with httpx.Client(timeout=timeout, headers=headers, follow_redirects=True) as client:
        for page in range(1, max_pages + 1):
            payload = _page(client, url, page, page_size, timeout)
            data = payload["data"]
            received += len(data)
            fresh = [r for r in data if not (isinstance(r, Mapping) and r.get("id") in seen)]
            seen.update(r.get("id") for r in fresh if isinstance(r, Mapping))
            records.extend(fresh)
            total = payload.get("total") if isinstance(payload.get("total"), int) else None
            if not data or (total is not None and received >= total) or (total is None and len(data) < page_size):
                break
            if not fresh:
                warnings.append(f"the catalog repeated page {page}; stopped there ({len(records)} models)")
                break
        else:
            warnings.append(f"stopped after {max_pages} pages ({len(records)} models); the listing may be incomplete")
    return records, warnings


CATALOG_LIMIT = 64 * 1024 * 1024  # a page of a few hundred model records is well under 1 MiB


def _page(client: Any, url: str, page: int, page_size: int, timeout: float) -> dict[str, Any]:
    import httpx

    from ..transport import answer

    try:
        for attempt in (1, 2):
            try:
                with answer.deadline(max(timeout, 60.0)):
                    response = client.send(client.build_request("GET", url, params={"page": page, "page_size": page_size}), stream=True)
                    try:
                        body = answer.read(response, CATALOG_LIMIT, what=f"the catalog at {url}")
                    finally:
                        response.close()
                break
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                # A kept-alive connection the server closed between two pages fails like this; a GET
                # of a listing is safe to send again, once, on a new connection.
                if attempt == 2:
                    raise
    except httpx.TimeoutException:
        raise NetworkError(f"the catalog at {url} did not answer within {timeout:g} s", _hint_network()) from None
    except httpx.HTTPError as exc:
        raise NetworkError(f"cannot reach the catalog at {url}: {exc or type(exc).__name__}", _hint_network()) from None
    status = response.status_code
    if status == 429:
        raise RateLimited(f"the catalog at {url} answered 429 (too many requests)", "wait a minute and try again", status=status)
    if status >= 500:
        raise ServerError(f"the catalog at {url} answered {status}", "the server is having trouble; try again later", status=status)
    if status >= 400:
        raise BadResponse(
            f"the catalog at {url} answered {status}",
            "--remote needs a CometAPI-style /api/models; check --base-url or the profile's base_url",
            status=status,
        )
    from ..transport.http import json_body

    payload = json_body(
        body,
        what=f"the catalog at {url}",
        content_type=response.headers.get("content-type"),
        hint="check that --base-url points at the API, not a web page or a proxy",
    )
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise BadResponse(f"the catalog at {url} has no data list", "check --base-url; is this a CometAPI-style gateway?")
    if payload.get("success") is False:
        raise BadResponse(f"the catalog at {url} reported failure: {payload.get('message') or 'no message'}", "try again later")
    return payload


def _hint_network() -> str:
    return f"check the network and the base URL; {OFFLINE_HINT}"


# --------------------------------------------------------------------------- cache


# The last cache file read, by (path, mtime, size): every generation prices itself (its --json,
# its manifest record, its ledger row), and a batch of thousands would parse the file each time.
_READ: dict[str, tuple[tuple[int, int], Catalog | None]] = {}


def read_cache(base_url: str) -> Catalog | None:
    """The cached catalog, or None when absent, unreadable or for another base URL."""
    path = cache_path(base_url)
    try:
        st = path.stat()
    except OSError:
        return None
    stamp = (st.st_mtime_ns, st.st_size)
    seen = _READ.get(str(path))
    if seen is not None and seen[0] == stamp:
        return seen[1]
    found = _read_cache(path, base_url)
    _READ[str(path)] = (stamp, found)
    return found


def _read_cache(path: Path, base_url: str) -> Catalog | None:
    try:
        doc = jsontext.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    ok = (
        isinstance(doc, dict)
        and doc.get("format") == CACHE_FORMAT
        and doc.get("base_url") == normalize(base_url)
        and isinstance(doc.get("fetched_at"), (int, float))
        and isinstance(doc.get("models"), list)
    )
    if not ok:
        return None
    return Catalog(normalize(base_url), float(doc["fetched_at"]), _image_models(doc["models"]), from_cache=True)


def write_cache(base_url: str, fetched_at: float, records: list[dict[str, Any]]) -> None:
    """Temp file + os.replace: a reader never sees half a cache, even with two imgens at once."""
    path = cache_path(base_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"format": CACHE_FORMAT, "base_url": normalize(base_url), "fetched_at": fetched_at, "models": records}
    fd, tmp = tempfile.mkstemp(prefix=".catalog-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, ensure_ascii=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def describe_age(seconds: float) -> str:
    seconds = max(seconds, 0)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return "less than a minute"


def load(
    base_url: str,
    *,
    refresh: bool = False,
    ttl: float = CACHE_TTL,
    now: float | None = None,
    **fetch_options: Any,
) -> Catalog:
    """The image models at `base_url`: from the cache while younger than `ttl`, else fetched.
    When fetching fails and a cached copy exists, that copy is returned with a warning."""
    now = time.time() if now is None else now
    cached = read_cache(base_url)
    if cached and not refresh and 0 <= now - cached.fetched_at < ttl:
        return cached
    try:
        records, warnings = fetch(base_url, **fetch_options)
    except ImgenError as exc:
        if cached is None:
            raise
        # A copy: the cached one is shared by every later read of the same file.
        warning = f"{exc.message}; showing the cached catalog from {describe_age(now - cached.fetched_at)} ago"
        return dataclasses.replace(cached, warnings=[*cached.warnings, warning])
    images = [r for r in records if isinstance(r, Mapping) and r.get("model_type") == "image"]
    catalog = Catalog(normalize(base_url), now, _image_models(images), warnings=warnings)
    try:
        write_cache(base_url, now, images)
    except OSError as exc:
        catalog.warnings.append(f"could not cache the catalog in {cache_dir()}: {exc.strerror or exc}")
    return catalog
