#!/usr/bin/env python3
"""Write man/imgen.1 from imgen's command tree.

    python scripts/gen_man.py              # rewrite man/imgen.1
    python scripts/gen_man.py --out FILE   # write elsewhere (the staleness test does)

Commands, options and their help come from the click objects Typer builds
(`typer.main.get_command(app)`); environment variables, files and exit codes come from the
modules that define them (settings, configfile, errors), so the page cannot drift from the
code without tests/test_man.py noticing. Only the prose around them lives here.

The output is reproducible: the date is SOURCE_DATE_EPOCH's when set, else the release date
of the current version from RELEASE_DATES, never today's.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

PROG = "imgen"

# The date each version ships. A new version needs a line here (the generator says so), which
# keeps the page's date meaningful without ever depending on the clock or on git history.
RELEASE_DATES = {
    "0.1.0": "2026-11-21",
}

# Where an option's value deserves a better name than the option's own.
METAVARS = {
    "param": "KEY=VALUE",
    "batch": "FILE",
    "prompt_file": "FILE",
    "image": "FILE|URL",
    "output": "PATH",
    "name": "TEMPLATE",
    "base_url": "URL",
    "timeout": "SECONDS",
    "max_download": "SIZE",
    "shard": "I/N",
    "max_cost": "USD",
    "profile": "NAME",
    "api": "API",
    "aspect": "W:H",
    "negative_prompt": "TEXT",
    "more": "FILE|URL",
    "mask": "FILE",
    "input_fidelity": "high|low",
}

EXAMPLES: list[tuple[str, str]] = [
    ("Make one image with the default model and save it in the current directory:",
     'imgen generate "a red fox in snow"'),
    ("Try imgen with no key and no network (the offline profile writes placeholder PNGs):",
     'imgen -P offline generate "a paper boat at sunrise"'),
    ("Pick a model and its options; see what the model accepts first:",
     "imgen models show gpt-image-1\n"
     'imgen generate -m gpt-image-1 -Q high --output-format webp -o assets/ "a logo"'),
    ("In a pipeline: the prompt from stdin, the image bytes to stdout:",
     'echo "a lighthouse at dusk" | imgen generate - -o - > lighthouse.png'),
    ("Let a script read the saved paths from one JSON document:",
     'imgen generate --json "a cat" | jq -r \'.images[].path\''),
    ("In CI: run every prompt of a JSON Lines file, eight requests in flight:",
     "imgen generate --batch prompts.jsonl -o assets/ --concurrency 8"),
    ("Ask any model for a shape; each model's record maps it (here to size 1792x1024):",
     'imgen generate -m dall-e-3 --aspect 16:9 --dry-run "a wide harbour"'),
    ("Gemini and Bria on the same key: a 2K 16:9 image, and three Bria images without text:",
     'imgen generate -m gemini-3.1-flash-image-preview --aspect 16:9 -s 2K "a lighthouse in a storm"\n'
     'imgen generate -m bria -n 3 --aspect 4:5 --negative-prompt "text, logos" "a ceramic mug on oak"'),
    ("Edit an image: only where the mask is transparent, keeping the input's details:",
     'imgen edit room.png "add a green sofa" --mask sofa-area.png -m gpt-image-1 --input-fidelity high'),
    ("Edit what another command made, through a pipe:",
     'imgen generate -m gpt-image-1 -o - "a cottage" | imgen edit - "in winter" -m gpt-image-1 -o cottage-winter.png'),
    ("A Midjourney grid, then an upscale of its second quadrant (a new task, polled and saved):",
     'imgen generate -m midjourney --aspect 16:9 "a fox in a misty forest"\nimgen task action 1773314942177684 U2'),
    ("After Ctrl-C (or a cancelled CI job) while a task was polled: list what runs, and save it:",
     "imgen task list\nimgen task wait 5f1c -o renders/"),
    ("Find last week's prompts about a harbour, and what this month cost per model:",
     'imgen log --since 7d --search harbour\nimgen cost --since 30d --by model'),
    ("What an image says about how it was made, and the same image again with another model:",
     "imgen inspect renders/fox.png\nimgen rerun renders/fox.png -m gpt-image-2"),
    ("Show the request that would be sent (key masked) and a curl equivalent, sending nothing:",
     'imgen generate --dry-run -m dall-e-2 -n 2 -s 512x512 "icons"'),
    ("Store a key for a profile and make that profile the default:",
     "imgen config key set -P openai < key.txt\nimgen config use openai"),
]


# --------------------------------------------------------------------------- roff text


def esc(text: str) -> str:
    """Text as roff: backslashes and hyphens escaped, non-ASCII as named code points."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in text)


def line(text: str) -> str:
    """One input line of running text: a leading . or ' would be read as a request."""
    text = text.strip()
    return "\\&" + text if text[:1] in (".", "'") else text


def paragraphs(text: str | None) -> list[str]:
    """Click help text → paragraphs (blank-line separated; click's \\b no-rewrap mark dropped)."""
    if not text:
        return []
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [ln.strip() for ln in block.splitlines() if ln.strip() not in ("", "\b")]
        if lines:
            out.append(" ".join(lines))
    return out


def bold(text: str) -> str:
    return f"\\fB{esc(text)}\\fR"


def ital(text: str) -> str:
    return f"\\fI{esc(text)}\\fR"


# --------------------------------------------------------------------------- the command tree


def subcommands(cmd: Any) -> dict[str, Any]:
    # Duck-typed so the generator works whether Typer bundles click or depends on it.
    commands = getattr(cmd, "commands", None) or {}
    return {name: sub for name, sub in commands.items() if not getattr(sub, "hidden", False)}


def walk(cmd: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, cmd
    for name, sub in subcommands(cmd).items():
        yield from walk(sub, (*path, name))


def visible(params: Iterable[Any], kind: str) -> list[Any]:
    return [p for p in params if p.param_type_name == kind and not getattr(p, "hidden", False)]


def metavar(param: Any) -> str:
    named = METAVARS.get(param.name) if param.param_type_name == "option" else None
    return param.metavar or named or param.name.upper()


def argument_usage(param: Any) -> str:
    text = ital(metavar(param))
    if param.nargs == -1 or getattr(param, "multiple", False):
        text += "..."
    return text if param.required else f"[{text}]"


def usage(path: tuple[str, ...], cmd: Any) -> str:
    parts = [bold(" ".join(path))]
    if visible(cmd.params, "option") or path == (PROG,):
        parts.append(f"[{ital('OPTIONS')}]")
    parts += [argument_usage(p) for p in visible(cmd.params, "argument")]
    if subcommands(cmd):
        command = f"{ital('COMMAND')} [{ital('ARGS')}]..."
        parts.append(f"[{command}]" if getattr(cmd, "invoke_without_command", False) else command)
    return " ".join(parts)


def option_label(param: Any) -> str:
    # Short forms first, as in every man page: -m, --model MODEL.
    opts = sorted(param.opts, key=lambda o: (o.startswith("--"), o))
    label = ", ".join(bold(o) for o in opts)
    if param.secondary_opts:
        label += " / " + ", ".join(bold(o) for o in param.secondary_opts)
    if not getattr(param, "is_flag", False) and not getattr(param, "count", False):
        label += " " + ital(metavar(param))
    return label


def help_text(param: Any, ctx: Any) -> str:
    # The help record adds defaults and ranges; Typer versions that build on an external click
    # leave an argument's own help out of it.
    record = param.get_help_record(ctx)
    text = record[1] if record else ""
    own = getattr(param, "help", None) or ""
    if own and own not in text:
        text = f"{own} {text}"
    if getattr(param, "multiple", False) and "repeatable" not in text.lower():
        text += " May be repeated."
    return " ".join(text.split())


def context_for(root: Any, path: tuple[str, ...]) -> Any:
    import typer

    # The command's context_settings carry help_option_names (-h as well as --help).
    ctx = typer.Context(root, info_name=PROG, **root.context_settings)
    cmd = root
    for name in path[1:]:
        cmd = cmd.commands[name]
        ctx = typer.Context(cmd, info_name=name, parent=ctx, **cmd.context_settings)
    return ctx


def render_params(out: list[str], cmd: Any, ctx: Any, *, skip: set[str] = frozenset()) -> None:
    arguments = visible(cmd.params, "argument")
    if arguments:
        out += [".PP", ".B Arguments"]
        for param in arguments:
            out += [".TP", ital(metavar(param)), line(esc(help_text(param, ctx)))]
    panels: dict[str, list[Any]] = {}
    for param in visible(cmd.params, "option"):
        if param.name in skip:
            continue
        panels.setdefault(getattr(param, "rich_help_panel", None) or "", []).append(param)
    # Unpanelled options first, then the panels in the order the command declares them.
    for panel in sorted(panels, key=lambda p: p != ""):
        out += [".PP", f".B {esc(panel or 'Options')}"]
        for param in panels[panel]:
            out += [".TP", option_label(param), line(esc(help_text(param, ctx)))]


def render_epilog(out: list[str], text: str | None) -> None:
    for para in paragraphs(text):
        match = re.fullmatch(r"([\w.]+): (.+)", para)
        if match:
            out += [".TP", bold(match[1]), line(esc(match[2]))]
        else:
            out += [".PP", line(esc(para))]


# --------------------------------------------------------------------------- sections


def all_option_names(root: Any) -> dict[tuple[str, ...], set[str]]:
    names = {}
    for path, cmd in walk(root, (PROG,)):
        opts = {o for p in cmd.params for o in (*p.opts, *getattr(p, "secondary_opts", ()))}
        opts |= {"-h", "--help"}
        names[path] = opts
    return names


def check_examples(root: Any) -> None:
    """Fail when an example uses a command or option the CLI does not have (after a rename)."""
    known = all_option_names(root)
    for _, code in EXAMPLES:
        for segment in (s for command in code.splitlines() for s in command.split("|")):
            words = shlex.split(segment)
            if not words or words[0] != PROG:
                continue  # echo, jq: not ours
            path: tuple[str, ...] = (PROG,)
            for word in words[1:]:
                if word in (">", "<"):
                    break
                if (*path, word) in known:
                    path = (*path, word)
                elif word.startswith("-") and word != "-" and word.split("=")[0] not in known[path]:
                    raise SystemExit(f"gen_man: example {segment.strip()!r}: {' '.join(path)} has no option {word}")


def environment_entries(root: Any) -> list[tuple[str, str]]:
    from imgen.config import configfile, settings

    flags = set().union(*all_option_names(root).values())
    entries: list[tuple[str, str]] = [
        (settings.KEY_ENV, "The API key. Used before the profile's own key variable and the stored key."),
    ]
    for profile, values in settings.BUILTIN_PROFILES.items():
        var = values.get("api_key_env")
        if var:
            text = f"The API key of the built-in {profile} profile (its api_key_env)."
            if var == settings.OPENAI_KEY_ENV:
                text += f" Only ever sent to {settings.OPENAI_HOST}, whichever profile is in use."
            entries.append((var, text))
    for key, var in settings.ENV_FOR_KEY.items():
        if key == "profile":
            text = "The profile used without --profile; the config file's default_profile comes after it."
        else:
            spec = settings.SETTING_KEYS.get(key)
            what = f"{key}: {spec.help}" if spec else key
            flag = settings.FLAG_FOR_KEY.get(key)
            by = f"; {flag} overrides it" if flag in flags else ""
            text = f"Sets {what}. Overrides the profile{by}."
        entries.append((var, text))
    entries += [
        (configfile.CONFIG_ENV, "The config file to use instead of the default one (see FILES)."),
        (configfile.CREDENTIALS_ENV, "The credentials file to use instead of the one beside the config file."),
        ("IMGEN_CACHE_DIR", "Where the model catalog of imgen models --remote is cached, instead of the user cache directory."),
        ("IMGEN_STATE_DIR", "Where the task journal (tasks.jsonl) is kept, instead of the user state directory."),
        ("IMGEN_DATA_DIR", "Where the history and cost ledger (ledger.sqlite3) is kept, instead of the user data directory."),
        ("IMGEN_NO_LOG", "Set to 1 to record nothing in the ledger, as --no-log does."),
        ("IMGEN_DEBUG", "Set to 1 to show a traceback with every error, as --debug does."),
        ("IMGEN_SHARD", "I/N: the share of a batch --shard auto runs (before GitLab's CI_NODE_INDEX/CI_NODE_TOTAL, CircleCI's "
         "CIRCLE_NODE_INDEX/CIRCLE_NODE_TOTAL and Buildkite's BUILDKITE_PARALLEL_JOB/BUILDKITE_PARALLEL_JOB_COUNT)."),
        ("IMGEN_PREVIEW", "kitty, iterm, sixel, blocks or none: the protocol --preview and imgen show draw images with, instead of the "
         "detected one; when set, previews are drawn even if stderr is not a terminal."),
        ("XDG_CONFIG_HOME", "Base of the default config directory (default ~/.config)."),
        ("XDG_CACHE_HOME", "Base of the default cache directory (default ~/.cache)."),
        ("NO_COLOR", "When set, no colour is used."),
        ("CI", "When set, no progress display and no previews are shown."),
        ("TERM", "With TERM=dumb, no progress display, no previews and no colour."),
        ("FORCE_COLOR", "Ignored for progress: progress bars are only shown when stderr is a terminal."),
        ("_IMGEN_COMPLETE", "Set by the shell completion scripts to ask imgen for completions; not for other use."),
    ]
    return entries


def files_entries() -> list[tuple[str, str]]:
    from imgen.config import configfile

    name = configfile.APP_NAME
    entries = [
        (f"$XDG_CONFIG_HOME/{name}/{configfile.CONFIG_NAME}",
         f"Profiles and the default profile (TOML), default ~/.config/{name}/{configfile.CONFIG_NAME}. "
         f"{configfile.CONFIG_ENV} overrides it; imgen config path prints the one in use. "
         "It never holds keys."),
        (f"$XDG_CONFIG_HOME/{name}/{configfile.CREDENTIALS_NAME}",
         "API keys stored by imgen config key set, mode 0600, beside the config file "
         f"({configfile.CREDENTIALS_ENV} overrides it; imgen config path --credentials prints it)."),
        (f"$XDG_STATE_HOME/{name}/tasks.jsonl",
         "The task journal: every Midjourney and Flux task imgen submitted, written before its first poll, so that "
         "imgen task wait ID can finish it after an interrupt (IMGEN_STATE_DIR overrides the directory). Never a key."),
        (f"$XDG_DATA_HOME/{name}/ledger.sqlite3",
         "The history and cost ledger (SQLite): one row per generation and per saved image, read by imgen log and imgen cost "
         "(IMGEN_DATA_DIR overrides the directory; imgen log path prints it). Never a key, never image bytes."),
        (f"$XDG_CACHE_HOME/{name}/catalog-*.json",
         f"The remote model catalogs fetched by imgen models --remote, one per base URL, default ~/.cache/{name} "
         "(IMGEN_CACHE_DIR overrides it). Safe to delete."),
    ]
    try:
        from imgen.batch.manifest import MANIFEST_NAME
    except ImportError:  # a tree without batch support has no manifest to describe
        return entries
    entries.append(
        (f"OUTPUT/{MANIFEST_NAME}",
         "Written by generate --batch in the output directory: one JSON line per finished job. "
         "A re-run skips the jobs it lists whose files are intact; --force makes them again.")
    )
    return entries


def release_date(version: str) -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        return datetime.fromtimestamp(int(epoch), tz=UTC).strftime("%Y-%m-%d")
    if version not in RELEASE_DATES:
        raise SystemExit(
            f"gen_man: no release date for imgen {version}: add it to RELEASE_DATES in {Path(__file__).name} "
            "(or set SOURCE_DATE_EPOCH)"
        )
    return RELEASE_DATES[version]


def render() -> str:
    import typer

    from imgen import __version__
    from imgen.cli import app
    from imgen.errors import EXIT_CODE_HELP

    root = typer.main.get_command(app)
    check_examples(root)
    summary = paragraphs(root.help)[0].rstrip(".")
    out = [
        ".\\\" Generated by scripts/gen_man.py from imgen's command tree; do not edit.",
        f'.TH IMGEN 1 {release_date(__version__)} "imgen {__version__}" "User Commands"',
        # Option and variable names must not be hyphenated across lines.
        ".nh",
        ".SH NAME",
        f"{PROG} \\- {esc(summary[0].lower() + summary[1:])}",
        ".SH SYNOPSIS",
    ]
    tree = list(walk(root, (PROG,)))
    for path, cmd in tree:
        if not subcommands(cmd) or getattr(cmd, "invoke_without_command", False) or path == (PROG,):
            out += [usage(path, cmd), ".br"]
    out.pop()
    out += [".SH DESCRIPTION"]
    for para in paragraphs(root.help)[1:]:
        out += [".PP", line(esc(para))]
    out += [
        ".PP",
        line(esc(
            f"{PROG} sends a prompt to an image API (the OpenAI-compatible POST /v1/images/generations, "
            "Gemini generateContent, Bria text-to-image, or a gateway with its own envelope) and writes "
            "the images to disk: downloaded at once, "
            "verified (status, length, image signature) and renamed into place, never overwriting a "
            "file unless asked. Every flag is checked against the model's capabilities before "
            "anything is sent."
        )),
        ".PP",
        line(esc(
            "Standard output carries data only: one saved path per line, or with --json one JSON "
            "document. Progress, warnings and errors go to standard error. Settings resolve as "
            "command-line flag, then environment, then profile (config file over built-in), then default."
        )),
        ".PP",
        line(esc(
            "--aspect W:H asks any model for a shape: the ratio itself where the API takes ratios (Gemini, "
            "Bria), the size the model lists for it (dall-e-3 16:9 is 1792x1024), or a size computed where "
            "sizes are free (gpt-image-2; -s 1K|2K|4K sets the scale). A ratio the model lacks gets the "
            "nearest, with a warning; --strict refuses. imgen models show MODEL lists what is sent."
        )),
        ".PP",
        line(esc(
            "imgen edit IMAGE PROMPT changes existing images on every model that can: multipart POST "
            "/v1/images/edits (GPT image models, dall-e-2, qwen-image-edit; --mask on all but qwen), Gemini "
            "(inputs inline) and Seedream (inputs as references). Each input's format, size, dimensions and "
            "transparency are read from its headers and checked before anything is sent; uploads stream from "
            "disk. Default names are {stem}-edit-{index}.{ext}."
        )),
        ".PP",
        line(esc(
            "Midjourney and Flux are task APIs: imgen submits once (again only when the submit surely did not "
            "arrive), writes the task to the task journal before the first poll, polls at each API's pace "
            "(Midjourney 3 s then every 5 s; Flux from 0.5 s up to 3 s) and saves the result the moment it is "
            "ready. Ctrl-C, SIGTERM or --task-timeout leave the task in the journal: imgen task wait ID finishes "
            "it; a batch re-run waits for its tasks instead of submitting them again."
        )),
        ".PP",
        line(esc(
            "Every generation is recorded in the history and cost ledger, an SQLite database (imgen log path): "
            "its settings, files (with sha256) and cost, marked billed (from the usage the API reported), "
            "estimated (list prices, or usage typical of the size and quality) or unknown with the reason. "
            "imgen log lists and searches it, imgen cost totals it; --no-log, IMGEN_NO_LOG=1 or log = false turn it off, "
            "and a ledger that cannot be written is a warning, never a failed image."
        )),
        ".PP",
        line(esc(
            "Each saved image carries its record (model, prompt, every field sent, seed, ids; never the key), written "
            "in during the save without re-encoding: a PNG iTXt chunk and an AUTOMATIC1111 parameters chunk, JPEG and "
            "WebP XMP, with the IPTC DigitalSourceType trainedAlgorithmicMedia. A file with Content Credentials (C2PA) "
            "is saved as received and its record goes to NAME.json. --metadata embed|sidecar|both|none chooses; "
            "imgen inspect reads records (and other tools' metadata), imgen rerun makes the image again."
        )),
        ".PP",
        line(esc(
            'Models imgen does not know can be described in the config file as [models."ID"] tables: '
            'like = "gpt-image-1" to start from a built-in record, or dialect = "openai" with sizes, n, '
            "ratios, fields ([lo, hi], a list of choices, \"text\", \"bool\", \"images\") and price_per_image. "
            "They are checked, listed and priced like built-in records; a malformed one is a configuration "
            "error naming the file, line and key."
        )),
        ".SH OPTIONS",
        line(esc("Options given before the command apply to it; every command also takes -h, --help.")),
    ]
    render_params(out, root, context_for(root, (PROG,)))
    help_option = root.get_help_option(context_for(root, (PROG,)))
    if help_option is not None:
        out += [".TP", option_label(help_option), line(esc(help_text(help_option, context_for(root, (PROG,)))))]
    out += [".SH COMMANDS"]
    for path, cmd in tree[1:]:
        out += [f'.SS "{esc(" ".join(path))}"', usage(path, cmd)]
        for para in paragraphs(cmd.help):
            out += [".PP", line(esc(para))]
        if subcommands(cmd):
            out += [".PP", line(esc("Commands: " + ", ".join(subcommands(cmd)) + "."))]
        render_params(out, cmd, context_for(root, path))
        render_epilog(out, cmd.epilog)
    out += [".SH ENVIRONMENT"]
    for var, text in environment_entries(root):
        out += [".TP", bold(var), line(esc(text))]
    out += [".SH FILES"]
    for path_text, text in files_entries():
        out += [".TP", ital(path_text), line(esc(text))]
    out += [".SH EXIT STATUS"]
    for code, text in EXIT_CODE_HELP.items():
        out += [".TP", bold(str(int(code))), line(esc(text[0].upper() + text[1:] + "."))]
    out += [".SH EXAMPLES"]
    for text, code in EXAMPLES:
        out += [".PP", line(esc(text)), ".PP", ".RS 4", ".nf"]
        out += [line(esc(c)) for c in code.splitlines()]
        out += [".fi", ".RE"]
    out += [
        ".SH SEE ALSO",
        line(esc(f"{PROG} COMMAND --help; {PROG} models show MODEL for what a model accepts.")),
    ]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "man" / "imgen.1", help="file to write (default: man/imgen.1)")
    args = parser.parse_args(argv)
    text = render()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="ascii", newline="\n")
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
