"""Values the shell offers after --model, --size and --profile.

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
    """The sizes the chosen model accepts: --model if already typed, else the profile's model
    (IMGEN_MODEL, the profile, the default, as a real run would resolve it)."""
    from ..models import capabilities

    model = _given(ctx, "model")
    dialect = None
    try:
        from ..config.settings import resolve

        resolved = resolve({"profile": _given(ctx, "profile"), "model": model})
        model, dialect = resolved.get("model"), resolved.get("api")
    except Exception:  # noqa: BLE001 - an unknown profile still leaves a typed --model usable
        pass
    if not model:
        return []
    # The profile's API decides between same-named records; a model it does not serve still
    # has sizes worth offering, since the run itself will explain the mismatch.
    found = capabilities.sizes_for(str(model), dialect) or capabilities.sizes_for(str(model))
    return [(size, "") for size in found if size.startswith(incomplete)]


def _given(ctx: typer.Context, name: str) -> Any:
    """A value already on the command line, here or before the verb (`imgen -P x generate`)."""
    while ctx is not None:
        value = ctx.params.get(name)
        if value is not None:
            return value
        ctx = ctx.parent
    return None
