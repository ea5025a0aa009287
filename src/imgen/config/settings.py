"""Resolved settings: command-line flag > environment > profile (file over built-in) > default.

Every value carries its source, so `imgen config show` can say where it came from and an error
can name the place to fix.

The config file (`config.toml`, see `configfile.config_path`):

    default_profile = "cometapi"

    [profiles.cometapi]
    base_url = "https://api.cometapi.com"
    # api = "envelope"              # force one API dialect for every model (default: the model's own)
    api_key_env = "COMETAPI_KEY"
    model = "dall-e-3"
    size = "1024x1024"
    output_dir = "~/Pictures/imgen"
    name = "{date}-{slug}-{index}.{ext}"

    [profiles.cometapi.params]      # extra body fields sent on every request of this profile
    watermark = false

Built-in profiles exist without a file; a file section overrides their keys one by one, or
defines a new profile. Keys are listed in SETTING_KEYS. A known key with a bad value is a
ConfigError naming file, profile and key (a wrong value must not be sent). An unknown key is a
warning and is kept on every rewrite: a file written by a newer imgen stays usable, and a typo
is reported rather than silently ignored. Keys never live in this file (see credentials.py).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .. import dialects, jsontext, redact, suggest
from ..errors import ConfigError, UsageError
from . import configfile

DEFAULT_PROFILE = "cometapi"

BUILTIN_PROFILES: dict[str, dict[str, Any]] = {
    # Each model's record names the dialect it is spoken in; a profile that sets `api` forces one
    # for every model (the envelope gateway serves gpt-image-1.5 through its own envelope).
    "cometapi": {
        "base_url": "https://api.cometapi.com",
        "api_key_env": "COMETAPI_KEY",
        "model": "dall-e-3",
    },
    "openai": {
        "base_url": "https://api.openai.com",
        "api_key_env": "OPENAI_API_KEY",
        "model": "dall-e-3",
    },
    "dianming": {
        "api": "envelope",
        "base_url": "https://api.aa.com.cn",
        "api_key_env": "DIANMING_API_KEY",
        "model": "gpt-image-1.5",
    },
    "offline": {"api": "placeholder", "model": "placeholder"},
}

DEFAULTS: dict[str, Any] = {
    "api": "openai",
    "base_url": "https://api.cometapi.com",
    "api_key_env": "COMETAPI_KEY",
    "model": "dall-e-3",
    "output_dir": ".",
    "name": "{date}-{slug}-{index}.{ext}",
    "timeout": 300.0,
    # A whole API call, however its bytes trickle: past the slowest image models and edits.
    "max_time": 900.0,
    "retries": 2,
    "params": {},
}

# Environment variables that set a value, by setting name.
ENV_FOR_KEY: dict[str, str] = {
    "profile": "IMGEN_PROFILE",
    "base_url": "IMGEN_BASE_URL",
    "model": "IMGEN_MODEL",
    "output_dir": "IMGEN_OUTPUT_DIR",
    "timeout": "IMGEN_TIMEOUT",
    "max_time": "IMGEN_MAX_TIME",
    "retries": "IMGEN_RETRIES",
    "task_timeout": "IMGEN_TASK_TIMEOUT",
    "poll_interval": "IMGEN_POLL_INTERVAL",
    "metadata": "IMGEN_METADATA",
}

KEY_ENV = "IMGEN_API_KEY"
DIALECTS = tuple(dialects.DIALECTS)

# OPENAI_API_KEY is exported for many tools; a profile pointed elsewhere must not pick it up.
OPENAI_KEY_ENV = "OPENAI_API_KEY"
OPENAI_HOST = "api.openai.com"


@dataclass(frozen=True)
class SettingKey:
    type: type
    help: str
    choices: tuple[str, ...] = ()
    api_field: bool = False  # sent in the request body under this name


def _key(type_: type, help_: str, *choices: str, api_field: bool = False) -> SettingKey:
    return SettingKey(type_, help_, tuple(choices), api_field)


SETTING_KEYS: dict[str, SettingKey] = {
    "api": _key(str, "force this API dialect for every model (default: each model's own)", *DIALECTS),
    "base_url": _key(str, "server root: http(s)://host, with optional :port and /path prefix"),
    "api_key_env": _key(str, "name of the environment variable holding the key"),
    "model": _key(str, "model id sent to the API"),
    "output_dir": _key(str, "directory images are saved in (~ is expanded)"),
    "name": _key(str, "file name template, e.g. {date}-{slug}-{index}.{ext}"),
    "timeout": _key(float, "seconds to wait for the API and each download"),
    "max_time": _key(float, "seconds an API call may take in all, however slowly its answer arrives"),
    "retries": _key(int, "retries after 429/5xx/connect errors"),
    "task_timeout": _key(float, "seconds to wait for a task (Midjourney, Flux) before leaving it to imgen task wait"),
    "metadata": _key(str, "where each image's provenance goes: into the file, a NAME.json sidecar, both or neither", "embed", "sidecar",
                     "both", "none"),
    "log": _key(bool, "record each generation in the history and cost ledger (imgen log, imgen cost)"),
    "preview": _key(bool, "draw each saved image in the terminal, on stderr (IMGEN_PREVIEW picks the protocol)"),
    "preview_rows": _key(int, "terminal rows a preview may take (1-200)"),
    "poll_interval": _key(float, "seconds before a task's first poll (default: each API's own pace; later polls scale with it)"),
    "max_download": _key(int, "largest image accepted from a URL, in bytes"),
    "max_answer": _key(int, "largest API answer read (decoded, base64 images included), in bytes"),
    "params": _key(dict, "extra body fields sent on every request (params.KEY)"),
    "n": _key(int, "images per request (1-10)", api_field=True),
    "size": _key(str, "WxH, auto, or a preset like 2K", api_field=True),
    "aspect": _key(str, "shape W:H (e.g. 16:9), mapped to each model's ratio or size", api_field=True),
    "negative_prompt": _key(str, "what to keep out of the image (models that take it)", api_field=True),
    "quality": _key(str, "image quality", "standard", "hd", "low", "medium", "high", "auto", api_field=True),
    "style": _key(str, "dall-e-3 style", "vivid", "natural", api_field=True),
    "background": _key(str, "GPT image background", "transparent", "opaque", "auto", api_field=True),
    "output_format": _key(str, "image file format", "png", "jpeg", "webp", api_field=True),
    "output_compression": _key(int, "jpeg/webp compression (0-100)", api_field=True),
    "moderation": _key(str, "GPT image moderation level", "low", "auto", api_field=True),
    "response_format": _key(str, "how images come back", "url", "b64_json", api_field=True),
    "user": _key(str, "end-user id passed to the API", api_field=True),
    "watermark": _key(bool, "Seedream 'AI Generated' mark", api_field=True),
    "seed": _key(int, "Seedream seed (-1..2147483647)", api_field=True),
    "guidance_scale": _key(float, "Seedream guidance (1.0-10.0)", api_field=True),
}

GENERATION_FIELDS: tuple[str, ...] = tuple(k for k, spec in SETTING_KEYS.items() if spec.api_field)

# Flag names for source labels; generation fields use request.FLAG_FOR_FIELD.
FLAG_FOR_KEY: dict[str, str] = {
    "profile": "--profile",
    "base_url": "--base-url",
    "model": "--model",
    "output_dir": "--output-dir",
    "timeout": "--timeout",
    "max_time": "--max-time",
    "retries": "--retries",
    "task_timeout": "--task-timeout",
    "log": "--log/--no-log",
    "preview": "--preview/--no-preview",
    "preview_rows": "--preview-rows",
    "metadata": "--metadata",
    "name": "--name",
    "params": "--param",
}

_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SIZE = re.compile(r"^(auto|\d+[xX]\d+|\d+[kK])$")
_RANGES: dict[str, tuple[float, float]] = {
    "n": (1, 10),
    "output_compression": (0, 100),
    "seed": (-1, 2147483647),
    "guidance_scale": (1.0, 10.0),
    "task_timeout": (1, 86400),
    "poll_interval": (0.01, 600),
    "preview_rows": (1, 200),
}


@dataclass(frozen=True)
class Sourced:
    value: Any
    source: str


@dataclass(frozen=True)
class Invalid:
    """A value `resolve(lenient=True)` passed over: what it was (None when it could hold a
    secret), what is wrong with it, and where it was set."""

    shown: str | None
    problem: str
    source: str


@dataclass
class Settings:
    profile: str
    values: dict[str, Sourced] = field(default_factory=dict)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    config_path: Path | None = None
    credentials_path: Path | None = None
    params_sources: dict[str, str] = field(default_factory=dict)
    # Things worth telling the user that did not stop resolution (unknown keys, loose file modes).
    warnings: list[str] = field(default_factory=list)
    # Why api_key() found a key but would not hand it out; None when it did not refuse one.
    key_problem: str | None = None
    # Only from resolve(lenient=True): each setting whose winning value was refused (the one
    # from a lower layer, or the default, is in `values`), and every refusal as its error.
    invalid: dict[str, Invalid] = field(default_factory=dict)
    problems: list[ConfigError] = field(default_factory=list)

    def __getitem__(self, key: str) -> Any:
        return self.values[key].value

    def get(self, key: str, default: Any = None) -> Any:
        item = self.values.get(key)
        return default if item is None else item.value

    def source(self, key: str) -> str | None:
        item = self.values.get(key)
        return None if item is None else item.source

    def api_key(self) -> Sourced | None:
        """The key to send, which from then on is masked wherever imgen writes (redact.hold)."""
        found = self._find_key()
        if found is not None:
            redact.hold(str(found.value))
        return found

    def _find_key(self) -> Sourced | None:
        """IMGEN_API_KEY > the profile's key variable > the stored key, within the OpenAI rule.

        IMGEN_API_KEY is always honoured: it is imgen's own and set on purpose. An OpenAI key
        (from OPENAI_API_KEY, or any key of a profile whose api_key_env is OPENAI_API_KEY) goes
        only to https://api.openai.com; otherwise it is skipped and `key_problem` says why.
        """
        self.key_problem = None
        if self.environ.get(KEY_ENV):
            return Sourced(self.environ[KEY_ENV], f"env {KEY_ENV}")
        name = self.get("api_key_env")
        openai_only = name == OPENAI_KEY_ENV and not self._is_openai_host()
        if name and self.environ.get(name):
            if not openai_only:
                return Sourced(self.environ[name], f"env {name}")
            self.key_problem = self._openai_refusal(f"the key in {name}")
        from . import credentials  # a key from the environment, the usual case, needs no file

        path = self.credentials_path or configfile.credentials_path(self.environ)
        stored = credentials.stored_key(path, self.profile)
        if stored is None:
            return None
        if stored.warning and stored.warning not in self.warnings:
            self.warnings.append(stored.warning)
        if openai_only:
            self.key_problem = self.key_problem or self._openai_refusal("the stored key")
            return None
        return Sourced(stored.key, f"stored key ({path})")

    def _is_openai_host(self) -> bool:
        parts = urlsplit(str(self.get("base_url") or ""))
        return parts.scheme == "https" and (parts.hostname or "").lower() == OPENAI_HOST

    def _openai_refusal(self, what: str) -> str:
        base_url = str(self.get("base_url") or "")
        host = urlsplit(base_url).hostname or base_url
        return (
            f"{what} is an OpenAI key (profile {self.profile} uses {OPENAI_KEY_ENV}) and is only sent to "
            f"https://{OPENAI_HOST}, not to {host}; set {KEY_ENV} for {host}, or give the profile "
            f"its own variable: imgen config set -P {self.profile} api_key_env NAME"
        )

    def key_hint(self) -> str:
        """How to provide a key for this profile, for 'not set' messages."""
        env = self.get("api_key_env") or KEY_ENV
        if env == OPENAI_KEY_ENV and not self._is_openai_host():
            # Suggesting OPENAI_API_KEY here would point at a key api_key() refuses to send.
            return f"export {KEY_ENV}=..., or: imgen config set -P {self.profile} api_key_env NAME"
        return f"export {env}=... (or {KEY_ENV}), or store one: imgen config key set -P {self.profile}"

    def needs_key(self) -> bool:
        return self.get("api") != "placeholder"

    def forced_dialect(self) -> str | None:
        """The dialect this profile (or the environment, or a flag) imposes on every model;
        None when each model speaks its own (`api` left at its default)."""
        return None if self.source("api") in (None, "default") else str(self["api"])


# --- values: one rule for the file, the environment and `config set` ---------------------------


def check_value(key: str, value: Any) -> Any:
    """The value, normalised, for a known key; ValueError saying what is wrong otherwise."""
    spec = SETTING_KEYS[key]
    if spec.type is bool:
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
    elif spec.type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be a whole number")
    elif spec.type is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("must be a number")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
    elif spec.type is dict:
        if not isinstance(value, dict):
            raise ValueError("must be a table ([profiles.NAME.params])")
    elif spec.type is str:
        if not isinstance(value, str):
            raise ValueError("must be a string")
        if not value and key != "user":
            raise ValueError("must not be empty")
    if spec.choices and value not in spec.choices:
        raise ValueError("must be one of: " + ", ".join(spec.choices))
    if key in _RANGES:
        low, high = _RANGES[key]
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g}")
    check = _CHECKS.get(key)
    return check(value) if check else value


def _check_base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must look like https://host or http://host:port")
    if parts.username or parts.password:
        # It would be printed by `config show` and in errors; keys belong in credentials.toml.
        raise ValueError("must not hold a user name or password; store the key with `imgen config key set`")
    if parts.query or parts.fragment:
        raise ValueError("must not have a ?query or #fragment")
    try:
        parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return value.rstrip("/")


def _check_env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        # Deliberately not echoed: people paste the key itself here.
        raise ValueError("takes the NAME of an environment variable (like COMETAPI_KEY), not the key itself")
    return value


def _check_positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be more than 0")
    return value


def _check_seconds(value: float) -> float:
    # A wait past a day is a mistake, and select() overflows on the ones past ~1e7 s.
    if value <= 0:
        raise ValueError("must be more than 0")
    if value > 86400:
        raise ValueError("must be at most 86400 (a day)")
    return value


def _check_not_negative(value: int) -> int:
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _check_size(value: str) -> str:
    if not _SIZE.match(value):
        raise ValueError("must be WxH (like 1024x1024), auto, or a preset like 2K")
    return value


def _check_template(value: str) -> str:
    # The same check --name gets: a template it would refuse must be refused where it is written,
    # not in every later run that never mentioned --name.
    from ..files.names import FIELDS, TemplateError, validate_template

    try:
        validate_template(value)
    except TemplateError as exc:
        fields = " ".join(f"{{{name}}}" for name in FIELDS)
        raise ValueError(f"is not a valid name template: {exc.problem} (fields: {fields})") from None
    return value


_CHECKS = {
    "base_url": _check_base_url,
    "api_key_env": _check_env_name,
    "timeout": _check_seconds,
    "max_time": _check_seconds,
    "retries": _check_not_negative,
    "max_download": _check_positive,
    "max_answer": _check_positive,
    "size": _check_size,
    "name": _check_template,
}

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_value(key: str, raw: str) -> Any:
    """A command-line or environment string as the key's type, checked."""
    kind = SETTING_KEYS[key].type
    text = raw.strip()
    if kind is bool:
        lowered = text.lower()
        if lowered not in _TRUE | _FALSE:
            raise ValueError("must be true or false")
        value: Any = lowered in _TRUE
    elif kind is int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError("must be a whole number") from None
    elif kind is float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("must be a number") from None
    elif kind is dict:
        raise ValueError("is a table; set one field with params.KEY VALUE")
    else:
        value = raw
    return check_value(key, value)


def parse_param(raw: str) -> Any:
    """A TOML or JSON value when it parses as one (true, 3, 0.5, [1, 2], {"a": 1}), else the string."""
    import tomllib

    try:
        parsed = tomllib.loads(f"v = {raw}")
    except (tomllib.TOMLDecodeError, RecursionError):
        parsed = None
    if parsed is not None and list(parsed) == ["v"] and _json_like(parsed["v"]):
        return parsed["v"]
    try:
        value = jsontext.loads(raw)
    except ValueError:
        return raw
    return value if value is not None and _json_like(value) else raw


def _json_like(value: Any) -> bool:
    # TOML dates parse but cannot be sent in a JSON body; nor can TOML's inf and nan.
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (str, int, bool)):
        return True
    if isinstance(value, list):
        return all(_json_like(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_like(v) for k, v in value.items())
    return False


def format_value(value: Any) -> str:
    """How `config get` prints a value: scripts get plain text, tables and lists as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, Path):
        return str(value)
    return str(value)


# --- the file -----------------------------------------------------------------------------------


def read_config(path: Path) -> dict[str, Any]:
    """The parsed file with its shape checked (profiles are tables); values are not checked here,
    so `config set`/`unset` can still repair a bad value."""
    data = configfile.read_toml(path)
    default = data.get("default_profile")
    if default is not None and (not isinstance(default, str) or not default):
        raise ConfigError(f"{path}: default_profile must be a profile name (a string)")
    for name, section in configfile.profile_tables(path, data).items():
        params = section.get("params", {})
        if not isinstance(params, dict):
            raise ConfigError(f"{path}: profiles.{name}.params must be a table: [profiles.{name}.params]")
    return data


def _file_profile(
    path: Path, name: str, section: Mapping[str, Any], warnings: list[str], refused: list[tuple[str, Any, str, ConfigError]] | None = None
) -> dict[str, Any]:
    """The section's known keys, checked; a bad value raises, or with `refused` is listed there."""
    checked: dict[str, Any] = {}
    for key, value in section.items():
        if key in SETTING_KEYS:
            try:
                checked[key] = check_value(key, value)
            except ValueError as exc:
                error = ConfigError(
                    f"{path}: profiles.{name}.{key} {exc}",
                    hint=f"fix it with: imgen config set -P {name} {key} VALUE (or unset it)",
                )
                if refused is None:
                    raise error from None
                refused.append((key, value, str(exc), error))
        elif key in ("api_key", "key"):
            warnings.append(
                f"{path}: profiles.{name}.{key} is ignored: keys are not read from config.toml; "
                f"move it with `imgen config key set -P {name}` and delete it from the file"
            )
        else:
            near = suggest.did_you_mean(key, SETTING_KEYS)
            warnings.append(
                f"{path}: unknown key profiles.{name}.{key} ignored (kept in the file); "
                + (f"{near} (extra API fields go under [profiles.{name}.params])" if near
                   else f"extra API fields go under [profiles.{name}.params]")
            )
    return checked


def _file_warnings(path: Path, data: Mapping[str, Any]) -> list[str]:
    known = {"default_profile", "profiles", "models"}
    return [f"{path}: unknown top-level key {key!r} ignored (kept in the file)" for key in data if key not in known]


@dataclass
class ProfileInfo:
    name: str
    builtin: bool
    in_file: bool

    @property
    def origin(self) -> str:
        if self.builtin and self.in_file:
            return "built-in, overridden in file"
        return "built-in" if self.builtin else "file"


def known_profiles(data: Mapping[str, Any]) -> list[str]:
    return sorted(set(BUILTIN_PROFILES) | set(data.get("profiles", {})))


def list_profiles(environ: Mapping[str, str] | None = None) -> tuple[list[ProfileInfo], Sourced]:
    """Every profile, and the one used when no --profile is given (with where that comes from)."""
    environ = os.environ if environ is None else environ
    path = configfile.config_path(environ)
    data = read_config(path)
    in_file = data.get("profiles", {})
    infos = [ProfileInfo(name, name in BUILTIN_PROFILES, name in in_file) for name in known_profiles(data)]
    return infos, select_profile(None, environ, data, path)


def select_profile(
    flag: str | None, environ: Mapping[str, str], data: Mapping[str, Any], path: Path
) -> Sourced:
    """--profile > IMGEN_PROFILE > the file's default_profile > cometapi."""
    if flag:
        return Sourced(flag, "flag --profile")
    if environ.get(ENV_FOR_KEY["profile"]):
        return Sourced(environ[ENV_FOR_KEY["profile"]], f"env {ENV_FOR_KEY['profile']}")
    if data.get("default_profile"):
        return Sourced(data["default_profile"], f"default_profile in {path}")
    return Sourced(DEFAULT_PROFILE, "default")


def require_profile(chosen: Sourced, data: Mapping[str, Any], path: Path) -> str:
    """The chosen profile, if it exists. A name typed now (--profile, IMGEN_PROFILE) that names
    none is a usage error, like any mistyped flag; the file's default_profile a config error."""
    name = chosen.value
    if name in BUILTIN_PROFILES or name in data.get("profiles", {}):
        return name
    typed = {
        "flag --profile": f"--profile {name}",
        f"env {ENV_FOR_KEY['profile']}": f"{ENV_FOR_KEY['profile']}={name}",
    }
    where = typed.get(chosen.source, f"default_profile = {name!r} in {path}")
    known = known_profiles(data)
    hint = suggest.hint(
        name, known, "known profiles: " + ", ".join(known) + f"; create one with: imgen config set -P {name} base_url URL"
    )
    error = UsageError if chosen.source in typed else ConfigError
    raise error(f"{where}: no such profile", hint=hint)


# --- resolution ---------------------------------------------------------------------------------


def _flag_name(key: str) -> str:
    if key in FLAG_FOR_KEY:
        return FLAG_FOR_KEY[key]
    from ..request import FLAG_FOR_FIELD

    return FLAG_FOR_FIELD.get(key, "--" + key.replace("_", "-"))


def _echo(key: str, raw: Any) -> str:
    """A refused value as it may be repeated in a message, or "" when it could hold a secret."""
    text = str(raw)
    if key == "api_key_env" or (key == "base_url" and ("@" in text or "?" in text)):
        return ""
    return repr(text)


def _env_error(key: str, var: str, raw: str, exc: ValueError) -> ConfigError:
    shown = _echo(key, raw)
    return ConfigError(f"{var}{'=' + shown if shown else ''} {exc}", hint=f"fix or unset {var}")


def _shown(key: str, raw: Any) -> str | None:
    """A refused value as `config show` may print it: None when it could hold a secret."""
    return format_value(raw) if _echo(key, raw) else None


# Flags that no capability check looks at: checked here so a typo fails before any I/O.
_CHECKED_FLAGS = ("base_url", "api", "timeout", "max_time", "retries", "task_timeout", "metadata")


def _from_flag(key: str, value: Any) -> Any:
    if key not in _CHECKED_FLAGS:
        return value
    try:
        return check_value(key, value)
    except ValueError as exc:
        shown = _echo(key, value)
        raise UsageError(f"{_flag_name(key)}{' ' + shown if shown else ''}: {exc}") from None


def load_user_models(environ: Mapping[str, str] | None = None) -> None:
    """Make the config file's [models."ID"] records known, for the commands that resolve nothing."""
    path = configfile.config_path(environ)
    _use_user_models(path, read_config(path))


def _use_user_models(path: Path, data: Mapping[str, Any]) -> None:
    from ..models import capabilities
    from . import usermodels

    capabilities.use_user_specs(usermodels.load(path, data))


def resolve(flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None, *, lenient: bool = False) -> Settings:
    """Resolve every setting. `flags` holds only what was given on the command line (None = not given).

    A bad value in the file or the environment is a ConfigError; `lenient` (for `config show`,
    which must still show everything else) passes over it instead and records it in
    Settings.invalid and Settings.problems. Flags are checked either way: they are typed now."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    environ = os.environ if environ is None else environ
    path = configfile.config_path(environ)
    data = read_config(path)
    warnings = _file_warnings(path, data)
    _use_user_models(path, data)

    chosen = select_profile(flags.get("profile"), environ, data, path)
    profile = require_profile(chosen, data, path)

    values: dict[str, Sourced] = {k: Sourced(v, "default") for k, v in DEFAULTS.items() if k != "params"}
    values["profile"] = chosen
    params: dict[str, Any] = dict(DEFAULTS["params"])
    params_sources = {k: "default" for k in params}
    params_source = "default"

    invalid: dict[str, Invalid] = {}
    problems: list[ConfigError] = []
    layers = [(BUILTIN_PROFILES.get(profile, {}), f"profile {profile} (built-in)")]
    section = data.get("profiles", {}).get(profile)
    if section is not None:
        label = f"profile {profile} ({path})"
        refused: list[tuple[str, Any, str, ConfigError]] = []
        layers.append((_file_profile(path, profile, section, warnings, refused if lenient else None), label))
        for key, raw, problem, error in refused:
            invalid[key] = Invalid(_shown(key, raw), problem, label)
            problems.append(error)
    for layer, label in layers:
        for key, value in layer.items():
            if key == "params":
                params.update(value)
                params_sources.update(dict.fromkeys(value, label))
                params_source = label if value else params_source
            else:
                values[key] = Sourced(value, label)

    for key, var in ENV_FOR_KEY.items():
        if key != "profile" and environ.get(var):
            try:
                values[key] = Sourced(parse_value(key, environ[var]), f"env {var}")
            except ValueError as exc:
                error = _env_error(key, var, environ[var], exc)
                if not lenient:
                    raise error from None
                invalid[key] = Invalid(_shown(key, environ[var]), str(exc), f"env {var}")
                problems.append(error)
            else:
                invalid.pop(key, None)

    for key, value in flags.items():
        if key == "profile":
            continue
        label = f"flag {_flag_name(key)}"
        if key == "params":
            params.update(value)
            params_sources.update(dict.fromkeys(value, label))
            params_source = label if value else params_source
        else:
            values[key] = Sourced(_from_flag(key, value), label)
            invalid.pop(key, None)

    values["params"] = Sourced(params, params_source)
    output_dir = values["output_dir"]
    if isinstance(output_dir.value, str):
        values["output_dir"] = Sourced(os.path.expanduser(output_dir.value), output_dir.source)

    return Settings(
        profile=profile,
        values=values,
        environ=environ,
        config_path=path,
        credentials_path=configfile.credentials_path(environ),
        params_sources=params_sources,
        warnings=warnings,
        invalid=invalid,
        problems=problems,
    )


def mask_key(key: str) -> str:
    """Show a key as `sk-...abcd`: enough to recognise, never enough to use."""
    return redact.mask(key)
