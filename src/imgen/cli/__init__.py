"""Typer wiring only: one module per verb."""

from __future__ import annotations

import functools
import gc
from typing import Any

import typer

from .. import __version__
from .common import ProfileOption
from .lazy import LazyCommands
from .usage import CommandGroup, RootGroup

EXIT_CODES = "Exit codes: 0 ok, 2 usage, 3 config, 4 auth, 5 rejected, 6 rate limit, 7 network, 8 server, 9 bad response, 10 partial; see man imgen."

# The commands, in the order help lists them: (module, its function, app.command's settings), or
# for a group (module, None, None), the module's `app`. A module is imported when its command is
# first looked up (the one a run names; all of them for help and completion), not on every start.
COMMANDS: dict[str, tuple[str, str | None, dict[str, Any] | None]] = {
    "generate": ("generate", "generate", {"no_args_is_help": False, "epilog": EXIT_CODES}),
    "edit": ("edit", "edit", {"no_args_is_help": False}),
    "cost": ("log", "cost", {}),
    "inspect": ("provenance", "inspect", {}),
    "rerun": ("provenance", "rerun", {"no_args_is_help": False}),
    "show": ("show", "show", {}),
    "gallery": ("gallery", "gallery", {}),
    # Sub-commands shorten to a prefix too (`imgen config sh`), and a typo gets a suggestion.
    "models": ("models", None, None),
    "config": ("config", None, None),
    "task": ("task", None, None),
    "log": ("log", None, None),
}


def build_command(name: str) -> Any:
    """The Click command `name`, as Typer builds it for a command registered on the root app."""
    module_name, function, settings = COMMANDS[name]
    # __import__, not importlib.import_module, which -X importtime does not see.
    module = __import__(f"{__name__}.{module_name}", fromlist=["app"])
    holder = typer.Typer(rich_markup_mode=app.rich_markup_mode, pretty_exceptions_short=app.pretty_exceptions_short)
    if function is None:
        holder.add_typer(module.app, name=name, cls=CommandGroup)
    else:
        holder.command(name, **(settings or {}))(getattr(module, function))
    return typer.main.get_group(holder).commands[name]


class Imgen(RootGroup):
    """The root group, whose commands are built when first looked up."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands({name: functools.partial(build_command, name) for name in COMMANDS}, self.commands)

    # Set by run() when __main__.main has paused the collector for start-up.
    resume_collection = False

    def invoke(self, ctx: Any) -> Any:
        if Imgen.resume_collection:
            # The command starts: what exists now lives until exit, so collect only what it makes.
            Imgen.resume_collection = False
            gc.freeze()
            gc.enable()
        return super().invoke(ctx)


app = typer.Typer(
    name="imgen",
    cls=Imgen,
    help="Generate images from a prompt with OpenAI-compatible image APIs.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"imgen {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", "-V", help="Show the version and exit.", callback=_version, is_eager=True
    ),
    profile: ProfileOption = None,
) -> None:
    """Generate images from a prompt with OpenAI-compatible image APIs."""


def _terminate(signum: int, frame: object) -> None:
    # A cancelled CI job gets SIGTERM: clean up exactly as for Ctrl-C (no temp file left behind).
    raise KeyboardInterrupt


def run(*, collector_paused: bool = False) -> None:
    """The installed command: Click's usage errors, like every other, come out in imgen's format
    (RootGroup.main), and exit with imgen's codes. `collector_paused`: the caller turned the
    garbage collector off for start-up; it is turned back on when the command starts."""
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    Imgen.resume_collection = collector_paused
    app(prog_name="imgen")
