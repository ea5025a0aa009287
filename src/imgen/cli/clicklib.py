"""Click, as the installed Typer carries it: its own copy since Typer 0.26, Click itself before."""

from __future__ import annotations

try:
    from typer._click import exceptions
    from typer._click.globals import get_current_context
except ImportError:  # pragma: no cover - an older Typer, on top of Click
    from click import exceptions, get_current_context  # type: ignore[no-redef]

__all__ = ["exceptions", "get_current_context"]
