"""Typer wiring only: one module per verb."""

from __future__ import annotations

import typer

from .. import __version__
from . import config, edit, gallery, generate, log, models, provenance, show, task
from .common import ProfileOption
from .usage import CommandGroup, RootGroup

app = typer.Typer(
    name="imgen",
    cls=RootGroup,
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


EXIT_CODES = "Exit codes: 0 ok, 2 usage, 3 config, 4 auth, 5 rejected, 6 rate limit, 7 network, 8 server, 9 bad response, 10 partial; see man imgen."
app.command("generate", no_args_is_help=False, epilog=EXIT_CODES)(generate.generate)
app.command("edit", no_args_is_help=False)(edit.edit)
# Sub-commands shorten to a prefix too (`imgen config sh`), and a typo gets a suggestion.
app.add_typer(models.app, name="models", cls=CommandGroup)
app.add_typer(config.app, name="config", cls=CommandGroup)
app.add_typer(task.app, name="task", cls=CommandGroup)
app.add_typer(log.app, name="log", cls=CommandGroup)
app.command("cost")(log.cost)
app.command("inspect")(provenance.inspect)
app.command("rerun", no_args_is_help=False)(provenance.rerun)
app.command("show")(show.show)
app.command("gallery")(gallery.gallery)


def _terminate(signum: int, frame: object) -> None:
    # A cancelled CI job gets SIGTERM: clean up exactly as for Ctrl-C (no temp file left behind).
    raise KeyboardInterrupt


def run() -> None:
    """The installed command: Click's usage errors, like every other, come out in imgen's format
    (RootGroup.main), and exit with imgen's codes."""
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    app(prog_name="imgen")
