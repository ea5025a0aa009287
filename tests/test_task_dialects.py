"""The Midjourney and Flux dialects, pure: what each sends, and how each answer is read."""

from __future__ import annotations

import pytest

from imgen.dialects import Done, NotAccepted, Pending, TaskFailed, TaskRef, flux, midjourney
from imgen.errors import BadResponse, RateLimited, RequestRejected, ServerError
from imgen.models import preflight
from imgen.request import GenerateRequest


def checked(model: str, dialect: str, **fields) -> GenerateRequest:
    req = GenerateRequest("a fox in a misty forest", model, fields=fields)
    assert preflight.check(req, dialect).problems == []
    return req


# --------------------------------------------------------------------------- Midjourney


def test_imagine_puts_the_shape_in_the_prompt_and_the_speed_in_the_path():
    call = midjourney.build(checked("niji", "midjourney", aspect="16:9", negative_prompt="text", mj_speed="relax",
                                    image=["data:image/png;base64,AAAA"]))
    assert (call.method, call.path) == ("POST", "/mj-relax/mj/submit/imagine")
    assert call.body == {"prompt": "a fox in a misty forest --ar 16:9 --no text", "botType": "NIJI_JOURNEY",
                         "base64Array": ["data:image/png;base64,AAAA"]}
    plain = midjourney.build(checked("midjourney", "midjourney"))
    assert plain.path == "/mj/submit/imagine" and plain.body == {"prompt": "a fox in a misty forest", "botType": "MID_JOURNEY"}


@pytest.mark.parametrize(("payload", "error", "words"), [
    ({"code": 23, "description": "队列已满", "result": None}, NotAccepted, "queue is full"),
    ({"code": 24, "description": "banned", "properties": {"bannedWord": "gore"}}, RequestRejected, "banned word 'gore'"),
    ({"code": 4, "description": "bad prompt"}, RequestRejected, "refused the submit: bad prompt"),
    ({"code": 30, "description": "busy"}, RateLimited, "saturated"),
    ({"code": 1, "result": ""}, BadResponse, "no task id"),
    ([], BadResponse, "not an object"),
])
def test_the_submit_is_decided_by_its_code(payload, error, words):
    with pytest.raises(error, match=words) as info:
        midjourney.task_ref(payload)
    assert type(info.value) is error


def test_accepted_codes_and_numeric_ids():
    assert midjourney.task_ref({"code": 1, "result": 1773314942177684}).id == "1773314942177684"
    assert midjourney.task_ref({"code": 22, "description": "排队中", "result": "17"}).id == "17"
    assert isinstance(NotAccepted("x"), RateLimited) and NotAccepted("x").retryable


REF = TaskRef("17", "midjourney")
GRID_BUTTONS = [{"customId": f"MJ::JOB::upsample::{i}::h{i}", "label": f"U{i}", "emoji": ""} for i in range(1, 5)] + [
    {"customId": "MJ::JOB::reroll::0::h::SOLO", "label": "", "emoji": "🔄"}
] + [{"customId": f"MJ::JOB::variation::{i}::h{i}", "label": f"V{i}", "emoji": ""} for i in range(1, 5)]


def test_fetch_states():
    assert midjourney.progress({"status": ""}, REF) == Pending("NOT_START", None)
    assert midjourney.progress({"status": "IN_PROGRESS", "progress": "45%", "imageUrl": "https://x/preview"}, REF) == Pending("IN_PROGRESS", 0.45)
    done = midjourney.progress({"status": "SUCCESS", "imageUrl": "https://x/mj/image/17", "buttons": GRID_BUTTONS, "action": "IMAGINE"}, REF)
    assert isinstance(done, Done) and done.response.items[0].url == "https://x/mj/image/17"
    assert [b["label"] for b in done.response.meta["buttons"]] == ["U1", "U2", "U3", "U4", "🔄", "V1", "V2", "V3", "V4"]
    failed = midjourney.progress({"status": "FAILURE", "failReason": "banned prompt detected"}, REF)
    assert isinstance(failed, TaskFailed) and "banned prompt detected" in failed.error.message
    modal = midjourney.progress({"status": "MODAL"}, REF)
    assert isinstance(modal, TaskFailed) and "MODAL" in modal.error.message
    assert isinstance(midjourney.progress({"status": "WEIRD"}, REF).error, BadResponse)


def test_buttons_are_found_by_label_never_built():
    found = midjourney.buttons({"buttons": GRID_BUTTONS})
    assert midjourney.find_button(found, "u2")["customId"] == "MJ::JOB::upsample::2::h2"
    assert midjourney.find_button(found, "reroll")["customId"] == "MJ::JOB::reroll::0::h::SOLO"
    assert midjourney.find_button(found, "🔄")["customId"] == "MJ::JOB::reroll::0::h::SOLO"
    assert midjourney.find_button(found, "U5") is None and midjourney.find_button(found, "") is None
    call = midjourney.action("17", "MJ::JOB::upsample::2::h2", "fast")
    assert (call.path, call.body) == ("/mj-fast/mj/submit/action", {"taskId": "17", "customId": "MJ::JOB::upsample::2::h2"})


# --------------------------------------------------------------------------- Flux


def test_flux_sizes_become_width_and_height_and_guidance_is_renamed():
    call = flux.build(checked("flux-pro", "flux", size="1344x768", seed=7, steps=30, guidance_scale=2.5, output_format="png",
                              safety_tolerance=2))
    assert (call.method, call.path) == ("POST", "/flux/v1/flux-pro")
    assert call.body == {"prompt": "a fox in a misty forest", "width": 1344, "height": 768, "seed": 7, "steps": 30, "guidance": 2.5,
                         "output_format": "png", "safety_tolerance": 2}


def test_flux_aspect_is_a_size_or_a_ratio_by_model():
    assert flux.build(checked("flux-pro-1.1", "flux", aspect="16:9")).body["width"] % 32 == 0
    assert flux.build(checked("flux-pro-1.1-ultra", "flux", aspect="21:9")).body == {"prompt": "a fox in a misty forest", "aspect_ratio": "21:9"}


def test_flux_references_by_model_family():
    kontext = flux.build(checked("flux-kontext-pro", "flux", image=["data:image/png;base64,QUJD"]))
    assert kontext.body["input_image"] == "QUJD"
    two = flux.build(checked("flux-2-pro", "flux", image=["https://x/a.png", "data:image/jpeg;base64,WFla"]))
    assert (two.body["input_image"], two.body["input_image_2"]) == ("https://x/a.png", "WFla")
    assert flux.build(checked("flux-pro-1.1", "flux", image=["https://x/a.png"])).body["image_prompt"] == "https://x/a.png"


def test_flux_polls_its_own_host_never_the_polling_url():
    ref = flux.task_ref({"id": "5f1c-uuid", "polling_url": "https://api.bfl.ai/v1/get_result?id=5f1c-uuid"})
    call = flux.poll(ref)
    assert call.path == "/flux/v1/get_result?id=5f1c-uuid" and "bfl" not in call.path
    with pytest.raises(BadResponse):
        flux.task_ref({"polling_url": "x"})


FREF = TaskRef("5f1c", "flux")


def test_flux_states():
    assert flux.progress({"status": "Pending", "progress": 0.4}, FREF) == Pending("Pending", 0.4)
    assert flux.progress({"status": "Processing"}, FREF) == Pending("Processing", None)
    done = flux.progress({"status": "Ready", "result": {"sample": "https://d/x.jpg?se=1&sig=2", "seed": 7}}, FREF)
    assert isinstance(done, Done) and done.response.items[0].url == "https://d/x.jpg?se=1&sig=2" and done.response.meta["seed"] == 7
    moderated = flux.progress({"status": "Content Moderated", "details": {"Moderation Reasons": ["Derivative Works Filter"]}}, FREF)
    assert isinstance(moderated.error, RequestRejected) and "Derivative Works Filter" in moderated.error.message
    assert isinstance(flux.progress({"status": "Error", "error": "boom"}, FREF).error, ServerError)
    assert isinstance(flux.progress({"status": "Failed"}, FREF).error, ServerError)
    gone = flux.progress({"status": "Task not found"}, FREF)
    assert "expired" in gone.error.message
    assert isinstance(flux.progress({"status": "Ready", "result": None}, FREF).error, BadResponse)
    assert isinstance(flux.progress({"status": "Mystery"}, FREF).error, BadResponse)
