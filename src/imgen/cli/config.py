"""`imgen config`: where the files are, what each setting resolves to and why, and safe edits.

stdout carries only the data asked for (a path, a value, a listing); confirmations, notes and
warnings go to stderr. No command prints a key: only its masked form `sk-...abcd`.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

from .. import suggest
from . import complete
from .common import JsonOption, ProfileOption, handle_errors
from .usage import CommandGroup

if TYPE_CHECKING:
    from ..config import settings as st

app = typer.Typer(
    help="Manage TOML profiles: base URL, key source, default model and output directory.",
    no_args_is_help=True,
)
key_app = typer.Typer(
    help="Store or forget a profile's API key (credentials.toml, mode 0600). No flag takes a key.",
    no_args_is_help=True,
)
app.add_typer(key_app, name="key", cls=CommandGroup)

KeyArg = Annotated[str, typer.Argument(help="A setting (see `imgen config set --help`), or params.FIELD.", show_default=False,
                                        autocompletion=complete.setting_keys)]


@app.command("path")
def path(
    credentials: Annotated[bool, typer.Option("--credentials", help="Print the credentials file's path instead.")] = False,
) -> None:
    """Print the config file's path (IMGEN_CONFIG, else the user config directory), existing or not."""
    from ..config import configfile

    with handle_errors():
        typer.echo(str(configfile.credentials_path() if credentials else configfile.config_path()))


@app.command("list")
def list_profiles(json_output: JsonOption = False) -> None:
    """List every profile, built-in and from the file; `*` marks the one used without --profile."""
    from ..config import settings as st

    with handle_errors() as messages:
        infos, active = st.list_profiles()
        names = {info.name for info in infos}
        if active.value not in names:
            messages.warn(f"{active.source} names {active.value!r}, which is not a profile")
        if json_output:
            document = {
                "default": active.value,
                "default_source": active.source,
                "profiles": [
                    {"name": i.name, "origin": i.origin, "builtin": i.builtin, "in_file": i.in_file, "default": i.name == active.value}
                    for i in infos
                ],
            }
            typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
            return
        width = max(len(i.name) for i in infos)
        for info in infos:
            mark = "*" if info.name == active.value else " "
            typer.echo(f"{mark} {info.name:<{width}}  {info.origin}")


@app.command("show")
def show(profile: ProfileOption = None, json_output: JsonOption = False) -> None:
    """Show every resolved value of a profile and where it came from; the key only masked.

    A bad value in the file or the environment is shown too, marked `(invalid: WHY)`, with a
    warning saying how to fix it; the exit status stays 0 (generate would stop at it, exit 3).
    """
    from ..config import settings as st

    with handle_errors() as messages:
        # Lenient: the command people run to find out what is wrong must not stop at it.
        settings = st.resolve({"profile": profile}, lenient=True)
        document = _describe(settings)
        for warning in settings.warnings:
            messages.warn(warning)
        for problem in settings.problems:
            messages.warn(f"{problem.message}; {problem.hint}" if problem.hint else problem.message)
        if json_output:
            typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
            return
        rows = [(k, _shown(v), v["source"]) for k, v in document["settings"].items()]
        key = document["api_key"]
        rows.insert(_row_after(rows, "api_key_env"), ("api_key", key["shown"], key["source"] or key["problem"] or key["hint"]))
        rows += [(f"params.{k}", st.format_value(v["value"]), v["source"]) for k, v in document["params"].items()]
        key_width = max(len(r[0]) for r in rows)
        value_width = min(max(len(r[1]) for r in rows), 40)
        typer.echo(f"# config file: {document['config_file']}")
        for name, value, source in rows:
            typer.echo(f"{name:<{key_width}}  {value:<{value_width}}  ({source})")


def _shown(entry: dict[str, Any]) -> str:
    from ..config import settings as st

    if "invalid" not in entry:
        return st.format_value(entry["value"])
    value = "(hidden)" if entry["value"] is None else entry["value"]
    return f"{value} (invalid: {entry['invalid']})"


def _describe(settings: st.Settings) -> dict[str, Any]:
    from ..config import settings as st

    values = {"profile": settings.values["profile"]}
    values.update((k, settings.values[k]) for k in st.SETTING_KEYS if k in settings.values and k != "params")
    shown: dict[str, dict[str, Any]] = {k: {"value": v.value, "source": v.source} for k, v in values.items() if v.value is not None}
    for key, bad in settings.invalid.items():
        # The refused value where the value in use would be: it is the one to fix.
        shown[key] = {"value": bad.shown, "source": bad.source, "invalid": bad.problem}
    document: dict[str, Any] = {
        "profile": settings.profile,
        "config_file": str(settings.config_path),
        "credentials_file": str(settings.credentials_path),
        "settings": {k: shown[k] for k in ["profile", *st.SETTING_KEYS] if k in shown},
        "params": {
            k: {"value": v, "source": settings.params_sources.get(k, settings.source("params"))}
            for k, v in sorted((settings.get("params") or {}).items())
        },
    }
    key: dict[str, Any] = {"set": False, "shown": "not set", "source": None, "problem": None, "hint": None}
    if not settings.needs_key():
        key.update(shown="not needed", source="the placeholder API sends no request")
    else:
        found = settings.api_key()
        if found is not None:
            key.update(set=True, shown=st.mask_key(str(found.value)), source=found.source)
        elif settings.key_problem:
            key.update(shown="not used", problem=settings.key_problem)
        else:
            key.update(hint=settings.key_hint())
    document["api_key"] = key
    return document


def _row_after(rows: list[tuple[str, str, str]], name: str) -> int:
    for index, row in enumerate(rows):
        if row[0] == name:
            return index + 1
    return len(rows)


@app.command("get")
def get(key: KeyArg, profile: ProfileOption = None) -> None:
    """Print one resolved value, nothing else (for scripts). Nothing is printed for an unset value."""
    from ..config import edit as config_edit
    from ..config import settings as st

    with handle_errors() as messages:
        head, param = config_edit.split_key(key)
        if head not in st.SETTING_KEYS and head != "profile":
            raise _unknown_key(key)
        settings = st.resolve({"profile": profile})
        for warning in settings.warnings:
            messages.warn(warning)
        value = (settings.get("params") or {}).get(param) if param else settings.get(head)
        if value is None:
            messages.info(f"{key} is not set for profile {settings.profile}")
            return
        typer.echo(st.format_value(value))


def _settings_help() -> str:
    from ..config import settings as st

    lines = [f"{name}: {spec.help}" + (f" ({'|'.join(spec.choices)})" if spec.choices else "") for name, spec in st.SETTING_KEYS.items()]
    return "\n\n".join(["Settings:", *lines])


class _SetCommand(TyperCommand):
    """`config set`, whose epilog lists every setting: built when its help is shown, so other
    commands (and every other --help) do not import the settings table."""

    @property  # type: ignore[override]
    def epilog(self) -> str:
        return _settings_help()

    @epilog.setter
    def epilog(self, value: str | None) -> None:
        pass


# Negative numbers (`seed -1`) must reach VALUE instead of being taken for options.
@app.command("set", cls=_SetCommand, context_settings={"ignore_unknown_options": True})
def set_value(
    key: KeyArg,
    value: Annotated[str, typer.Argument(help="Parsed per the setting's type; for params.FIELD a TOML/JSON value, else a string.")],
    profile: ProfileOption = None,
) -> None:
    """Set KEY in a profile (default: the default profile), creating its file section if needed.

    Other profiles, keys and tables are kept; comments in the file are not (it is rewritten).
    """
    from ..config import configfile
    from ..config import edit as config_edit
    from ..config import settings as st

    with handle_errors() as messages:
        head, _ = config_edit.split_key(key)
        if head not in st.SETTING_KEYS:
            raise _unknown_key(key)
        path = configfile.config_path()
        known = st.known_profiles(st.read_config(path))
        change = config_edit.set_value(key, value, profile)
        for note in change.notes:
            messages.warn(note)
        if head == "model":
            _near_models(str(change.value), messages)
        if change.profile not in known:
            # `config set -P NAME` is how a profile is made, and how a typo makes one by mistake.
            near = suggest.did_you_mean(str(change.profile), known)
            if near:
                messages.warn(f"profile {change.profile} did not exist and was created; {near}")
            else:
                messages.info(f"imgen: note: new profile {change.profile}")
        messages.info(f"profile {change.profile}: {key} = {json.dumps(change.value, ensure_ascii=False)} ({change.path})")


def _unknown_key(key: str) -> Exception:
    """The unknown-setting error, with the setting the user probably meant."""
    from ..config import edit as config_edit
    from ..config import settings as st
    from ..errors import UsageError

    error = config_edit.unknown_key(key)
    head, dot, rest = key.partition(".")
    if key in ("api_key", "key"):
        return error
    near = f"did you mean params.{rest}?" if dot and suggest.close_matches(head, ["params"]) else suggest.did_you_mean(key, st.SETTING_KEYS)
    return UsageError(error.message, f"{near} (imgen config set --help lists every setting)" if near else error.hint)


def _near_models(model: str, messages: Any) -> None:
    """A model id imgen does not know may be one a gateway serves (it is sent as is), or a typo."""
    from ..models import capabilities

    if capabilities.lookup(model) is None:
        close = capabilities.close_ids(model)
        if close:
            messages.info(f"  hint: did you mean {' or '.join(close)}? (imgen models lists the ids imgen knows)")


@app.command("unset")
def unset_value(key: KeyArg, profile: ProfileOption = None) -> None:
    """Remove KEY from a profile's file section; a built-in value shows through again."""
    from ..config import edit as config_edit
    from ..errors import UsageError

    with handle_errors() as messages:
        try:
            change = config_edit.unset_value(key, profile)
        except UsageError as exc:
            if exc.message == config_edit.unknown_key(key).message:
                raise _unknown_key(key) from None
            raise
        for note in change.notes:
            messages.info(note)
        if change.changed:
            messages.info(f"profile {change.profile}: {key} removed ({change.path})")


@app.command("use")
def use(name: Annotated[str, typer.Argument(help="An existing profile, built-in or from the file.")]) -> None:
    """Make NAME the default profile (default_profile in the config file)."""
    from ..config import edit as config_edit

    with handle_errors() as messages:
        change = config_edit.use_profile(name)
        for note in change.notes:
            messages.warn(note)
        messages.info(f"default profile: {name} ({change.path})")


@key_app.command("set")
def key_set(profile: ProfileOption = None) -> None:
    """Store a profile's key, read from a hidden prompt, or from stdin when it is not a terminal."""
    from ..config import credentials
    from ..config import settings as st

    with handle_errors() as messages:
        settings = st.resolve({"profile": profile})
        key = credentials.clean_key(_read_key(settings.profile))
        path = credentials.store_key(settings.credentials_path, settings.profile, key)
        messages.info(f"stored key {st.mask_key(key)} for profile {settings.profile} in {path} (mode 0600)")
        for note in _shadowing(settings):
            messages.warn(note)


def _read_key(profile: str) -> str:
    if not sys.stdin.isatty():
        return sys.stdin.read()
    import getpass

    try:
        return getpass.getpass(f"API key for profile {profile} (input hidden): ")
    except EOFError:
        return ""


def _shadowing(settings: st.Settings) -> list[str]:
    from ..config import settings as st

    notes = []
    env = settings.get("api_key_env")
    for var in (st.KEY_ENV, env):
        if var and settings.environ.get(var):
            notes.append(f"{var} is set in this environment and is used before the stored key")
            break
    if not settings.needs_key():
        notes.append(f"profile {settings.profile} uses the placeholder API, which sends no key")
    elif settings.api_key() is None and settings.key_problem:
        notes.append(settings.key_problem)
    return notes


@key_app.command("remove")
def key_remove(profile: ProfileOption = None) -> None:
    """Forget a profile's stored key (environment variables are not touched)."""
    from ..config import configfile, credentials
    from ..config import settings as st

    with handle_errors() as messages:
        path = configfile.config_path()
        name = st.select_profile(profile, os.environ, st.read_config(path), path).value
        target = configfile.credentials_path()
        if credentials.remove_key(target, name):
            messages.info(f"removed the stored key of profile {name} from {target}")
        else:
            messages.info(f"no key stored for profile {name} in {target}; nothing changed")

