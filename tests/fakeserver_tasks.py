"""The Midjourney and Flux task routes of the fake server, as ``shared/api-notes.md`` sections 9 and 10 describe them.

Midjourney (midjourney-proxy behind a new-api gateway): ``POST [/mj-fast|/mj-relax|/mj-turbo]/mj/submit/imagine``
and ``.../mj/submit/action``, ``GET .../mj/task/{id}/fetch``, ``POST .../mj/task/list-by-condition``, and the
gateway's in-progress previews at ``GET /mj/image/{id}?rand=...``. Flux (BFL through CometAPI):
``POST /flux/v1/{model}`` and ``GET /flux/v1/get_result?id=``.

Tasks have real state over time: a task's status follows ``task_clock`` since its submit, along a timeline read
from the server when the task is submitted (a knob changed mid-test applies to the next task, never to a running
one). The knobs, set on the FakeServer by :func:`install`:

``mj_timeline`` = ``{"NOT_START": 0.05, "SUBMITTED": 0.1, "IN_PROGRESS": 0.2, "done": 0.6}``
    seconds after the submit at which a task enters each status; ``done`` is the terminal one (SUCCESS, FAILURE
    or MODAL). Before NOT_START the status is ``""``, as the gateway's fresh record says. Missing keys keep
    their defaults. While IN_PROGRESS, progress climbs "10%".."90%" and imageUrl is a preview, never the result.
``flux_timeline`` = ``{"Processing": 0.25, "Ready": 0.5}``
    Pending until Processing (None: never Processing), then Processing until Ready, then the terminal status.
``flux_sample_ttl`` = 10.0
    seconds after Ready that the sample link downloads; after that it answers 403 with Azure's
    ``AuthenticationFailed`` XML.
``flux_result_ttl`` = 30.0
    seconds after Ready (or after any terminal status) that get_result still knows the task; then
    ``"Task not found"``.
``flux_polling_host`` = ``"https://api.bfl.ai"``
    the host a submit's ``polling_url`` names. It is never this server, on purpose; a test may point it at a
    second local server to see what a client sends there.
``task_clock`` = ``time.monotonic``
    the clock all of the above read; a test may swap in its own to step time by hand.

Accepted submits (those that created a task) are logged: ``FakeServer.submits`` and ``submit_count(kind)``,
kinds ``mj-imagine``, ``mj-action`` and ``flux`` (``mj`` counts both Midjourney kinds).

Where the sources leave a choice:

- get_result for an unknown or expired id answers HTTP 200 with the full shape and ``"status": "Task not
  found"``: CometAPI relays BFL's status field rather than api.bfl.ai's own 404.
- A Midjourney fault applies to the next submit, imagine or action alike; Vary (Region) and Custom Zoom buttons
  make a task that is MODAL at once, as the proxy's "窗口等待" (code 21, rewritten to 1 by the gateway) says.
- Validation follows FastAPI with pydantic v2 for Flux (``type``, ``loc``, ``msg``, ``input``, ``ctx``), and
  new-api's own 400 envelope ``{"code", "description": "<text> <result>", "type": "upstream_error"}`` for the
  Midjourney gateway's checks (hence the trailing space), the proxy's ``{"code", "description", "result"}`` at
  HTTP 200 for the upstream ones.

Standard library only, and it imports nothing from the server module (which loads this one), so the server run
as a script or imported never holds two copies of its own classes; it reaches the server through the request
handler and the FakeServer it is given.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

__all__ = ["MJ_TIMELINE", "FLUX_MODELS", "FLUX_TIMELINE", "TaskState", "handle", "install", "is_poll", "is_submit",
           "owns", "refuse_expired"]

MJ_TIMELINE = {"NOT_START": 0.05, "SUBMITTED": 0.1, "IN_PROGRESS": 0.2, "done": 0.6}
FLUX_TIMELINE: dict[str, float | None] = {"Processing": 0.25, "Ready": 0.5}
FLUX_SAMPLE_TTL = 10.0
FLUX_RESULT_TTL = 30.0
FLUX_POLLING_HOST = "https://api.bfl.ai"

_MJ = r"^(?:/mj-(?P<speed>fast|relax|turbo))?/mj"
MJ_SUBMIT = re.compile(_MJ + r"/submit/(?P<what>imagine|action)$")
MJ_FETCH = re.compile(_MJ + r"/task/(?P<id>[^/]+)/fetch$")
MJ_LIST = re.compile(_MJ + r"/task/list-by-condition$")
MJ_IMAGE = re.compile(r"^/mj/image/(?P<id>[^/]+)$")
FLUX_POLL = "/flux/v1/get_result"
FLUX_SUBMIT = re.compile(r"^/flux/v1/(?P<model>[^/]+)$")

# Signed like every /files/ link, but in Azure blob style: the signature is the last parameter, after this.
SAMPLE_SIG_MARKER = "&sig="


def install(fake: Any) -> TaskState:
    """Put the knobs at their defaults and give ``fake`` a fresh task state (also how a test restores both)."""
    fake.mj_timeline = dict(MJ_TIMELINE)
    fake.flux_timeline = dict(FLUX_TIMELINE)
    fake.flux_sample_ttl = FLUX_SAMPLE_TTL
    fake.flux_result_ttl = FLUX_RESULT_TTL
    fake.flux_polling_host = FLUX_POLLING_HOST
    fake.task_clock = time.monotonic
    fake._task_state = TaskState(fake)
    return fake._task_state


def is_submit(route: str) -> bool:
    """A request that can create (and bill) a task: what api_requests() lists besides the other generation routes."""
    if MJ_SUBMIT.match(route):
        return True
    flux = FLUX_SUBMIT.match(route)
    return flux is not None and route != FLUX_POLL


def is_poll(method: str, route: str) -> bool:
    """A status query: what polls() lists. list-by-condition is a POST but asks, never creates."""
    if method == "GET":
        return MJ_FETCH.match(route) is not None or route == FLUX_POLL
    return method == "POST" and MJ_LIST.match(route) is not None


def owns(method: str, route: str) -> bool:
    if method == "POST":
        return is_submit(route) or MJ_LIST.match(route) is not None
    return method == "GET" and (is_poll(method, route) or MJ_IMAGE.match(route) is not None)


def handle(h: Any, rec: Any, method: str, route: str) -> None:
    """Answer one request to a route :func:`owns` says is ours; ``h`` is the server's request handler."""
    if method == "GET" and route == FLUX_POLL:
        _flux_poll(h, rec)
    elif method == "GET" and (m := MJ_FETCH.match(route)):
        _mj_fetch(h, rec, m.group("id"))
    elif method == "GET" and (m := MJ_IMAGE.match(route)):
        _mj_preview(h, m.group("id"))
    elif MJ_LIST.match(route):
        _mj_list(h, rec)
    elif m := MJ_SUBMIT.match(route):
        with h.fake._busy():
            _mj_submit(h, rec, m.group("what"), m.group("speed"))
    else:
        with h.fake._busy():
            _flux_submit(h, rec, FLUX_SUBMIT.match(route).group("model"))


# --------------------------------------------------------------------------------------------
# State


@dataclass
class MjTask:
    id: str
    action: str
    prompt: str
    description: str
    state: str
    bot: str
    submitted: float  # task_clock at the submit
    submit_ms: int  # wall clock, as the task reports it
    timeline: dict[str, float]
    end: str | None  # SUCCESS, FAILURE or MODAL; None stays IN_PROGRESS for ever
    fail_reason: str = ""
    upscaled: bool = False  # a single upscaled image, whose buttons differ from a grid's
    image_url: str | None = None  # the final image's signed link, published on the first SUCCESS fetch
    custom_ids: set[str] = field(default_factory=set)  # every customId any fetch gave: all stay valid


@dataclass
class FluxTask:
    id: str
    model: str
    prompt: str
    seed: int
    fmt: str
    submitted: float
    submit_epoch: float
    processing: float | None
    ready: float
    sample_ttl: float
    result_ttl: float
    end: str  # Ready, Request Moderated, Content Moderated, Error or Failed
    details: Any = None
    error: str | None = None
    result: dict[str, Any] | None = None


class TaskState:
    """The tasks of one server and the log of accepted submits; one lock guards both."""

    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self.lock = threading.RLock()
        self.mj: dict[str, MjTask] = {}
        self.flux: dict[str, FluxTask] = {}
        self.accepted: list[dict[str, Any]] = []
        self.expiry: dict[str, float] = {}  # /files/ token -> task_clock deadline

    def clock(self) -> float:
        return self.fake.task_clock()

    def log_submit(self, kind: str, task_id: str, path: str, **extra: Any) -> None:
        with self.lock:
            self.accepted.append({"kind": kind, "id": task_id, "path": path, "time": time.time(), **extra})

    def submits(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(s) for s in self.accepted]

    def submit_count(self, kind: str | None = None) -> int:
        with self.lock:
            return sum(1 for s in self.accepted if kind is None or s["kind"] == kind or s["kind"].startswith(kind + "-"))

    def forget_submits(self) -> None:
        with self.lock:
            self.accepted.clear()


def _state(fake: Any) -> TaskState:
    return fake._task_state


def _timeline(default: dict[str, Any], given: Any) -> dict[str, Any]:
    return {**default, **(given if isinstance(given, dict) else {})}


# --------------------------------------------------------------------------------------------
# Shared plumbing


class _Reply(Exception):
    """A request refused with this status and JSON body."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers


def _answered(fault: Any) -> bool:
    # The handler's _api_fault gives a sentinel (neither None nor a (kind, opts) pair) when the fault was the reply.
    return fault is not None and not isinstance(fault, tuple)


_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")
_DATA_URI = re.compile(r"^data:(?P<mime>image/[a-z0-9.+-]+);base64,(?P<data>.*)$", re.S | re.I)


def _b64_image(data: str) -> bool:
    try:
        raw = base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    return raw.startswith(_IMAGE_MAGIC) or (raw[:4] == b"RIFF" and raw[8:12] == b"WEBP")


def _data_uri_image(value: Any) -> bool:
    m = _DATA_URI.match(value) if isinstance(value, str) else None
    return m is not None and _b64_image(m.group("data"))


def _poll_fault(h: Any, rec: Any, dialect: str) -> bool:
    """Apply the poll fault queued for this dialect, if any; True when it was the whole answer."""
    fault = h.fake._take_fault(("poll", dialect, False))
    rec.fault = fault[0] if fault else None
    if not fault:
        return False
    kind, opts = fault
    if kind == "poll_reset":
        h._reset_connection()
    if kind == "poll_status":
        status = opts["status"]
        h._body_response(status, opts["body"], _comet_error(f"upstream answered HTTP {status}", "bad_response_status_code"),
                         opts["headers"])
        return True
    if kind.endswith("_poll_500"):
        h._json(500, _comet_error("upstream error: do request failed", "do_request_failed"))
        return True
    return False


def _comet_error(message: str, code: str) -> dict[str, Any]:
    request_id = time.strftime("%Y%m%d%H%M%S") + secrets.token_hex(8)
    return {"error": {"message": f"{message} (request id: {request_id})", "type": "comet_api_error", "param": "", "code": code}}


# --------------------------------------------------------------------------------------------
# Midjourney


_SUBMITTED_OK = "提交成功"
_BOTS = ("MID_JOURNEY", "NIJI_JOURNEY")
_SATURATED = "当前分组负载已饱和，请稍后再试，或升级账户以提升服务质量。"


def _gateway_error(status: int, description: str, result: str = "", code: int = 4) -> _Reply:
    # new-api prints description and result with a space between, so an empty result leaves a trailing space.
    return _Reply(status, {"code": code, "description": f"{description} {result}", "type": "upstream_error"})


def _upstream(code: int, description: str, result: Any = None, properties: dict[str, Any] | None = None) -> _Reply:
    body: dict[str, Any] = {"code": code, "description": description, "result": result}
    if properties is not None:
        body["properties"] = properties
    return _Reply(200, body)


def _mj_refused(h: Any) -> bool:
    """Bearer as everywhere; new-api also takes its own mj-api-secret header on these routes."""
    secret = h.headers.get("mj-api-secret")
    if secret is None or h.headers.get("Authorization") is not None:
        return h._refused()
    key = h.fake.api_key
    if not key or hmac.compare_digest(secret.strip().encode(), key.encode()):
        return False
    h._json(401, h._auth_failure_body(secret.strip()))
    return True


def _mj_id(state: TaskState) -> str:
    # The proxy's ids are a millisecond timestamp and three more digits, like 1773314942177684.
    while True:
        task_id = f"{int(time.time() * 1000)}{secrets.randbelow(1000):03d}"
        if task_id not in state.mj:
            return task_id


def _mj_submit(h: Any, rec: Any, what: str, speed: str | None) -> None:
    if _mj_refused(h):
        return
    try:
        if not isinstance(rec.json, dict):
            raise _gateway_error(400, "bind_request_body_failed")
        fault = h._api_fault(rec, "mj", False)
        if _answered(fault):
            return
        kind, opts = fault or (None, {})
        plan = _imagine_plan(rec.json) if what == "imagine" else _action_plan(_state(h.fake), rec.json)
        _mj_submit_fault(h, kind, opts)
        body = _mj_create(h, rec, plan, speed, kind, opts)
    except _Reply as reply:
        h._json(reply.status, reply.body, reply.headers)
        return
    h._json(200, body)


def _imagine_plan(body: dict[str, Any]) -> dict[str, Any]:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _gateway_error(400, "prompt_is_required")
    bot = body.get("botType") or "MID_JOURNEY"
    if bot not in _BOTS:
        raise _upstream(4, "botType参数错误")  # the proxy's own words are a guess here
    images = body.get("base64Array")
    if images is not None and not (isinstance(images, list) and all(_data_uri_image(i) for i in images)):
        raise _upstream(4, "base64格式错误")
    state = body.get("state")
    return {"action": "IMAGINE", "prompt": prompt, "description": f"/imagine {prompt}", "bot": bot,
            "state": state if isinstance(state, str) else "", "upscaled": False, "modal": False}


def _action_plan(state: TaskState, body: dict[str, Any]) -> dict[str, Any]:
    custom_id = str(body.get("customId") or "").strip()
    if not custom_id:
        raise _gateway_error(400, "custom_id_is_required")
    parts = custom_id.split("::")
    if len(parts) < 3 or parts[0] != "MJ" or _action_kind(parts) is None:
        raise _gateway_error(400, "custom_id_invalid")
    task_id = str(body.get("taskId") or "").strip()
    if not task_id:
        raise _gateway_error(400, "task_id_is_required")
    with state.lock:
        parent = state.mj.get(task_id)
        if parent is None:
            raise _gateway_error(400, "task_not_found")
        status = _mj_phase(parent, state.clock())[0]
        if status != "SUCCESS":
            raise _gateway_error(400, "task_status_not_success")
        if custom_id not in parent.custom_ids:
            raise _upstream(4, "customId not found")
    action = _action_kind(parts)
    name = parts[2] if parts[1] == "JOB" else parts[1]
    index = next((p for p in parts[2:] if p.isdigit() and len(p) == 1), "1")
    words = {"UPSCALE": f"/up {task_id} U{index}", "VARIATION": f"/variation {task_id} V{index}",
             "REROLL": f"/reroll {task_id}", "ZOOM": f"/zoom {task_id}", "PAN": f"/pan {task_id}"}
    given = body.get("state")
    return {"action": action, "prompt": parent.prompt, "description": words[action], "bot": parent.bot,
            "state": given if isinstance(given, str) else "", "upscaled": "upsample" in name,
            "modal": name in ("Inpaint", "CustomZoom"), "parent": task_id}


def _action_kind(parts: list[str]) -> str | None:
    """What a button makes, by its customId: UPSCALE, VARIATION, REROLL, ZOOM or PAN."""
    name = parts[2] if parts[1] == "JOB" else parts[1]
    if "upsample" in name:
        return "UPSCALE"
    if "variation" in name or name == "Inpaint":
        return "VARIATION"
    if name == "reroll":
        return "REROLL"
    if name in ("Outpaint", "CustomZoom"):
        return "ZOOM"
    if name.startswith("pan_"):
        return "PAN"
    return None


def _mj_submit_fault(h: Any, kind: str | None, opts: dict[str, Any]) -> None:
    """The proxy's and the gateway's refusals: nothing is created."""
    if kind == "mj_queue_full":
        raise _upstream(23, "队列已满，请稍后尝试")
    if kind == "mj_banned":
        raise _upstream(24, "可能包含敏感词", None, {"promptEn": "", "bannedWord": opts["word"]})
    if kind == "mj_invalid":
        raise _upstream(4, opts["description"], None, {})
    if kind == "mj_gateway_400":
        raise _gateway_error(400, opts["description"])
    if kind == "mj_saturated":
        raise _gateway_error(429, opts["description"], _SATURATED, code=30)
    if kind == "mj_existing":
        state = _state(h.fake)
        with state.lock:
            latest = next(reversed(state.mj.values()), None)
            if latest is not None:
                status = _mj_phase(latest, state.clock())[0]
                raise _upstream(1, "任务已存在", latest.id, {"status": status, "imageUrl": latest.image_url or ""})


def _mj_create(h: Any, rec: Any, plan: dict[str, Any], speed: str | None, kind: str | None, opts: dict[str, Any]) -> dict:
    fake, state = h.fake, _state(h.fake)
    timeline = _timeline(MJ_TIMELINE, fake.mj_timeline)
    end: str | None = "SUCCESS"
    reason = ""
    if plan["modal"]:
        timeline, end = dict.fromkeys(MJ_TIMELINE, 0.0), "MODAL"
    elif kind == "mj_failure":
        end, reason = "FAILURE", opts["reason"]
    elif kind == "mj_modal":
        end = "MODAL"
    elif kind == "mj_stuck":
        end = None
    with state.lock:
        task = MjTask(_mj_id(state), plan["action"], plan["prompt"], plan["description"], plan["state"], plan["bot"], state.clock(),
                      int(time.time() * 1000), timeline, end, reason, plan["upscaled"])
        state.mj[task.id] = task
    route = rec.path.split("?", 1)[0]
    state.log_submit(f"mj-{'imagine' if plan['action'] == 'IMAGINE' else 'action'}", task.id, route, speed=speed,
                     bot=plan["bot"], action=plan["action"], parent=plan.get("parent"))
    result: Any = int(task.id) if kind == "mj_numeric_id" else task.id
    if plan["modal"]:
        return {"code": 1, "description": "窗口等待", "result": result, "properties": {}}  # 21, rewritten by the gateway
    if kind == "mj_queued":
        position = opts["position"]
        return {"code": 1, "description": f"排队中，前面还有{position}个任务", "result": result,
                "properties": {"numberOfQueues": position, "discordInstanceId": "1118138338562560102"}}
    return {"code": 1, "description": _SUBMITTED_OK, "result": result, "properties": {}}


def _mj_phase(task: MjTask, now: float) -> tuple[str, float]:
    """The status at ``now`` and, while IN_PROGRESS, how far along (0..1)."""
    t, tl = now - task.submitted, task.timeline
    if task.end is not None and t >= tl["done"]:
        return task.end, 1.0
    if t >= tl["IN_PROGRESS"]:
        span = tl["done"] - tl["IN_PROGRESS"]
        return "IN_PROGRESS", min(0.99, (t - tl["IN_PROGRESS"]) / span) if span > 0 else 0.99
    if t >= tl["SUBMITTED"]:
        return "SUBMITTED", 0.0
    if t >= tl["NOT_START"]:
        return "NOT_START", 0.0
    return "", 0.0


def _mj_view(h: Any, task: MjTask) -> dict[str, Any]:
    """The task as a fetch shows it now; a SUCCESS view carries freshly minted customIds."""
    fake, state = h.fake, _state(h.fake)
    status, along = _mj_phase(task, state.clock())
    tl = task.timeline
    # The gateway marks a failure 100% when it refunds it.
    progress = {"SUCCESS": "100%", "FAILURE": "100%", "IN_PROGRESS": f"{min(90, 10 + int(along * 9) * 10)}%"}.get(status, "0%")
    image_url, buttons = "", []
    if status == "IN_PROGRESS":
        # The gateway's own proxy link, with a cache-buster: a partial render, never the result.
        image_url = f"{fake.base_url}/mj/image/{task.id}?rand={time.time_ns()}"
    elif status == "SUCCESS":
        image_url = _mj_publish(fake, task)
        buttons = _upscale_buttons() if task.upscaled else _grid_buttons()
        task.custom_ids.update(b["customId"] for b in buttons)
    started = status not in ("", "NOT_START")
    finished = status in ("SUCCESS", "FAILURE", "MODAL")
    return {
        "id": task.id, "action": task.action, "status": status, "progress": progress, "imageUrl": image_url,
        "buttons": buttons, "failReason": task.fail_reason if status == "FAILURE" else "", "prompt": task.prompt,
        "promptEn": task.prompt, "description": task.description, "state": task.state, "submitTime": task.submit_ms,
        "startTime": task.submit_ms + int(tl["SUBMITTED"] * 1000) if started else 0,
        "finishTime": task.submit_ms + int(tl["done"] * 1000) if finished else 0,
        "properties": {"finalPrompt": task.prompt},
    }


def _mj_publish(fake: Any, task: MjTask) -> str:
    if task.image_url is None:
        image = fake._image(f"mj\x00{task.id}\x00{task.prompt}", "png")
        task.image_url = fake._publish(image)
        fake._serve_record(image, task.image_url, 0, "midjourney")
    return task.image_url


def _button(custom_id: str, label: str = "", emoji: str = "") -> dict[str, Any]:
    return {"customId": custom_id, "emoji": emoji, "label": label, "type": 2, "style": 2}


def _grid_buttons() -> list[dict[str, Any]]:
    job = str(uuid.uuid4())  # a new message hash on every fetch: customIds are never stable, never guessable
    return (
        [_button(f"MJ::JOB::upsample::{n}::{job}", f"U{n}") for n in range(1, 5)]
        + [_button(f"MJ::JOB::reroll::0::{job}::SOLO", "", "🔄")]
        + [_button(f"MJ::JOB::variation::{n}::{job}", f"V{n}") for n in range(1, 5)]
    )


def _upscale_buttons() -> list[dict[str, Any]]:
    job = str(uuid.uuid4())
    return [
        _button(f"MJ::JOB::upsample_v6_2x_subtle::1::{job}::SOLO", "Upscale (Subtle)"),
        _button(f"MJ::JOB::upsample_v6_2x_creative::1::{job}::SOLO", "Upscale (Creative)"),
        _button(f"MJ::JOB::low_variation::1::{job}::SOLO", "Vary (Subtle)", "🪄"),
        _button(f"MJ::JOB::high_variation::1::{job}::SOLO", "Vary (Strong)", "🪄"),
        _button(f"MJ::Inpaint::1::{job}::SOLO", "Vary (Region)", "🖌️"),
        _button(f"MJ::Outpaint::50::1::{job}::SOLO", "Zoom Out 2x", "🔍"),
        _button(f"MJ::Outpaint::75::1::{job}::SOLO", "Zoom Out 1.5x", "🔍"),
        _button(f"MJ::CustomZoom::{job}", "Custom Zoom", "🔍"),
        *(_button(f"MJ::JOB::pan_{way}::1::{job}::SOLO", "", arrow)
          for way, arrow in (("left", "⬅️"), ("right", "➡️"), ("up", "⬆️"), ("down", "⬇️"))),
    ]


def _mj_fetch(h: Any, rec: Any, task_id: str) -> None:
    if _mj_refused(h) or _poll_fault(h, rec, "mj"):
        return
    state = _state(h.fake)
    with state.lock:
        task = state.mj.get(task_id)
        view = _mj_view(h, task) if task is not None else None
    if view is None:
        reply = _gateway_error(400, "task_no_found")
        h._json(reply.status, reply.body)
        return
    h._json(200, view)


def _mj_list(h: Any, rec: Any) -> None:
    if _mj_refused(h) or _poll_fault(h, rec, "mj"):
        return
    body = rec.json
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(body, dict) or (ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids))):
        reply = _gateway_error(400, "do_request_failed")
        h._json(reply.status, reply.body)
        return
    state = _state(h.fake)
    wanted = set(ids or ())
    with state.lock:
        views = [_mj_view(h, task) for task in state.mj.values() if task.id in wanted]
    h._json(200, views)


def _mj_preview(h: Any, task_id: str) -> None:
    state = _state(h.fake)
    with state.lock:
        known = task_id in state.mj
    if not known:
        h._respond(404, b"404 page not found", "text/plain")
        return
    image = h.fake._image(f"mj\x00{task_id}\x00preview", "png", padded=False)
    h._respond(200, image.segments(), image.content_type)


# --------------------------------------------------------------------------------------------
# Flux


FLUX_MODELS = ("flux-pro-1.1", "flux-pro", "flux-dev", "flux-pro-1.1-ultra", "flux-kontext-pro", "flux-kontext-max",
               "flux-2-pro", "flux-2-max", "flux-2-flex")
_COMMON = {"prompt", "seed", "safety_tolerance", "output_format", "prompt_upsampling", "webhook_url", "webhook_secret"}
_SIZED = {"width", "height"}
_FLUX2_IMAGES = {"input_image"} | {f"input_image_{n}" for n in range(2, 9)}
_KONTEXT = _COMMON | {"aspect_ratio", "input_image", "input_image_2", "input_image_3", "input_image_4"}
_FLUX_FIELDS = {
    "flux-pro-1.1": _COMMON | _SIZED | {"image_prompt"},
    "flux-pro": _COMMON | _SIZED | {"image_prompt", "steps", "guidance", "interval"},
    "flux-dev": _COMMON | _SIZED | {"image_prompt", "steps", "guidance"},
    "flux-pro-1.1-ultra": _COMMON | {"aspect_ratio", "raw", "image_prompt", "image_prompt_strength"},
    "flux-kontext-pro": _KONTEXT,
    "flux-kontext-max": _KONTEXT,
    "flux-2-pro": _COMMON | _SIZED | _FLUX2_IMAGES,
    "flux-2-max": _COMMON | _SIZED | _FLUX2_IMAGES,
    "flux-2-flex": _COMMON | _SIZED | _FLUX2_IMAGES | {"steps", "guidance"},
}
_FLUX2_MAX_PIXELS = 2048 * 2048  # "4 MP"
_RATIO = re.compile(r"^(\d+):(\d+)$")
_MODERATION_DEFAULT = {"flux_moderated_request": "Request Moderated", "flux_moderated_content": "Content Moderated"}


class _Problems:
    """pydantic v2's error list as FastAPI answers it: every problem at once."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.items: list[dict[str, Any]] = []

    def add(self, name: str | None, type_: str, msg: str, value: Any = None, ctx: dict[str, Any] | None = None) -> None:
        item: dict[str, Any] = {"type": type_, "loc": ["body", name] if name else ["body"], "msg": msg, "input": value}
        if ctx is not None:
            item["ctx"] = ctx
        self.items.append(item)

    def value_error(self, name: str | None, msg: str, value: Any) -> None:
        self.add(name, "value_error", f"Value error, {msg}", value, {"error": {}})

    def integer(self, name: str, lo: int | None = None, hi: int | None = None, step: int | None = None) -> int | None:
        value = self.body.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            self.add(name, "int_type", "Input should be a valid integer", value)
            return None
        value = int(value)
        if lo is not None and value < lo:
            self.add(name, "greater_than_equal", f"Input should be greater than or equal to {lo}", value, {"ge": lo})
        elif hi is not None and value > hi:
            self.add(name, "less_than_equal", f"Input should be less than or equal to {hi}", value, {"le": hi})
        elif step is not None and value % step:
            self.add(name, "multiple_of", f"Input should be a multiple of {step}", value, {"multiple_of": step})
        else:
            return value
        return None

    def number(self, name: str, lo: float, hi: float) -> None:
        value = self.body.get(name)
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.add(name, "float_type", "Input should be a valid number", value)
        elif value < lo:
            self.add(name, "greater_than_equal", f"Input should be greater than or equal to {lo}", value, {"ge": lo})
        elif value > hi:
            self.add(name, "less_than_equal", f"Input should be less than or equal to {hi}", value, {"le": hi})

    def boolean(self, name: str) -> None:
        value = self.body.get(name)
        if value is not None and not isinstance(value, bool):
            self.add(name, "bool_type", "Input should be a valid boolean", value)

    def string(self, name: str) -> str | None:
        value = self.body.get(name)
        if value is not None and not isinstance(value, str):
            self.add(name, "string_type", "Input should be a valid string", value)
            return None
        return value


def _image_ref_ok(value: str) -> bool:
    """A URL, a data URI or bare base64 of an image, as BFL takes them."""
    if value.startswith(("http://", "https://")):
        return bool(urlsplit(value).netloc)
    if value.startswith("data:"):
        return _data_uri_image(value)
    return _b64_image(value)


def _flux_plan(model: str, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _Reply(422, {"detail": [{"type": "model_attributes_type", "loc": ["body"],
                                       "msg": "Input should be a valid dictionary or object to extract fields from",
                                       "input": body}]})
    p = _Problems(body)
    for name in body:
        if name not in _FLUX_FIELDS[model]:
            p.add(name, "extra_forbidden", "Extra inputs are not permitted", body[name])
    if "prompt" not in body:
        p.add("prompt", "missing", "Field required", body)
    prompt = p.string("prompt")
    flux2 = model.startswith("flux-2")
    width = height = None
    if "width" in _FLUX_FIELDS[model]:
        lo, hi, step = (64, None, 16) if flux2 else (256, 1440, 32)
        width, height = p.integer("width", lo, hi, step), p.integer("height", lo, hi, step)
        if flux2 and width and height and width * height > _FLUX2_MAX_PIXELS:
            p.value_error(None, f"width * height must be at most {_FLUX2_MAX_PIXELS} pixels (4 MP), got {width * height}",
                          {"width": width, "height": height})
    ratio = body.get("aspect_ratio") if "aspect_ratio" in _FLUX_FIELDS[model] else None
    if ratio is not None:
        _check_ratio(p, ratio)
    seed = p.integer("seed")
    p.integer("safety_tolerance", 0, 6)
    p.integer("steps", 1, 50)
    p.integer("interval", 1, 4)
    p.number("guidance", 1.5, 10 if model == "flux-2-flex" else 5)
    p.number("image_prompt_strength", 0, 1)
    for name in ("prompt_upsampling", "raw"):
        p.boolean(name)
    fmt = body.get("output_format")
    if fmt is not None and fmt not in ("jpeg", "png"):
        p.add("output_format", "enum", "Input should be 'jpeg' or 'png'", fmt, {"expected": "'jpeg' or 'png'"})
    for name in sorted(_FLUX2_IMAGES | {"image_prompt"}):
        value = p.string(name) if name in _FLUX_FIELDS[model] else None
        if value is not None and not _image_ref_ok(value):
            p.value_error(name, f"{name} must be a URL, a base64-encoded image or a data URI", value[:64])
    hook = p.string("webhook_url")
    if hook is not None and not (hook.startswith(("http://", "https://")) and urlsplit(hook).netloc):
        p.add("webhook_url", "url_parsing", "Input should be a valid URL, relative URL without a base", hook)
    p.string("webhook_secret")
    if p.items:
        raise _Reply(422, {"detail": p.items})
    return {"prompt": prompt or "", "seed": seed if seed is not None else secrets.randbelow(2**31), "fmt": fmt or "jpeg"}


def _check_ratio(p: _Problems, ratio: Any) -> None:
    m = _RATIO.match(ratio) if isinstance(ratio, str) else None
    if m is None or not int(m.group(1)) or not int(m.group(2)):
        p.value_error("aspect_ratio", "aspect_ratio must be two whole numbers as W:H, like 16:9", ratio)
    elif not 9 / 21 <= int(m.group(1)) / int(m.group(2)) <= 21 / 9:
        p.value_error("aspect_ratio", "aspect_ratio must be between 21:9 and 9:21", ratio)


def _flux_submit(h: Any, rec: Any, model: str) -> None:
    if h._refused():
        return
    try:
        if model not in FLUX_MODELS:
            raise _Reply(404, {"detail": "Not Found"})
        if not rec.body:
            raise _Reply(422, {"detail": [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]})
        if rec.json is None:
            raise _Reply(422, {"detail": [{"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error",
                                           "input": {}, "ctx": {"error": "Expecting value"}}]})
        fault = h._api_fault(rec, "flux", False)
        if _answered(fault):
            return
        kind, opts = fault or (None, {})
        if kind == "flux_rate_limited":
            raise _Reply(429, {"detail": opts["message"]})
        plan = _flux_plan(model, rec.json)
    except _Reply as reply:
        h._json(reply.status, reply.body, reply.headers)
        return
    task = _flux_create(h.fake, model, plan, kind, opts)
    _state(h.fake).log_submit("flux", task.id, rec.path.split("?", 1)[0], model=model)
    host = str(h.fake.flux_polling_host).rstrip("/")
    h._json(200, {"id": task.id, "polling_url": f"{host}/v1/get_result?id={task.id}"})


def _flux_create(fake: Any, model: str, plan: dict[str, Any], kind: str | None, opts: dict[str, Any]) -> FluxTask:
    state = _state(fake)
    timeline = _timeline(FLUX_TIMELINE, fake.flux_timeline)
    processing, ready = timeline["Processing"], float(timeline["Ready"] or 0.0)
    if kind == "flux_slow":
        ready += opts["delay"]
        processing = None if processing is None else processing + opts["delay"]
    end, details, error = "Ready", None, None
    if kind in _MODERATION_DEFAULT:
        end, details = _MODERATION_DEFAULT[kind], {"Moderation Reasons": list(opts["reasons"])}
    elif kind == "flux_error":
        end, error = "Error", opts["message"]
    elif kind == "flux_failed":
        end, error = "Failed", opts["message"]
    task = FluxTask(str(uuid.uuid4()), model, plan["prompt"], plan["seed"], plan["fmt"], state.clock(), time.time(),
                    processing, ready, float(fake.flux_sample_ttl), float(fake.flux_result_ttl), end, details, error)
    with state.lock:
        state.flux[task.id] = task
    return task


def _flux_poll(h: Any, rec: Any) -> None:
    if h._refused() or _poll_fault(h, rec, "flux"):
        return
    ids = parse_qs(urlsplit(h.path).query).get("id")
    if not ids:
        h._json(422, {"detail": [{"type": "missing", "loc": ["query", "id"], "msg": "Field required", "input": None}]})
        return
    state = _state(h.fake)
    with state.lock:
        task = state.flux.get(ids[0])
        answer = _flux_view(h.fake, task) if task is not None else None
    h._json(200, answer or _flux_answer(ids[0], "Task not found"))


def _flux_answer(task_id: str, status: str, **fields: Any) -> dict[str, Any]:
    return {"id": task_id, "status": status, "result": None, "progress": None, "details": None, "preview": None, **fields}


def _flux_view(fake: Any, task: FluxTask) -> dict[str, Any]:
    t = _state(fake).clock() - task.submitted
    if t >= task.ready + task.result_ttl:
        return _flux_answer(task.id, "Task not found")  # finished results expire at the provider
    if t < task.ready:
        if task.processing is not None and t >= task.processing:
            return _flux_answer(task.id, "Processing", progress=round(t / task.ready, 2) if task.ready else 0.0)
        return _flux_answer(task.id, "Pending", progress=0.0)
    if task.end != "Ready":
        extra = {"error": task.error} if task.error is not None else {}
        return _flux_answer(task.id, task.end, details=task.details, **extra)
    if task.result is None:
        task.result = _flux_result(fake, task)
    return _flux_answer(task.id, "Ready", result=task.result, progress=1.0)


def _flux_result(fake: Any, task: FluxTask) -> dict[str, Any]:
    image = fake._image(f"flux\x00{task.id}\x00{task.prompt}\x00{task.seed}", task.fmt)
    sample = _publish_sample(fake, image, task.submitted + task.ready + task.sample_ttl)
    fake._serve_record(image, sample, 0, task.model)
    start = task.submit_epoch + (task.processing if task.processing is not None else 0.0)
    end = task.submit_epoch + task.ready
    return {"sample": sample, "prompt": task.prompt, "seed": task.seed, "start_time": round(start, 3),
            "end_time": round(end, 3), "duration": round(end - start, 3)}


def _publish_sample(fake: Any, image: Any, deadline: float) -> str:
    """A /files/ link signed Azure-blob style (se=...&sig=...) that stops working at ``deadline`` (task_clock)."""
    state = _state(fake)
    token = secrets.token_hex(12)
    with fake._lock:
        fake._files[token] = image
    with state.lock:
        state.expiry[token] = deadline
    expires = time.gmtime(time.time() + max(0.0, deadline - state.clock()))
    se = quote(time.strftime("%Y-%m-%dT%H:%M:%SZ", expires), safe="")
    unsigned = f"/files/{token}.{image.fmt}?se={se}&sp=r&sv=2024-11-04&sr=b&rsct={quote(image.content_type, safe='')}"
    return f"{fake.base_url}{unsigned}{SAMPLE_SIG_MARKER}{fake._sign(unsigned)}"


def refuse_expired(h: Any, token: str) -> bool:
    """Answer an expired sample's download as Azure does, 403 AuthenticationFailed in XML; True if it was one."""
    state = _state(h.fake)
    with state.lock:
        deadline = state.expiry.get(token)
    now = state.clock()
    if deadline is None or now < deadline:
        return False
    request_id = str(uuid.uuid4())
    stamp = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
    expired = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() - (now - deadline)))
    body = (
        '<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to '
        "authenticate the request. Make sure the value of Authorization header is formed correctly including the "
        f"signature.\nRequestId:{request_id}\nTime:{time.strftime('%Y-%m-%dT%H:%M:%S.0000000Z', time.gmtime())}</Message>"
        f"<AuthenticationErrorDetail>Signed expiry time [{expired}] must be after current time [{stamp}]"
        "</AuthenticationErrorDetail></Error>"
    ).encode()
    h._respond(403, body, "application/xml", {"x-ms-error-code": "AuthenticationFailed", "x-ms-request-id": request_id})
    return True
