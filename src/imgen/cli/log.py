"""`imgen log` (the history of generations, from the ledger) and `imgen cost` (what they cost)."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import UsageError
from .common import JsonOption, handle_errors
from .table import render_table

app = typer.Typer(help="The history of generations: imgen log (the last ones), log show ID, log path.", invoke_without_command=True,
                  no_args_is_help=False)

SinceOption = Annotated[str | None, typer.Option("--since", help="Only since then: 7d, 24h, 30m, 2w, or a date (2026-11-01).",
                                                 show_default=False)]
_SPAN = re.compile(r"\s*(\d+)\s*([mhdw])\s*")
_UNIT = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(raw: str | None) -> dt.datetime | None:
    """--since 7d | 24h | 2026-11-01 (local midnight) | 2026-11-01T08:00 -> an aware UTC time."""
    if raw is None:
        return None
    span = _SPAN.fullmatch(raw)
    if span:
        return dt.datetime.now(dt.timezone.utc) - dt.timedelta(**{_UNIT[span[2]]: int(span[1])})
    try:
        when = dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        raise UsageError(f"--since {raw!r}: expected 7d, 24h, 30m, 2w or a date such as 2026-11-01", "e.g. --since 7d") from None
    return (when if when.tzinfo else when.astimezone()).astimezone(dt.timezone.utc)


def _ledger():  # noqa: ANN202
    from ..ledger.store import Ledger

    return Ledger()


def _one_line(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _money(usd: float | None, basis: str) -> str:
    if usd is None:
        return "?"
    return f"${usd:.4f}" + ("" if basis == "billed" else "~")


def _local(iso: str) -> str:
    try:
        return dt.datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def _document(row: Any) -> dict[str, Any]:
    return asdict(row)


@app.callback(invoke_without_command=True)
def main(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("-n", "--limit", help="How many, newest first.", min=1)] = 20,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model.", show_default=False)] = None,
    profile: Annotated[str | None, typer.Option("--profile", "-P", help="Only this profile.", show_default=False)] = None,
    since: SinceOption = None,
    search: Annotated[str | None, typer.Option("--search", "-s", help="Prompts with these words (full-text where SQLite has it).",
                                               show_default=False)] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only failed and partly failed generations.")] = False,
    json_out: JsonOption = False,
    ndjson: Annotated[bool, typer.Option("--ndjson", help="One JSON object per line (for scripts that stream).")] = False,
) -> None:
    """The last generations: time, model, status, cost, images, prompt."""
    if ctx.invoked_subcommand is not None:
        return
    with handle_errors():
        rows = _ledger().query(limit=limit, model=model, profile=profile, since=parse_since(since), search=search, failed=failed)
        if json_out or ndjson:
            docs = [_document(r) for r in rows]
            if ndjson:
                sys.stdout.write("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
            else:
                from ..report import emit_json

                emit_json(docs)
            return
        render_table(
            ["id", "time", "model", "status", "cost", "images", "prompt"],
            [[str(r.id), _local(r.time), r.model, r.status, _money(r.cost_usd, r.cost_basis), str(len(r.images)), _one_line(r.prompt)]
             for r in rows],
        )


@app.command("show")
def show(gen_id: Annotated[int, typer.Argument(help="The generation's id (imgen log lists them).", metavar="ID")],
         json_out: JsonOption = False) -> None:
    """Every field of one generation, and its files: still there, and still the same bytes?"""
    from ..batch.manifest import file_sha256

    with handle_errors():
        row = _ledger().get(gen_id)
        if row is None:
            raise UsageError(f"no generation {gen_id} in the ledger", "imgen log lists the ids")
        files = []
        for image in row.images:
            path = Path(image.path)
            state = "missing" if not path.is_file() else "ok" if image.sha256 in (None, file_sha256(path)) else "changed"
            files.append({**asdict(image), "state": state})
        if json_out:
            from ..report import emit_json

            emit_json({**_document(row), "images": files})
            return
        skip = {"images", "fields", "usage"}
        lines = [f"{key}: {value}" for key, value in _document(row).items() if key not in skip and value not in (None, "")]
        lines.append("fields: " + json.dumps(row.fields, ensure_ascii=False))
        if row.usage:
            lines.append("usage: " + json.dumps(row.usage, ensure_ascii=False))
        lines += [f"image {f['index']}: {f['path']} ({f['state']}; {f['format']}, {f['width']}x{f['height']}, sha256 {f['sha256']})"
                  for f in files]
        sys.stdout.write("\n".join(lines) + "\n")


@app.command("path")
def path() -> None:
    """Where the ledger is (IMGEN_DATA_DIR moves it)."""
    from ..ledger.store import default_path

    sys.stdout.write(f"{default_path()}\n")


def cost(
    since: SinceOption = None,
    by: Annotated[str, typer.Option("--by", help="Group by model, day, profile or host.")] = "model",
    json_out: JsonOption = False,
) -> None:
    """What the logged generations cost, in US dollars: billed (from reported usage), estimated
    (list prices, typical usage) and unknown kept apart."""
    with handle_errors():
        if by not in ("model", "day", "profile", "host"):
            raise UsageError(f"--by {by!r}: expected model, day, profile or host")
        groups = _ledger().totals(since=parse_since(since), by=by)
        total = {
            "generations": sum(g["generations"] for g in groups), "images": sum(g["images"] for g in groups),
            "billed_usd": round(sum(g["billed_usd"] for g in groups), 6), "estimated_usd": round(sum(g["estimated_usd"] for g in groups), 6),
            "unknown": sum(g["unknown"] for g in groups), "failed": sum(g["failed"] for g in groups),
        }
        if json_out:
            from ..report import emit_json

            emit_json({"currency": "USD", "by": by, "since": since, "groups": groups, "total": total})
            return
        rows = [[str(g["key"]), str(g["generations"]), str(g["images"]), f"${g['billed_usd']:.4f}", f"${g['estimated_usd']:.4f}",
                 str(g["unknown"]), str(g["failed"])] for g in groups]
        rows.append(["total", str(total["generations"]), str(total["images"]), f"${total['billed_usd']:.4f}",
                     f"${total['estimated_usd']:.4f}", str(total["unknown"]), str(total["failed"])])
        render_table([by, "generations", "images", "billed", "estimated", "unknown", "failed"], rows)
        sys.stderr.write("imgen: US dollars; billed = from the usage the API reported, estimated = list prices or typical usage, "
                         "unknown = no price (imgen log show ID says why)\n")
