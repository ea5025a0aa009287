"""What every command shares: the one place that turns exceptions into messages and exit codes."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer

from ..errors import ExitCode, ImgenError, Interrupted
from ..report import Messages
from . import complete
from .clicklib import get_current_context

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


# How stdout carries JSON when a command fails: one indented document, or one line of a JSON
# Lines stream (a batch, --ndjson), or nothing because the stream reports its own end (--events).
DOCUMENT, LINE = "document", "line"


def json_mode(argv: Sequence[str] | None = None) -> str | None:
    """Whether the failing command was asked for JSON, read from the parsed command line (the
    command and its groups: `imgen models --json show X`); from `argv` when parsing itself failed."""
    ctx = get_current_context(silent=True)
    if ctx is None:
        return _json_mode_of_argv(sys.argv[1:] if argv is None else argv)
    given: set[str] = set()
    while ctx is not None:
        for param in ctx.command.params:
            value = ctx.params.get(param.name or "")
            if value is None or value is False:
                continue
            given.update(opt for opt in getattr(param, "opts", ()) if opt.startswith("--"))
        ctx = ctx.parent
    return _mode(given)


def _json_mode_of_argv(argv: Sequence[str]) -> str | None:
    words = list(argv)
    if "--" in words:
        words = words[: words.index("--")]
    return _mode({word.split("=", 1)[0] for word in words if word.startswith("--")})


def _mode(flags: set[str]) -> str | None:
    if "--ndjson" in flags:
        return LINE
    if "--json" not in flags:
        return None
    if "--events" in flags:
        return None  # generate's event stream ends with its own "error" line
    return LINE if "--batch" in flags else DOCUMENT


@contextmanager
def handle_errors(messages: Messages | None = None, *, argv: Sequence[str] | None = None) -> Iterator[Messages]:
    """Render ImgenError as `imgen: error: ...` + hint and exit with its code; no traceback
    unless --debug / IMGEN_DEBUG=1. Under --json the error is also one JSON document on stdout
    (report.error_document), so a script reads every outcome from stdout."""
    messages = messages or Messages(debug=debug_enabled())
    try:
        yield messages
    except ImgenError as exc:
        messages.traceback()
        messages.error(exc)
        _emit_json(exc, argv)
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        messages.error("interrupted", None)
        _emit_json(Interrupted("interrupted"), argv)
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except BrokenPipeError:
        # The reader went away (`imgen ... | head -1`): not an error worth a message.
        _silence_stdout()
        raise typer.Exit(int(ExitCode.OK)) from None
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback for users
        messages.traceback()
        error = ImgenError(
            f"internal error: {type(exc).__name__}: {exc}",
            "this is a bug in imgen; run again with --debug and report the traceback",
        )
        messages.error(error)
        _emit_json(error, argv)
        raise typer.Exit(int(ExitCode.INTERNAL)) from None


def _emit_json(error: ImgenError, argv: Sequence[str] | None) -> None:
    mode = json_mode(argv)
    if mode is not None:
        from ..report import emit_error

        emit_error(error, one_line=mode == LINE)


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
