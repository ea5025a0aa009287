"""The Gemini and Bria dialects: pure request builders and answer parsers."""

from __future__ import annotations

import base64

import pytest

from imgen import faults
from imgen.dialects import bria, gemini
from imgen.errors import BadResponse, ExitCode, RateLimited, RequestRejected
from imgen.request import GenerateRequest

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfinal").decode()
DRAFT = base64.b64encode(b"\x89PNG\r\n\x1a\ndraft").decode()


def req(model="gemini-3.1-flash-image-preview", prompt="a lighthouse", params=None, **fields):
    return GenerateRequest(prompt=prompt, model=model, fields=fields, params=params or {})


def test_gemini_body_carries_prompt_references_ratio_and_size():
    call = gemini.build(req(aspect_ratio="16:9", size="2K", image=[f"data:image/jpeg;base64,{PNG}"]))
    assert (call.method, call.path) == ("POST", "/v1beta/models/gemini-3.1-flash-image-preview:generateContent")
    assert call.body == {
        "contents": [{"role": "user", "parts": [{"text": "a lighthouse"}, {"inlineData": {"mimeType": "image/jpeg", "data": PNG}}]}],
        "generationConfig": {"responseModalities": ["TEXT", "IMAGE"], "imageConfig": {"aspectRatio": "16:9", "imageSize": "2K"}},
    }


def test_gemini_params_merge_into_the_body_object_by_object():
    call = gemini.build(req(aspect_ratio="1:1", params={"generationConfig": {"temperature": 0.4}, "tools": [{"google_search": {}}]}))
    assert call.body["generationConfig"] == {"responseModalities": ["TEXT", "IMAGE"], "imageConfig": {"aspectRatio": "1:1"}, "temperature": 0.4}
    assert call.body["tools"] == [{"google_search": {}}]


def test_gemini_model_id_is_quoted_in_the_path():
    assert gemini.build(req(model="a/b c")).path == "/v1beta/models/a%2Fb%20c:generateContent"


def answer(parts, finish="STOP", **extra):
    return {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 1290, "thoughtsTokenCount": 100},
            "modelVersion": "gemini-3.1-flash-image-preview", "responseId": "resp-1", **extra}


def test_gemini_skips_thoughts_and_keeps_the_last_image_and_the_text():
    parsed = gemini.parse(answer([
        {"text": "thinking", "thought": True},
        {"inlineData": {"mimeType": "image/png", "data": DRAFT}, "thought": True},
        {"text": "Here it is.", "thoughtSignature": "sig"},
        {"inlineData": {"mimeType": "image/png", "data": PNG}, "thoughtSignature": "sig"},
    ]))
    assert [i.b64_json for i in parsed.items] == [PNG]
    assert parsed.meta["text"] == "Here it is." and parsed.request_id == "resp-1"
    assert parsed.usage["candidatesTokenCount"] == 1290


def test_gemini_reads_snake_case():
    parsed = gemini.parse({"candidates": [{"content": {"parts": [{"inline_data": {"mime_type": "image/png", "data": PNG}}]},
                                           "finish_reason": "STOP"}], "usage_metadata": {"prompt_token_count": 3}})
    assert parsed.items[0].b64_json == PNG and parsed.usage == {"prompt_token_count": 3}


def test_gemini_markdown_fallback_data_uri_and_link():
    parsed = gemini.parse(answer([{"text": f"Done! ![image](data:image/png;base64,{PNG})"}]))
    assert parsed.items[0].b64_json == PNG and parsed.meta["text"] == "Done!"
    linked = gemini.parse(answer([{"text": "![x](https://cdn.example/a.png)"}]))
    assert linked.items[0].url == "https://cdn.example/a.png"


@pytest.mark.parametrize(
    ("payload", "code", "words"),
    [
        ({"promptFeedback": {"blockReason": "SAFETY"}}, "prompt_blocked", "blocked the prompt (blockReason SAFETY)"),
        ({"candidates": [{"finishReason": "IMAGE_SAFETY", "index": 0}]}, "image_blocked", "withheld the image (finishReason IMAGE_SAFETY)"),
        ({"candidates": [{"finishReason": "PROHIBITED_CONTENT"}]}, "image_blocked", "PROHIBITED_CONTENT"),
        (answer([{"text": "I can only describe it."}]), "no_image", "text and no image: I can only describe it."),
    ],
)
def test_gemini_three_distinct_refusals_are_request_rejected_and_not_retryable(payload, code, words):
    with pytest.raises(RequestRejected) as caught:
        gemini.parse(payload)
    assert caught.value.code == code and words in caught.value.message
    assert caught.value.exit_code == ExitCode.REJECTED and not caught.value.retryable


def test_gemini_answer_without_candidates_is_a_bad_response():
    with pytest.raises(BadResponse):
        gemini.parse({"candidates": []})


def test_google_errors_are_classified_with_retry_delay():
    body = {"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED",
                      "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.5s"}]}}
    error = faults.classify(faults.read_fault(body), status=429)
    assert isinstance(error, RateLimited) and error.retryable and error.retry_after == 2.5 and error.code == "RESOURCE_EXHAUSTED"
    overloaded = faults.classify(faults.read_fault({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}), status=503)
    assert overloaded.retryable and "The model is overloaded." in overloaded.message
    bad = faults.classify(faults.read_fault({"error": {"code": 400, "message": "Unsupported aspect ratio", "status": "INVALID_ARGUMENT"}}), status=400)
    assert not bad.retryable and bad.exit_code == ExitCode.REJECTED and "Unsupported aspect ratio" in bad.message


def test_bria_body_maps_imgen_fields():
    call = bria.build(req(model="bria", n=3, aspect_ratio="4:5", seed=7, negative_prompt="text, logos", params={"medium": "art"}))
    assert (call.method, call.path) == ("POST", "/bria/text-to-image")
    assert call.body == {"prompt": "a lighthouse", "num_results": 3, "aspect_ratio": "4:5", "seed": 7, "negative_prompt": "text, logos",
                         "medium": "art"}


def test_bria_reads_every_url_of_every_result():
    parsed = bria.parse({"result": [{"urls": ["https://a/1.png", "https://a/2.png"], "seed": 5, "uuid": "u_5"}, {"urls": ["https://a/3.png"], "seed": 6}]})
    assert [i.url for i in parsed.items] == ["https://a/1.png", "https://a/2.png", "https://a/3.png"]
    assert [i.index for i in parsed.items] == [0, 1, 2] and parsed.items[0].extra == {"seed": 5, "uuid": "u_5"}


def test_bria_result_without_urls_is_a_failed_item_and_an_empty_result_a_refusal():
    parsed = bria.parse({"result": [{"urls": []}, {"urls": ["https://a/1.png"]}]})
    assert parsed.items[0].failed and parsed.items[1].url == "https://a/1.png"
    with pytest.raises(RequestRejected):
        bria.parse({"result": []})
    with pytest.raises(BadResponse):
        bria.parse({"detail": "x"})


class Sink:
    def __init__(self) -> None:
        self.data = bytearray()
        self.aborted = False
        self.spool_error = None

    def write(self, data: bytes) -> None:
        self.data += data

    def abort(self) -> None:
        self.aborted = True


def test_gemini_inline_images_are_decoded_chunk_by_chunk_and_only_the_final_one_kept():
    import json

    from imgen.files import b64split
    from imgen.generation import body

    final, draft = b"\x89PNG\r\n\x1a\n" + b"F" * 5000, b"\x89PNG\r\n\x1a\n" + b"D" * 3000
    document = json.dumps(answer([
        {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(draft).decode()}, "thought": True},
        {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(final).decode()}, "thoughtSignature": "sig"},
    ])).encode()
    sinks: list[Sink] = []
    chunks = (document[i : i + 7] for i in range(0, len(document), 7))  # keys and values split across chunks
    skeleton, streams = b64split.split(chunks, lambda n: sinks.append(Sink()) or sinks[-1], key=gemini.B64_KEY)
    assert [bytes(s.data) for s in sinks] == [draft, final] and all(st.error is None for st in streams)
    assert len(skeleton) < 1000  # the images never sat in the document
    parsed = gemini.parse(json.loads(skeleton))
    body.attach(parsed, sinks)
    assert parsed.items[0].spooled is sinks[1] and sinks[0].aborted and not sinks[1].aborted
