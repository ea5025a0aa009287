"""The remote catalog against the fake server: paging, malformed records, the cache, failures;
and the cost estimates built on its prices."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from fakeserver import FakeServer
from hostile import stop_listening
from imgen.errors import BadResponse, NetworkError, ServerError
from imgen.models import catalog
from imgen.models.catalog import CatalogEntry
from imgen.models.cost import estimate_cost, price_for

DAY = 24 * 3600.0
T0 = 1_780_000_000.0


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("IMGEN_CACHE_DIR", str(path))
    return path


@pytest.fixture
def fake(cache_dir):
    with FakeServer() as srv:
        yield srv


def catalog_pages(srv) -> list[dict]:
    return [parse_qs(urlsplit(r.path).query) for r in srv.requests if r.path.startswith("/api/models")]


def image_ids(srv) -> set[str]:
    return {e["id"] for e in srv.catalog if e["model_type"] == "image"}


class Canned:
    """A stdlib server answering every GET with one canned body, for shapes FakeServer never sends."""

    def __init__(self, body: bytes, status: int = 200, content_type: str = "application/json"):
        canned = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                canned.hits += 1
                self.send_response(canned.status)
                self.send_header("Content-Type", canned.content_type)
                self.send_header("Content-Length", str(len(canned.body)))
                self.end_headers()
                self.wfile.write(canned.body)

            def log_message(self, *args):
                pass

        self.body, self.status, self.content_type, self.hits = body, status, content_type, 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


# ----------------------------------------------------------------- paging and parsing


def test_fetches_every_page_and_keeps_image_models_only(fake):
    found = catalog.load(fake.base_url, page_size=5, now=T0)
    pages = catalog_pages(fake)
    expected_pages = -(-len(fake.catalog) // 5)
    assert [p["page"] for p in pages] == [[str(i)] for i in range(1, expected_pages + 1)]
    assert all(p["page_size"] == ["5"] for p in pages)
    assert {e.id for e in found.entries} == image_ids(fake)
    assert not found.from_cache and found.warnings == []


def test_default_page_size_needs_one_request(fake):
    catalog.load(fake.base_url, now=T0)
    assert catalog_pages(fake) == [{"page": ["1"], "page_size": ["100"]}]


def test_sends_a_user_agent_and_no_key(fake):
    from imgen import __version__

    catalog.load(fake.base_url, now=T0)
    request = next(r for r in fake.requests if r.path.startswith("/api/models"))
    assert request.headers["user-agent"] == f"imgen/{__version__}"
    assert "authorization" not in request.headers


def test_page_cap_stops_and_says_so(fake):
    found = catalog.load(fake.base_url, page_size=5, max_pages=2, now=T0)
    assert len(catalog_pages(fake)) == 2
    assert found.warnings and found.warnings[0].startswith("stopped after 2 pages")


def test_server_repeating_a_page_does_not_loop(cache_dir):
    page = {"success": True, "page": 1, "page_size": 1, "total": 50,
            "data": [{"id": "img-a", "model_type": "image", "features": ["text-to-image"]}]}
    with Canned(json.dumps(page).encode()) as srv:
        found = catalog.load(srv.base_url, page_size=1, now=T0)
    assert srv.hits == 2
    assert [e.id for e in found.entries] == ["img-a"]
    assert "repeated page 2" in found.warnings[0]


def test_empty_page_ends_paging(cache_dir):
    with Canned(json.dumps({"success": True, "total": 999, "data": []}).encode()) as srv:
        found = catalog.load(srv.base_url, now=T0)
    assert srv.hits == 1 and found.entries == []


def test_malformed_endpoints_survive(fake):
    found = catalog.load(fake.base_url, now=T0)
    flux = found.get("flux-1-kontext-pro")
    assert flux is not None and flux.endpoints_malformed and flux.endpoints is None
    raw = next(e for e in fake.catalog if e["id"] == "flux-1-kontext-pro")["endpoints"]
    assert flux.endpoints_raw == raw
    assert flux.pricing.per_request == 0.04
    good = found.get("dall-e-3")
    assert not good.endpoints_malformed
    assert good.endpoints == {"openai-image": {"path": "/v1/images/generations", "method": "POST"}}
    assert json.loads(json.dumps(flux.to_dict()))["endpoints_raw"] == raw


@pytest.mark.parametrize(
    ("value", "malformed"),
    [(None, False), ("", False), ('{"a": {}}', False), ("[1, 2]", True), ("{oops", True), (42, True)],
)
def test_endpoint_shapes(value, malformed):
    entry = CatalogEntry.from_raw({"id": "m", "model_type": "image", "endpoints": value})
    assert entry.endpoints_malformed is malformed


def test_records_with_odd_fields_do_not_break_the_listing():
    raws = [
        {"id": "ok", "model_type": "image", "features": "text-to-image", "pricing": "free", "name": 3},
        {"model_type": "image"},
        {"id": "", "model_type": "image"},
        "not a record",
        {"id": "chat", "model_type": "text"},
    ]
    entries = catalog._image_models(raws)
    assert [e.id for e in entries] == ["ok"]
    assert entries[0].features == () and entries[0].pricing is None and entries[0].name is None


# ----------------------------------------------------------------- cache


def test_cache_is_used_within_ttl(fake, cache_dir):
    first = catalog.load(fake.base_url, now=T0)
    path = catalog.cache_path(fake.base_url)
    assert path.parent == cache_dir and path.name.startswith("catalog-") and path.suffix == ".json"
    doc = json.loads(path.read_text())
    assert doc["base_url"] == fake.base_url and doc["fetched_at"] == T0
    assert {m["id"] for m in doc["models"]} == image_ids(fake)
    assert [p.name for p in cache_dir.iterdir()] == [path.name]  # no temp file left behind

    fetches = len(catalog_pages(fake))
    again = catalog.load(fake.base_url, now=T0 + DAY - 1)
    assert len(catalog_pages(fake)) == fetches
    assert again.from_cache and {e.id for e in again.entries} == {e.id for e in first.entries}


def test_cache_expires_after_ttl(fake):
    catalog.load(fake.base_url, now=T0)
    fetches = len(catalog_pages(fake))
    fresh = catalog.load(fake.base_url, now=T0 + DAY + 1)
    assert len(catalog_pages(fake)) == fetches + 1 and not fresh.from_cache


def test_custom_ttl(fake):
    catalog.load(fake.base_url, now=T0)
    catalog.load(fake.base_url, now=T0 + 120, ttl=60)
    assert len(catalog_pages(fake)) == 2


def test_refresh_ignores_a_fresh_cache(fake):
    catalog.load(fake.base_url, now=T0)
    fake.catalog = [e for e in fake.catalog if e["id"] != "dall-e-2"]
    assert catalog.load(fake.base_url, now=T0 + 5).get("dall-e-2") is not None
    refreshed = catalog.load(fake.base_url, now=T0 + 10, refresh=True)
    assert refreshed.get("dall-e-2") is None
    assert catalog.load(fake.base_url, now=T0 + 20).get("dall-e-2") is None


def test_cache_from_the_future_is_stale(fake):
    catalog.load(fake.base_url, now=T0)
    catalog.load(fake.base_url, now=T0 - 3600)
    assert len(catalog_pages(fake)) == 2


def test_each_base_url_has_its_own_cache(cache_dir):
    assert catalog.cache_path("http://a.example") != catalog.cache_path("http://b.example")
    assert catalog.cache_path("http://a.example/") == catalog.cache_path("http://a.example")


def test_corrupt_cache_is_ignored(fake):
    path = catalog.cache_path(fake.base_url)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    found = catalog.load(fake.base_url, now=T0)
    assert not found.from_cache and found.entries
    assert json.loads(path.read_text())["fetched_at"] == T0


def test_unwritable_cache_is_a_warning(fake, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("IMGEN_CACHE_DIR", str(blocker / "sub"))
    found = catalog.load(fake.base_url, now=T0)
    assert found.entries and found.warnings[0].startswith("could not cache the catalog")


def test_platformdirs_location_without_override(monkeypatch):
    from platformdirs import user_cache_path

    monkeypatch.delenv("IMGEN_CACHE_DIR", raising=False)
    assert catalog.cache_dir() == user_cache_path("imgen")


# ----------------------------------------------------------------- failures


def test_server_down_without_cache_is_a_network_error(fake):
    base = fake.base_url
    fake.stop()
    with pytest.raises(NetworkError) as info:
        catalog.load(base, now=T0)
    assert info.value.message.startswith(f"cannot reach the catalog at {base}/api/models")
    assert "without --remote" in info.value.hint


def test_server_down_uses_the_cached_copy_and_says_how_old(fake):
    base = fake.base_url
    catalog.load(base, now=T0)
    fake.stop()
    stale = catalog.load(base, now=T0 + 2 * DAY + 60)
    assert stale.from_cache and stale.get("gpt-image-2") is not None
    assert len(stale.warnings) == 1
    assert stale.warnings[0].startswith(f"cannot reach the catalog at {base}/api/models: ")
    assert stale.warnings[0].endswith("; showing the cached catalog from 2 days ago")


def test_refresh_with_server_down_falls_back_to_cache(fake):
    base = fake.base_url
    catalog.load(base, now=T0)
    fake.stop()
    stale = catalog.load(base, now=T0 + 3 * 3600, refresh=True)
    assert stale.from_cache and stale.warnings[0].endswith("from 3 hours ago")


@pytest.mark.parametrize(
    ("body", "status", "ctype", "error", "text"),
    [
        (b"<html>bad gateway</html>", 200, "text/html", BadResponse, "is not JSON (text/html"),
        (b'{"success": true, "data": "nope"}', 200, "application/json", BadResponse, "has no data list"),
        (b'{"success": false, "message": "maintenance", "data": []}', 200, "application/json", BadResponse,
         "reported failure: maintenance"),
        (b"oops", 503, "text/plain", ServerError, "answered 503"),
        (b"{}", 404, "application/json", BadResponse, "answered 404"),
    ],
)
def test_bad_answers(cache_dir, body, status, ctype, error, text):
    with Canned(body, status, ctype) as srv:
        with pytest.raises(error) as info:
            catalog.load(srv.base_url, now=T0)
    assert text in info.value.message and info.value.hint


def test_bad_json_uses_the_cached_copy(cache_dir):
    good = {"success": True, "total": 1, "data": [{"id": "img", "model_type": "image"}]}
    with Canned(json.dumps(good).encode()) as srv:
        catalog.load(srv.base_url, now=T0)
        srv.body, srv.content_type = b"<html>", "text/html"
        stale = catalog.load(srv.base_url, now=T0 + 2 * DAY)
    assert stale.from_cache and [e.id for e in stale.entries] == ["img"]
    assert "is not JSON" in stale.warnings[0] and stale.warnings[0].endswith("from 2 days ago")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "less than a minute"), (60, "1 minute"), (7200, "2 hours"), (DAY, "1 day"), (-5, "less than a minute")],
)
def test_describe_age(seconds, text):
    assert catalog.describe_age(seconds) == text


# ----------------------------------------------------------------- prices and costs


@pytest.fixture
def entries():
    raws = [
        {"id": "dall-e-3", "model_type": "image", "pricing": {"currency": "USD", "per_request": 0.04}},
        {"id": "gpt-image-1", "model_type": "image", "pricing": {"currency": "USD / M Tokens", "input": 5, "output": 40}},
        {"id": "clip-maker", "model_type": "image", "pricing": {"currency": "USD", "per_second": 0.1}},
        {"id": "yuan-model", "model_type": "image", "pricing": {"currency": "CNY", "per_request": 0.2}},
        {"id": "free", "model_type": "image", "pricing": {"currency": "USD", "input": None, "per_request": None}},
    ]
    return catalog._image_models(raws)


def test_price_for(entries):
    assert price_for("dall-e-3", entries).per_request == 0.04
    assert price_for("free", entries) is None
    assert price_for("nope", entries) is None


def test_per_request_cost_is_exact(entries):
    usd, note = estimate_cost("dall-e-3", 3, entries)
    assert usd == 0.12
    assert note == "$0.04 per request x 3"


def test_token_price_needs_usage(entries):
    usd, note = estimate_cost("gpt-image-1", 1, entries)
    assert usd is None and "priced by tokens ($5 input / $40 output per million tokens)" in note


def test_token_price_from_usage(entries):
    usd, note = estimate_cost("gpt-image-1", 1, entries, usage={"input_tokens": 19, "output_tokens": 196})
    assert usd == pytest.approx((19 * 5 + 196 * 40) / 1e6)
    assert note.startswith("from the reported usage: 19 input + 196 output tokens")


def test_per_second_price(entries):
    assert estimate_cost("clip-maker", 1, entries)[0] is None
    assert estimate_cost("clip-maker", 1, entries, usage={"seconds": 5})[0] == pytest.approx(0.5)


def test_costs_without_a_usable_price(entries):
    assert estimate_cost("yuan-model", 1, entries) == (None, "yuan-model is priced in CNY; imgen totals US dollars only")
    assert estimate_cost("nope", 1, entries) == (None, "no price for nope in the catalog")


def test_cost_from_the_fake_catalog(fake):
    found = catalog.load(fake.base_url, now=T0)
    assert estimate_cost("doubao-seedream-5-0-260128", 2, found)[0] == 0.07
    assert estimate_cost("qwen-image", 1, found)[0] == 0.03


def test_a_kept_alive_connection_closed_between_pages_is_asked_again_on_a_new_one(cache_dir):
    """The server keeps the connection open after a page, then drops it when the next request
    arrives on it, unanswered ("Server disconnected without sending a response"). A listing is safe
    to ask for again, once, on a new connection."""
    import socket

    pages = {1: [{"id": "img-a", "model_type": "image"}], 2: [{"id": "img-b", "model_type": "image"}]}
    asked: list[int] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def serve(conn):
        with conn:
            answered = False
            data = b""
            while True:
                while b"\r\n\r\n" not in data:
                    more = conn.recv(65536)
                    if not more:
                        return
                    data += more
                line, _, data = data.partition(b"\r\n\r\n")
                if answered:
                    return  # dropped, unanswered
                page = int(parse_qs(urlsplit(line.split(b" ")[1].decode()).query)["page"][0])
                asked.append(page)
                body = json.dumps({"success": True, "data": pages[page], "total": 2}).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                answered = True

    def accept():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        records, warnings = catalog.fetch(f"http://127.0.0.1:{listener.getsockname()[1]}", page_size=1)
    finally:
        stop_listening(listener, acceptor)
    assert [r["id"] for r in records] == ["img-a", "img-b"] and warnings == []
    assert asked == [1, 2]
