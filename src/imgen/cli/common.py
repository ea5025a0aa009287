"""What every command shares: the one place that turns exceptions into messages and exit codes."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer

from ..errors import ExitCode, ImgenError
from ..report import Messages
from . import complete

F = TypeVar("F", bound=Callable[..., Any])

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout instead of text.")]


def _inherit_profile(ctx: typer.Context, value: str | None) -> str | None:
    """`imgen -P NAME generate` and `imgen generate -P NAME` mean the same; the nearer one wins."""
    if value is None and ctx.parent is not None:
        return ctx.find_root().params.get("profile")
    return value


ProfileOption = Annotated[
    str | None,
    typer.Option(
        "--profile",
        "-P",
        help="Profile to use (default: IMGEN_PROFILE or the config's default_profile).",
        show_default=False,
        callback=_inherit_profile,
        autocompletion=complete.profiles,
    ),
]


def debug_enabled() -> bool:
    return os.environ.get("IMGEN_DEBUG", "") not in ("", "0")


@contextmanager
def handle_errors(messages: Messages | None = None) -> Iterator[Messages]:
    """Render ImgenError as `imgen: error: ...` + hint and exit with its code; no traceback
    unless --debug / IMGEN_DEBUG=1."""
    messages = messages or Messages(debug=debug_enabled())
    try:
        yield messages
    except ImgenError as exc:
        messages.traceback()
        messages.error(exc)
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        messages.error("interrupted", None)
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except BrokenPipeError:
        # The reader went away (`imgen ... | head -1`): not an error worth a message.
        _silence_stdout()
        raise typer.Exit(int(ExitCode.OK)) from None
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback for users
        messages.traceback()
        messages.error(
            f"internal error: {type(exc).__name__}: {exc}",
            "this is a bug in imgen; run again with --debug and report the traceback",
        )
        raise typer.Exit(int(ExitCode.INTERNAL)) from None


def errors_handled(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with handle_errors():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
    except OSError:
        pass
