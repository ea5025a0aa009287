"""The fake API server's contract: the end-to-end tests and benchmarks rely on these behaviours."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from fakeserver import FakeServer

KEY = "sk-test-key-1234"
AUTH = {"Authorization": f"Bearer {KEY}"}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def srv():
    with FakeServer(api_key=KEY) as server:
        yield server


@pytest.fixture
def server(srv):
    srv.reset()
    srv.latency = 0.0
    srv.image_bytes = None
    return srv


@pytest.fixture
def client():
    with httpx.Client(timeout=10, trust_env=False) as c:
        yield c


def generate(client, server, body, path="/v1/images/generations", headers=AUTH):
    return client.post(server.base_url + path, json=body, headers=headers)


def test_wrong_or_missing_key_is_401_without_echoing_the_key(server, client):
    wrong = generate(client, server, {"model": "dall-e-3", "prompt": "x"},
                     headers={"Authorization": "Bearer sk-wrong-key-9876"})
    assert wrong.status_code == 401
    error = wrong.json()["error"]
    assert error["code"] == "invalid_api_key" and error["type"] == "invalid_request_error"
    assert "sk-...9876" in error["message"] and "sk-wrong-key-9876" not in wrong.text
    assert generate(client, server, {"model": "dall-e-3", "prompt": "x"}, headers={}).status_code == 401
    assert len(server.api_requests()) == 2


def test_dalle3_signed_url_downloads_and_any_alteration_is_denied(server, client):
    r = generate(client, server, {"model": "dall-e-3", "prompt": "a red fox"})
    assert r.status_code == 200
    item = r.json()["data"][0]
    assert "revised_prompt" in item
    url = item["url"]
    assert "&" in url and "%2F" in url and "%3D" in url

    ok = client.get(url)
    assert ok.status_code == 200 and ok.headers["content-type"] == "image/png"
    assert ok.content.startswith(PNG) and int(ok.headers["content-length"]) == len(ok.content)
    assert hashlib.sha256(ok.content).hexdigest() == server.served[0]["sha256"]
    assert "authorization" not in server.downloads()[-1].headers

    query_at = url.index("?") + 5
    one_byte = url[:query_at] + chr(ord(url[query_at]) ^ 1) + url[query_at + 1 :]
    for mangled in (one_byte, url.replace("%2F", "/", 1), url.replace("%3D", "=", 1), url + "&x=1"):
        denied = client.get(mangled)
        assert denied.status_code == 403, mangled
        assert denied.headers["content-type"] == "application/json"
        assert denied.json() == {"Code": "AccessDenied", "Message": "Access Denied", "EC": "0003-00000015"}


def test_gpt_image_rejects_response_format_and_answers_b64_with_extras(server, client):
    r = generate(client, server, {"model": "gpt-image-2-2026-04-21", "prompt": "x", "response_format": "b64_json"})
    assert r.status_code == 400
    assert r.json() == {"error": {"message": "Unknown parameter: 'response_format'.", "type": "invalid_request_error",
                                  "param": "response_format", "code": "unknown_parameter"}}
    ok = generate(client, server, {"model": "gpt-image-1", "prompt": "x", "n": 2, "output_format": "webp"}).json()
    assert {"background", "output_format", "quality", "size", "usage"} <= ok.keys()
    images = [base64.b64decode(d["b64_json"]) for d in ok["data"]]
    assert all(i[:4] == b"RIFF" and i[8:12] == b"WEBP" for i in images) and images[0] != images[1]


def test_sse_stream_shape(server, client):
    body = {"model": "gpt-image-1.5", "prompt": "p", "n": 2, "stream": True, "partial_images": 2}
    with client.stream("POST", server.base_url + "/v1/images/generations", json=body, headers=AUTH) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        text = r.read().decode()
    events = [e for e in text.split("\n\n") if e]
    names = [e.split("\n")[0] for e in events]
    partial, done = "event: image_generation.partial_image", "event: image_generation.completed"
    assert names == [partial, partial, done, partial, partial, done]
    payloads = [json.loads(e.split("\n")[1].removeprefix("data: ")) for e in events]
    assert [p.get("partial_image_index") for p in payloads] == [0, 1, None, 0, 1, None]
    assert "usage" in payloads[2] and "usage" not in payloads[0]
    for p in payloads:
        assert {"b64_json", "created_at", "size", "quality", "background", "output_format"} <= p.keys()
    blobs = {base64.b64decode(p["b64_json"]) for p in payloads}
    assert len(blobs) == 6 and all(b.startswith(PNG) for b in blobs)


def test_envelope_success_and_missing_field(server, client):
    body = {"prompt": "p", "n": 2, "size": "1024x1024", "stream": False, "output_compression": 100,
            "model": "gpt-image-1.5"}
    ok = generate(client, server, body, path="/api/v1/image/generation").json()
    assert ok["code"] == 0 and ok["data"]["task_status"] == "succeeded" and len(ok["data"]["urls"]) == 2
    assert client.get(ok["data"]["urls"][1]).content.startswith(PNG)
    missing = generate(client, server, {k: v for k, v in body.items() if k != "stream"},
                       path="/api/v1/image/generation")
    assert missing.status_code == 200 and missing.json()["code"] == 400
    assert missing.json()["message"] == "missing required field: stream"
    denied = generate(client, server, body, path="/api/v1/image/generation", headers={})
    assert denied.status_code == 200 and denied.json()["code"] == 401


def test_catalog_paging(server, client):
    first = client.get(server.base_url + "/api/models").json()
    assert first["success"] and first["page"] == 1 and first["page_size"] == 20 and len(first["data"]) == 20
    total = first["total"]
    assert total == len(server.catalog) > 20
    pages = [first]
    while sum(len(p["data"]) for p in pages) < total:  # however long the catalog grows
        pages.append(client.get(server.base_url + f"/api/models?page={len(pages) + 1}&page_size=20").json())
        assert pages[-1]["data"], "a page came back empty before the total was reached"
    assert [len(p["data"]) for p in pages[:-1]] == [20] * (len(pages) - 1) and 0 < len(pages[-1]["data"]) <= 20
    past = client.get(server.base_url + f"/api/models?page={len(pages) + 1}&page_size=20").json()
    assert past["data"] == []
    everything = client.get(server.base_url + "/api/models?page=0").json()
    ids = [m["id"] for m in everything["data"]]
    assert len(ids) == total and ids == [m["id"] for p in pages for m in p["data"]]
    entry = next(m for m in everything["data"] if m["id"] == "gpt-image-1")
    assert json.loads(entry["endpoints"])["openai-image"]["path"] == "/v1/images/generations"
    assert entry["pricing"]["currency"] == "USD / M Tokens"
    assert {m["model_type"] for m in everything["data"]} >= {"image", "text"}


def test_queued_fault_is_consumed_once_in_order(server, client):
    server.fault("status", status=429, headers={"Retry-After": "1"})
    server.fault("dl_cut")
    body = {"model": "dall-e-2", "prompt": "x"}
    limited = generate(client, server, body)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    url = generate(client, server, body).json()["data"][0]["url"]
    assert server.pending_faults() == [("dl_cut", 1)]
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(url)
    assert client.get(url).status_code == 200
    assert [r.fault for r in server.requests] == ["status", None, "dl_cut", None]


def test_image_bytes_pads_to_exact_size(server, client):
    server.image_bytes = 3 * 1024 * 1024 + 1
    url = generate(client, server, {"model": "dall-e-2", "prompt": "big"}).json()["data"][0]["url"]
    data = client.get(url).content
    assert len(data) == server.image_bytes and data.startswith(PNG)
    assert server.served[0]["bytes"] == len(data)
    assert server.served[0]["sha256"] == hashlib.sha256(data).hexdigest()
    b64 = generate(client, server, {"model": "gpt-image-1", "prompt": "big"}).json()["data"][0]["b64_json"]
    assert len(base64.b64decode(b64)) == server.image_bytes


def test_standalone_prints_its_url_and_exits_on_sigterm():
    script = Path(__file__).with_name("fakeserver.py")
    proc = subprocess.Popen([sys.executable, str(script), "--port", "0", "--api-key", KEY],
                            stdout=subprocess.PIPE, text=True)
    try:
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:")
        assert httpx.get(base + "/api/models?page=0", timeout=5, trust_env=False).json()["success"] is True
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0
