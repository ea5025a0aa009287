"""The stream reader without HTTP: bytes in, saved images, Updates and an Outcome out."""

import base64
import binascii
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fakeserver import make_image
from imgen import pipeline
from imgen.errors import AuthError, BadResponse, ExitCode, RateLimited, RequestRejected, ServerError
from imgen.generation import saving
from imgen.generation.stream import StreamReader, Update, _add_usage, _b64_size, event_error
from imgen.results import GenerationResponse


def plan_for(tmp_path, monkeypatch, *, n=1, partials=2, save_partials=True, output=None):
    monkeypatch.setenv("COMETAPI_KEY", "sk-unit")
    return pipeline.prepare(
        "a boat",
        flags={"model": "gpt-image-1"},
        fields={"n": n, "stream": True, "partial_images": partials},
        params={},
        output=output or str(tmp_path / "out"),
        save_partials=save_partials,
    )


def b64(seed: str) -> str:
    return base64.b64encode(make_image(seed).to_bytes()).decode()


def sse(kind: str, data: dict) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


def partial(k: int, seed: str = "p") -> bytes:
    return sse("image_generation.partial_image", {
        "type": "image_generation.partial_image", "b64_json": b64(f"{seed}{k}"), "partial_image_index": k,
        "size": "1024x1024", "output_format": "png",
    })


def completed(seed: str = "final", tokens: int = 10) -> bytes:
    return sse("image_generation.completed", {
        "type": "image_generation.completed", "b64_json": b64(seed), "created_at": 1779872000,
        "size": "1024x1024", "quality": "low", "background": "opaque", "output_format": "png",
        "usage": {"input_tokens": 3, "output_tokens": tokens, "total_tokens": 3 + tokens,
                  "output_tokens_details": {"image_tokens": tokens}},
    })


def leftovers(directory):
    return [p.name for p in directory.iterdir() if p.name.startswith(".imgen-") or p.name.endswith(".part")]


def read(plan, body: bytes | list[bytes], **kw):
    updates: list[Update] = []
    reader = StreamReader(plan, on_update=updates.append)
    chunks = [body] if isinstance(body, bytes) else body
    return reader.read(chunks, **kw), updates


# --- matching, numbering, naming ----------------------------------------------------------------


def test_partials_belong_to_the_next_completed_image(tmp_path, monkeypatch):
    plan = plan_for(tmp_path, monkeypatch, n=2, partials=1)
    body = partial(0, "a") + completed("A") + partial(0, "b") + completed("B")
    outcome, updates = read(plan, body)
    assert outcome.exit_code == ExitCode.OK
    assert [(u.kind, u.image, u.partial) for u in updates] == [
        ("partial", 1, 1), ("completed", 1, None), ("partial", 2, 1), ("completed", 2, None),
    ]
    first, second = outcome.saved
    assert first.item.extra["partials"][0]["sha256"] == updates[0].saved.sha256
    assert first.image.path.name.removesuffix(".png") + ".partial-1.png" == updates[0].path.name
    assert second.image.path.name.endswith("-2.png")
    assert outcome.response.usage["output_tokens"] == 20 and outcome.response.usage["output_tokens_details"]["image_tokens"] == 20


def test_partial_numbers_follow_the_api_index_even_with_gaps(tmp_path, monkeypatch):
    plan = plan_for(tmp_path, monkeypatch, partials=3)
    outcome, updates = read(plan, partial(0) + partial(2) + completed())
    assert outcome.exit_code == ExitCode.OK
    assert [u.partial for u in updates if u.kind == "partial"] == [1, 3]
    assert sorted(p.name.rsplit(".", 2)[1] for p in (tmp_path / "out").iterdir() if ".partial-" in p.name) == ["partial-1", "partial-3"]


def test_one_byte_chunks_give_the_same_result(tmp_path, monkeypatch):
    plan = plan_for(tmp_path, monkeypatch, save_partials=False)
    body = b"\xef\xbb\xbf\n: keep-alive\n\n" + partial(0) + partial(1) + completed() + b"data: [DONE]\n\n"
    outcome, updates = read(plan, [body[i : i + 1] for i in range(len(body))])
    assert outcome.exit_code == ExitCode.OK and [u.kind for u in updates] == ["partial", "partial", "completed"]
    assert updates[0].path is None and updates[0].bytes == len(make_image("p0").to_bytes())


# --- how the stream can end -------------------------------------------------------------------


def test_cut_after_the_first_of_two_images_keeps_it(tmp_path, monkeypatch):
    plan = plan_for(tmp_path, monkeypatch, n=2, partials=1)
    body = partial(0, "a") + completed("A") + partial(0, "b")
    cut = partial(0, "c")[:50]
    outcome, _ = read(plan, body + cut)
    assert outcome.exit_code == ExitCode.PARTIAL
    assert len(outcome.saved) == 1 and len(outcome.failed) == 1
    error = outcome.failed[0].error
    assert isinstance(error, BadResponse) and error.code == "stream_cut"
    assert "ended in the middle of an event" in error.message
    assert "image 2 of 2 was not completed: 1 partial image of it arrived (1 saved)" in error.message
    assert "completed images were kept" in error.hint
    assert leftovers(tmp_path / "out") == []


def test_clean_end_with_images_missing(tmp_path, monkeypatch):
    plan = plan_for(tmp_path, monkeypatch, n=3, partials=0)
    outcome, _ = read(plan, completed("A"))
    assert outcome.exit_code == ExitCode.PARTIAL
    assert [f.item.index for f in outcome.failed] == [1, 2]
    assert all("ended after 1 of 3 images" in f.error.message for f in outcome.failed)
    doc = pipeline.outcome_document(outcome)
    assert [e["index"] for e in doc["errors"]] == [2, 3] and doc["exit_code"] == 10


def test_read_error_is_a_cut(tmp_path, monkeypatch):
    plan = plan_for(tmp_path, monkeypatch)

    def chunks():
        yield partial(0)
        yield partial(1)[:40]
        raise ConnectionResetError("reset by peer")

    outcome, _ = read(plan, chunks(), read_errors=(ConnectionResetError,))
    assert outcome.exit_code == ExitCode.BAD_RESPONSE
    assert "connection broke (ConnectionResetError: reset by peer)" in outcome.failed[0].error.message
    assert "2 partial" not in outcome.failed[0].error.message and "1 partial image" in outcome.failed[0].error.message
    assert leftovers(tmp_path / "out") == []


def test_a_final_event_missing_only_its_blank_line_is_accepted(tmp_path, monkeypatch):
    plan = plan_for(tmp_path, monkeypatch, partials=0)
    outcome, _ = read(plan, completed().rstrip(b"\n") + b"\n")
    assert outcome.exit_code == ExitCode.OK
    outcome, _ = read(plan, completed() + b"data: [DONE]")
    assert outcome.exit_code == ExitCode.OK


def test_done_stops_reading(tmp_path, monkeypatch):
    plan = plan_for(tmp_path, monkeypatch, partials=0)
    outcome, updates = read(plan, completed() + b"data: [DONE]\n\n" + b"garbage that is never read")
    assert outcome.exit_code == ExitCode.OK and len(updates) == 1


def test_error_event_after_a_completed_image(tmp_path, monkeypatch):
    plan = plan_for(tmp_path, monkeypatch, n=2, partials=0)
    error = {"type": "error", "error": {"type": "image_generation_user_error", "code": "moderation_blocked", "message": "Refused."}}
    outcome, _ = read(plan, completed("A") + sse("error", error))
    assert outcome.exit_code == ExitCode.PARTIAL
    failure = outcome.failed[0].error
    assert isinstance(failure, RequestRejected) and failure.code == "moderation_blocked"
    assert failure.message.startswith("the API reported an error during the stream: Refused. (code moderation_blocked)")


def test_invalid_partial_does_not_end_the_stream(tmp_path, monkeypatch):
    plan = plan_for(tmp_path, monkeypatch)
    bad = sse("image_generation.partial_image", {"type": "image_generation.partial_image", "b64_json": "@@nope@@", "partial_image_index": 0})
    outcome, updates = read(plan, bad + completed())
    assert outcome.exit_code == ExitCode.OK
    assert updates[0].error is not None and "not saved" in updates[0].describe()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty body"),
        (b"  \r\n", "empty body"),
        (b"<html><body>502 Bad Gateway</body></html>", "a page, not an event stream"),
        (b": only a comment\n\n", "holds no events"),
        (b"{not json", "not JSON"),
    ],
)
def test_answers_that_are_not_a_stream(tmp_path, monkeypatch, body, message):
    plan = plan_for(tmp_path, monkeypatch)
    with pytest.raises(BadResponse, match=message):
        read(plan, body, content_type="text/event-stream")
    assert not (tmp_path / "out").exists() or leftovers(tmp_path / "out") == []


def test_plain_text_answer_is_not_called_a_cut(tmp_path, monkeypatch):
    plan = plan_for(tmp_path, monkeypatch)
    with pytest.raises(BadResponse, match="holds no events .*Bad Gateway"):
        read(plan, b"Bad Gateway", content_type="text/plain")


def test_json_images_response_goes_back_to_the_pipeline(tmp_path, monkeypatch):
    plan = plan_for(tmp_path, monkeypatch)
    body = json.dumps({"created": 1, "data": [{"b64_json": b64("x")}], "usage": {"total_tokens": 5}}).encode()
    answer, updates = read(plan, [b"\n", body[:5], body[5:]], request_id="req-1")
    assert isinstance(answer, GenerationResponse) and answer.request_id == "req-1"
    assert answer.items[0].b64_json and updates == []


def test_json_error_with_status_200(tmp_path, monkeypatch):
    plan = plan_for(tmp_path, monkeypatch)
    body = json.dumps({"error": {"message": "Slow down.", "type": "requests", "code": "rate_limit_exceeded"}}).encode()
    with pytest.raises(RateLimited, match="the API answered 200: Slow down. .code rate_limit_exceeded."):
        read(plan, body)


def test_stdout_target_writes_the_final_image_and_cleans_up(tmp_path, monkeypatch, capfdbinary):
    monkeypatch.chdir(tmp_path)
    plan = plan_for(tmp_path, monkeypatch, save_partials=False, output="-")
    with saving.staging(plan):  # what pipeline.run does around the stream reader
        staging = plan.target.directory
        outcome, updates = read(plan, partial(0) + completed("final"))
    assert outcome.exit_code == ExitCode.OK and outcome.saved[0].image.path is None
    assert updates[-1].path is None  # the bytes went to stdout, not to a file
    assert capfdbinary.readouterr().out == make_image("final").to_bytes()
    assert not staging.exists() and list(tmp_path.iterdir()) == []


# --- small pieces -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "cls"),
    [
        ({"code": "moderation_blocked", "type": "image_generation_user_error"}, RequestRejected),
        ({"code": "insufficient_quota", "type": "insufficient_quota"}, RateLimited),
        ({"code": "rate_limit_exceeded", "type": "requests"}, RateLimited),
        ({"code": "invalid_api_key", "type": "invalid_request_error"}, AuthError),
        ({"code": None, "type": "invalid_request_error", "param": "size"}, RequestRejected),
        ({"code": "image_generation_failed", "type": "image_generation_server_error"}, ServerError),
        ({}, ServerError),
    ],
)
def test_event_error_mapping(error, cls):
    mapped = event_error({"type": "error", "error": {"message": "m", **error}}, "during the stream")
    assert type(mapped) is cls and mapped.message.startswith("during the stream: m")


@given(st.binary(max_size=64))
def test_b64_size_matches_decoding(data):
    text = base64.b64encode(data).decode()
    assert _b64_size(text) == len(binascii.a2b_base64(text)) == len(data)
    assert _b64_size("data:image/png;base64," + text) == len(data)


def test_usage_is_summed_with_its_details():
    a = {"input_tokens": 3, "output_tokens": 5, "output_tokens_details": {"image_tokens": 5}}
    b = {"input_tokens": 3, "output_tokens": 7, "output_tokens_details": {"image_tokens": 7}, "extra": "x"}
    assert _add_usage(_add_usage(None, a), b) == {
        "input_tokens": 6, "output_tokens": 12, "output_tokens_details": {"image_tokens": 12}, "extra": "x",
    }
    assert a["output_tokens_details"] == {"image_tokens": 5}  # the first event's own usage is untouched


def test_update_lines():
    assert Update("partial", 1, 1, 49254, partial=2, partials=3).describe() == "partial 2/3 of image 1: 48.1 KiB"
    assert Update("completed", 2, 3, 3 * 1024 * 1024).describe() == "image 2/3 completed: 3 MiB"
    line = Update("partial", 1, 1, 10, partial=1).to_dict()
    assert line == {"event": "partial_image", "image": 1, "partial": 1, "bytes": 10}


def test_connection_lost_before_any_byte_is_a_cut_not_an_empty_body(tmp_path, monkeypatch):
    plan = plan_for(tmp_path, monkeypatch)

    def chunks():
        raise ConnectionResetError("reset by peer")
        yield b""

    outcome, _ = read(plan, chunks(), read_errors=(ConnectionResetError,))
    assert outcome.exit_code == ExitCode.BAD_RESPONSE
    assert "the connection broke" in outcome.failed[0].error.message
    assert "no partial image of it arrived" in outcome.failed[0].error.message
