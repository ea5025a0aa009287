"""The per-model capability table, and the pre-flight check that runs before anything is sent.

Every model imgen knows is one ModelSpec record: the body fields it takes and what each accepts.
Adding a model is adding a record to SPECS. `check()` is pure (no I/O), so it can refuse a bad
command line before a key is even looked up, and it reports every problem at once: a user who
fixes one flag should not have to pay a round trip to discover the next.
"""

from __future__ import annotations

import difflib
import math
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from .errors import UsageError
from .request import GenerateRequest, flag_for

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

    def faults(self, w: int, h: int) -> list[str]:
        if w < 1 or h < 1:
            return ["both sides above 0"]
        out = []
        if w % self.multiple or h % self.multiple:
            out.append(f"both sides divisible by {self.multiple}")
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
            return f"use {flag} {shaped} (the closest shape)"
        if close:
            return f"use {flag} {close}"
        if self.free and self.examples:
            return f"use e.g. {flag} {self.examples[0]}"
        return "use one of these"

    def _closest_shape(self, wanted: tuple[int, int]) -> str | None:
        shapes = [(p, wh) for p, wh in ((p, parse_size(p)) for p in self.presets) if wh]
        if not shapes:
            return None
        target = math.log(wanted[0] / wanted[1])
        return min(shapes, key=lambda item: abs(math.log(item[1][0] / item[1][1]) - target))[0]

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


SEEDREAM_MAX_TOTAL = 15


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


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class ModelSpec:
    id: str
    provider: str
    dialect: str  # "openai" | "envelope" | "placeholder": which providers/ module speaks to it
    fields: Mapping[str, Rule]
    prompt_max: int
    results: tuple[str, ...]  # what data[] items carry: "url", "b64_json", or "data" (local bytes)
    default_size: str | None
    features: tuple[str, ...]
    note: str = ""
    aliases: tuple[str, ...] = ()
    family_pattern: str | None = None  # a regex over whole ids: dated snapshots, version families
    family_label: str | None = None  # the same, for people
    prompt_advice: int | None = None  # a soft limit: warn above it, refuse only above prompt_max
    refused: Mapping[str, str] = field(default_factory=dict)  # field -> why this model rejects it
    combos: tuple[Combo, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))
        object.__setattr__(self, "refused", MappingProxyType(dict(self.refused)))

    @property
    def n_range(self) -> tuple[int, int]:
        rule = self.fields.get("n")
        return (rule.lo, rule.hi) if isinstance(rule, IntRange) else (1, 1)

    @property
    def sizes(self) -> Sizes | None:
        rule = self.fields.get("size")
        return rule if isinstance(rule, Sizes) else None

    def matches(self, model_id: str) -> bool:
        if model_id == self.id or model_id in self.aliases:
            return True
        return bool(self.family_pattern and re.fullmatch(self.family_pattern, model_id))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.provider,
            "dialect": self.dialect,
            "aliases": list(self.aliases),
            "family": self.family_label,
            "n": {"min": self.n_range[0], "max": self.n_range[1]},
            "prompt_max": self.prompt_max,
            "prompt_advice": self.prompt_advice,
            "results": list(self.results),
            "default_size": self.default_size,
            "features": list(self.features),
            "fields": {
                name: {"flag": flag_for(name), "kind": rule.kind, **rule.to_dict()} for name, rule in self.fields.items()
            },
            "refused": dict(self.refused),
            "rules": [c.text for c in self.combos],
            "note": self.note,
        }


_DATED = r"-\d{4}-\d{2}-\d{2}"


def _openai(id: str, **kw: Any) -> ModelSpec:
    """An OpenAI model; dated snapshots (`gpt-image-2-2026-04-21`) share its record."""
    kw.setdefault("family_pattern", re.escape(id) + _DATED)
    kw.setdefault("family_label", f"{id}-YYYY-MM-DD")
    return ModelSpec(id=id, provider="OpenAI", dialect="openai", **kw)


_GPT_SIZES = Sizes(("auto", "1024x1024", "1536x1024", "1024x1536"))
_GPT_QUALITY = Enum(("low", "medium", "high", "auto"), near=(("hd", "high"), ("standard", "medium")))
_GPT_OPTIONS: dict[str, Rule] = {
    "background": Enum(("transparent", "opaque", "auto")),
    "output_format": Enum(("png", "jpeg", "webp")),
    "output_compression": IntRange(0, 100),
    "moderation": Enum(("low", "auto")),
    "user": Text(),
}
_GPT_COMBOS = (TRANSPARENT_NEEDS_ALPHA, COMPRESSION_NEEDS_LOSSY)


def _gpt_image(id: str, sizes: Sizes = _GPT_SIZES, note: str = "") -> ModelSpec:
    return _openai(
        id,
        fields={
            "n": IntRange(1, 10),
            "size": sizes,
            "quality": _GPT_QUALITY,
            **_GPT_OPTIONS,
            "stream": Bool(),
            "partial_images": IntRange(0, 3),
        },
        refused={"response_format": "GPT image models always return base64"},
        prompt_max=32000,
        results=("b64_json",),
        default_size="auto",
        features=("text-to-image", "streaming"),
        combos=(*_GPT_COMBOS, PARTIALS_NEED_STREAM),
        note=note or "always returns base64; background/output_format/quality/size are echoed in the response",
    )


_ONE_IMAGE = "makes one image per request (n must be 1)"

# Upstream gpt-image-2 rule: edges multiples of 16, longer edge <= 3840, long:short <= 3:1, and
# 655,360..8,294,400 pixels in total. The pixel cap is 3840x2160's area, so 2880x2880 passes but
# 3840x2400 does not: "max 3840x2160" is an area, not a box.
GPT_IMAGE_2_FREE = FreeSize(max_edge=3840, multiple=16, max_ratio=3, min_pixels=655_360, max_pixels=8_294_400)

# Seedream: the loosest bounds across the family (4.0: 1280x720..4096x4096 pixels, aspect
# 1/16..16). Newer versions want more pixels; refusing those here would need a table per
# version, so the server has the last word on the minimum.
SEEDREAM_FREE = FreeSize(max_ratio=16, min_pixels=1280 * 720, max_pixels=4096 * 4096)

SPECS: tuple[ModelSpec, ...] = (
    _openai(
        "dall-e-2",
        fields={
            "n": IntRange(1, 10),
            "size": Sizes(("256x256", "512x512", "1024x1024")),
            "quality": Enum(("standard",)),
            "response_format": Enum(("url", "b64_json")),
            "user": Text(),
        },
        prompt_max=1000,
        results=("url", "b64_json"),
        default_size="1024x1024",
        features=("text-to-image",),
        note="URLs expire after 60 minutes",
    ),
    _openai(
        "dall-e-3",
        fields={
            "n": IntRange(1, 1, reason=_ONE_IMAGE, forward="use -n 1, or a GPT image model for up to 10"),
            "size": Sizes(("1024x1024", "1792x1024", "1024x1792")),
            "quality": Enum(("standard", "hd"), near=(("high", "hd"), ("medium", "standard"), ("low", "standard"))),
            "style": Enum(("vivid", "natural")),
            "response_format": Enum(("url", "b64_json")),
            "user": Text(),
        },
        prompt_max=4000,
        results=("url", "b64_json"),
        default_size="1024x1024",
        features=("text-to-image",),
        note="returns revised_prompt; URLs expire after 60 minutes",
    ),
    _gpt_image("gpt-image-1"),
    _gpt_image("gpt-image-1-mini"),
    _gpt_image("gpt-image-1.5"),
    _gpt_image(
        "gpt-image-2",
        sizes=Sizes(
            ("auto", "1024x1024", "1536x1024", "1024x1536"),
            free=GPT_IMAGE_2_FREE,
            examples=("2048x2048", "2048x1152", "1152x2048", "3840x2160", "2160x3840"),
        ),
        note="free sizes; above 2560x1440 the output is experimental upstream; always returns base64",
    ),
    ModelSpec(
        id="qwen-image",
        provider="Alibaba (Qwen)",
        dialect="openai",
        fields={
            "n": IntRange(1, 1, reason=_ONE_IMAGE, forward="use -n 1 and run again for more"),
            "size": Sizes(("1664x928", "1472x1140", "1328x1328", "1140x1472", "928x1664")),
        },
        prompt_max=800,
        results=("url",),
        default_size="1328x1328",
        features=("text-to-image",),
        note="one image per request",
    ),
    ModelSpec(
        id="doubao-seedream-5-0-260128",
        provider="ByteDance (Seedream)",
        dialect="openai",
        family_pattern=r"doubao-seedream-[0-9a-z][0-9a-z.-]*",
        family_label="doubao-seedream-*",
        fields={
            "n": IntRange(
                1, 1, reason=_ONE_IMAGE, forward="for several related images use --sequential auto --max-images N"
            ),
            "size": Sizes(
                ("2K", "4K"),
                free=SEEDREAM_FREE,
                examples=("2048x2048", "2304x1728", "1728x2304", "2848x1600", "1600x2848"),
            ),
            "response_format": Enum(("url", "b64_json")),
            "image": ListOf(14),
            "watermark": Bool(),
            "sequential_image_generation": Enum(("auto", "disabled")),
            "sequential_image_generation_options": MaxImages(1, SEEDREAM_MAX_TOTAL),
            "seed": IntRange(-1, 2_147_483_647),
            "guidance_scale": FloatRange(1.0, 10.0),
            "output_format": Enum(("png", "jpeg")),
        },
        # No hard limit is documented: the 1000-character figure is advice (upstream puts it at
        # 600 English words, about 4000 characters). Warn above the advice; refuse only past
        # ~4000, where the text is more likely an accidental paste than a prompt.
        prompt_max=4000,
        prompt_advice=1000,
        results=("url", "b64_json"),
        default_size="2048x2048",
        features=("text-to-image", "image-to-image", "sequential"),
        combos=(REFS_PLUS_OUTPUTS, MAX_IMAGES_NEEDS_AUTO, SEEDREAM_VERSION_NOTES),
        note="URLs are signed and expire after 24 h; the returned size can differ from the preset; watermark defaults to true",
    ),
    ModelSpec(
        id="gpt-image-1.5",
        provider="OpenAI via the envelope gateway",
        dialect="envelope",
        fields={
            "n": IntRange(1, 10),
            "size": _GPT_SIZES,
            # The gateway requires `stream` in every body but answers with an envelope of URLs
            # and documents no event stream, so only false can be honoured.
            "stream": Bool(allowed=(False,), reason="answers with URLs, not an event stream (stream must be false)"),
            "output_compression": IntRange(0, 100),
            "quality": _GPT_QUALITY,
            **{k: v for k, v in _GPT_OPTIONS.items() if k != "output_compression"},
        },
        refused={
            "style": "the gateway lists it, but its own text says only dall-e-3 takes style",
            "response_format": "the gateway always answers with URLs",
            "partial_images": "the gateway documents no event stream",
        },
        prompt_max=32000,
        results=("url",),
        default_size="auto",
        features=("text-to-image",),
        combos=_GPT_COMBOS,
        note="success is code == 0 inside the envelope, whatever the HTTP status",
    ),
    ModelSpec(
        id="placeholder",
        provider="imgen (offline)",
        dialect="placeholder",
        fields={
            "n": IntRange(1, 10),
            "size": Sizes((), free=FreeSize(max_edge=4096), examples=("1024x1024", "512x512", "256x256")),
        },
        prompt_max=32000,
        results=("data",),
        default_size="1024x1024",
        features=("text-to-image",),
        note="writes deterministic PNGs locally, no network; takes size and n only, so stray flags show up",
    ),
)

DIALECTS = ("openai", "envelope", "placeholder")


def all_specs() -> tuple[ModelSpec, ...]:
    return SPECS


def lookup(model_id: str, dialect: str | None = None) -> ModelSpec | None:
    """The record for `model_id`: exact ids and aliases before families, and among equals the
    one for `dialect` (gpt-image-1.5 exists both on OpenAI-shaped APIs and on the envelope)."""
    for exact in (True, False):
        found = [
            s
            for s in SPECS
            if (model_id == s.id or model_id in s.aliases) == exact and s.matches(model_id)
        ]
        if found:
            same = [s for s in found if s.dialect == dialect]
            openai = [s for s in found if s.dialect == "openai"]
            return (same or openai or found)[0]
    return None


def known_ids() -> list[str]:
    return sorted({s.id for s in SPECS} | {a for s in SPECS for a in s.aliases})


def close_ids(model_id: str, n: int = 3) -> list[str]:
    return difflib.get_close_matches(model_id, known_ids(), n=n, cutoff=0.5)


def sizes_for(model_id: str, dialect: str | None = None) -> list[str]:
    """Sizes to offer for completion: presets first, then valid examples. [] when unknown."""
    spec = lookup(model_id, dialect)
    sizes = spec.sizes if spec else None
    return list(sizes.all_sizes()) if sizes else []


# --------------------------------------------------------------------------- CLI values

FIELD_KINDS: dict[str, str] = {name: rule.kind for s in SPECS for name, rule in s.fields.items()}

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_value(field_name: str, raw: str) -> Any:
    """Convert one command-line string to the type the API field takes. A list field gives a
    one-item list (the CLI concatenates repeats); max_images gives the object the API wants."""
    kind = FIELD_KINDS.get(field_name, "str")
    flag = flag_for(field_name)
    try:
        if kind == "int":
            return int(raw)
        if kind == "max_images":
            return {"max_images": int(raw)}
        if kind == "float":
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError
            return value
    except ValueError:
        what = "a number" if kind == "float" else "a whole number"
        raise UsageError(f"{flag} {shlex.quote(raw)}: must be {what}") from None
    if kind == "bool":
        word = raw.strip().lower()
        if word in _TRUE | _FALSE:
            return word in _TRUE
        raise UsageError(f"{flag} {shlex.quote(raw)}: must be true or false")
    if kind == "list":
        return [raw]
    return raw


# --------------------------------------------------------------------------- the check


@dataclass
class CheckResult:
    spec: ModelSpec | None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def error(self) -> UsageError | None:
        """Every problem as one UsageError, or None when there is none."""
        if not self.problems:
            return None
        text = self.problems[0] if len(self.problems) == 1 else (
            f"{len(self.problems)} problems:\n  " + "\n  ".join(self.problems)
        )
        return UsageError(text, "nothing was sent; imgen models show MODEL lists what MODEL accepts")


def _shown(name: str, value: Any) -> str:
    """How a value appears in a message: the flag and the value as typed on a command line."""
    flag = flag_for(name)
    if name == "sequential_image_generation_options" and isinstance(value, Mapping) and "max_images" in value:
        value = value["max_images"]
    if isinstance(value, bool):
        text = _show_bool(value)
    elif isinstance(value, (list, tuple)):
        return f"{flag} (x{len(value)})"
    elif isinstance(value, str):
        text = shlex.quote(value)
    else:
        text = str(value)
    return f"{flag} {text}"


def _refusal(spec: ModelSpec, model: str, name: str, value: Any) -> str:
    why = spec.refused.get(name)
    if why is None:
        takers = sorted({s.id for s in SPECS if name in s.fields and s.dialect == spec.dialect})
        if takers and len(takers) <= 3:
            why = " and ".join(takers) + (" do" if len(takers) > 1 else " does")
        elif takers:
            why = "other models do"
    tail = f" ({why})" if why else ""
    return f"{_shown(name, value)}: {model} does not accept {name}{tail}; drop {flag_for(name)}"


def _check_prompt(prompt: str, spec: ModelSpec, model: str, out: CheckResult) -> None:
    length = len(prompt)
    if not prompt.strip():
        out.problems.append("PROMPT: empty; describe the image you want")
    elif length > spec.prompt_max:
        out.problems.append(
            f"PROMPT: {length} characters, {model} accepts at most {spec.prompt_max}; "
            f"shorten it by {length - spec.prompt_max} (imgen never cuts a prompt)"
        )
    elif spec.prompt_advice:
        # CJK text carries more per character; the advice for it is 300, not 1000.
        cjk = sum(1 for ch in prompt if "\u3040" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af")
        advice = 300 if cjk * 2 > length else spec.prompt_advice
        if length > advice:
            out.warnings.append(
                f"PROMPT: {length} characters; {model} works best under {advice} (longer prompts lose detail)"
            )


def _check_dialect(spec: ModelSpec, model: str, dialect: str, out: CheckResult) -> None:
    if spec.dialect == dialect:
        return
    here = sorted({s.id for s in SPECS if s.dialect == dialect})
    instead = f"use --model {' or '.join(here)}" if 0 < len(here) <= 2 else "pick a model listed by imgen models"
    out.problems.append(
        f"--model {shlex.quote(model)}: served over the {spec.dialect} API, but this profile speaks {dialect}; "
        f"{instead}, or a profile whose api is {spec.dialect}"
    )


def _check_unknown(model: str, strict: bool, out: CheckResult) -> None:
    close = close_ids(model, n=1)
    maybe = f"; did you mean {close[0]}?" if close else ""
    if strict:
        out.problems.append(
            f"--model {shlex.quote(model)}: unknown model, and --strict refuses models imgen cannot check; "
            f"drop --strict to pass it through{maybe}"
        )
    else:
        out.warnings.append(f"unknown model '{model}': passing it through unchecked; --strict refuses unknown models{maybe}")


def check(req: GenerateRequest, dialect: str, *, strict: bool = False) -> CheckResult:
    """Compare the request with its model's record; every problem and warning at once.
    `req.params` (--param) are the user's way around this table, so they are never checked."""
    spec = lookup(req.model, dialect)
    out = CheckResult(spec=spec)
    if spec is None:
        _check_unknown(req.model, strict, out)
        return out
    model = req.model
    _check_dialect(spec, model, dialect, out)
    _check_prompt(req.prompt, spec, model, out)
    for name, value in req.fields.items():
        if value is None or name in ("model", "prompt"):
            continue
        rule = spec.fields.get(name)
        if rule is None:
            out.problems.append(_refusal(spec, model, name, value))
            continue
        kind_fault = rule.type_fault(value)
        if kind_fault:
            # repr: a profile's n = "4" must not read like the number it failed to be.
            out.problems.append(f"{flag_for(name)} {value!r}: {kind_fault}")
            continue
        fault = rule.fault(value)
        if fault:
            flag = flag_for(name)
            out.problems.append(
                f"{_shown(name, value)}: {model} {rule.reason or fault}; {rule.forward or rule.fix(value, flag)}"
            )
    for combo in spec.combos:
        for level, message in combo.test(req.fields, model):
            (out.problems if level == "problem" else out.warnings).append(message)
    return out
