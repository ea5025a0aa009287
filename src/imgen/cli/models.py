"""`imgen models`: what each model accepts (the built-in table) and, with --remote, what a
gateway's catalog lists and what it costs. Commands gather data; the _render_* helpers print."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from ..errors import UsageError
from . import complete
from .common import JsonOption, ProfileOption, handle_errors
from .table import Column, render_table

app = typer.Typer(
    help="Show what each model accepts and costs.",
    invoke_without_command=True,
    no_args_is_help=False,
)

RemoteOption = Annotated[
    bool, typer.Option("--remote", help="List the image models in the profile's remote catalog (GET /api/models).")
]
RefreshOption = Annotated[
    bool, typer.Option("--refresh", help="Fetch the remote catalog again, even when the cached copy is fresh (implies --remote).")
]
BaseUrlOption = Annotated[
    str | None,
    typer.Option("--base-url", help="Read the catalog from this server (implies --remote). [default: the profile's]", show_default=False),
]
WideOption = Annotated[
    bool,
    typer.Option("--wide", help="Show every column, even those a narrow terminal hides (a pipe always gets every column)."),
]
ApiOption = Annotated[
    str | None,
    typer.Option("--api", help="Which record when an id exists for several APIs: openai, gemini, bria, midjourney, flux, envelope, placeholder.", show_default=False),
]


@app.callback(invoke_without_command=True)
def main(
    ctx: typer.Context,
    remote: RemoteOption = False,
    refresh: RefreshOption = False,
    json_out: JsonOption = False,
    profile: ProfileOption = None,
    base_url: BaseUrlOption = None,
    wide: WideOption = False,
) -> None:
    """List the models imgen checks (default), or with --remote the gateway's image models."""
    ctx.obj = {"remote": remote, "refresh": refresh, "json_out": json_out, "profile": profile, "base_url": base_url, "wide": wide}
    if ctx.invoked_subcommand is None:
        _list(**ctx.obj)


@app.command("list")
def list_models(
    ctx: typer.Context,
    remote: RemoteOption = False,
    refresh: RefreshOption = False,
    json_out: JsonOption = False,
    profile: ProfileOption = None,
    base_url: BaseUrlOption = None,
    wide: WideOption = False,
) -> None:
    """List the models imgen checks; -P NAME keeps those that profile's API serves."""
    # `imgen models --json list` must mean the same as `imgen models list --json`.
    outer = ctx.obj or {}
    _list(
        remote=remote or outer.get("remote", False),
        refresh=refresh or outer.get("refresh", False),
        json_out=json_out or outer.get("json_out", False),
        profile=profile or outer.get("profile"),
        base_url=base_url or outer.get("base_url"),
        wide=wide or outer.get("wide", False),
    )


@app.command("show")
def show(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="A model id, e.g. gpt-image-2 or a dated snapshot.", show_default=False, autocompletion=complete.model_ids)],
    api: ApiOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show every field a model accepts, its limits, and its cross-field rules."""
    json_out = json_out or (ctx.obj or {}).get("json_out", False)
    with handle_errors():
        from .. import dialects
        from ..config.settings import load_user_models
        from ..models import capabilities

        load_user_models()
        if api is not None and api not in dialects.DIALECTS:
            raise UsageError(f"--api {api}: not an API imgen speaks", "use one of: " + ", ".join(dialects.DIALECTS))
        spec = capabilities.lookup(model, api)
        if spec is None:
            close = capabilities.close_ids(model)
            raise UsageError(
                f"unknown model '{model}'",
                (f"did you mean {' or '.join(close)}? " if close else "") + "imgen models lists every model imgen checks",
            )
        if json_out:
            from ..report import emit_json

            emit_json({"requested": model, **_spec_document(spec)})
        else:
            others = [s.dialect for s in capabilities.all_specs() if s is not spec and s.matches(model)]
            _render_spec(spec, model, others)


def _list(*, remote: bool, refresh: bool, json_out: bool, profile: str | None, base_url: str | None, wide: bool) -> None:
    with handle_errors() as messages:
        if remote or refresh or base_url:
            _remote(messages, refresh=refresh, json_out=json_out, profile=profile, base_url=base_url, wide=wide)
            return
        from ..config.settings import load_user_models
        from ..models import capabilities

        load_user_models()
        specs = list(capabilities.all_specs())
        if profile is not None:
            from ..config.settings import resolve

            settings = resolve({"profile": profile})
            specs = [s for s in specs if s.dialect == settings.get("api")]
        if json_out:
            from ..report import emit_json

            emit_json({"models": [_spec_document(s) for s in specs]})
        else:
            rows = [
                [s.id, s.dialect, s.provider + (" (your config)" if s.user else ""), _sizes_cell(s), _aspect_cell(s), _n_cell(s),
                 ", ".join(s.features), s.family_label or "-"]
                for s in specs
            ]
            _note_hidden(messages, render_table(LOCAL_COLUMNS, rows, wide=wide))


def _remote(messages: Any, *, refresh: bool, json_out: bool, profile: str | None, base_url: str | None, wide: bool) -> None:
    from ..config.settings import resolve
    from ..models import capabilities, catalog

    settings = resolve({"profile": profile, "base_url": base_url})
    for warning in getattr(settings, "warnings", []):
        messages.warn(warning)
    if settings.get("api") == "placeholder" and base_url is None:
        raise UsageError(
            f"profile {settings.profile} is offline: it has no remote catalog",
            "pass --base-url URL, or a profile with a server (-P cometapi)",
        )
    found = catalog.load(str(settings["base_url"]), refresh=refresh)
    for warning in found.warnings:
        messages.warn(warning)
    entries = sorted(found.entries, key=lambda e: e.id)
    checked = {e.id: capabilities.lookup(e.id, settings.get("api")) for e in entries}
    if json_out:
        from ..report import emit_json

        emit_json(
            {
                "base_url": found.base_url,
                "fetched_at": found.fetched_at,
                "age_seconds": round(found.age(), 1),
                "from_cache": found.from_cache,
                "models": [
                    {**e.to_dict(), "checked": checked[e.id] is not None, "checked_as": getattr(checked[e.id], "id", None)}
                    for e in entries
                ],
            }
        )
        return
    rows = [
        [e.id, e.provider or "-", ", ".join(e.features) or "-", e.pricing.summary() if e.pricing else "-",
         _endpoints_cell(e), _checked_cell(e.id, checked[e.id])]
        for e in entries
    ]
    hidden = render_table(REMOTE_COLUMNS, rows, wide=wide)
    origin = f"cached {catalog.describe_age(found.age())} ago" if found.from_cache else "fetched now"
    messages.info(f"{len(entries)} image models from {found.base_url} ({origin}); checked = imgen knows its rules")
    _note_hidden(messages, hidden)


# --------------------------------------------------------------------------- rendering

# A narrow terminal shows the unranked columns, then of the ranked ones those that still fit, rank 1
# first; --wide shows them all. "dialect" is the wire format imgen speaks to the model (what a
# profile's `api` forces), the name its --json key has always had.
LOCAL_COLUMNS = [
    Column("model", whole=True),
    Column("dialect", whole=True),
    Column("provider", rank=4),
    Column("sizes", rank=1),
    Column("aspect", rank=3),
    Column("n", whole=True),
    Column("features", rank=2),
    Column("also matches", rank=5),
]
REMOTE_COLUMNS = [
    Column("model", whole=True),
    Column("provider", rank=3),
    Column("features", rank=1),
    Column("price", whole=True),
    Column("endpoints", rank=4),
    Column("checked", rank=2),
]


def _note_hidden(messages: Any, hidden: list[str]) -> None:
    # On stderr: stdout holds only the table, and the reader should know the table is not all.
    if hidden:
        from rich.console import Console

        width = Console(file=sys.stdout).width
        count = f"{len(hidden)} column{'s' if len(hidden) > 1 else ''}"
        messages.info(f"imgen: note: {count} hidden at {width} columns ({', '.join(hidden)}); --wide shows all")


def _sizes_cell(spec: Any) -> str:
    sizes = spec.sizes
    if sizes is None:
        return "-"
    parts = list(sizes.presets)
    if sizes.free:
        parts.append(f"WxH up to {sizes.free.max_edge}" if sizes.free.max_edge and not parts else "WxH")
    return " ".join(parts)


def _spec_document(spec: Any) -> dict[str, Any]:
    from ..models import aspect

    return {**spec.to_dict(), "aspect": aspect.mapping(spec)}


def _aspect_cell(spec: Any) -> str:
    from ..models import aspect

    shapes = aspect.mapping(spec)
    if shapes["computed"]:
        return "any W:H"
    ratios = list(shapes["sends"])
    if not ratios:
        return "-"
    return " ".join(ratios) if len(ratios) <= 3 else f"{len(ratios)} ratios"


def _n_cell(spec: Any) -> str:
    lo, hi = spec.n_range
    return str(lo) if lo == hi else f"{lo}-{hi}"


def _endpoints_cell(entry: Any) -> str:
    if entry.endpoints_malformed:
        return "(malformed)"
    return ", ".join(entry.endpoints or {}) or "-"


def _checked_cell(model_id: str, spec: Any) -> str:
    if spec is None:
        return "-"
    return "yes" if spec.id == model_id else f"yes ({spec.id})"


def _render_spec(spec: Any, requested: str, other_dialects: list[str]) -> None:
    from ..request import flag_for

    lines = [f"{spec.id}  ({spec.provider}, {spec.dialect} API)"]
    if requested != spec.id:
        lines.append(f"  {requested} is checked as {spec.id}")
    if spec.family_label:
        lines.append(f"  family: {spec.family_label}")
    lo, hi = spec.n_range
    prompt = f"at most {spec.prompt_max} characters"
    if spec.prompt_advice:
        prompt += f" (best under {spec.prompt_advice})"
    lines += [
        f"  n: {lo}" if lo == hi else f"  n: {lo}..{hi}",
        f"  prompt: {prompt}",
        f"  results: {', '.join(spec.results)}",
        f"  default size: {spec.default_size or '-'}",
        f"  features: {', '.join(spec.features)}",
        "fields:",
    ]
    width = max(len(flag_for(name)) for name in spec.fields)
    lines += [f"  {flag_for(name):<{width}}  {name}: {rule.describe()}" for name, rule in spec.fields.items()]
    from ..models import aspect

    shapes = aspect.mapping(spec)
    if shapes["field"] == "size" and (shapes["sends"] or shapes["computed"]):  # a ratio field is listed above
        sends = ", ".join(f"{ratio} -> {sent}" for ratio, sent in shapes["sends"].items())
        tail = "; other W:H computed (-s 1K|2K|4K sets the scale)" if shapes["computed"] else ""
        lines.append(f"aspect (--aspect): {sends or 'any W:H'}{tail}")
    lines += _edit_lines(spec)
    if spec.refused:
        lines.append("refused:")
        lines += [f"  {flag_for(name)}: {why}" for name, why in spec.refused.items()]
    if spec.combos:
        lines.append("rules:")
        lines += [f"  {combo.text}" for combo in spec.combos]
    if spec.note:
        lines.append(f"note: {spec.note}")
    for dialect in other_dialects:
        lines.append(f"also on the {dialect} API: imgen models show {requested} --api {dialect}")
    sys.stdout.write("\n".join(lines) + "\n")


def _edit_lines(spec: Any) -> list[str]:
    from ..request import flag_for

    edit = spec.edit
    if edit is None:
        return ["edit (imgen edit): no"]
    how = "uploaded to /v1/images/edits" if edit.route == "upload" else "sent as reference images"
    lines = [
        f"edit (imgen edit): {how}",
        f"  inputs: 1..{edit.max_inputs} of {', '.join(edit.formats)}, each under {edit.max_bytes // 1_000_000} MB"
        + ("; one square PNG, transparent where it is to change unless --mask" if edit.square_png else ""),
        "  --mask: " + ("a PNG with alpha, the first input's size" if edit.mask else "no"),
    ]
    lines += [f"  {flag_for(name)}  {name}: {rule.describe()}" for name, rule in edit.fields.items()]
    return lines + ([f"  note: {edit.note}"] if edit.note else [])
