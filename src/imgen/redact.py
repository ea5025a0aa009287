"""What never goes into a record imgen keeps (the task journal, the ledger, an image's
provenance): credentials, known by the names they go under, and image bytes, known by length;
and what never goes into anything imgen writes: the secrets it holds, known by their value,
wherever a server (or anyone) echoes them."""

from __future__ import annotations

import re
from typing import Any

# Entry names that carry a credential, compared lower-cased with "-" read as "_".
SECRET_NAME = re.compile(r"(x_)?(api_?key|key|secret|password|(proxy_)?authorization|(access_|auth_|bearer_|api_)?token)")
DATA_URI_KEEP = 256  # a longer data: string is image bytes, not a setting worth keeping


def without_credentials(value: Any) -> Any:
    """`value` without the entries named like a credential, at any depth."""
    if isinstance(value, dict):
        return {k: without_credentials(v) for k, v in value.items() if not (isinstance(k, str) and is_secret_name(k))}
    if isinstance(value, list | tuple):
        return [without_credentials(v) for v in value]
    return value


def is_secret_name(name: str) -> bool:
    return SECRET_NAME.fullmatch(name.lower().replace("-", "_")) is not None


def for_record(value: Any) -> Any:
    """`value` as a record keeps it: no credentials, and each long data URI by its length."""
    value = without_credentials(value)
    return _shortened(value)


def _shortened(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shortened(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shortened(v) for v in value]
    if isinstance(value, str) and len(value) > DATA_URI_KEEP and value[:5].lower() == "data:":
        return f"<data URI, {len(value)} chars>"
    return value


# --- secrets known by value ---------------------------------------------------------------------

_held: set[str] = set()
SHORTEST_SECRET = 8  # below it a "key" would mask ordinary words in every message


def mask(secret: str) -> str:
    """A secret as `sk-...abcd`: enough to recognise, never enough to use."""
    if len(secret) <= SHORTEST_SECRET:
        return "***"
    prefix = secret[:3] if secret[2:3] == "-" else ""
    return f"{prefix}...{secret[-4:]}"


def hold(secret: str | None) -> None:
    """From now on, `secret` is masked in every message, document and record imgen writes."""
    if secret and len(secret) >= SHORTEST_SECRET:
        _held.add(secret)


def scrub(text: str) -> str:
    if not _held or not isinstance(text, str):
        return text
    for secret in sorted(_held, key=len, reverse=True):  # a key containing another is masked whole
        if secret in text:
            text = text.replace(secret, mask(secret))
    return text


def scrubbed(value: Any) -> Any:
    """A JSON-like document with every held secret masked, in keys and values, at any depth."""
    if not _held:
        return value
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrubbed(k): scrubbed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrubbed(v) for v in value]
    return value
