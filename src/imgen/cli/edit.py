"""`imgen edit IMAGE PROMPT`: change existing images. The inputs are read and checked here; the
rest (options, plan, run, report) is generate's, the same code."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError
from . import options as o
from .common import debug_enabled, handle_errors
from .generate import check_stdout, generate_one, read_prompt

EDIT = "Editing"

IMAGE = o.Opt("source", Annotated[str | None, typer.Argument(
    help="The image to change: a file, a URL (models that take URLs), or - for image bytes on stdin.", show_default=False, metavar="IMAGE",
)])
EDITING = (
    o.option("more", list[str] | None, "--image", "-i", help="Another input image (GPT image models: up to 16 in all). Repeatable.",
             panel=EDIT),
    o.option("mask", Path | None, "--mask", help="PNG with alpha, IMAGE's size: its transparent pixels mark what to change.", panel=EDIT),
    o.option("input_fidelity", str | None, "--input-fidelity", help="high|low: how closely to keep the input's details (gpt-image-1, -1.5, -2).",
             panel=EDIT, field="input_fidelity"),
)
# generate's options, but for -i: here every -i is an image to edit, not a reference.
OPTIONS = (
    IMAGE, o.PROMPT, *EDITING, *(opt for opt in o.GENERATION if opt.name != "image"), *o.SEEDREAM, *o.TASK_OPTIONS, *o.STREAMING, o.STRICT, o.SIDECAR, *o.OUTPUT,
    *o.CONNECTION,
)


@o.command(OPTIONS)
def edit(args: o.Args) -> None:
    """Change IMAGE as PROMPT says (with --mask, only where the mask is transparent); print one path per line."""
    from ..files import inputs
    from ..report import Messages

    messages = Messages(quiet=args.quiet, verbose=args.verbose, debug=args.debug or debug_enabled())
    with handle_errors(messages), tempfile.TemporaryDirectory(prefix="imgen-edit-") as spool:
        if args.source is None:
            raise UsageError("no image given", 'imgen edit photo.png "make it night" (or - for image bytes on stdin)')
        if args.source == "-" and args.prompt == "-":
            raise UsageError("IMAGE and PROMPT are both '-': stdin holds one of them", "give the prompt as an argument or with --prompt-file")
        check_stdout(args)
        text = read_prompt(args.prompt, args.prompt_file, verb="edit")
        parts = o.request_parts(args, OPTIONS)
        problems: list[str] = []
        first = inputs.load(args.source, "IMAGE", problems, spool_dir=Path(spool))
        more = [inputs.load(value, "-i", problems) for value in args.more or ()]
        mask = inputs.load(str(args.mask), "--mask", problems) if args.mask is not None else None
        if first is None:  # nothing to check the rest against
            raise UsageError.of(problems, "nothing was sent; give image files imgen can read")
        generate_one(text, args, parts, messages, inputs=[first, *(m for m in more if m is not None)], mask=mask, known_problems=problems)
