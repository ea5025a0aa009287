"""A generation, as the ledger keeps it: built from its plan and outcome (or its error) once its
files are committed, and written in one transaction. Writing is never worth a failed image: a
ledger that cannot be written is a warning, and IMGEN_NO_LOG=1, `log = false` or --no-log skip it."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from ..errors import ExitCode, ImgenError

NO_LOG_ENV = "IMGEN_NO_LOG"
WRITE_TIMEOUT = 5.0  # a ledger held locked this long by another process costs this run its row, not its time


def enabled(settings: Any) -> bool:
    if os.environ.get(NO_LOG_ENV, "").strip() not in ("", "0"):
        return False
    return settings.get("log") is not False


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def write(plan: Any, outcome: Any = None, error: ImgenError | None = None, *, started: str, duration: float, kind: str | None = None,
          warn: Callable[[str], None] = lambda text: None) -> int | None:
    """Record one generation; the row's id, or None (turned off, or the ledger failed: `warn`)."""
    if plan is None or not enabled(plan.settings):
        return None
    from .store import Ledger, LedgerError

    try:
        return Ledger(timeout=WRITE_TIMEOUT).add(row(plan, outcome, error, started=started, duration=duration, kind=kind))
    except (LedgerError, OSError, ValueError) as exc:
        warn(f"the generation was not logged: {exc}")
        return None


def row(plan: Any, outcome: Any, error: ImgenError | None, *, started: str, duration: float, kind: str | None = None) -> Any:
    from ..generation.plan import cost_of
    from .store import GenerationRow, ImageRow

    request = plan.request
    response = outcome.response if outcome is not None else None
    usage = response.usage if response is not None else None
    cost = cost_of(plan, usage) if outcome is not None else {"usd": None, "basis": "unknown", "note": "the generation failed"}
    if outcome is not None:
        code = int(outcome.exit_code)
        status = "ok" if code == ExitCode.OK else "partial" if outcome.saved or outcome.urls else "failed"
        failure = outcome.failed[0].error.message if outcome.failed else None
    else:
        code, status, failure = int(error.exit_code) if error else int(ExitCode.INTERNAL), "failed", error.message if error else None
    images = [
        ImageRow(index=s.item.index + 1, path=str(s.image.path), sha256=s.image.sha256, bytes=s.image.bytes, format=s.image.format,
                 **_dimensions(s.image.path))
        for s in (outcome.saved if outcome is not None else ()) if s.image.path is not None
    ]
    revised = next((s.item.revised_prompt for s in outcome.saved if s.item.revised_prompt), None) if outcome is not None else None
    return GenerationRow(
        time=started, duration=round(duration, 3), status=status, exit_code=code, profile=plan.settings.profile,
        host=urlsplit(plan.base_url).netloc or plan.base_url, dialect=plan.dialect, model=request.model, prompt=request.prompt,
        kind=kind or ("edit" if request.edit else "generate"), fields={**request.fields, **request.params}, n=request.n,
        request_id=response.request_id if response is not None else getattr(error, "request_id", None),
        task_id=(response.meta.get("task_id") if response is not None else None), revised_prompt=revised, usage=usage,
        cost_usd=cost["usd"], cost_basis=cost["basis"], cost_note=cost["note"], error=failure, batch=plan.job_key, images=images,
    )


def _dimensions(path: Any) -> dict[str, int | None]:
    from ..files.imageinfo import probe

    try:
        info = probe(path)
    except OSError:
        info = None
    return {"width": info.width if info else None, "height": info.height if info else None}
