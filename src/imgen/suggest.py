""""Did you mean ...?" for every name a user types: commands, options, profiles, settings.

One cutoff for all of them, so a typo is caught the same way wherever it is made; stdlib only,
since the settings and the CLI's error path both use it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

CUTOFF = 0.6


def close_matches(word: str, choices: Iterable[str], n: int = 1) -> list[str]:
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=CUTOFF)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """`did you mean NAME?` for the nearest choice, or None when nothing is near enough."""
    found = close_matches(word, choices)
    return f"did you mean {found[0]}?" if found else None


def hint(word: str, choices: Iterable[str], otherwise: str | None = None) -> str | None:
    """A hint that starts with the suggestion when there is one; `otherwise` follows it (or stands alone)."""
    parts = [part for part in (did_you_mean(word, choices), otherwise) if part]
    return " ".join(parts) or None
