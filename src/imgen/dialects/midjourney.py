"""Midjourney through a midjourney-proxy gateway: `POST /mj/submit/imagine`, then
`GET /mj/task/{id}/fetch` until SUCCESS, FAILURE or MODAL; `POST /mj/submit/action` for a
task's buttons (U1-U4, V1-V4, reroll, ...), which makes a new task.

The body's `code` decides, never the HTTP status alone: the gateway answers 200 to a full queue
(23) and a banned prompt (24). `description` is localised, so it is shown, never parsed.
"""

from __future__ import annotations

from typing import Any

from ..errors import BadResponse, RateLimited, RequestRejected
from ..request import GenerateRequest
from ..results import GenerationResponse, ImageResult
from . import ApiCall, Done, NotAccepted, Pending, TaskFailed, TaskRef

NAME = "midjourney"
LIFECYCLE = "task"
INLINE_REFERENCES = True  # base64Array takes data URIs only: reference URLs are fetched first
POLL_INTERVAL = 3.0  # a grid takes tens of seconds; asking more often only loads the gateway
POLL_CAP = 5.0
TASK_TIMEOUT = 900.0  # relax mode can queue for minutes
BOTS = {"midjourney": "MID_JOURNEY", "niji": "NIJI_JOURNEY"}
OK_CODES = frozenset({1, 21, 22})  # the gateway rewrites 21 (exists) and 22 (queued) to 1; older ones may not
_REJECT_HINT = "change the prompt and submit again"


def build(req: GenerateRequest) -> ApiCall:
    prompt = req.prompt
    if req.fields.get("aspect_ratio"):
        prompt += f" --ar {req.fields['aspect_ratio']}"
    if req.fields.get("negative_prompt"):
        prompt += f" --no {req.fields['negative_prompt']}"
    body: dict[str, Any] = {"prompt": prompt, "botType": BOTS.get(req.model, "MID_JOURNEY")}
    if req.fields.get("image"):
        body["base64Array"] = list(req.fields["image"])
    body.update(req.params)
    return ApiCall("POST", f"{_prefix(req.fields.get('mj_speed'))}/mj/submit/imagine", body)


def action(task_id: str, custom_id: str, speed: str | None = None) -> ApiCall:
    """A button of a finished task, by the customId its latest fetch gave (never built here)."""
    return ApiCall("POST", f"{_prefix(speed)}/mj/submit/action", {"taskId": task_id, "customId": custom_id})


def _prefix(speed: str | None) -> str:
    return f"/mj-{speed}" if speed else ""


def task_ref(payload: Any) -> TaskRef:
    if not isinstance(payload, dict):
        raise BadResponse("Midjourney answered the submit with JSON that is not an object", "check the base URL")
    code, said = payload.get("code"), str(payload.get("description") or "").strip()
    code = int(code) if isinstance(code, (int, str)) and str(code).isdigit() else code
    result = payload.get("result")
    if code in OK_CODES and result not in (None, ""):
        return TaskRef(str(result), NAME)  # some proxies send the id as a number
    if code == 23:
        raise NotAccepted(f"the Midjourney queue is full ({said or 'code 23'})", "retry in a while", code="queue_full")
    if code == 24:
        word = (payload.get("properties") or {}).get("bannedWord") if isinstance(payload.get("properties"), dict) else None
        shown = f": banned word {word!r}" if word else ""
        raise RequestRejected(f"Midjourney refused the prompt{shown} ({said or 'code 24'})", "rephrase the prompt without it", code="banned_prompt")
    if code == 30:
        raise RateLimited(f"the Midjourney gateway is saturated ({said or 'code 30'})", "retry in a while", code="saturated")
    if code in (3, 4, 9):
        raise RequestRejected(f"Midjourney refused the submit: {said or f'code {code}'}", _REJECT_HINT, code=f"mj_{code}")
    raise BadResponse(f"Midjourney answered the submit with code {code!r} and no task id", "check the base URL points at a Midjourney gateway")


def poll(ref: TaskRef) -> ApiCall:
    return ApiCall("GET", f"/mj/task/{ref.id}/fetch", None)


def progress(payload: Any, ref: TaskRef) -> Pending | Done | TaskFailed:
    if not isinstance(payload, dict):
        return TaskFailed(BadResponse("the fetch answered with JSON that is not an object", "retry: imgen task wait " + ref.id))
    status = str(payload.get("status") or "NOT_START")  # "" just after the submit is NOT_START
    if status == "SUCCESS":
        url = payload.get("imageUrl")
        if not isinstance(url, str) or not url:
            return TaskFailed(BadResponse("it succeeded without an imageUrl", "ask the provider"))
        meta = {"task_id": ref.id, "action": payload.get("action"), "buttons": buttons(payload)}
        if payload.get("promptEn"):
            meta["prompt_en"] = payload["promptEn"]
        return Done(GenerationResponse(items=[ImageResult(0, url=url)], meta=meta))
    if status == "FAILURE":
        reason = str(payload.get("failReason") or "no reason given")
        return TaskFailed(RequestRejected(f"Midjourney failed the task: {reason}", _REJECT_HINT, code="mj_failure"))
    if status == "MODAL":
        return TaskFailed(RequestRejected(
            "the task waits for a follow-up in a dialog (MODAL: Vary Region needs a mask, Custom Zoom a prompt)",
            "imgen does not send /mj/submit/modal; use another button (imgen task show ID lists them)", code="mj_modal",
        ))
    if status in ("NOT_START", "SUBMITTED", "IN_PROGRESS"):
        return Pending(status, _percent(payload.get("progress")))
    return TaskFailed(BadResponse(f"it is in a state imgen does not know: {status!r}", "ask the provider"))


def _percent(value: Any) -> float | None:
    text = str(value or "").strip().rstrip("%")
    try:
        return max(0.0, min(1.0, float(text) / 100))
    except ValueError:
        return None


def buttons(payload: dict[str, Any]) -> list[dict[str, str]]:
    """The task's buttons as the fetch gave them: label (or emoji), customId."""
    out = []
    for raw in payload.get("buttons") or ():
        if isinstance(raw, dict) and isinstance(raw.get("customId"), str):
            out.append({"label": str(raw.get("label") or raw.get("emoji") or ""), "emoji": str(raw.get("emoji") or ""), "customId": raw["customId"]})
    return out


# Words a user may type for the buttons whose label is only an emoji.
_ALIASES = {"reroll": "::reroll::", "🔄": "::reroll::"}


def find_button(found: list[dict[str, str]], wanted: str) -> dict[str, str] | None:
    """The button a user names (U2, V3, reroll, "Upscale (Subtle)"), matched by its label
    (case-insensitively) or, for emoji-only buttons, by what it does."""
    key = wanted.strip().casefold()
    for button in found:
        if key and key in (button["label"].casefold(), button["emoji"].casefold()):
            return button
    marker = _ALIASES.get(key)
    return next((b for b in found if marker and marker in b["customId"]), None)
