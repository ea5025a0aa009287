"""Command-line mistakes in imgen's own words: `imgen: error: ...` + `hint: ...`, exit 2.

Click (inside Typer) would print its usage errors in a box drawn with Rich, in its own wording
and with escapes even under NO_COLOR. Here the root command runs Click in non-standalone mode
and turns each of its exceptions into an imgen UsageError, from the exception's fields; the
group classes also accept an unambiguous prefix of a command (`imgen gen`) and say which
command a typo was near.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from .. import suggest
from ..errors import ExitCode, Interrupted, UsageError
from .clicklib import exceptions as click_exceptions
from .common import handle_errors


class NoSuchCommand(click_exceptions.UsageError):
    """A command name that is none of the group's: a typo, or a prefix of several."""

    def __init__(self, name: str, ctx: Any, *, known: list[str], ambiguous: list[str]) -> None:
        super().__init__(f"no command {name!r}", ctx)
        self.name = name
        self.known = known
        self.ambiguous = ambiguous


class CommandGroup(TyperGroup):
    """A group whose commands can be shortened to any prefix that names one of them."""

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            known = [n for n in self.list_commands(ctx) if not getattr(self.get_command(ctx, n), "hidden", False)]
            starting = [n for n in known if n.startswith(name)]
            if len(starting) == 1:
                return starting[0], self.get_command(ctx, starting[0]), args[1:]
            if not ctx.resilient_parsing:  # completion asks about half-typed words: not an error
                raise NoSuchCommand(name, ctx, known=known, ambiguous=starting)
        return super().resolve_command(ctx, args)


class RootGroup(CommandGroup):
    """`imgen` itself: every usage error, and any error that escaped a command, rendered once."""

    def invoke(self, ctx: Any) -> Any:
        # In non-standalone mode Click returns the callback's value or an exit code alike; a
        # command's return value is never an exit code, so only typer.Exit sets one.
        super().invoke(ctx)
        return None

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        try:
            with handle_errors(argv=argv):
                code = _run(lambda: super(RootGroup, self).main(argv, prog_name, complete_var, standalone_mode=False, **extra), argv, self)
        except typer.Exit as exc:
            code = exc.exit_code
        sys.exit(code)


def _run(main: Any, argv: list[str], root: Any) -> int:
    try:
        returned = main()
    except click_exceptions.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            return int(ExitCode.USAGE)  # the help is on stdout already, as before
        raise usage_error(exc, argv, root) from None
    except click_exceptions.ClickException as exc:  # a file argument that cannot be opened, say
        raise UsageError(_sentence(exc.format_message()), "see imgen --help") from None
    except typer.Abort:  # end of input, or Ctrl-C, at a prompt
        raise Interrupted("aborted") from None
    return returned if isinstance(returned, int) else int(ExitCode.OK)


def usage_error(exc: Any, argv: Sequence[str], root: Any = None) -> UsageError:
    """Click's exception as an imgen UsageError: the flag as it was typed, imgen's wording, a hint."""
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else _command_path(root, argv)
    help_hint = f"see {path} --help"
    if isinstance(exc, NoSuchCommand):
        return _no_such_command(exc, ctx)
    if isinstance(exc, click_exceptions.NoSuchOption):
        known = _option_names(ctx) if ctx is not None else []
        return UsageError(f"no such option {exc.option_name}", suggest.did_you_mean(exc.option_name, known) or help_hint)
    if isinstance(exc, click_exceptions.MissingParameter):
        param = exc.param
        if param is None:
            return UsageError(_sentence(exc.format_message()), help_hint)
        if param.param_type_name == "argument":
            synopsis = _synopsis(ctx) if ctx is not None else None
            return UsageError(f"missing argument {_param_name(param, argv)}", f"usage: {synopsis}; {help_hint}" if synopsis else help_hint)
        return UsageError(f"missing option {_param_name(param, argv)}", help_hint)
    if isinstance(exc, click_exceptions.BadParameter):
        name = _param_name(exc.param, argv) if exc.param is not None else None
        if exc.param_hint is not None and name is None:
            name = str(exc.param_hint).strip("'")
        text = _value_problem(exc.message, exc.param)
        return UsageError(f"{name}: {text}" if name else text, help_hint)
    if isinstance(exc, click_exceptions.BadOptionUsage):
        if "requires" in exc.message:
            return UsageError(f"{exc.option_name} needs a value", help_hint)
        if "does not take a value" in exc.message:
            return UsageError(f"{exc.option_name} takes no value", help_hint)
    extra = re.fullmatch(r"Got unexpected extra arguments?(?:\(s\))? \((.*)\)", exc.message)
    if extra:
        return UsageError(f"unexpected extra argument {extra.group(1)!r}", _extra_hint(ctx, help_hint))
    if exc.message == "Missing command.":
        return UsageError("missing command", help_hint)
    return UsageError(_sentence(exc.format_message()), help_hint)


def _command_path(root: Any, argv: Sequence[str]) -> str:
    """`imgen config set` for a failure Click raised without its context (an option missing its
    value): the command words in argv, as the groups would resolve them."""
    words, group = ["imgen"], root
    for word in argv:
        if word == "--" or group is None or not hasattr(group, "commands"):
            break
        if word.startswith("-"):
            continue
        starting = [name for name in group.commands if name.startswith(word)]
        name = word if word in group.commands else starting[0] if len(starting) == 1 else None
        if name is not None:
            words.append(name)
            group = group.commands[name]
    return " ".join(words)


def _no_such_command(exc: NoSuchCommand, ctx: Any) -> UsageError:
    where = "" if ctx is None or ctx.parent is None else f" in {ctx.command_path}"
    if exc.ambiguous:
        listed = ", ".join(exc.ambiguous[:-1]) + " or " + exc.ambiguous[-1]
        return UsageError(f"{exc.name!r} could be {listed}", "type more of the command's name")
    hint = suggest.did_you_mean(exc.name, exc.known)
    return UsageError(f"no command {exc.name!r}{where}", hint or "the commands: " + ", ".join(exc.known))


def _option_names(ctx: Any) -> list[str]:
    names = []
    for param in ctx.command.get_params(ctx):
        if param.param_type_name == "option" and not getattr(param, "hidden", False):
            names += [*param.opts, *param.secondary_opts]
    return names


def _param_name(param: Any, argv: Sequence[str]) -> str:
    """The option as the user typed it (`-n`, not `'-n' / '--n'`), or the argument's metavar."""
    if param.param_type_name != "option":
        return param.metavar or (param.name or "argument").upper()
    spellings = [*param.opts, *param.secondary_opts]
    for word in argv:
        if word == "--":
            break
        for spelling in spellings:
            long_form = spelling.startswith("--")
            if word == spelling or (long_form and word.startswith(spelling + "=")) or (not long_form and word.startswith(spelling)
                                                                                        and not word.startswith("--")):
                return spelling
    return max(spellings, key=len)


def _value_problem(message: str, param: Any) -> str:
    """Click's sentence about a bad value, as imgen says it elsewhere ('must be a whole number')."""
    text = message.rstrip(".")
    kind = getattr(getattr(param, "type", None), "name", "")
    invalid = re.fullmatch(r"(.*) is not a valid (int|float|boolean)(?:\. Recognized values: .*)?", text)
    if invalid:
        what = {"int": "a whole number", "float": "a number", "boolean": "true or false"}[invalid.group(2)]
        return f"{invalid.group(1)} is not {what}"
    out_of_range = re.fullmatch(r"(.*) is not in the range .*", text)
    if out_of_range and kind in ("int range", "float range"):
        low, high = param.type.min, param.type.max
        value = out_of_range.group(1)
        if low is not None and high is not None:
            return f"{value} is not between {low} and {high}"
        return f"{value} is less than {low}" if low is not None else f"{value} is more than {high}"
    return _sentence(text)


def _synopsis(ctx: Any) -> str | None:
    words = []
    for param in ctx.command.get_params(ctx):
        if param.param_type_name != "argument":
            continue
        name = param.metavar or (param.name or "ARG").upper()
        name += "..." if param.nargs == -1 else ""
        words.append(name if param.required else f"[{name}]")
    return " ".join([ctx.command_path, "[OPTIONS]", *words]) if words else None


def _extra_hint(ctx: Any, help_hint: str) -> str:
    if ctx is not None and any(p.name == "prompt" for p in ctx.command.get_params(ctx)):
        return f'quote a prompt of several words: {ctx.command_path} "a red fox in the snow"'
    return help_hint


def _sentence(text: str) -> str:
    text = text.rstrip(".")
    return text[:1].lower() + text[1:] if text[1:2].islower() else text
