"""Paths that a batch file or a manifest names, kept inside the output directory.

A job line and a manifest record are data: written by someone else, copied from elsewhere, or
edited by hand. Neither may make a batch write, replace, hash or describe a file outside -o DIR,
whether by an absolute path, `~`, a `..` segment, or a symbolic link on the way out.
"""

from __future__ import annotations

import os
from pathlib import Path


class Outside(ValueError):
    """Why a path is refused, as the end of a sentence that starts with the path."""


def inside(root: Path, relative: str) -> Path:
    """`root / relative`, once it is sure to stay inside `root` with every symbolic link followed.

    The path is kept as written (it is what messages and stdout show); only the check resolves.
    A part that does not exist yet resolves as written, so a new directory is checked too.
    """
    fault = _lexical_fault(relative)
    if fault:
        raise Outside(f"is outside the output directory {root} ({fault})")
    path = root / relative
    try:
        base, target = root.resolve(), path.resolve()
    except (OSError, RuntimeError) as exc:  # a symbolic link loop
        raise Outside(f"cannot be resolved inside the output directory {root} ({exc})") from None
    if not target.is_relative_to(base):
        raise Outside(f"is outside the output directory {root} ({_escape(root, relative, base)})")
    return path


def _lexical_fault(relative: str) -> str | None:
    if "\0" in relative:
        return "it holds a NUL character"
    if relative.startswith("~"):
        return "~ would be a home directory; give a path relative to the output directory"
    if os.path.isabs(relative) or Path(relative).anchor:
        return "an absolute path; give a path relative to the output directory"
    if ".." in Path(relative).parts:
        return "a \"..\" segment climbs out of it"
    return None


def _escape(root: Path, relative: str, base: Path) -> str:
    """The symbolic link that leads out, to name it in the message."""
    walked = root
    for part in Path(relative).parts:
        walked = walked / part
        if walked.is_symlink():
            target = walked.resolve()
            if not target.is_relative_to(base):
                return f"{walked} is a symbolic link to {target}"
    return f"it leads to {(root / relative).resolve()}"
