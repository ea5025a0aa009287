"""The edit check: the inputs of `imgen edit` against the model's EditSpec, every problem at
once, from the headers alone (formats, sizes, dimensions, transparency), before anything is sent.

Pure: the inputs were read (as far as their headers) by files/inputs.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..files.inputs import InputImage
from . import capabilities
from .capabilities import MASK_MAX_BYTES, EditSpec, ModelSpec

# Where a model imgen has no record of is sent, by the API its profile speaks.
UNKNOWN_MODEL_EDIT: dict[str, EditSpec] = {"openai": capabilities.GPT_EDIT, "gemini": capabilities.GEMINI_EDIT}


@dataclass
class EditCheck:
    edit: EditSpec | None  # how this model edits; None when it cannot
    problems: list[str] = field(default_factory=list)


def editors(mask: bool = False) -> list[str]:
    """The built-in models that edit (that take a mask, with `mask`), for messages and docs."""
    specs = [s for s in capabilities.SPECS if s.edit is not None and (s.edit.mask or not mask)]
    return [s.family_label if s.family_label and "*" in s.family_label else s.id for s in specs]


def _mb(size: int) -> str:
    return f"{size / capabilities.MB:.1f} MB"


def check(spec: ModelSpec | None, model: str, dialect: str, inputs: Sequence[InputImage], mask: InputImage | None) -> EditCheck:
    edit = spec.edit if spec is not None else UNKNOWN_MODEL_EDIT.get(dialect)
    out = EditCheck(edit)
    if edit is None:
        where = f" on the {dialect} API" if spec is None else ""
        out.problems.append(f"--model {model}: cannot edit images{where}; models that can: {', '.join(editors())}")
        return out
    if len(inputs) > edit.max_inputs:
        out.problems.append(
            f"IMAGE and -i: {len(inputs)} images; {model} takes at most {edit.max_inputs}; drop {len(inputs) - edit.max_inputs} of them"
        )
    for image in inputs:
        out.problems += _input_problems(image, edit, model, masked=mask is not None)
    if mask is not None:
        out.problems += _mask_problems(mask, edit, model, inputs[0] if inputs else None)
    return out


def _input_problems(image: InputImage, edit: EditSpec, model: str, *, masked: bool) -> list[str]:
    if image.url is not None:
        if edit.route == "upload":
            return [f"{image.flag}: {model} edits files it is sent, not URLs; download it and give the file"]
        return []
    problems = []
    kinds = ", ".join(edit.formats)
    if image.format not in edit.formats:
        problems.append(f"{image.flag}: a {image.format} image; {model} takes {kinds}" + ("; convert it to png" if "png" in edit.formats else ""))
    if image.size >= edit.max_bytes:
        problems.append(f"{image.flag}: {_mb(image.size)}; {model} takes each image under {_mb(edit.max_bytes)}; shrink or recompress it")
    dims = image.dimensions
    if edit.square_png and dims and dims[0] != dims[1]:
        problems.append(f"{image.flag}: {dims[0]}x{dims[1]}; {model} edits square images only; crop it square first")
    if edit.square_png and not masked and image.info is not None and image.info.alpha is False:
        problems.append(
            f"{image.flag}: has no transparency and no --mask was given; {model} changes the transparent area: "
            "give --mask FILE, or an image with an alpha channel"
        )
    return problems


def _mask_problems(mask: InputImage, edit: EditSpec, model: str, first: InputImage | None) -> list[str]:
    if not edit.mask:
        return [f"{mask.flag}: {model} takes no mask; drop --mask, or use a model that does: {', '.join(editors(mask=True))}"]
    if mask.url is not None:
        return [f"{mask.flag}: a mask must be a local PNG file"]
    problems = []
    if mask.format != "png":
        problems.append(f"{mask.flag}: a {mask.format} image; a mask must be a PNG with an alpha channel")
    elif mask.info is not None and mask.info.alpha is False:
        problems.append(f"{mask.flag}: has no alpha channel; its transparent pixels mark what to change: save it as RGBA")
    if mask.size >= MASK_MAX_BYTES:
        problems.append(f"{mask.flag}: {_mb(mask.size)}; a mask must be under {_mb(MASK_MAX_BYTES)}")
    if first is not None and first.url is None and mask.dimensions and first.dimensions and mask.dimensions != first.dimensions:
        (mw, mh), (w, h) = mask.dimensions, first.dimensions
        problems.append(f"{mask.flag}: {mw}x{mh}, but {first.flag} is {w}x{h}; the mask must be exactly the first image's size")
    return problems
