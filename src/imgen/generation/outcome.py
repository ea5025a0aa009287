"""The outcome of one generation, and the JSON document `--json` prints of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ExitCode
from ..results import Failed, GenerationResponse, ImageResult, Saved
from .plan import Plan, cost_of


@dataclass
class Outcome:
    plan: Plan
    response: GenerationResponse
    saved: list[Saved] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)
    urls: list[ImageResult] = field(default_factory=list)  # --no-download
    elapsed: float = 0.0

    @property
    def exit_code(self) -> ExitCode:
        if not self.failed:
            return ExitCode.OK
        if self.saved or self.urls:
            return ExitCode.PARTIAL
        return self.failed[0].error.exit_code


def document(outcome: Outcome) -> dict[str, Any]:
    resp = outcome.response
    images = []
    for s in outcome.saved:
        entry: dict[str, Any] = {
            "index": s.item.index + 1,
            "path": str(s.image.path) if s.image.path else None,
            "bytes": s.image.bytes,
            "sha256": s.image.sha256,
            "format": s.image.format,
        }
        for key in ("url", "revised_prompt", "size"):
            if getattr(s.item, key):
                entry[key] = getattr(s.item, key)
        entry.update(_extras(s.item))
        images.append(entry)
    doc: dict[str, Any] = {
        "ok": not outcome.failed,  # as a failure's {"ok": false, "error": ...}: one key says how it went
        "model": outcome.plan.request.model,
        "profile": outcome.plan.settings.profile,
        "created": resp.created,
        "images": images,
    }
    request = outcome.plan.request
    if request.edit:
        doc["inputs"] = [{**i.describe(), "sha256": i.sha256} for i in request.inputs]
        if request.mask is not None:
            doc["mask"] = {**request.mask.describe(), "sha256": request.mask.sha256}
    if resp.request_id:
        doc["request_id"] = resp.request_id
    if outcome.urls:
        doc["urls"] = [{"index": i.index + 1, "url": i.url, **({"size": i.size} if i.size else {})} for i in outcome.urls]
    if outcome.failed:
        doc["errors"] = [{"index": f.item.index + 1, **f.error.to_dict(), **_extras(f.item)} for f in outcome.failed]
    if resp.usage is not None:
        doc["usage"] = resp.usage
    doc["cost"] = cost_of(outcome.plan, resp.usage)
    doc.update({k: v for k, v in resp.meta.items() if k not in doc})
    doc["exit_code"] = int(outcome.exit_code)
    return doc


def _extras(item: ImageResult) -> dict[str, Any]:
    # A streamed image reports its own usage (one completed event each) and the partials before
    # it; a Bria image its seed and uuid, to make it again.
    return {k: item.extra[k] for k in ("usage", "partials", "seed", "uuid") if k in item.extra}
