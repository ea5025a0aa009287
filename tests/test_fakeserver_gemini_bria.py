"""The fake server's Gemini and Bria routes: the shapes, validation and faults the clients are tested against."""
# ruff: noqa: F811 - the server fixtures are test_fakeserver's, imported by name as pytest wants

from __future__ import annotations

import base64
import hashlib
import json
import re

import httpx
import pytest

from fakeserver import FAULT_KINDS
from test_fakeserver import AUTH, KEY, PNG, client, server, srv  # noqa: F401

FLASH = "gemini-3.1-flash-image-preview"
PRO = "gemini-3-pro-image-preview"
TINY_PNG = base64.b64encode(PNG + b"\0" * 16).decode()


def gemini_body(prompt="a red fox", modalities=("TEXT", "IMAGE"), images=(), **image_config):
    parts = [{"text": prompt}] + [{"inlineData": {"mimeType": mime, "data": data}} for mime, data in images]
    config = {"responseModalities": list(modalities)}
    if image_config:
        config["imageConfig"] = image_config
    return {"contents": [{"role": "user", "parts": parts}], "generationConfig": config}


def gemini(client, server, body, model=FLASH, headers=AUTH):
    return client.post(f"{server.base_url}/v1beta/models/{model}:generateContent", json=body, headers=headers)


def bria(client, server, body, headers=AUTH):
    return client.post(server.base_url + "/bria/text-to-image", json=body, headers=headers)


def google_error(response, code):
    assert response.status_code == code, response.text
    error = response.json()["error"]
    assert set(error) <= {"code", "message", "status", "details"} and error["code"] == code
    return error


def detail(response):
    assert response.status_code == 422, response.text
    return response.json()["detail"]


def parts_of(response):
    return response.json()["candidates"][0]["content"]["parts"]


# ----------------------------------------------------------------- Gemini


def test_gemini_takes_either_key_header_and_refuses_in_googles_shape(server, client):
    assert gemini(client, server, gemini_body()).status_code == 200
    assert gemini(client, server, gemini_body(), headers={"x-goog-api-key": KEY}).status_code == 200
    wrong = gemini(client, server, gemini_body(), headers={"x-goog-api-key": "sk-wrong-key-9876"})
    assert google_error(wrong, 401)["status"] == "UNAUTHENTICATED"
    assert "sk-wrong-key-9876" not in wrong.text
    assert google_error(gemini(client, server, gemini_body(), headers={"Authorization": "Bearer nope"}),
                        401)["status"] == "UNAUTHENTICATED"
    assert google_error(gemini(client, server, gemini_body(), headers={}), 403)["status"] == "PERMISSION_DENIED"
    assert len(server.api_requests()) == 5 and len(server.served) == 2


def test_gemini_success_has_thoughts_then_a_signed_final_image(server, client):
    r = gemini(client, server, gemini_body())
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    doc = r.json()
    assert doc["modelVersion"] == FLASH and doc["responseId"]
    candidate = doc["candidates"][0]
    assert candidate["finishReason"] == "STOP" and candidate["index"] == 0 and candidate["safetyRatings"] == []
    assert candidate["content"]["role"] == "model"
    parts = candidate["content"]["parts"]
    assert [sorted(p) for p in parts] == [
        ["text", "thought"], ["inlineData", "thought"], ["text", "thoughtSignature"],
        ["inlineData", "thoughtSignature"],
    ]
    assert parts[0]["thought"] is parts[1]["thought"] is True
    draft, final = (base64.b64decode(p["inlineData"]["data"]) for p in (parts[1], parts[3]))
    assert parts[3]["inlineData"]["mimeType"] == "image/png"
    assert draft.startswith(PNG) and final.startswith(PNG) and draft != final
    assert server.served == [{"sha256": hashlib.sha256(final).hexdigest(), "bytes": len(final), "url": None,
                              "index": 0, "format": "png", "model": FLASH}]
    usage = doc["usageMetadata"]
    assert usage["totalTokenCount"] == (usage["promptTokenCount"] + usage["candidatesTokenCount"]
                                        + usage["thoughtsTokenCount"])


def test_gemini_modalities_decide_text_and_image(server, client):
    image_only = parts_of(gemini(client, server, gemini_body(modalities=["IMAGE"])))
    assert [p.get("thought", False) for p in image_only] == [True, True, False]
    assert "inlineData" in image_only[-1]
    for body in (gemini_body(modalities=["TEXT"]), {"contents": [{"parts": [{"text": "a fox"}]}]}):
        text_only = parts_of(gemini(client, server, body))
        assert len(text_only) == 1 and text_only[0]["text"]
    assert len(server.served) == 1


def test_gemini_reads_snake_case_requests(server, client):
    body = {
        "contents": [{"role": "user", "parts": [
            {"text": "make it blue"}, {"inline_data": {"mime_type": "image/jpeg", "data": TINY_PNG}},
        ]}],
        "generation_config": {"response_modalities": ["Image"],
                              "image_config": {"aspect_ratio": "21:9", "image_size": "4K"}},
    }
    r = gemini(client, server, body, model=PRO)
    assert r.status_code == 200, r.text
    assert "inlineData" in parts_of(r)[-1]
    assert r.json()["usageMetadata"]["candidatesTokenCount"] == 2000


def test_gemini_large_image_is_inline_and_exact(server, client):
    server.image_bytes = 3 * 1024 * 1024 + 1
    final = base64.b64decode(parts_of(gemini(client, server, gemini_body()))[-1]["inlineData"]["data"])
    assert len(final) == server.image_bytes and final.startswith(PNG)
    assert hashlib.sha256(final).hexdigest() == server.served[0]["sha256"]


@pytest.mark.parametrize(("model", "status", "words"), [
    ("gemini-2.5-flash-image", 404, "shut down"),
    ("gemini-2.5-pro", 404, "models/gemini-2.5-pro is not found"),
])
def test_gemini_unknown_and_retired_models(server, client, model, status, words):
    error = google_error(gemini(client, server, gemini_body(), model=model), status)
    assert error["status"] == "NOT_FOUND" and words in error["message"]


@pytest.mark.parametrize(("body", "model", "words"), [
    ({"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": TINY_PNG}}]}]}, FLASH, "no text"),
    ({"contents": []}, FLASH, "contents is not specified"),
    (gemini_body(images=[("image/png", "data:image/png;base64," + TINY_PNG)]), FLASH, "Base64 decoding failed"),
    (gemini_body(images=[("image/png", "not base64!")]), FLASH, "Base64 decoding failed"),
    (gemini_body(images=[("image/gif", TINY_PNG)]), FLASH, "Unsupported MIME type: image/gif"),
    (gemini_body(images=[("image/png", TINY_PNG)] * 15), FLASH, "Too many input images: 15"),
    (gemini_body(aspectRatio="7:3"), FLASH, "Unsupported aspect ratio: 7:3"),
    (gemini_body(aspectRatio="1:8"), PRO, "Unsupported aspect ratio: 1:8"),
    (gemini_body(imageSize="1k"), FLASH, "Unsupported image size: 1k"),
    (gemini_body(imageSize="512"), PRO, "Unsupported image size: 512"),
    (gemini_body(modalities=["PICTURE"]), FLASH, '"PICTURE"'),
    ({**gemini_body(), "aspect_ratio": "1:1"}, FLASH, 'Unknown name "aspect_ratio"'),
    (gemini_body(aspect="1:1"), FLASH, "Unknown name \"aspect\" at 'generation_config.image_config'"),
    ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, FLASH, "valid role"),
    ({"contents": [
        {"role": "user", "parts": [{"text": "a fox"}]},
        {"role": "model", "parts": [{"inlineData": {"mimeType": "image/png", "data": TINY_PNG}}]},
        {"role": "user", "parts": [{"text": "make it blue"}]},
    ]}, FLASH, "missing a thought_signature in content position 2, part position 1"),
])
def test_gemini_invalid_requests_are_400_invalid_argument(server, client, body, model, words):
    error = google_error(gemini(client, server, body, model=model), 400)
    assert error["status"] == "INVALID_ARGUMENT" and words in error["message"]
    assert server.served == []


def test_gemini_accepts_what_each_model_allows(server, client):
    fourteen = [("image/webp", TINY_PNG)] * 7 + [("image/heic", TINY_PNG)] * 7
    assert gemini(client, server, gemini_body(images=fourteen, aspectRatio="1:8", imageSize="512")).status_code == 200
    assert gemini(client, server, gemini_body(aspectRatio="21:9", imageSize="2K"), model=PRO).status_code == 200
    history = {"contents": [
        {"role": "user", "parts": [{"text": "a fox"}]},
        {"role": "model", "parts": [{"inlineData": {"mimeType": "image/png", "data": TINY_PNG},
                                     "thoughtSignature": "c2ln"}]},
        {"role": "user", "parts": [{"text": "make it blue"}]},
    ], "generationConfig": {"responseModalities": ["IMAGE"]}}
    assert gemini(client, server, history).status_code == 200


def test_gemini_blocked_prompt_and_blocked_image(server, client):
    server.fault("gemini_blocked_prompt")
    server.fault("gemini_blocked_image", reason="PROHIBITED_CONTENT")
    blocked = gemini(client, server, gemini_body())
    assert blocked.status_code == 200
    assert "candidates" not in blocked.json()
    assert blocked.json()["promptFeedback"] == {"blockReason": "SAFETY", "safetyRatings": []}
    assert "promptTokenCount" in blocked.json()["usageMetadata"]
    image = gemini(client, server, gemini_body()).json()
    assert image["candidates"] == [{"finishReason": "PROHIBITED_CONTENT", "index": 0}]
    assert server.served == []
    assert [r.fault for r in server.api_requests()] == ["gemini_blocked_prompt", "gemini_blocked_image"]


def test_gemini_text_only_and_markdown(server, client):
    server.fault("gemini_text_only")
    server.fault("gemini_markdown")
    declined = gemini(client, server, gemini_body()).json()["candidates"][0]
    assert declined["finishReason"] == "STOP"
    assert [p["text"] for p in declined["content"]["parts"]] == [FAULT_KINDS["gemini_text_only"]["text"]]
    parts = parts_of(gemini(client, server, gemini_body()))
    assert not any("inlineData" in p for p in parts)
    m = re.fullmatch(r"!\[image\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", parts[-1]["text"])
    assert m and hashlib.sha256(base64.b64decode(m.group(1))).hexdigest() == server.served[0]["sha256"]


def test_gemini_snake_case_answer(server, client):
    server.fault("gemini_snake")
    doc = gemini(client, server, gemini_body()).json()
    assert {"candidates", "usage_metadata", "model_version", "response_id"} == doc.keys()
    assert "prompt_token_count" in doc["usage_metadata"]
    candidate = doc["candidates"][0]
    assert candidate["finish_reason"] == "STOP"
    final = candidate["content"]["parts"][-1]
    assert set(final) == {"inline_data", "thought_signature"} and final["inline_data"]["mime_type"] == "image/png"
    assert hashlib.sha256(base64.b64decode(final["inline_data"]["data"])).hexdigest() == server.served[0]["sha256"]
    server.fault("gemini_snake")
    server.fault("gemini_blocked_prompt")
    server.fault("gemini_snake")  # a fault is one fault: the snake case goes with the next request
    assert "prompt_feedback" not in gemini(client, server, gemini_body()).json()
    assert gemini(client, server, gemini_body()).json()["promptFeedback"]["blockReason"] == "SAFETY"


@pytest.mark.parametrize(("status", "word"), [
    (429, "RESOURCE_EXHAUSTED"), (503, "UNAVAILABLE"), (400, "INVALID_ARGUMENT"), (404, "NOT_FOUND"),
    (500, "INTERNAL"),
])
def test_google_error_status_word_follows_the_code(server, client, status, word):
    server.fault("google_error", status=status)
    error = google_error(gemini(client, server, gemini_body()), status)
    assert error["status"] == word
    if status == 429:
        assert error["details"] == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}]
    else:
        assert "details" not in error
    if status == 503:
        assert error["message"] == "The model is overloaded. Please try again later."


def test_google_error_options(server, client):
    server.fault("google_error", retry_delay=None, message="Quota exceeded for metric: generate_content")
    error = google_error(gemini(client, server, gemini_body()), 429)
    assert error == {"code": 429, "message": "Quota exceeded for metric: generate_content",
                     "status": "RESOURCE_EXHAUSTED"}
    with pytest.raises(ValueError, match="retry_after"):
        server.fault("google_error", retry_after="1s")


def test_gateway_faults_apply_to_gemini_and_other_routes_keep_theirs(server, client):
    server.fault("item_error")
    server.fault("moderation")
    server.fault("status", status=503)
    server.fault("invalid_json")
    assert gemini(client, server, gemini_body()).status_code == 503
    truncated = gemini(client, server, gemini_body())
    assert truncated.status_code == 200 and truncated.text.startswith('{"candidates"')
    with pytest.raises(json.JSONDecodeError):
        truncated.json()
    assert server.pending_faults() == [("item_error", 1), ("moderation", 1)]
    openai = client.post(server.base_url + "/v1/images/generations", json={"model": "dall-e-2", "prompt": "x"},
                         headers=AUTH)
    assert "error" in openai.json()["data"][0]
    assert server.pending_faults() == [("moderation", 1)]
    server.fault("reset")
    with pytest.raises(httpx.TransportError):
        gemini(client, server, gemini_body())


def test_gemini_body_that_is_not_json(server, client):
    r = client.post(f"{server.base_url}/v1beta/models/{FLASH}:generateContent", content=b"{oops", headers=AUTH)
    assert google_error(r, 400)["message"].startswith("Invalid JSON payload received.")
    assert len(server.api_requests()) == 1


# ----------------------------------------------------------------- Bria


def test_bria_results_carry_signed_urls_seeds_and_uuids(server, client):
    r = bria(client, server, {"prompt": "a lighthouse", "num_results": 3, "seed": 100, "aspect_ratio": "16:9",
                              "medium": "photography", "sync": True, "steps_num": 30, "text_guidance_scale": 5.5})
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    assert [item["seed"] for item in result] == [100, 101, 102]
    for item, served in zip(result, server.served, strict=True):
        assert re.fullmatch(r"[0-9a-f-]{36}_%d" % item["seed"], item["uuid"])
        assert [served["url"]] == item["urls"] and served["model"] == "bria"
        image = client.get(item["urls"][0])
        assert image.status_code == 200 and image.content.startswith(PNG)
        assert hashlib.sha256(image.content).hexdigest() == served["sha256"]
    assert len({s["sha256"] for s in server.served}) == 3


def test_bria_defaults_to_one_result_with_a_random_seed(server, client):
    first, second = (bria(client, server, {"prompt": "a lighthouse"}).json()["result"] for _ in range(2))
    assert len(first) == len(second) == 1
    assert first[0]["uuid"].endswith(f"_{first[0]['seed']}") and first[0]["seed"] != second[0]["seed"]


def test_bria_auth_is_openai_shaped(server, client):
    wrong = bria(client, server, {"prompt": "x"}, headers={"Authorization": "Bearer sk-wrong-key-9876"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    assert "sk-wrong-key-9876" not in wrong.text
    assert bria(client, server, {"prompt": "x"}, headers={}).status_code == 401
    assert len(server.api_requests()) == 2 and server.served == []


@pytest.mark.parametrize(("body", "field", "type_"), [
    ({}, "prompt", "value_error.missing"),
    ({"prompt": "  "}, "prompt", "value_error.any_str.min_length"),
    ({"prompt": 7}, "prompt", "type_error.str"),
    ({"prompt": "x", "num_results": 5}, "num_results", "value_error.number.not_le"),
    ({"prompt": "x", "num_results": 0}, "num_results", "value_error.number.not_ge"),
    ({"prompt": "x", "num_results": "2"}, "num_results", "type_error.integer"),
    ({"prompt": "x", "aspect_ratio": "21:9"}, "aspect_ratio", "value_error"),
    ({"prompt": "x", "steps_num": 10}, "steps_num", "value_error.number.not_ge"),
    ({"prompt": "x", "text_guidance_scale": 11}, "text_guidance_scale", "value_error.number.not_le"),
    ({"prompt": "x", "medium": "painting"}, "medium", "value_error"),
    ({"prompt": "x", "seed": 1.5}, "seed", "type_error.integer"),
    ({"prompt": "x", "negative_prompt": ["blur"]}, "negative_prompt", "type_error.str"),
    ({"prompt": "x", "content_moderation": "yes"}, "content_moderation", "type_error.bool"),
    ({"prompt": "x", "n": 2}, "n", "value_error.extra"),
])
def test_bria_invalid_requests_are_422_in_fastapi_shape(server, client, body, field, type_):
    [problem] = detail(bria(client, server, body))
    assert problem["loc"] == ["body", field] and problem["type"] == type_ and problem["msg"]
    assert server.served == []


def test_bria_reports_every_problem_at_once(server, client):
    problems = detail(bria(client, server, {"num_results": 9, "aspect_ratio": "2:1", "style": "x"}))
    assert sorted(p["loc"][1] for p in problems) == ["aspect_ratio", "num_results", "prompt", "style"]
    assert "'16:9'" in next(p["msg"] for p in problems if p["loc"][1] == "aspect_ratio")


def test_bria_moderation(server, client):
    server.fault("bria_moderation")
    assert detail(bria(client, server, {"prompt": "x"})) == [
        {"loc": ["body", "prompt"], "msg": "Prompt was flagged by content moderation", "type": "content_moderation"},
    ]
    assert server.served == []


def test_bria_fewer_and_multi_urls(server, client):
    server.fault("bria_fewer", drop=2)
    server.fault("bria_multi_urls")
    assert len(bria(client, server, {"prompt": "x", "num_results": 3}).json()["result"]) == 1
    assert len(server.served) == 1
    result = bria(client, server, {"prompt": "x", "num_results": 2}).json()["result"]
    assert [len(item["urls"]) for item in result] == [2, 1]
    assert [s["url"] for s in server.served[1:]] == [u for item in result for u in item["urls"]]
    assert len({s["sha256"] for s in server.served[1:]}) == 3


def test_bria_urls_take_download_faults_and_gateway_faults(server, client):
    server.fault("status", status=503)
    assert bria(client, server, {"prompt": "x"}).status_code == 503
    server.fault("dl_403")
    url = bria(client, server, {"prompt": "x"}).json()["result"][0]["urls"][0]
    assert client.get(url).status_code == 403 and client.get(url).status_code == 200
    server.fault("gemini_markdown")
    server.fault("html")
    assert bria(client, server, {"prompt": "x"}).headers["content-type"] == "text/html"
    assert server.pending_faults() == [("gemini_markdown", 1)]


# ----------------------------------------------------------------- catalog


def test_catalog_lists_the_new_models(server, client):
    everything = {m["id"]: m for m in client.get(server.base_url + "/api/models?page=0").json()["data"]}
    for model, price in ((FLASH, (0.5, 60)), (PRO, (2, 120))):
        entry = everything[model]
        assert entry["model_type"] == "image" and entry["features"] == ["text-to-image", "image-to-image"]
        assert (entry["pricing"]["input"], entry["pricing"]["output"]) == price
        assert json.loads(entry["endpoints"])["gemini"]["path"] == "/v1beta/models/{model}:generateContent"
    entry = everything["bria"]
    assert entry["pricing"]["per_request"] == 0.04
    assert json.loads(entry["endpoints"])["bria"] == {"path": "/bria/text-to-image", "method": "POST"}
