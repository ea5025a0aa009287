"""Entry point. `--version` is answered before Typer is imported: start-up is a feature."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] in (["--version"], ["-V"]):
        from . import __version__

        sys.stdout.write(f"imgen {__version__}\n")
        raise SystemExit(0)
    import gc

    # Start-up makes tens of thousands of objects that live until exit (modules, classes, the
    # command tree) and frees almost none: collecting while they are made, and once more over
    # all of them at exit, costs ~20 ms of a 150 ms one-shot run. Collection resumes, over what
    # the command itself makes, when the command starts (cli.Imgen.invoke); what is left at exit
    # goes with the process, without a last pass over it.
    gc.disable()
    try:
        from .cli import run

        run(collector_paused=True)
    finally:
        gc.enable()
        gc.freeze()


if __name__ == "__main__":
    main()
