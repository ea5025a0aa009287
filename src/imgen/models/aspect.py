"""`--aspect W:H`: one way to ask every model for a shape, mapped by the model's record.

A model takes a shape in one of three ways, and the mapping follows its record:
  a ratio field    (Gemini, Bria): the ratio itself, or the nearest ratio the field lists;
  named sizes      (dall-e, gpt-image-1, qwen-image, Seedream): the size listed for that ratio;
  free sizes       (gpt-image-2, Seedream, the placeholder): a size computed at a scale
                   (`-s 1K|2K|4K`, about that many pixels squared), rounded to the model's step.
A ratio the model cannot give exactly gets the nearest one it can, with a warning naming what is
asked for instead (`--strict` refuses). Pure: no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from .capabilities import ModelSpec
from .rules import Enum, parse_size

MAX_RATIO = 16  # nothing any API here takes is longer than 16:1
SCALES = {"512": 512, "1K": 1024, "2K": 2048, "4K": 4096}
FORM = "W:H with whole numbers, e.g. 16:9, 3:2 or 1:1 (at most 16:1)"
_RATIO = re.compile(r"\s*(\d{1,5})\s*:\s*(\d{1,5})\s*")
_CLOSE = 0.02  # a computed size within 2% of the ratio asked for is that ratio (sides are rounded)


class AspectError(ValueError):
    pass


@dataclass(frozen=True)
class Ratio:
    """A shape, reduced for comparison (21:9 equals 7:3) but shown as it was written."""

    w: int
    h: int
    shown: str = field(default="", compare=False)

    @classmethod
    def parse(cls, text: str) -> Ratio:
        match = _RATIO.fullmatch(text)
        if not match:
            raise AspectError(f"--aspect {text!r}: expected {FORM}")
        w, h = int(match[1]), int(match[2])
        if not w or not h:
            raise AspectError(f"--aspect {text}: both sides must be above 0; expected {FORM}")
        if max(w, h) > MAX_RATIO * min(w, h):
            raise AspectError(f"--aspect {text}: longer than {MAX_RATIO}:1; expected {FORM}")
        g = math.gcd(w, h)
        return cls(w // g, h // g, f"{w}:{h}")

    @classmethod
    def of_size(cls, size: str) -> Ratio | None:
        parsed = parse_size(size)
        if not parsed or not all(parsed):
            return None
        g = math.gcd(*parsed)
        return cls(parsed[0] // g, parsed[1] // g)

    def among(self, ratios: Iterable[str]) -> str | None:
        """The spelling `ratios` use for this shape, if they have it."""
        return next((r for r in ratios if Ratio.parse(r) == self), None)

    @property
    def value(self) -> float:
        return self.w / self.h

    def distance(self, other: float) -> float:
        return abs(math.log(self.value / other))

    def __str__(self) -> str:
        return self.shown or f"{self.w}:{self.h}"


@dataclass
class Shape:
    """What --aspect becomes for one model: fields to set, and at most one remark."""

    fields: dict[str, Any]
    warning: str | None = None
    problem: str | None = None


def table(spec: ModelSpec) -> dict[str, str]:
    """ratio -> the named size the record lists for it: the record's own labels first (dall-e-3
    calls 1792x1024 16:9), then each preset's exact ratio (the default size among equals)."""
    out = dict(spec.aspects)
    sizes = spec.sizes
    presets = sorted(sizes.presets if sizes else (), key=lambda p: p != spec.default_size)
    for preset in presets:
        ratio = Ratio.of_size(preset)
        if ratio is not None and not ratio.among(out):
            out[str(ratio)] = preset
    return out


def mapping(spec: ModelSpec) -> dict[str, Any]:
    """What each ratio is sent as ({"16:9": "1792x1024"} or {"16:9": "16:9"}), and whether
    other ratios are computed as free sizes."""
    rule = spec.fields.get("aspect_ratio")
    if isinstance(rule, Enum):
        return {"field": "aspect_ratio", "sends": {r: r for r in rule.values}, "computed": False}
    free = spec.sizes is not None and spec.sizes.free is not None
    return {"field": "size" if spec.sizes else None, "sends": table(spec), "computed": free}


def computed(spec: ModelSpec, ratio: Ratio, scale: str) -> str | None:
    """A free size of about `scale` squared pixels in this ratio, on a step of 16 (or the
    model's own, when coarser) so the sides are what image models are trained on."""
    free = spec.sizes.free if spec.sizes else None
    if free is None:
        return None
    stepped = free if free.multiple >= 16 else replace(free, multiple=16)
    side = SCALES[scale]
    w, h = side * math.sqrt(ratio.value), side / math.sqrt(ratio.value)
    best = stepped.nearest(round(w), round(h)) or free.nearest(round(w), round(h))
    return f"{best[0]}x{best[1]}" if best else None


def shape(spec: ModelSpec, model: str, raw: str, size: Any, *, strict: bool) -> Shape:
    """Map `--aspect raw` (with `-s size`, which may only be a scale) for `model`."""
    try:
        ratio = Ratio.parse(raw)
    except AspectError as exc:
        return Shape({}, problem=str(exc))
    if size is not None and str(size).upper() not in SCALES:
        return Shape({}, problem=f"--aspect {raw} with --size {size}: give one or the other (-s 1K|2K|4K with --aspect sets the scale)")
    rule = spec.fields.get("aspect_ratio")
    if isinstance(rule, Enum):
        return _ratio_field(rule, model, ratio, strict)  # a scale stays the model's own size field
    return _sized(spec, model, ratio, None if size is None else str(size).upper(), strict)


def apply(fields: dict[str, Any], spec: ModelSpec | None, model: str, *, strict: bool) -> Shape:
    """Replace fields["aspect"] with what the model takes; the Shape says what went wrong."""
    raw = fields.pop("aspect", None)
    if raw is None:
        return Shape({})
    if spec is None:
        return Shape({}, problem=f"--aspect {raw}: imgen has no record of {model}, so it cannot tell how {model} takes a shape; "
                                 "use -s WxH, or describe the model in the config file ([models.\"ID\"])")
    result = shape(spec, model, str(raw), fields.get("size"), strict=strict)
    fields.update(result.fields)
    return result


def _ratio_field(rule: Enum, model: str, ratio: Ratio, strict: bool) -> Shape:
    same = ratio.among(rule.values)
    if same:
        return Shape({"aspect_ratio": same})
    nearest = min(rule.values, key=lambda r: ratio.distance(Ratio.parse(r).value))
    return _nearest(model, ratio, {"aspect_ratio": nearest}, nearest, "ratios: " + ", ".join(rule.values), strict)


def _sized(spec: ModelSpec, model: str, ratio: Ratio, scale: str | None, strict: bool) -> Shape:
    sizes = spec.sizes
    if sizes is None:
        return Shape({}, problem=f"--aspect {ratio}: {model} takes no size or aspect ratio; drop --aspect")
    listed = table(spec)
    free = sizes.free is not None
    if scale is not None and not free:
        return Shape({}, problem=(
            f"--size {scale} with --aspect: {model} has fixed sizes ({', '.join(sizes.presets)}); drop --size and let --aspect choose"
        ))
    # A listed size is the one the provider recommends, at the record's own scale.
    same = ratio.among(listed)
    if same and (scale is None or scale == spec.aspect_scale):
        return Shape({"size": listed[same]})
    if free:
        made = computed(spec, ratio, scale or spec.aspect_scale)
        if made is None:
            return Shape({}, problem=f"--aspect {ratio}: no size {model} takes has that shape; use -s WxH")
        got = Ratio.of_size(made)
        if got is not None and ratio.distance(got.value) <= _CLOSE:
            return Shape({"size": made})
        return _nearest(model, ratio, {"size": made}, made, sizes.free.describe(), strict)
    if not listed:
        return Shape({}, problem=f"--aspect {ratio}: {model} lists no sizes with a shape; use -s")
    nearest = min(listed, key=lambda r: ratio.distance(Ratio.parse(r).value))
    return _nearest(model, ratio, {"size": listed[nearest]}, f"{listed[nearest]} ({nearest})", "sizes: " + ", ".join(listed.values()), strict)


def _nearest(model: str, ratio: Ratio, fields: dict[str, Any], shown: str, takes: str, strict: bool) -> Shape:
    if strict:
        return Shape({}, problem=f"--aspect {ratio}: {model} has no {ratio} ({takes}); --strict refuses the nearest, {shown}")
    return Shape(fields, warning=f"--aspect {ratio}: {model} has no {ratio}; asking for {shown}, the nearest it has")
