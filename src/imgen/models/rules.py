"""Value rules for the capability table: one class per kind of field value (enum, range,
size...), and the cross-field rules. Each rule checks a value and says what is allowed."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ..request import SEQUENTIAL_TOTAL, flag_for

# --------------------------------------------------------------------------- rules


@dataclass(frozen=True, kw_only=True)
class Rule:
    """What one body field accepts. `reason`/`forward` replace the generic wording when a
    model's refusal needs explaining (dall-e-3 and n, say)."""

    kind: ClassVar[str] = "str"  # how the CLI converts a command-line string: see parse_value()
    reason: str | None = None
    forward: str | None = None

    def type_fault(self, value: Any) -> str | None:
        return None if isinstance(value, str) else "must be text"

    def fault(self, value: Any) -> str | None:
        return None

    def fix(self, value: Any, flag: str) -> str:
        return f"drop {flag}"

    def describe(self) -> str:
        return "any text"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "text"}


@dataclass(frozen=True, kw_only=True)
class Text(Rule):
    pass


def _close(value: str, choices: Iterable[str]) -> str | None:
    choices = list(choices)
    for choice in choices:
        if choice.lower() == value.lower():
            return choice
    found = difflib.get_close_matches(value.lower(), choices, n=1, cutoff=0.6)
    return found[0] if found else None


@dataclass(frozen=True)
class Enum(Rule):
    values: tuple[str, ...]
    # What people carry over from another model's vocabulary: ("hd", "high") offers high for hd.
    near: tuple[tuple[str, str], ...] = ()

    def type_fault(self, value: Any) -> str | None:
        return None if isinstance(value, str) else "must be one of " + ", ".join(self.values)

    def fault(self, value: Any) -> str | None:
        return None if value in self.values else "accepts " + ", ".join(self.values)

    def fix(self, value: Any, flag: str) -> str:
        if len(self.values) == 1:
            return f"drop {flag} ({self.values[0]} is the only choice)"
        close = dict(self.near).get(value.lower()) or _close(value, self.values)
        return f"use {flag} {close}" if close else "use one of these"

    def describe(self) -> str:
        return " | ".join(self.values)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "enum", "values": list(self.values)}


@dataclass(frozen=True)
class IntRange(Rule):
    lo: int
    hi: int
    kind: ClassVar[str] = "int"

    def type_fault(self, value: Any) -> str | None:
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be a whole number"

    def fault(self, value: Any) -> str | None:
        if self.lo <= value <= self.hi:
            return None
        return f"accepts only {self.lo}" if self.lo == self.hi else f"accepts {self.lo} to {self.hi}"

    def fix(self, value: Any, flag: str) -> str:
        return f"use {flag} {min(max(value, self.lo), self.hi)}"

    def describe(self) -> str:
        return str(self.lo) if self.lo == self.hi else f"{self.lo}..{self.hi}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "int", "min": self.lo, "max": self.hi}


@dataclass(frozen=True)
class FloatRange(Rule):
    lo: float
    hi: float
    kind: ClassVar[str] = "float"

    def type_fault(self, value: Any) -> str | None:
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "must be a number"

    def fault(self, value: Any) -> str | None:
        return None if self.lo <= value <= self.hi else f"accepts {self.lo} to {self.hi}"

    def fix(self, value: Any, flag: str) -> str:
        return f"use {flag} {min(max(float(value), self.lo), self.hi)}"

    def describe(self) -> str:
        return f"{self.lo}..{self.hi}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "float", "min": self.lo, "max": self.hi}


@dataclass(frozen=True)
class Bool(Rule):
    allowed: tuple[bool, ...] = (True, False)
    kind: ClassVar[str] = "bool"

    def type_fault(self, value: Any) -> str | None:
        return None if isinstance(value, bool) else "must be true or false"

    def fault(self, value: Any) -> str | None:
        return None if value in self.allowed else f"accepts only {_show_bool(self.allowed[0])}"

    def describe(self) -> str:
        return " | ".join(_show_bool(v) for v in self.allowed)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "bool", "values": list(self.allowed)}


@dataclass(frozen=True)
class ListOf(Rule):
    """A list of strings, e.g. reference images (URLs or data URIs)."""

    max_items: int
    kind: ClassVar[str] = "list"

    def type_fault(self, value: Any) -> str | None:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value)
        return None if ok else "must be a list of non-empty strings"

    def fault(self, value: Any) -> str | None:
        return None if len(value) <= self.max_items else f"accepts at most {self.max_items}"

    def fix(self, value: Any, flag: str) -> str:
        return f"drop {len(value) - self.max_items} of them"

    def describe(self) -> str:
        return f"up to {self.max_items} items"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "list", "max_items": self.max_items}


@dataclass(frozen=True)
class MaxImages(Rule):
    """`{"max_images": N}`: the one option Seedream's sequential mode takes."""

    lo: int
    hi: int
    kind: ClassVar[str] = "max_images"

    def type_fault(self, value: Any) -> str | None:
        inner = value.get("max_images") if isinstance(value, Mapping) else None
        ok = isinstance(inner, int) and not isinstance(inner, bool) and set(value) == {"max_images"}
        return None if ok else 'must be {"max_images": N}'

    def fault(self, value: Any) -> str | None:
        return IntRange(self.lo, self.hi).fault(value["max_images"])

    def fix(self, value: Any, flag: str) -> str:
        return IntRange(self.lo, self.hi).fix(value["max_images"], flag)

    def describe(self) -> str:
        return f"max_images {self.lo}..{self.hi}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "object", "max_images": {"min": self.lo, "max": self.hi}}


_SIZE = re.compile(r"(\d+)([xX])(\d+)")


def parse_size(text: str) -> tuple[int, int] | None:
    match = _SIZE.fullmatch(text.strip())
    return (int(match[1]), int(match[3])) if match else None


@dataclass(frozen=True)
class FreeSize:
    """Any WIDTHxHEIGHT within these bounds (None: no bound)."""

    max_edge: int | None = None
    multiple: int = 1
    max_ratio: float | None = None
    min_pixels: int = 1
    max_pixels: int | None = None
    min_edge: int = 1

    def faults(self, w: int, h: int) -> list[str]:
        if w < 1 or h < 1:
            return ["both sides above 0"]
        out = []
        if w % self.multiple or h % self.multiple:
            out.append(f"both sides divisible by {self.multiple}")
        if min(w, h) < self.min_edge:
            out.append(f"the shorter side at least {self.min_edge}")
        if self.max_edge and max(w, h) > self.max_edge:
            out.append(f"the longer side at most {self.max_edge}")
        if self.max_ratio and max(w, h) > self.max_ratio * min(w, h):
            out.append(f"an aspect ratio within 1:{self.max_ratio:g}..{self.max_ratio:g}:1")
        if w * h < self.min_pixels:
            out.append(f"at least {self.min_pixels} pixels (not {w * h})")
        if self.max_pixels and w * h > self.max_pixels:
            out.append(f"at most {self.max_pixels} pixels (not {w * h})")
        return out

    def nearest(self, w: int, h: int) -> tuple[int, int] | None:
        """A valid size close to w x h with about the same shape, to offer as the fix."""
        if w < 1 or h < 1:
            return None
        ratio = w / h
        if self.max_ratio:
            ratio = min(max(ratio, 1 / self.max_ratio), self.max_ratio)
        pixels = min(max(w * h, self.min_pixels), self.max_pixels or math.inf)
        tw, th = math.sqrt(pixels * ratio), math.sqrt(pixels / ratio)
        if self.max_edge and max(tw, th) > self.max_edge:
            scale = self.max_edge / max(tw, th)
            tw, th = tw * scale, th * scale
        if min(tw, th) < self.min_edge:
            scale = self.min_edge / min(tw, th)
            tw, th = tw * scale, th * scale
        m = self.multiple
        base_w, base_h = math.floor(tw / m) * m, math.floor(th / m) * m
        steps = range(-2, 4)
        candidates = [(base_w + i * m, base_h + j * m) for i in steps for j in steps]
        valid = [c for c in candidates if c[0] > 0 and c[1] > 0 and not self.faults(*c)]
        return min(valid, key=lambda c: (abs(c[0] - tw) + abs(c[1] - th), c)) if valid else None

    def describe(self) -> str:
        parts = []
        if self.multiple > 1:
            parts.append(f"sides divisible by {self.multiple}")
        if self.min_edge > 1:
            parts.append(f"shorter side >= {self.min_edge}")
        if self.max_edge:
            parts.append(f"longer side <= {self.max_edge}")
        if self.max_ratio:
            parts.append(f"aspect 1:{self.max_ratio:g}..{self.max_ratio:g}:1")
        if self.min_pixels > 1 or self.max_pixels:
            parts.append(f"{self.min_pixels}..{self.max_pixels or 'any'} pixels")
        return "any WIDTHxHEIGHT" + (" with " + ", ".join(parts) if parts else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_edge": self.max_edge,
            "multiple": self.multiple,
            "max_ratio": self.max_ratio,
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
            "min_edge": self.min_edge,
        }


@dataclass(frozen=True)
class Sizes(Rule):
    """Named sizes (`presets`), plus free WIDTHxHEIGHT sizes when `free` is set. `examples`
    are valid free sizes worth offering (shell completion, listings)."""

    presets: tuple[str, ...]
    free: FreeSize | None = None
    examples: tuple[str, ...] = ()

    def fault(self, value: Any) -> str | None:
        if value in self.presets:
            return None
        parsed = parse_size(value) if self.free else None
        if parsed and "X" in value:
            return "needs a lowercase x in WIDTHxHEIGHT"
        if parsed:
            faults = self.free.faults(*parsed)
            return "needs " + _join(faults) if faults else None
        if self.free:
            return "accepts " + ", ".join(self.presets + ("WIDTHxHEIGHT",)) if self.presets else "needs WIDTHxHEIGHT"
        return "accepts " + ", ".join(self.presets)

    def fix(self, value: Any, flag: str) -> str:
        close = _close(value, self.presets)
        if close and close.lower() == value.lower():
            return f"use {flag} {close}"
        parsed = parse_size(value)
        if parsed and self.free:
            best = self.free.nearest(*parsed)
            if best:
                return f"use {flag} {best[0]}x{best[1]}"
        shaped = self._closest_shape(parsed) if parsed and all(parsed) else None
        if shaped:
            return f"use {flag} {shaped} (the closest size)"
        if close:
            return f"use {flag} {close}"
        if self.free and self.examples:
            return f"use e.g. {flag} {self.examples[0]}"
        return "use one of these"

    def _closest_shape(self, wanted: tuple[int, int]) -> str | None:
        """The preset nearest in shape and, among equal shapes, in area: 1000x1000 on dall-e-2 is
        1024x1024, not 256x256. Both are compared as logs, so twice too big and half too small are
        equally far, and shape counts double (a square asked for should stay a square)."""
        shapes = [(p, wh) for p, wh in ((p, parse_size(p)) for p in self.presets) if wh]
        if not shapes:
            return None
        ratio, area = math.log(wanted[0] / wanted[1]), math.log(wanted[0] * wanted[1])

        def distance(item: tuple[str, tuple[int, int]]) -> float:
            (w, h) = item[1]
            return 2 * abs(math.log(w / h) - ratio) + abs(math.log(w * h) - area) / 2

        return min(shapes, key=distance)[0]

    def all_sizes(self) -> tuple[str, ...]:
        return self.presets + tuple(e for e in self.examples if e not in self.presets)

    def describe(self) -> str:
        parts = list(self.presets)
        if self.free:
            parts.append(self.free.describe())
        return " | ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "size", "presets": list(self.presets)}
        if self.free:
            out["free"] = self.free.to_dict()
            out["examples"] = list(self.examples)
        return out


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _show_bool(value: bool) -> str:
    return "true" if value else "false"


# --------------------------------------------------------------------------- cross-field rules

Finding = tuple[str, str]  # ("problem" | "warning", message)


@dataclass(frozen=True)
class Combo:
    """A rule about several fields together. `text` is what `imgen models show` prints."""

    text: str
    test: Callable[[Mapping[str, Any], str], Iterable[Finding]]


def _transparent_needs_alpha(fields: Mapping[str, Any], model: str) -> Iterable[Finding]:
    if fields.get("background") == "transparent" and fields.get("output_format") == "jpeg":
        yield "problem", (
            "--background transparent: needs --output-format png or webp (jpeg has no transparency); "
            "use --output-format png, or drop --background"
        )


def _compression_needs_lossy(fields: Mapping[str, Any], model: str) -> Iterable[Finding]:
    if fields.get("output_compression") is None:
        return
    fmt = fields.get("output_format")
    if fmt not in ("jpeg", "webp"):
        current = f"--output-format is {fmt}" if fmt else "the output format defaults to png"
        yield "problem", (
            f"--compression {fields['output_compression']}: applies only to jpeg or webp output ({current}); "
            "add --output-format jpeg or webp, or drop --compression"
        )


def _partials_need_stream(fields: Mapping[str, Any], model: str) -> Iterable[Finding]:
    if fields.get("partial_images") is not None and fields.get("stream") is not True:
        yield "problem", f"--partials {fields['partial_images']}: partial images come only with --stream; add --stream"


SEEDREAM_MAX_TOTAL = SEQUENTIAL_TOTAL


def _max_images(fields: Mapping[str, Any]) -> int | None:
    options = fields.get("sequential_image_generation_options")
    value = options.get("max_images") if isinstance(options, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _refs_plus_outputs(fields: Mapping[str, Any], model: str) -> Iterable[Finding]:
    refs = fields.get("image")
    wanted = _max_images(fields)
    count = len(refs) if isinstance(refs, (list, tuple)) else 0
    if count and wanted is not None and count + wanted > SEEDREAM_MAX_TOTAL:
        room = SEEDREAM_MAX_TOTAL - count
        yield "problem", (
            f"--max-images {wanted}: with {count} reference images at most {room} more fit "
            f"(references + generated <= {SEEDREAM_MAX_TOTAL}); use --max-images {max(room, 1)}"
            + (" or fewer references" if room >= 1 else " and fewer references")
        )


def _max_images_needs_auto(fields: Mapping[str, Any], model: str) -> Iterable[Finding]:
    wanted = _max_images(fields)
    if wanted is not None and fields.get("sequential_image_generation") != "auto":
        yield "problem", f"--max-images {wanted}: applies only in sequential mode; add --sequential auto"


_SEEDREAM_VERSION = re.compile(r"doubao-seedream-(\d+)-")


def _seedream_version_notes(fields: Mapping[str, Any], model: str) -> Iterable[Finding]:
    # Later Seedream versions silently ignore some fields; say so rather than let the user wonder.
    match = _SEEDREAM_VERSION.match(model)
    if not match:
        return
    major = int(match[1])
    if major >= 5:
        for name in ("guidance_scale", "seed"):
            if fields.get(name) is not None:
                yield "warning", f"{flag_for(name)}: {model} ignores {name} (Seedream 5.0 and later)"
    elif fields.get("output_format") is not None:
        yield "warning", f"--output-format: {model} may ignore output_format (Seedream 5.0 and later take it)"


TRANSPARENT_NEEDS_ALPHA = Combo("background transparent needs output_format png or webp", _transparent_needs_alpha)
COMPRESSION_NEEDS_LOSSY = Combo("output_compression only with output_format jpeg or webp", _compression_needs_lossy)
PARTIALS_NEED_STREAM = Combo("partial_images only with stream true", _partials_need_stream)
REFS_PLUS_OUTPUTS = Combo("reference images + max_images <= 15", _refs_plus_outputs)
MAX_IMAGES_NEEDS_AUTO = Combo("max_images only with sequential_image_generation auto", _max_images_needs_auto)
SEEDREAM_VERSION_NOTES = Combo("5.0 and later ignore seed and guidance_scale; before 5.0, output_format", _seedream_version_notes)
