"""Stored API keys: `credentials.toml`, kept apart from config.toml so the config can be shared,
printed or committed to a dotfiles repository without leaking a key.

    [profiles.cometapi]
    api_key = "sk-..."

The file is written atomically with mode 0600 (its directory is created 0700). A file that group
or others can read is reported with the `chmod 600` fix and its key is still used: by the time
imgen sees the mode the key is already exposed, refusing would only break scripts, and the next
`imgen config key set` rewrites the file 0600. Messages never include a key, only `mask_key` forms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UsageError
from . import configfile

_FIELD = "api_key"
# Keys are opaque tokens: anything printable without spaces, so a pasted newline or a shell
# prompt swallowed by `cat` cannot end up inside one.
_KEY_SHAPE = re.compile(r"^[\x21-\x7e]+$")


@dataclass(frozen=True)
class StoredKey:
    key: str
    path: Path
    loose_mode: int | None = None  # the file's mode when group/others have access

    @property
    def warning(self) -> str | None:
        if self.loose_mode is None:
            return None
        return permission_warning(self.path, self.loose_mode)


def permission_warning(path: Path, mode: int) -> str:
    return f"{path} is accessible by other users (mode {mode:04o}); fix it with: chmod 600 {path}"


def _read(path: Path) -> dict[str, Any]:
    data = configfile.read_toml(path)
    for name, section in configfile.profile_tables(path, data).items():
        if _FIELD in section and not isinstance(section[_FIELD], str):
            raise ConfigError(f"{path}: profiles.{name}.{_FIELD} must be a string")
    return data


def stored_key(path: Path, profile: str) -> StoredKey | None:
    """The key stored for `profile`, or None. Reading never changes the file."""
    data = _read(path)
    key = data.get("profiles", {}).get(profile, {}).get(_FIELD)
    if not key:
        return None
    return StoredKey(key, path, configfile.loose_permissions(path))


def clean_key(raw: str) -> str:
    """The key as typed or piped, without surrounding whitespace; UsageError when it cannot be one."""
    key = raw.strip()
    if not key:
        raise UsageError("no key given", hint="type or paste the key at the prompt, or pipe it on stdin")
    if not _KEY_SHAPE.match(key):
        raise UsageError(
            "the key contains spaces, line breaks or non-ASCII characters",
            hint="give exactly one key, e.g. printf %s \"$KEY\" | imgen config key set",
        )
    return key


def store_key(path: Path, profile: str, key: str) -> Path:
    """Store `key` for `profile`, keeping every other profile's key; returns the file written."""
    data = _read(path)
    data.setdefault("profiles", {}).setdefault(profile, {})[_FIELD] = clean_key(key)
    return configfile.write_toml(path, data, private=True)


def remove_key(path: Path, profile: str) -> bool:
    """Forget `profile`'s key; False when none was stored (the file is then left alone)."""
    data = _read(path)
    profiles = data.get("profiles", {})
    section = profiles.get(profile)
    if not section or _FIELD not in section:
        return False
    del section[_FIELD]
    if not section:
        del profiles[profile]
    configfile.write_toml(path, data, private=True)
    return True
