"""The fake server's Midjourney and Flux task APIs: task state over time, buttons, actions, expiry and faults."""
# ruff: noqa: F811 - the server fixtures are test_fakeserver's, imported by name as pytest wants

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from urllib.parse import urlsplit

import httpx
import pytest

import fakeserver_tasks
from fakeserver import FAULT_KINDS, FakeServer, make_image
from test_fakeserver import AUTH, KEY, PNG, client, srv  # noqa: F401

MJ_ID = re.compile(r"^\d{16}$")
STEPS = ["", "NOT_START", "SUBMITTED", "IN_PROGRESS", "SUCCESS"]
DATA_URI = "data:image/png;base64," + base64.b64encode(make_image("ref").to_bytes()).decode()


class Clock:
    """A task clock the test steps by hand, so timelines need no sleeping."""

    def __init__(self) -> None:
        self.now = 0.0  # exact sums: an offset from 0 lands on a timeline mark, never just short of it

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def server(srv):
    srv.reset()
    srv.latency = 0.0
    srv.image_bytes = None
    fakeserver_tasks.install(srv)  # knobs back to their defaults, no tasks left from another test
    return srv


@pytest.fixture
def clock(server):
    server.task_clock = Clock()
    return server.task_clock


# ----------------------------------------------------------------- helpers


def imagine(client, server, body=None, prefix="", headers=AUTH):
    body = {"prompt": "a red fox --ar 16:9", "botType": "MID_JOURNEY"} if body is None else body
    return client.post(f"{server.base_url}{prefix}/mj/submit/imagine", json=body, headers=headers)


def submitted(client, server, body=None, prefix=""):
    r = imagine(client, server, body, prefix)
    assert r.status_code == 200 and r.json()["code"] == 1, r.text
    return r.json()["result"]


def action(client, server, task_id, custom_id):
    return client.post(server.base_url + "/mj/submit/action", json={"taskId": task_id, "customId": custom_id}, headers=AUTH)


def fetch(client, server, task_id, prefix=""):
    return client.get(f"{server.base_url}{prefix}/mj/task/{task_id}/fetch", headers=AUTH)


def task(client, server, task_id):
    r = fetch(client, server, task_id)
    assert r.status_code == 200, r.text
    return r.json()


def finished(client, server, clock, body=None):
    task_id = submitted(client, server, body)
    clock.advance(server.mj_timeline["done"])
    view = task(client, server, task_id)
    assert view["status"] == "SUCCESS"
    return task_id, view


def button(view, label):
    return next(b["customId"] for b in view["buttons"] if (b["label"] or b["emoji"]) == label)


def flux(client, server, body=None, model="flux-pro-1.1", headers=AUTH):
    body = {"prompt": "a lighthouse at dusk"} if body is None else body
    return client.post(f"{server.base_url}/flux/v1/{model}", json=body, headers=headers)


def flux_id(client, server, body=None, model="flux-pro-1.1"):
    r = flux(client, server, body, model)
    assert r.status_code == 200, r.text
    return r.json()["id"]


def result(client, server, task_id):
    r = client.get(server.base_url + "/flux/v1/get_result", params={"id": task_id}, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


def detail(response):
    assert response.status_code == 422, response.text
    return response.json()["detail"]


# ----------------------------------------------------------------- Midjourney: a task over time


def test_imagine_walks_every_status_in_order(server, client, clock):
    r = imagine(client, server)
    assert r.status_code == 200
    reply = r.json()
    assert reply == {"code": 1, "description": "提交成功", "result": reply["result"], "properties": {}}
    task_id = reply["result"]
    assert isinstance(task_id, str) and MJ_ID.match(task_id)
    tl = server.mj_timeline
    seen = [task(client, server, task_id)]
    for status in ("NOT_START", "SUBMITTED"):
        clock.now = tl[status]
        seen.append(task(client, server, task_id))
        assert seen[-1]["status"] == status and seen[-1]["imageUrl"] == "" and seen[-1]["buttons"] == []
    assert seen[0]["status"] == "" and seen[0]["progress"] == "0%" and seen[0]["startTime"] == 0
    progress = []
    for k in range(9):  # the middle of each ninth of the render
        clock.now = tl["IN_PROGRESS"] + (tl["done"] - tl["IN_PROGRESS"]) * (k + 0.5) / 9
        view = task(client, server, task_id)
        assert view["status"] == "IN_PROGRESS" and view["buttons"] == [] and view["finishTime"] == 0
        progress.append(int(view["progress"].rstrip("%")))
        preview = view["imageUrl"]
        assert "/mj/image/" + task_id + "?rand=" in preview and "/files/" not in preview
    assert progress == [10, 20, 30, 40, 50, 60, 70, 80, 90]
    partial = client.get(preview)
    assert partial.status_code == 200 and partial.content.startswith(PNG)
    assert hashlib.sha256(partial.content).hexdigest() not in {s["sha256"] for s in server.served}

    clock.now = tl["done"]
    done = task(client, server, task_id)
    assert done["status"] == "SUCCESS" and done["progress"] == "100%" and done["action"] == "IMAGINE"
    assert done["submitTime"] < done["startTime"] < done["finishTime"] and done["failReason"] == ""
    assert done["prompt"] == done["promptEn"] == "a red fox --ar 16:9" and done["description"] == "/imagine a red fox --ar 16:9"
    assert done["properties"] == {"finalPrompt": "a red fox --ar 16:9"}
    assert set(done) == {"id", "action", "status", "progress", "imageUrl", "buttons", "failReason", "prompt", "promptEn",
                         "description", "state", "submitTime", "startTime", "finishTime", "properties"}
    image = client.get(done["imageUrl"])
    assert image.status_code == 200 and image.content.startswith(PNG)
    assert server.served[-1]["sha256"] == hashlib.sha256(image.content).hexdigest()
    assert server.served[-1]["url"] == done["imageUrl"] == task(client, server, task_id)["imageUrl"]
    assert len(server.served) == 1


def test_states_follow_the_wall_clock(server, client):
    server.mj_timeline = {"NOT_START": 0.05, "SUBMITTED": 0.1, "IN_PROGRESS": 0.15, "done": 0.4}
    started = time.monotonic()
    task_id = submitted(client, server)
    statuses = []
    while not statuses or statuses[-1] != "SUCCESS":
        assert time.monotonic() - started < 5, statuses
        statuses.append(task(client, server, task_id)["status"])
        time.sleep(0.01)
    assert time.monotonic() - started >= 0.4
    ranks = [STEPS.index(s) for s in statuses]
    assert ranks == sorted(ranks) and "IN_PROGRESS" in statuses


def test_speed_prefixes_are_recorded_and_serve_every_route(server, client, clock):
    ids = [submitted(client, server, prefix=p) for p in ("/mj-fast", "/mj-relax", "/mj-turbo", "")]
    assert [s["speed"] for s in server.submits] == ["fast", "relax", "turbo", None]
    assert [s["path"] for s in server.submits][0] == "/mj-fast/mj/submit/imagine"
    assert fetch(client, server, ids[0], prefix="/mj-relax").json()["id"] == ids[0]
    assert client.post(server.base_url + "/mj-turbo/mj/task/list-by-condition", json={"ids": ids[:2]},
                       headers=AUTH).json()[1]["id"] == ids[1]
    assert client.post(server.base_url + "/mj-slow/mj/submit/imagine", json={"prompt": "x"}, headers=AUTH).status_code == 404


def test_success_buttons_get_fresh_opaque_custom_ids_on_every_fetch(server, client, clock):
    task_id, first = finished(client, server, clock)
    second = task(client, server, task_id)
    for view in (first, second):
        assert [b["label"] for b in view["buttons"]] == ["U1", "U2", "U3", "U4", "", "V1", "V2", "V3", "V4"]
        assert view["buttons"][4]["emoji"] == "🔄"
        ids = [b["customId"] for b in view["buttons"]]
        assert all(re.match(r"^MJ::JOB::upsample::[1-4]::[0-9a-f-]{36}$", c) for c in ids[:4])
        assert re.match(r"^MJ::JOB::reroll::0::[0-9a-f-]{36}::SOLO$", ids[4])
        assert all(re.match(r"^MJ::JOB::variation::[1-4]::[0-9a-f-]{36}$", c) for c in ids[5:])
        assert {b["type"] for b in view["buttons"]} == {2}
    assert not {b["customId"] for b in first["buttons"]} & {b["customId"] for b in second["buttons"]}


# ----------------------------------------------------------------- Midjourney: actions


def test_action_with_an_old_custom_id_creates_an_upscale_task(server, client, clock):
    parent, first = finished(client, server, clock)
    task(client, server, parent)  # newer customIds now exist; the first fetch's stay valid
    r = action(client, server, parent, button(first, "U2"))
    assert r.status_code == 200 and r.json()["code"] == 1
    child = r.json()["result"]
    assert child != parent and MJ_ID.match(child)
    assert [s["kind"] for s in server.submits] == ["mj-imagine", "mj-action"] and server.submits[1]["parent"] == parent
    view = task(client, server, child)
    assert view["status"] == "" and view["action"] == "UPSCALE" and view["description"] == f"/up {parent} U2"
    clock.advance(server.mj_timeline["done"])
    upscaled = task(client, server, child)
    labels = [b["label"] or b["emoji"] for b in upscaled["buttons"]]
    assert {"Upscale (Subtle)", "Vary (Strong)", "Vary (Region)", "Zoom Out 2x", "Custom Zoom"} <= set(labels)
    assert button(upscaled, "Vary (Region)").startswith("MJ::Inpaint::")
    assert button(upscaled, "Zoom Out 2x").startswith("MJ::Outpaint::50::")
    assert upscaled["imageUrl"] != task(client, server, parent)["imageUrl"]
    assert len(server.served) == 2


@pytest.mark.parametrize(("label", "kind"), [("🔄", "REROLL"), ("V3", "VARIATION"), ("U4", "UPSCALE")])
def test_action_kind_follows_the_button(server, client, clock, label, kind):
    parent, view = finished(client, server, clock)
    child = action(client, server, parent, button(view, label)).json()["result"]
    assert task(client, server, child)["action"] == kind


def test_vary_region_leads_to_a_modal_task(server, client, clock):
    parent, grid = finished(client, server, clock)
    upscale = action(client, server, parent, button(grid, "U1")).json()["result"]
    clock.advance(server.mj_timeline["done"])
    r = action(client, server, upscale, button(task(client, server, upscale), "Vary (Region)"))
    assert r.json()["code"] == 1 and r.json()["description"] == "窗口等待"
    assert task(client, server, r.json()["result"])["status"] == "MODAL"


def test_action_refusals_create_nothing(server, client, clock):
    running = submitted(client, server)
    parent, view = finished(client, server, clock)
    other = submitted(client, server)
    clock.advance(server.mj_timeline["done"])
    foreign = button(task(client, server, other), "U1")
    fresh = submitted(client, server)
    before = server.submit_count()

    not_done = action(client, server, fresh, foreign)
    assert not_done.status_code == 400
    assert not_done.json() == {"code": 4, "description": "task_status_not_success ", "type": "upstream_error"}
    unknown = action(client, server, "1234567890123456", button(view, "U1"))
    assert unknown.status_code == 400 and unknown.json()["description"] == "task_not_found "
    for wrong in (foreign, button(view, "U1").rsplit("::", 1)[0] + "::00000000-0000-0000-0000-000000000000"):
        refused = action(client, server, parent, wrong)
        assert refused.status_code == 200 and refused.json()["code"] == 4
        assert refused.json()["description"] == "customId not found"
    missing = client.post(server.base_url + "/mj/submit/action", json={"taskId": parent}, headers=AUTH)
    assert missing.status_code == 400 and missing.json()["description"] == "custom_id_is_required "
    assert action(client, server, parent, "upscale-2").json()["description"] == "custom_id_invalid "
    assert server.submit_count() == before and running


# ----------------------------------------------------------------- Midjourney: submit checks and faults


def test_imagine_checks_prompt_images_and_key(server, client, clock):
    missing = imagine(client, server, {"botType": "MID_JOURNEY"})
    assert missing.status_code == 400
    assert missing.json() == {"code": 4, "description": "prompt_is_required ", "type": "upstream_error"}
    for images in (["https://example.com/a.png"], ["data:image/png;base64,bm90IGFuIGltYWdl"], "x"):
        bad = imagine(client, server, {"prompt": "x", "base64Array": images})
        assert bad.status_code == 200 and bad.json()["code"] == 4, images
    assert imagine(client, server, {"prompt": "x", "botType": "DALL_E"}).json()["code"] == 4
    assert imagine(client, server, {"prompt": "x", "botType": "NIJI_JOURNEY", "base64Array": [DATA_URI],
                                    "state": "s-1", "notifyHook": "https://hook.example/x"}).json()["code"] == 1
    assert task(client, server, server.submits[-1]["id"])["state"] == "s-1"
    assert imagine(client, server, headers={}).status_code == 401
    assert imagine(client, server, headers={"mj-api-secret": KEY}).json()["code"] == 1
    assert imagine(client, server, headers={"mj-api-secret": "sk-wrong-key-9876"}).status_code == 401
    assert server.submit_count("mj-imagine") == 2
    assert server.submits[0]["bot"] == "NIJI_JOURNEY"


@pytest.mark.parametrize(("kind", "opts", "status", "expected"), [
    ("mj_queue_full", {}, 200, {"code": 23, "description": "队列已满，请稍后尝试", "result": None}),
    ("mj_banned", {"word": "gore"}, 200, {"code": 24, "description": "可能包含敏感词", "result": None,
                                          "properties": {"promptEn": "", "bannedWord": "gore"}}),
    ("mj_invalid", {"description": "--ar 16:0 is invalid"}, 200,
     {"code": 4, "description": "--ar 16:0 is invalid", "result": None, "properties": {}}),
    ("mj_gateway_400", {"description": "quota_not_enough"}, 400,
     {"code": 4, "description": "quota_not_enough ", "type": "upstream_error"}),
    ("mj_saturated", {}, 429, {"code": 30, "description": "upstream_saturated 当前分组负载已饱和，请稍后再试，或升级账户以提升服务质量。",
                               "type": "upstream_error"}),
])
def test_submit_code_faults_accept_nothing(server, client, clock, kind, opts, status, expected):
    server.fault(kind, **opts)
    r = imagine(client, server)
    assert r.status_code == status and r.json() == expected
    assert server.submit_count() == 0 and server.requests[-1].fault == kind
    assert imagine(client, server).json()["code"] == 1 and server.submit_count() == 1


def test_submit_faults_also_meet_actions(server, client, clock):
    parent, view = finished(client, server, clock)
    server.fault("mj_queue_full")
    assert action(client, server, parent, button(view, "U1")).json()["code"] == 23
    assert server.submit_count("mj-action") == 0


def test_existing_and_queued_are_code_1(server, client, clock):
    first, _ = finished(client, server, clock)
    server.fault("mj_existing")
    again = imagine(client, server).json()
    assert again["code"] == 1 and again["description"] == "任务已存在" and again["result"] == first
    assert again["properties"]["status"] == "SUCCESS" and "/files/" in again["properties"]["imageUrl"]
    assert server.submit_count() == 1
    server.fault("mj_queued", position=3)
    queued = imagine(client, server).json()
    assert queued["code"] == 1 and "3" in queued["description"] and queued["properties"]["numberOfQueues"] == 3
    assert server.submit_count() == 2 and task(client, server, queued["result"])["status"] == ""


def test_numeric_id_for_one_submit(server, client, clock):
    server.fault("mj_numeric_id")
    numeric = imagine(client, server).json()["result"]
    assert isinstance(numeric, int) and task(client, server, str(numeric))["id"] == str(numeric)
    assert isinstance(imagine(client, server).json()["result"], str)


def test_task_endings_failure_modal_and_stuck(server, client, clock):
    server.fault("mj_failure", reason="Job action restricted")
    failed = submitted(client, server)
    server.fault("mj_modal")
    modal = submitted(client, server)
    server.fault("mj_stuck")
    stuck = submitted(client, server)
    assert server.submit_count() == 3
    clock.advance(3600)
    view = task(client, server, failed)
    assert view["status"] == "FAILURE" and view["failReason"] == "Job action restricted"
    assert view["imageUrl"] == "" and view["buttons"] == [] and view["finishTime"] > 0
    assert task(client, server, modal)["status"] == "MODAL"
    view = task(client, server, stuck)
    assert view["status"] == "IN_PROGRESS" and view["progress"] == "90%" and view["finishTime"] == 0
    assert server.served == []


def test_failed_fetches_leave_the_task_alone(server, client, clock):
    task_id = submitted(client, server)
    clock.advance(server.mj_timeline["done"])
    server.fault("mj_poll_500", times=2)
    assert [fetch(client, server, task_id).status_code for _ in range(3)] == [500, 500, 200]
    assert fetch(client, server, task_id).json()["status"] == "SUCCESS"
    assert [r.fault for r in server.polls()] == ["mj_poll_500", "mj_poll_500", None, None]
    server.fault("poll_status", status=503)
    assert fetch(client, server, task_id).status_code == 503
    assert [r.path for r in server.api_requests()] == ["/mj/submit/imagine"]


def test_unknown_task_and_list_by_condition(server, client, clock):
    unknown = fetch(client, server, "1234567890123456")
    assert unknown.status_code == 400
    assert unknown.json() == {"code": 4, "description": "task_no_found ", "type": "upstream_error"}
    a, b = submitted(client, server), submitted(client, server)
    url = server.base_url + "/mj/task/list-by-condition"
    listed = client.post(url, json={"ids": [b, "1234567890123456", a]}, headers=AUTH)
    assert listed.status_code == 200 and [t["id"] for t in listed.json()] == [a, b]
    assert listed.json()[0]["status"] == ""
    assert client.post(url, json={"ids": ["1234567890123456"]}, headers=AUTH).json() == []
    assert client.post(url, json={}, headers=AUTH).json() == []
    assert client.post(url, json={"ids": "nope"}, headers=AUTH).status_code == 400
    assert client.post(url, json={"ids": [a]}).status_code == 401
    assert sum(r.method == "POST" for r in server.polls()) == 5 and server.submit_count() == 2


# ----------------------------------------------------------------- Flux


def test_flux_pending_processing_then_ready_with_a_downloadable_sample(server, client, clock):
    r = flux(client, server, {"prompt": "a lighthouse", "seed": 42, "width": 1024, "height": 768})
    assert r.status_code == 200
    reply = r.json()
    assert set(reply) == {"id", "polling_url"} and re.match(r"^[0-9a-f-]{36}$", reply["id"])
    assert reply["polling_url"] == f"https://api.bfl.ai/v1/get_result?id={reply['id']}"
    pending = result(client, server, reply["id"])
    assert pending == {"id": reply["id"], "status": "Pending", "result": None, "progress": 0.0, "details": None,
                       "preview": None}
    clock.advance(server.flux_timeline["Processing"])
    processing = result(client, server, reply["id"])
    assert processing["status"] == "Processing" and 0 < processing["progress"] < 1
    clock.advance(server.flux_timeline["Ready"])
    ready = result(client, server, reply["id"])
    assert ready["status"] == "Ready" and ready["progress"] == 1.0
    out = ready["result"]
    assert set(out) == {"sample", "prompt", "seed", "start_time", "end_time", "duration"}
    assert out["prompt"] == "a lighthouse" and out["seed"] == 42 and out["duration"] == pytest.approx(out["end_time"] - out["start_time"])
    assert "?se=" in out["sample"] and "%3A" in out["sample"] and "&sig=" in out["sample"] and out["sample"].endswith(
        server.served[0]["url"].rsplit("&sig=", 1)[1])
    sample = client.get(out["sample"])
    assert sample.status_code == 200 and sample.headers["content-type"] == "image/jpeg"
    assert sample.content.startswith(b"\xff\xd8\xff") and "authorization" not in server.downloads()[-1].headers
    assert server.served == [{**server.served[0], "sha256": hashlib.sha256(sample.content).hexdigest(), "format": "jpeg"}]
    assert result(client, server, reply["id"])["result"] == out  # the same link on every poll


def test_flux_png_output_and_every_model(server, client, clock):
    png = flux_id(client, server, {"prompt": "x", "output_format": "png"})
    clock.advance(1)
    assert client.get(result(client, server, png)["result"]["sample"]).content.startswith(PNG)
    for model in fakeserver_tasks.FLUX_MODELS:
        assert flux(client, server, {"prompt": "x"}, model=model).status_code == 200, model
    missing = flux(client, server, model="flux-3-ultra")
    assert missing.status_code == 404 and missing.json() == {"detail": "Not Found"}
    assert flux(client, server, headers={}).status_code == 401


def test_flux_sample_expires_then_the_result(server, client, clock):
    server.flux_sample_ttl, server.flux_result_ttl = 2.0, 5.0
    task_id = flux_id(client, server)
    clock.advance(server.flux_timeline["Ready"])
    sample = result(client, server, task_id)["result"]["sample"]
    assert client.get(sample).status_code == 200
    clock.advance(2.0)
    expired = client.get(sample)
    assert expired.status_code == 403 and expired.headers["content-type"] == "application/xml"
    assert expired.text.startswith("<?xml") and "<Code>AuthenticationFailed</Code>" in expired.text
    altered = client.get(sample.replace("sp=r", "sp=w"))
    assert altered.status_code == 403 and altered.json()["Code"] == "AccessDenied"
    assert result(client, server, task_id)["status"] == "Ready"
    clock.advance(3.0)
    gone = result(client, server, task_id)
    assert gone == {"id": task_id, "status": "Task not found", "result": None, "progress": None, "details": None,
                    "preview": None}


def test_flux_sample_expiry_on_the_wall_clock(server, client):
    server.flux_timeline = {"Processing": None, "Ready": 0.05}
    server.flux_sample_ttl = 0.2
    task_id = flux_id(client, server)
    time.sleep(0.06)
    first = result(client, server, task_id)
    assert first["status"] == "Ready"
    time.sleep(0.25)
    assert client.get(first["result"]["sample"]).status_code == 403


def test_flux_unknown_id_and_missing_id(server, client, clock):
    assert result(client, server, "no-such-task") == {"id": "no-such-task", "status": "Task not found", "result": None,
                                                      "progress": None, "details": None, "preview": None}
    missing = client.get(server.base_url + "/flux/v1/get_result", headers=AUTH)
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["query", "id"]
    assert client.get(server.base_url + "/flux/v1/get_result?id=x").status_code == 401


@pytest.mark.parametrize(("kind", "status"), [("flux_moderated_request", "Request Moderated"),
                                              ("flux_moderated_content", "Content Moderated")])
def test_flux_moderation(server, client, clock, kind, status):
    server.fault(kind, reasons=["Derivative Works Filter"])
    task_id = flux_id(client, server)
    assert result(client, server, task_id)["status"] == "Pending"
    clock.advance(1)
    answer = result(client, server, task_id)
    assert answer["status"] == status and answer["result"] is None
    assert answer["details"] == {"Moderation Reasons": ["Derivative Works Filter"]}
    assert server.served == [] and server.submit_count("flux") == 1


@pytest.mark.parametrize(("kind", "status"), [("flux_error", "Error"), ("flux_failed", "Failed")])
def test_flux_error_and_failed(server, client, clock, kind, status):
    server.fault(kind, message="GPU fell over")
    task_id = flux_id(client, server)
    clock.advance(1)
    answer = result(client, server, task_id)
    assert answer["status"] == status and answer["error"] == "GPU fell over" and answer["result"] is None


def test_flux_poll_500_rate_limit_and_slow(server, client, clock):
    task_id = flux_id(client, server)
    server.fault("flux_poll_500", times=2)
    url = server.base_url + f"/flux/v1/get_result?id={task_id}"
    assert [client.get(url, headers=AUTH).status_code for _ in range(3)] == [500, 500, 200]
    assert client.get(url, headers=AUTH).json()["status"] == "Pending"

    server.fault("flux_rate_limited")
    limited = flux(client, server)
    assert limited.status_code == 429 and limited.json() == {"detail": FAULT_KINDS["flux_rate_limited"]["message"]}
    assert server.submit_count() == 1

    server.fault("flux_slow", delay=60)
    slow = flux_id(client, server)
    clock.advance(30)
    assert result(client, server, slow)["status"] == "Pending" and result(client, server, task_id)["status"] == "Ready"
    clock.advance(31)
    assert result(client, server, slow)["status"] == "Ready"


def test_gateway_faults_reach_the_task_routes(server, client, clock):
    server.fault("status", status=502)
    assert flux(client, server).status_code == 502
    server.fault("status", status=503)
    assert imagine(client, server).status_code == 503
    server.fault("poll_reset")
    with pytest.raises(httpx.TransportError):
        result(client, server, "x")
    assert server.submit_count() == 0


@pytest.mark.parametrize(("model", "body", "loc", "type_"), [
    ("flux-pro-1.1", {"prompt": "x", "width": 1000}, ["body", "width"], "multiple_of"),
    ("flux-pro-1.1", {"prompt": "x", "height": 1472}, ["body", "height"], "less_than_equal"),
    ("flux-dev", {"prompt": "x", "width": 224}, ["body", "width"], "greater_than_equal"),
    ("flux-pro", {"prompt": "x", "width": "wide"}, ["body", "width"], "int_type"),
    ("flux-2-pro", {"prompt": "x", "width": 4096, "height": 4096}, ["body"], "value_error"),
    ("flux-2-flex", {"prompt": "x", "width": 1000}, ["body", "width"], "multiple_of"),
    ("flux-2-max", {"prompt": "x", "height": 48}, ["body", "height"], "greater_than_equal"),
    ("flux-pro-1.1-ultra", {"prompt": "x", "width": 1024}, ["body", "width"], "extra_forbidden"),
    ("flux-kontext-pro", {"prompt": "x", "height": 1024}, ["body", "height"], "extra_forbidden"),
    ("flux-pro-1.1-ultra", {"prompt": "x", "aspect_ratio": "32:9"}, ["body", "aspect_ratio"], "value_error"),
    ("flux-kontext-max", {"prompt": "x", "aspect_ratio": "wide"}, ["body", "aspect_ratio"], "value_error"),
    ("flux-pro-1.1", {"prompt": "x", "aspect_ratio": "1:1"}, ["body", "aspect_ratio"], "extra_forbidden"),
    ("flux-pro-1.1", {"prompt": "x", "colour": "red"}, ["body", "colour"], "extra_forbidden"),
    ("flux-pro-1.1", {"width": 1024}, ["body", "prompt"], "missing"),
    ("flux-pro-1.1", {"prompt": 7}, ["body", "prompt"], "string_type"),
    ("flux-pro-1.1", {"prompt": "x", "safety_tolerance": 7}, ["body", "safety_tolerance"], "less_than_equal"),
    ("flux-pro-1.1", {"prompt": "x", "output_format": "webp"}, ["body", "output_format"], "enum"),
    ("flux-pro", {"prompt": "x", "guidance": 9}, ["body", "guidance"], "less_than_equal"),
    ("flux-kontext-pro", {"prompt": "x", "input_image": "not an image"}, ["body", "input_image"], "value_error"),
    ("flux-2-pro", {"prompt": "x", "input_image_9": DATA_URI}, ["body", "input_image_9"], "extra_forbidden"),
])
def test_flux_validation_is_fastapi_shaped(server, client, model, body, loc, type_):
    problems = detail(flux(client, server, body, model=model))
    assert [(p["loc"], p["type"]) for p in problems] == [(loc, type_)]
    assert problems[0]["msg"] and "input" in problems[0]
    assert server.submit_count() == 0


def test_flux_accepts_what_the_models_take(server, client):
    raw = DATA_URI.split(",", 1)[1]
    for model, body in [
        ("flux-2-pro", {"prompt": "x", "width": 2048, "height": 2048, "input_image": raw, "input_image_8": DATA_URI}),
        ("flux-kontext-pro", {"prompt": "x", "input_image": "https://example.com/a.png", "aspect_ratio": "21:9"}),
        ("flux-pro-1.1-ultra", {"prompt": "x", "aspect_ratio": "9:21", "raw": True, "image_prompt_strength": 0.5}),
        ("flux-pro", {"prompt": "x", "steps": 40, "guidance": 2.5, "interval": 2, "safety_tolerance": 6, "seed": 1}),
        ("flux-pro-1.1", {"prompt": "x", "width": 1440, "height": 256, "image_prompt": raw, "output_format": "png",
                          "prompt_upsampling": False, "webhook_url": "https://hook.example/x", "webhook_secret": "s"}),
    ]:
        assert flux(client, server, body, model=model).status_code == 200, (model, body)
    several = detail(flux(client, server, {"width": 1000, "safety_tolerance": -1}))
    assert {tuple(p["loc"]) for p in several} == {("body", "prompt"), ("body", "width"), ("body", "safety_tolerance")}
    broken = client.post(server.base_url + "/flux/v1/flux-pro", content=b"{oops", headers=AUTH)
    assert detail(broken)[0]["type"] == "json_invalid"
    assert detail(client.post(server.base_url + "/flux/v1/flux-pro", json=[1], headers=AUTH))[0]["loc"] == ["body"]


def test_polling_url_names_a_foreign_host_that_a_test_can_watch(server, client, clock):
    reply = flux(client, server).json()
    assert urlsplit(reply["polling_url"]).netloc == "api.bfl.ai" != urlsplit(server.base_url).netloc
    with FakeServer(api_key=KEY) as foreign:
        server.flux_polling_host = foreign.base_url
        url = flux(client, server).json()["polling_url"]
        assert url.startswith(foreign.base_url + "/v1/get_result?id=")
        client.get(url, headers=AUTH)
        assert [r.headers.get("authorization") for r in foreign.requests] == [AUTH["Authorization"]]
    assert server.polls() == []


# ----------------------------------------------------------------- counting and classification


def test_submits_are_counted_and_polls_classified(server, client, clock):
    parent, view = finished(client, server, clock)
    action(client, server, parent, button(view, "U3"))
    task_id = flux_id(client, server)
    result(client, server, task_id)
    server.fault("mj_queue_full")
    imagine(client, server)
    assert flux(client, server, {"width": 1}).status_code == 422
    assert (server.submit_count(), server.submit_count("mj"), server.submit_count("mj-imagine"),
            server.submit_count("mj-action"), server.submit_count("flux")) == (3, 2, 1, 1, 1)
    assert [s["kind"] for s in server.submits] == ["mj-imagine", "mj-action", "flux"]
    assert server.submits[2] | {"time": 0} == {"kind": "flux", "id": task_id, "path": "/flux/v1/flux-pro-1.1",
                                               "model": "flux-pro-1.1", "time": 0}
    assert [r.path for r in server.api_requests()] == ["/mj/submit/imagine", "/mj/submit/action", "/flux/v1/flux-pro-1.1",
                                                       "/mj/submit/imagine", "/flux/v1/flux-pro-1.1"]
    assert [r.path.split("?")[0] for r in server.polls()] == [f"/mj/task/{parent}/fetch", "/flux/v1/get_result"]
    server.reset()
    assert server.submit_count() == 0 and server.submits == []


def test_fault_kinds_and_catalog_entries():
    task_kinds = {k for k in FAULT_KINDS if k.startswith(("mj_", "flux_"))}
    assert task_kinds == {
        "mj_queue_full", "mj_banned", "mj_invalid", "mj_gateway_400", "mj_saturated", "mj_existing", "mj_queued",
        "mj_numeric_id", "mj_failure", "mj_modal", "mj_stuck", "mj_poll_500", "flux_rate_limited",
        "flux_moderated_request", "flux_moderated_content", "flux_error", "flux_failed", "flux_slow", "flux_poll_500",
    }
    with pytest.raises(ValueError, match="takes no option"):
        FakeServer().fault("mj_banned", reason="x")
    from fakeserver import default_catalog

    entries = {e["id"]: e for e in default_catalog()}
    assert json.loads(entries["midjourney"]["endpoints"])["midjourney"]["path"] == "/mj/submit/imagine"
    assert json.loads(entries["flux-pro-1.1"]["endpoints"])["flux"]["path"] == "/flux/v1/{model}"
    assert len(entries) <= 40  # test_catalog_paging reads two pages of 20
