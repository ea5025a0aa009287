"""Every dialect keeps the interface in dialects/__init__.py, and builds and parses without
HTTP; one classifier turns every API's error body into the same kind of ImgenError."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgen import dialects, faults
from imgen.config import settings as st
from imgen.dialects import envelope, openai_images, placeholder
from imgen.errors import AuthError, RateLimited, RequestRejected, ServerError
from imgen.generation.plan import choose_dialect
from imgen.models import capabilities
from imgen.request import GenerateRequest


@pytest.mark.parametrize("name", sorted(dialects.DIALECTS))
def test_each_dialect_keeps_the_interface(name):
    module = dialects.get(name)
    assert module.NAME == name and module.LIFECYCLE in dialects.REQUIRED
    for fn in dialects.REQUIRED[module.LIFECYCLE]:
        assert callable(getattr(module, fn))


def test_every_model_record_names_a_dialect_that_exists():
    assert {spec.dialect for spec in capabilities.all_specs()} <= set(dialects.DIALECTS)


def test_a_dialect_missing_part_of_the_interface_is_refused(monkeypatch):
    import types

    broken = types.ModuleType("broken")
    broken.NAME, broken.LIFECYCLE, broken.build = "broken", "task", lambda req: None
    monkeypatch.setitem(dialects.DIALECTS, "broken", broken)
    with pytest.raises(TypeError, match="lacks task_ref, poll, progress"):
        dialects.get("broken")


def test_openai_builds_only_what_was_set_and_parses_items():
    req = GenerateRequest("a fox", "gpt-image-1", fields={"size": "1024x1024", "stream": True}, params={"x": 1})
    call = openai_images.build(req)
    assert (call.method, call.path, call.stream) == ("POST", "/v1/images/generations", True)
    assert call.body == {"model": "gpt-image-1", "prompt": "a fox", "size": "1024x1024", "stream": True, "x": 1}
    parsed = openai_images.parse({"created": 1, "data": [{"b64_json": "AAAA"}, {"url": "https://x/y"}, {}], "size": "1024x1024"})
    first, second, third = parsed.items
    assert (first.b64_json, second.url, third.error_code) == ("AAAA", "https://x/y", "no_image")
    assert parsed.meta == {"size": "1024x1024"}


def test_envelope_fills_its_required_fields_and_reads_its_code():
    call = envelope.build(GenerateRequest("x", "gpt-image-1.5", fields={"n": 2}))
    assert call.path == "/api/v1/image/generation" and call.body["n"] == 2 and call.body["stream"] is False
    with pytest.raises(RequestRejected, match=r"the gateway refused the request: no \(code 1001\)"):
        envelope.parse({"code": 1001, "message": "no", "request_id": "r1"})
    with pytest.raises(AuthError):
        envelope.parse({"code": 401, "message": "bad key"})
    assert envelope.read_fault({"code": 0, "data": {}}).empty
    assert envelope.read_fault({"error": {"message": "m", "code": "c"}}).message == "m"  # a proxy in front of it


def test_placeholder_answers_itself():
    call = placeholder.build(GenerateRequest("x", "placeholder", fields={"n": 2, "size": "8x8"}))
    parsed = placeholder.parse(placeholder.answer(call))
    assert [len(i.data) > 0 and i.data.startswith(b"\x89PNG") for i in parsed.items] == [True, True]


@pytest.mark.parametrize(
    ("body", "fault"),
    [
        ({"error": {"message": "m", "type": "invalid_request_error", "param": "size", "code": None}},
         faults.Fault("m", "invalid_request_error", "invalid_request_error", "size")),
        ({"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}}, faults.Fault("bad", "INVALID_ARGUMENT", None, None, 400)),
        ({"code": 4, "description": "task_no_found ", "type": "upstream_error"}, faults.Fault("task_no_found", "4", "upstream_error")),
        ({"detail": [{"loc": ["body", "width"], "msg": "must be a multiple of 32", "type": "value_error"}]},
         faults.Fault("must be a multiple of 32", "value_error", param="width")),
        ({"code": 1001, "message": "upstream failed"}, faults.Fault("upstream failed", "1001")),
        ({"Message": "denied", "Code": "AccessDenied"}, faults.Fault("denied", "AccessDenied")),
        ({"data": []}, faults.Fault()),
        ("<html>", faults.Fault()),
    ],
)
def test_read_fault_finds_the_message_in_every_known_shape(body, fault):
    assert faults.read_fault(body) == fault


@pytest.mark.parametrize(
    ("fault", "status", "cls", "retryable"),
    [
        (faults.Fault("m"), 401, AuthError, False),
        (faults.Fault("m", "insufficient_quota"), 429, RateLimited, False),
        (faults.Fault("m", "rate_limit_exceeded"), 429, RateLimited, True),
        (faults.Fault("m", "RESOURCE_EXHAUSTED", status=429), None, RateLimited, False),
        (faults.Fault("m"), 503, ServerError, True),
        (faults.Fault("m"), 400, RequestRejected, False),
        (faults.Fault("m", "moderation_blocked"), 400, RequestRejected, False),
        (faults.Fault("m"), 408, RequestRejected, True),
        (faults.Fault("m", "image_generation_failed"), None, ServerError, False),
        (faults.Fault("m", status=401), None, AuthError, False),
    ],
)
def test_classify_decides_the_kind_and_whether_to_retry(fault, status, cls, retryable):
    error = faults.classify(fault, status=status)
    assert type(error) is cls and error.retryable is retryable


def test_classify_words_http_errors_and_in_band_errors_apart():
    assert faults.classify(faults.Fault("no"), status=400).message == "the API answered 400: no"
    assert faults.classify(faults.Fault("no", "c"), what="in the stream").message == "in the stream: no (code c)"
    assert faults.classify(faults.Fault(), status=502, content_type="text/html").message == "the API answered 502: HTTP 502 with an HTML page"
    moved = faults.classify(faults.Fault(), status=301, location="https://api.example/new/v1/images/generations",
                            origin="http://api.example/v1/images/generations")
    assert "use --base-url https://api.example/new" in moved.hint
    elsewhere = faults.classify(faults.Fault(), status=301, location="https://new.example/v1/images/generations",
                                origin="http://api.example/v1/images/generations")
    assert "new.example" not in elsewhere.hint + elsewhere.message


def test_the_dialect_is_the_models_unless_the_profile_forces_one(isolated_env):
    cometapi = st.resolve({})
    assert choose_dialect("gpt-image-1.5", cometapi) == "openai"
    assert choose_dialect("placeholder", cometapi) == "placeholder"
    assert choose_dialect("brand-new-model", cometapi) == "openai"
    dianming = st.resolve({"profile": "dianming"})
    assert dianming.forced_dialect() == "envelope" and choose_dialect("gpt-image-1.5", dianming) == "envelope"
    assert choose_dialect("placeholder", dianming) == "placeholder"  # an offline model stays offline


def test_one_profile_reaches_each_model_in_its_own_dialect_unless_it_forces_one(imgen, server, isolated_env, tmp_path):
    import json
    import os

    def sent_to(*args):
        res = imgen("generate", "x", "--dry-run", "--json", *args)
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout).get("url", "offline")

    assert sent_to("-m", "gpt-image-1.5") == server.base_url + "/v1/images/generations"
    assert sent_to("-m", "placeholder") == "offline"
    config = Path(os.environ["IMGEN_CONFIG"])
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('[profiles.gateway]\napi = "envelope"\nmodel = "gpt-image-1.5"\n')
    assert sent_to("-P", "gateway") == server.base_url + "/api/v1/image/generation"
    refused = imgen("-P", "gateway", "generate", "x", "-m", "dall-e-3", "--dry-run")
    assert refused.returncode == 2 and "a profile whose api is openai" in refused.stderr
    listed = imgen("models", "--json")
    assert {m["id"]: m["dialect"] for m in json.loads(listed.stdout)["models"] if m["id"] == "dall-e-3"} == {"dall-e-3": "openai"}
    assert server.requests == []
