"""Seedream on the OpenAI-compatible endpoint, and the envelope gateway, end to end."""

import base64
import hashlib
import json
from pathlib import Path

import pytest

from conftest import API_KEY
from imgen.dialects.placeholder import render_png

SEEDREAM = "doubao-seedream-5-0-260128"


def downloads(server):
    return [r for r in server.requests if r.method == "GET" and r.path.startswith("/files/")]


def test_seedream_2k_without_watermark(imgen, server, outdir):
    res = imgen("generate", "-m", SEEDREAM, "-s", "2K", "--no-watermark", "a lighthouse", "-o", str(outdir), "--json")
    assert res.returncode == 0, res.stderr
    body = server.api_requests()[0].json
    assert body == {"model": SEEDREAM, "prompt": "a lighthouse", "size": "2K", "watermark": False}
    doc = json.loads(res.stdout)
    (image,) = doc["images"]
    assert image["size"] == "2048x2048"  # the size it really came back at
    assert Path(image["path"]).is_file()
    assert "authorization" not in downloads(server)[0].headers


def test_reference_file_becomes_a_data_uri_and_urls_pass_as_is(imgen, server, outdir, tmp_path):
    ref = tmp_path / "ref.dat"  # the type comes from the bytes, not the name
    ref.write_bytes(render_png("reference", 8, 8))
    url = "https://example.com/ref.jpg?sig=a%2Fb%3D&x=1"
    res = imgen("generate", "-m", SEEDREAM, "-i", str(ref), "-i", url, "x", "-o", str(outdir))
    assert res.returncode == 0, res.stderr
    images = server.api_requests()[0].json["image"]
    assert images[1] == url
    prefix = "data:image/png;base64,"
    assert images[0].startswith(prefix)
    assert base64.b64decode(images[0][len(prefix):]) == ref.read_bytes()


@pytest.mark.parametrize(
    "make,expect",
    [
        (lambda d: d / "missing.png", "no such file"),
        (lambda d: (d / "notes.txt").write_text("not an image") and d / "notes.txt", "not an image"),
        (lambda d: (d / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * (11 * 1024 * 1024)) and d / "big.png", "limit"),
        (lambda d: d, "not a regular file"),
    ],
)
def test_bad_reference_files_send_nothing(imgen, server, tmp_path, make, expect):
    path = make(tmp_path)
    res = imgen("generate", "-m", SEEDREAM, "-i", str(path), "x")
    assert res.returncode == 2
    assert "--image" in res.stderr and expect in res.stderr
    assert server.requests == []


def test_reference_limits(imgen, server, outdir):
    refs = [arg for i in range(14) for arg in ("-i", f"https://example.com/{i}.png")]
    assert imgen("generate", "-m", SEEDREAM, *refs, "x", "-o", str(outdir)).returncode == 0
    res = imgen("generate", "-m", SEEDREAM, *refs, "-i", "https://example.com/15.png", "x")
    assert res.returncode == 2 and "14" in res.stderr
    res = imgen("generate", "-m", SEEDREAM, *refs, "--sequential", "--max-images", "2", "x")
    assert res.returncode == 2 and "15" in res.stderr
    assert len(server.api_requests()) == 1


def test_sequential_generation(imgen, server, outdir):
    refs = [arg for i in range(12) for arg in ("-i", f"https://example.com/{i}.png")]
    res = imgen("generate", "-m", SEEDREAM, *refs, "--sequential", "--max-images", "3", "a comic", "-o", str(outdir))
    assert res.returncode == 0, res.stderr
    body = server.api_requests()[0].json
    assert body["sequential_image_generation"] == "auto"
    assert body["sequential_image_generation_options"] == {"max_images": 3}
    assert len(res.lines) == 3


def test_partial_failure_saves_the_rest(imgen, server, outdir):
    server.fault("item_error", index=0)
    res = imgen("generate", "-m", SEEDREAM, "--sequential", "--max-images", "2", "x", "-o", str(outdir), "--json")
    assert res.returncode == 10
    doc = json.loads(res.stdout)
    assert len(doc["images"]) == 1 and doc["errors"][0]["code"] == "OutputImageSensitiveContentDetected"
    assert "image 1 failed" in res.stderr
    assert len(list(outdir.iterdir())) == 1


def test_no_download_prints_signed_urls_intact(imgen, server, outdir):
    res = imgen("generate", "-m", SEEDREAM, "--sequential", "--max-images", "2", "x", "--no-download")
    assert res.returncode == 0, res.stderr
    served = [s["url"] for s in server.served]
    assert res.lines == served
    assert downloads(server) == []
    as_json = imgen("generate", "-m", SEEDREAM, "x", "--no-download", "--json")
    url = json.loads(as_json.stdout)["urls"][0]["url"]
    assert url == server.served[-1]["url"] and "%2F" in url and "&" in url
    # The printed link still works, byte for byte: fetch it the way a script would.
    import httpx

    assert httpx.get(res.lines[0]).status_code == 200


def test_altered_or_expired_link_is_reported_not_retried(imgen, server, outdir):
    server.fault("dl_403")
    res = imgen("generate", "-m", SEEDREAM, "x", "-o", str(outdir))
    assert res.returncode == 9
    assert "altered or has expired" in res.stderr and "AccessDenied" in res.stderr
    assert len(downloads(server)) == 1
    assert list(outdir.iterdir()) == []


# --- the envelope gateway -----------------------------------------------------------------


def envelope(imgen, *args, **kw):
    return imgen("-P", "dianming", "generate", *args, env={"DIANMING_API_KEY": API_KEY}, key=None, **kw)


def test_envelope_gateway_end_to_end(imgen, server, outdir):
    res = envelope(imgen, "a kite", "-n", "2", "-o", str(outdir), "--json")
    assert res.returncode == 0, res.stderr
    (req,) = server.api_requests()
    assert req.path == "/api/v1/image/generation"
    assert req.headers["authorization"] == f"Bearer {API_KEY}"
    assert {"prompt", "model", "n", "size", "stream", "output_compression"} <= set(req.json)
    assert req.json["model"] == "gpt-image-1.5" and req.json["n"] == 2
    doc = json.loads(res.stdout)
    assert len(doc["images"]) == 2
    assert doc["task_id"] and doc["task_status"] and doc["expired"] and doc["usage"]["images"] == 2
    assert doc["request_id"]
    for got in downloads(server):
        assert "authorization" not in got.headers
    served = {s["sha256"] for s in server.served}
    assert all(hashlib.sha256(Path(i["path"]).read_bytes()).hexdigest() in served for i in doc["images"])


def test_envelope_nonzero_code_with_http_200(imgen, server):
    server.fault("envelope_error", code=1001, message="prompt rejected by policy")
    res = envelope(imgen, "x")
    assert res.returncode == 5
    assert "prompt rejected by policy" in res.stderr and "1001" in res.stderr and "request id" in res.stderr


def test_envelope_bad_key(imgen, server):
    res = imgen("-P", "dianming", "generate", "x", env={"DIANMING_API_KEY": "sk-wrong-0000"}, key=None)
    assert res.returncode == 4


def test_envelope_unfinished_task_is_reported_with_its_id(imgen, server, outdir):
    server.fault("envelope_pending")
    res = envelope(imgen, "x", "-o", str(outdir))
    assert res.returncode == 9
    assert "task" in res.stderr and "running" in res.stderr
    assert list(outdir.iterdir()) == []


def test_envelope_refuses_what_it_does_not_take(imgen, server):
    res = envelope(imgen, "x", "--style", "vivid")
    assert res.returncode == 2 and "--style" in res.stderr
    assert server.requests == []


# --- cost ---------------------------------------------------------------------------------


def test_cost_in_dry_run_and_json(imgen, server, outdir):
    unknown = imgen("generate", "x", "--dry-run")
    assert "cost: unknown" in unknown.stdout and "imgen models --remote" in unknown.stdout
    assert imgen("models", "--remote").returncode == 0
    server.reset()
    dry = imgen("generate", "x", "-m", "dall-e-3", "--dry-run")
    assert "estimated cost: $0.0400" in dry.stdout
    assert server.requests == []
    doc = json.loads(imgen("generate", "-m", "gpt-image-1", "x", "-o", str(outdir), "--json").stdout)
    usage = doc["usage"]
    expected = (usage["input_tokens"] * 5 + usage["output_tokens"] * 40) / 1e6
    assert doc["cost"]["usd"] == pytest.approx(expected)
    assert doc["cost"]["basis"] == "billed" and "from the reported usage" in doc["cost"]["note"]
