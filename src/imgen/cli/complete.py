"""Values the shell offers after --model, --size, -Q, --style, --background, --output-format,
--aspect, --profile, and the keys after `imgen config set`.

Each function runs in a process started only to answer one TAB press, so it imports what it
needs when called. None of them may raise: a broken config file should cost a suggestion, not
print a traceback into the middle of the user's command line.
"""

from typing import Any

import typer

Choices = list[tuple[str, str]]


def model_ids(incomplete: str) -> Choices:
    """Every id in the capability table, with the provider as the hint zsh and fish show."""
    from ..models import capabilities

    choices = []
    for model_id in capabilities.known_ids():
        spec = capabilities.lookup(model_id)
        choices.append((model_id, spec.provider if spec else ""))
    return [c for c in choices if c[0].startswith(incomplete)]


def profiles(incomplete: str) -> Choices:
    """The built-in profiles and those in the config file."""
    from ..config import settings

    try:
        infos, _ = settings.list_profiles()
        choices = [(info.name, info.origin) for info in infos]
    except Exception:  # noqa: BLE001 - see the module docstring
        choices = [(name, "built-in") for name in sorted(settings.BUILTIN_PROFILES)]
    return [c for c in choices if c[0].startswith(incomplete)]


def sizes(ctx: typer.Context, incomplete: str) -> Choices:
    """The sizes the chosen model accepts (see _model_spec)."""
    from ..models import capabilities

    model, dialect = _model(ctx)
    if not model:
        return []
    # The profile's API decides between same-named records; a model it does not serve still
    # has sizes worth offering, since the run itself will explain the mismatch.
    found = capabilities.sizes_for(str(model), dialect) or capabilities.sizes_for(str(model))
    return [(size, "") for size in found if size.startswith(incomplete)]


def field_values(name: str) -> Any:
    """A completer for the values the chosen model takes for field `name` (its Enum rule)."""

    def complete(ctx: typer.Context, incomplete: str) -> Choices:
        from ..models import capabilities
        from ..models.rules import Enum

        model, dialect = _model(ctx)
        spec = (capabilities.lookup(str(model), dialect) or capabilities.lookup(str(model))) if model else None
        rule = spec.fields.get("aspect_ratio" if name == "aspect" else name) if spec else None
        values: list[str] = list(rule.values) if isinstance(rule, Enum) else []
        if name == "aspect" and spec is not None:
            values = list(dict.fromkeys([*getattr(spec, "aspects", {}), *values]))
        return [(v, "") for v in values if str(v).startswith(incomplete)]

    return complete


def setting_keys(incomplete: str) -> Choices:
    """The keys `imgen config set` takes, with what each does."""
    from ..config import settings

    return [(k, spec.help) for k, spec in settings.SETTING_KEYS.items() if k.startswith(incomplete)]


def _model(ctx: typer.Context) -> tuple[Any, Any]:
    """The model a run would use: --model if already typed, else the profile's (IMGEN_MODEL, the
    profile, the default, as a real run would resolve it); and the profile's API."""
    model = _given(ctx, "model")
    try:
        from ..config.settings import resolve

        resolved = resolve({"profile": _given(ctx, "profile"), "model": model})
        return resolved.get("model"), resolved.get("api")
    except Exception:  # noqa: BLE001 - an unknown profile still leaves a typed --model usable
        return model, None


def _given(ctx: typer.Context, name: str) -> Any:
    """A value already on the command line, here or before the verb (`imgen -P x generate`)."""
    while ctx is not None:
        value = ctx.params.get(name)
        if value is not None:
            return value
        ctx = ctx.parent
    return None
