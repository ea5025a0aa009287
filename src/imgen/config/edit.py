"""`imgen config set/unset/use`: read the file, change one thing, write it atomically.

Everything else in the file is kept (other profiles, params tables, unknown keys); comments
are not, since tomli-w writes what tomllib read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from . import configfile
from .settings import (
    _PROFILE_NAME,
    BUILTIN_PROFILES,
    ENV_FOR_KEY,
    SETTING_KEYS,
    Sourced,
    _echo,
    format_value,
    parse_param,
    parse_value,
    read_config,
    require_profile,
    select_profile,
)


@dataclass
class Change:
    path: Path
    profile: str | None
    key: str
    value: Any = None
    changed: bool = True
    notes: list[str] = field(default_factory=list)


def split_key(key: str) -> tuple[str, str | None]:
    """`params.watermark` → ("params", "watermark"); `model` → ("model", None)."""
    head, dot, rest = key.partition(".")
    if head == "params" and dot:
        if not rest:
            raise UsageError("params. needs a field name: params.KEY")
        return head, rest
    return key, None


def unknown_key(key: str) -> UsageError:
    if key in ("api_key", "key"):
        return UsageError(
            f"{key}: keys are not stored in the config file",
            hint="use: imgen config key set [-P NAME] (reads the key from a hidden prompt or stdin)",
        )
    return UsageError(
        f"unknown setting {key!r}",
        hint="known settings: " + ", ".join(SETTING_KEYS) + ", params.KEY",
    )


def _edit_target(profile: str | None, environ: Mapping[str, str], data: Mapping[str, Any], path: Path) -> str:
    name = select_profile(profile, environ, data, path).value
    if not _PROFILE_NAME.match(name):
        raise UsageError(
            f"{name!r} is not a usable profile name",
            hint="use letters, digits, '-' and '_', starting with a letter or digit",
        )
    return name


def set_value(
    key: str, raw: str, profile: str | None = None, environ: Mapping[str, str] | None = None
) -> Change:
    """Set KEY in the chosen profile's file section (created if needed) and write the file."""
    environ = os.environ if environ is None else environ
    head, param = split_key(key)
    if head not in SETTING_KEYS:
        raise unknown_key(key)
    try:
        value = parse_param(raw) if param else parse_value(head, raw)
    except ValueError as exc:
        shown = _echo(head, raw)
        raise UsageError(f"{key}{' ' + shown if shown else ''}: {exc}") from None

    path = configfile.config_path(environ)
    data = read_config(path)
    name = _edit_target(profile, environ, data, path)
    change = Change(path, name, key, value)
    if head == "model":
        change.notes.extend(_model_notes(value, _dialect_of(name, data)))

    section = data.setdefault("profiles", {}).setdefault(name, {})
    if param:
        section.setdefault("params", {})[param] = value
    else:
        section[head] = value
    configfile.write_toml(path, data)
    return change


def unset_value(key: str, profile: str | None = None, environ: Mapping[str, str] | None = None) -> Change:
    """Remove KEY from the profile's file section; a built-in value, if any, shows through again."""
    environ = os.environ if environ is None else environ
    head, param = split_key(key)
    path = configfile.config_path(environ)
    data = read_config(path)
    chosen = select_profile(profile, environ, data, path)
    name = require_profile(chosen, data, path)
    section = data.get("profiles", {}).get(name, {})
    table = section.get("params", {}) if param else section
    field_name = param or head
    if field_name not in table:
        if head not in SETTING_KEYS:
            raise unknown_key(key)
        change = Change(path, name, key, changed=False)
        change.notes.append(f"{key} is not set in {path} for profile {name}; nothing changed")
        return change

    del table[field_name]
    if param and not table:
        del section["params"]
    if not section and name in BUILTIN_PROFILES:
        # An empty section of a built-in profile overrides nothing; a file-only one is the profile.
        del data["profiles"][name]
    if not data.get("profiles") and "profiles" in data:
        del data["profiles"]
    builtin = BUILTIN_PROFILES.get(name, {})
    change = Change(path, name, key)
    if not param and head in builtin:
        change.notes.append(f"profile {name} uses its built-in {head} again: {format_value(builtin[head])}")
    configfile.write_toml(path, data)
    return change


def use_profile(name: str, environ: Mapping[str, str] | None = None) -> Change:
    """Make NAME the default profile; it must exist (built-in or in the file)."""
    environ = os.environ if environ is None else environ
    path = configfile.config_path(environ)
    data = read_config(path)
    require_profile(Sourced(name, "flag --profile"), data, path)
    change = Change(path, name, "default_profile", name, changed=data.get("default_profile") != name)
    if environ.get(ENV_FOR_KEY["profile"]) and environ[ENV_FOR_KEY["profile"]] != name:
        change.notes.append(f"IMGEN_PROFILE={environ[ENV_FOR_KEY['profile']]} still takes precedence in this shell")
    if change.changed:
        data["default_profile"] = name
        configfile.write_toml(path, data)
    return change


def _dialect_of(name: str, data: Mapping[str, Any]) -> str | None:
    """The dialect the profile forces on every model, or None: each model speaks its own."""
    section = data.get("profiles", {}).get(name, {})
    forced = section.get("api") or BUILTIN_PROFILES.get(name, {}).get("api")
    return str(forced) if forced else None


def _model_notes(model: str, dialect: str | None) -> list[str]:
    try:
        from ..models import capabilities
    except ImportError:
        return []
    spec = capabilities.lookup(model, dialect)
    if spec is not None and dialect in (None, spec.dialect):
        return []
    if capabilities.lookup(model) is not None:
        return [f"model {model} is known, but not for the {dialect!r} API of this profile"]
    return [f"model {model} is not in imgen's table: it will be sent as is, without checks"]
