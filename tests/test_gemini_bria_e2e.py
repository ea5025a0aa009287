"""Gemini and Bria end to end: the installed imgen against the test server."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from conftest import API_KEY
from fakeserver import FakeServer, make_image
from imgen.dialects.placeholder import render_png

FLASH = "gemini-3.1-flash-image-preview"
PRO = "gemini-3-pro-image-preview"


def sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_gemini_ratio_and_size_and_the_final_image_is_saved(imgen, server, outdir):
    res = imgen("generate", "-m", FLASH, "--aspect", "16:9", "-s", "2K", "a lighthouse in a storm", "-o", str(outdir), "--json")
    assert res.returncode == 0, res.stderr
    (call,) = server.api_requests()
    assert call.path == f"/v1beta/models/{FLASH}:generateContent"
    assert call.json["generationConfig"] == {"responseModalities": ["TEXT", "IMAGE"], "imageConfig": {"aspectRatio": "16:9", "imageSize": "2K"}}
    assert call.json["contents"][0]["parts"] == [{"text": "a lighthouse in a storm"}]
    doc = json.loads(res.stdout)
    (image,) = doc["images"]
    assert image["sha256"] == server.served[-1]["sha256"] == sha(image["path"])  # the final image, not the draft
    assert doc["text"] == "Here is your image." and "says: Here is your image." in res.stderr
    assert doc["usage"]["totalTokenCount"] > 0
    assert [p.name for p in outdir.iterdir()] == [Path(image["path"]).name]  # the draft left nothing behind


def test_gemini_reference_files_and_urls_go_inline(imgen, server, outdir, tmp_path):
    ref = tmp_path / "sketch.bin"
    ref.write_bytes(render_png("sketch", 8, 8))
    hosted = make_image("hosted-ref", "jpeg")
    url = server._publish(hosted)
    res = imgen("generate", "-m", PRO, "-i", str(ref), "-i", url, "turn this sketch into a watercolour", "-o", str(outdir))
    assert res.returncode == 0, res.stderr
    parts = server.api_requests()[0].json["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(ref.read_bytes()).decode()}}
    assert parts[2]["inlineData"]["mimeType"] == "image/jpeg"
    assert base64.b64decode(parts[2]["inlineData"]["data"]) == hosted.to_bytes()
    assert len(res.stdout.split()) == 1


def test_a_large_inline_image_is_decoded_as_it_arrives(tmp_path, outdir, imgen):
    # 12 MiB of base64 in one body: saved whole and exact.
    with FakeServer(api_key=API_KEY, image_bytes=9 * 1024 * 1024) as big:
        res = imgen("generate", "-m", FLASH, "x", "-o", str(outdir), "--json", env={"IMGEN_BASE_URL": big.base_url})
        assert res.returncode == 0, res.stderr
        (image,) = json.loads(res.stdout)["images"]
        assert image["bytes"] == 9 * 1024 * 1024 and image["sha256"] == big.served[-1]["sha256"]


@pytest.mark.parametrize(
    ("fault", "code", "words"),
    [
        ("gemini_blocked_prompt", "prompt_blocked", "blocked the prompt (blockReason SAFETY)"),
        ("gemini_blocked_image", "image_blocked", "withheld the image (finishReason IMAGE_SAFETY)"),
        ("gemini_text_only", "no_image", "text and no image: I can't draw that"),
    ],
)
def test_gemini_refusals_are_distinct_rejections_never_retried(imgen, server, outdir, fault, code, words):
    server.fault(fault)
    res = imgen("generate", "-m", FLASH, "x", "-o", str(outdir), "--json")
    assert res.returncode == 5, res.stderr
    assert words in res.stderr and f"(code {code})" not in res.stdout
    assert len(server.api_requests()) == 1 and list(outdir.iterdir()) == []


@pytest.mark.parametrize("fault", ["gemini_markdown", "gemini_snake"])
def test_gemini_answer_variants_still_give_the_image(imgen, server, outdir, fault):
    server.fault(fault)
    res = imgen("generate", "-m", FLASH, "x", "-o", str(outdir))
    assert res.returncode == 0, res.stderr
    assert sha(res.stdout.strip()) == server.served[-1]["sha256"]


def test_google_429_waits_as_retry_info_asks_and_503_is_retried(imgen, server, outdir):
    server.fault("google_error", status=429, retry_delay="0.6s")
    server.fault("google_error", status=503)
    res = imgen("generate", "-m", FLASH, "x", "-o", str(outdir), "-v", "--retries", "2")
    assert res.returncode == 0, res.stderr
    first, second, third = server.api_requests()
    assert second.time - first.time >= 0.55  # RetryInfo.retryDelay, not the default backoff
    assert "answered 429; retrying in 0.6s" in res.stderr


def test_google_400_shows_the_apis_message_and_is_not_retried(imgen, server, outdir):
    server.fault("google_error", status=400, message="Unsupported image size")
    res = imgen("generate", "-m", FLASH, "x", "-o", str(outdir))
    assert res.returncode == 5 and "Unsupported image size" in res.stderr and "INVALID_ARGUMENT" in res.stderr
    assert len(server.api_requests()) == 1


def test_gemini_refused_flags_send_nothing(imgen, server):
    for args, words in [
        (["-n", "2"], "-n 2: gemini-3.1-flash-image-preview makes one image per request (n must be 1); use -n 1, and --batch"),
        (["-s", "1k"], "--size 1k: gemini-3.1-flash-image-preview accepts 512, 1K, 2K, 4K; use --size 1K"),
        (["--aspect", "16-9"], "--aspect '16-9': expected W:H"),
        (["-m", "gemini-2.5-flash-image"], "shut it down on 2026-10-02; use --model gemini-3.1-flash-image-preview"),
        (["-m", PRO, "-s", "512"], "--size 512: gemini-3-pro-image-preview accepts 1K, 2K, 4K"),
    ]:
        res = imgen("generate", "-m", FLASH, *args, "x")
        assert res.returncode == 2, res.stderr
        assert words in " ".join(res.stderr.split()), res.stderr
    assert server.requests == []


def test_bria_three_images_with_ratio_and_negative_prompt(imgen, server, outdir):
    res = imgen("generate", "-m", "bria", "-n", "3", "--aspect", "4:5", "--negative-prompt", "text, logos", "--seed", "7",
                "a ceramic mug on oak", "-o", str(outdir), "--json")
    assert res.returncode == 0, res.stderr
    (call,) = server.api_requests()
    assert call.path == "/bria/text-to-image"
    assert call.json == {"prompt": "a ceramic mug on oak", "num_results": 3, "aspect_ratio": "4:5", "negative_prompt": "text, logos", "seed": 7}
    images = json.loads(res.stdout)["images"]
    by_url = {s["url"]: s["sha256"] for s in server.served}
    assert [i["sha256"] for i in images] == [by_url[i["url"]] for i in images] and len(set(by_url)) == 3
    assert [i["seed"] for i in images] == [7, 8, 9] and all(i["uuid"].endswith(f"_{i['seed']}") for i in images)


def test_bria_alias_and_every_url_of_a_result(imgen, server, outdir):
    server.fault("bria_multi_urls")
    res = imgen("generate", "-m", "bria-text-to-image", "x", "-o", str(outdir))
    assert res.returncode == 0, res.stderr
    assert sorted(sha(p) for p in res.stdout.split()) == sorted(s["sha256"] for s in server.served)
    assert len(res.stdout.split()) == 2


def test_bria_fewer_images_than_asked_is_a_partial_success(imgen, server, outdir):
    server.fault("bria_fewer", drop=1)
    res = imgen("generate", "-m", "bria", "-n", "3", "x", "-o", str(outdir))
    assert res.returncode == 10, res.stderr
    assert len(res.stdout.split()) == 2
    assert "the API returned 2 of the 3 images asked for" in res.stderr


def test_bria_moderation_is_rejected_with_the_apis_reason(imgen, server, outdir):
    server.fault("bria_moderation")
    res = imgen("generate", "-m", "bria", "x", "-o", str(outdir))
    assert res.returncode == 5 and "Prompt was flagged by content moderation" in res.stderr
    assert len(server.api_requests()) == 1


def test_negative_prompt_elsewhere_names_the_models_that_take_it(imgen, server):
    res = imgen("generate", "-m", "dall-e-3", "--negative-prompt", "text", "x")
    assert res.returncode == 2 and "dall-e-3 does not accept negative_prompt (bria and midjourney and niji do); drop --negative-prompt" in res.stderr
    assert server.requests == []


@pytest.mark.parametrize(
    ("model", "args", "size", "warning"),
    [
        ("gpt-image-1", ["--aspect", "3:2"], "1536x1024", None),
        ("dall-e-3", ["--aspect", "16:9"], "1792x1024", None),
        ("dall-e-3", ["--aspect", "5:4"], "1024x1024", "dall-e-3 has no 5:4; asking for 1024x1024 (1:1)"),
        ("gpt-image-2", ["--aspect", "16:9", "-s", "4K"], "3840x2160", None),
    ],
)
def test_aspect_dry_run_shows_the_mapped_size(imgen, server, model, args, size, warning):
    res = imgen("generate", "-m", model, *args, "--dry-run", "--json", "x")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["body"]["size"] == size
    assert (warning in res.stderr) if warning else ("warning" not in res.stderr)
    assert server.requests == []


def test_aspect_strict_and_conflicts_are_usage_errors(imgen, server):
    strict = imgen("generate", "-m", "dall-e-3", "--aspect", "5:4", "--strict", "x")
    assert strict.returncode == 2 and "--strict refuses the nearest, 1024x1024 (1:1)" in strict.stderr
    both = imgen("generate", "-m", "gpt-image-2", "--aspect", "16:9", "-s", "1024x1024", "x")
    assert both.returncode == 2 and "give one or the other" in both.stderr
    assert server.requests == []


def test_models_show_lists_ratios_and_the_table_has_gemini_and_bria(imgen, server):
    shown = imgen("models", "show", "dall-e-3")
    assert "aspect (--aspect): 16:9 -> 1792x1024, 9:16 -> 1024x1792" in shown.stdout
    doc = json.loads(imgen("models", "show", FLASH, "--json").stdout)
    assert doc["dialect"] == "gemini" and "8:1" in doc["aspect"]["sends"]
    table = imgen("models").stdout
    assert any(line.startswith("bria ") and " bria " in line for line in table.splitlines())
    remote = imgen("models", "--remote", "--json")
    assert remote.returncode == 0, remote.stderr
    entries = {m["id"]: m for m in json.loads(remote.stdout)["models"]}
    assert entries["bria"]["checked"] and entries["bria"]["pricing"]["per_request"] == 0.04
    assert entries[FLASH]["checked"]


def test_bria_dry_run_cost_from_the_cached_catalog(imgen, server):
    assert imgen("models", "--remote").returncode == 0
    res = imgen("generate", "-m", "bria", "-n", "3", "--dry-run", "--json", "x")
    cost = json.loads(res.stdout)["cost"]
    assert cost["usd"] == pytest.approx(0.12)
