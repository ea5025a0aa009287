"""Entry point. `--version` is answered before Typer is imported: start-up is a feature."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] in (["--version"], ["-V"]):
        from . import __version__

        sys.stdout.write(f"imgen {__version__}\n")
        raise SystemExit(0)
    from .cli import run

    run()


if __name__ == "__main__":
    main()
