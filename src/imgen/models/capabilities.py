"""The per-model capability table, as data.

Every model imgen knows is one ModelSpec record: the dialect that speaks to it, the body fields
it takes and what each accepts. Adding a model is adding a record to SPECS; models/preflight.py
compares a request with its record before anything is sent.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from ..request import flag_for
from .rules import (
    COMPRESSION_NEEDS_LOSSY,
    MAX_IMAGES_NEEDS_AUTO,
    PARTIALS_NEED_STREAM,
    REFS_PLUS_OUTPUTS,
    SEEDREAM_MAX_TOTAL,
    SEEDREAM_VERSION_NOTES,
    TRANSPARENT_NEEDS_ALPHA,
    Bool,
    Combo,
    Enum,
    FloatRange,
    FreeSize,
    IntRange,
    ListOf,
    MaxImages,
    Rule,
    Sizes,
    Text,
)

# --------------------------------------------------------------------------- records

MB = 1_000_000  # the providers state input limits in MB; imgen keeps under them, never at them


@dataclass(frozen=True)
class EditSpec:
    """How a model changes an existing image (imgen edit), checked from the inputs' headers.

    route "upload": the inputs go as multipart files to the edit endpoint (the `dialect` named
    here speaks it); "references": they go as the model's own reference images through its
    generation call (Gemini's inline parts, Seedream's `image`)."""

    route: str
    max_inputs: int
    formats: tuple[str, ...]  # what imagetype.sniff must say of each input
    max_bytes: int  # per input
    dialect: str | None = None  # route "upload": the dialect of the edit endpoint
    mask: bool = False  # takes --mask (a PNG with alpha, the first input's size)
    square_png: bool = False  # dall-e-2: one square PNG, transparent where there is no mask
    fields: Mapping[str, Rule] = field(default_factory=dict)  # fields only the edit call takes
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))


MASK_MAX_BYTES = 4 * MB


@dataclass(frozen=True)
class ModelSpec:
    id: str
    provider: str
    dialect: str  # the dialects/ module that speaks to it: "openai" | "gemini" | "bria" | "envelope" | "placeholder"
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
    # --aspect: ratio -> the named size the provider lists for it, where the size's own ratio is
    # only close (dall-e-3's 1792x1024 is "16:9"); presets with an exact ratio need no entry.
    aspects: Mapping[str, str] = field(default_factory=dict)
    aspect_scale: str = "1K"  # the scale the listed sizes are at; -s 2K asks for another
    user: bool = False  # described in the user's config file, not built in
    price_per_image: float | None = None  # the user's own price, when the catalog has none
    edit: EditSpec | None = None  # how it edits images; None: it cannot
    edit_only: bool = False  # it only edits (qwen-image-edit): generate refuses it

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))
        object.__setattr__(self, "refused", MappingProxyType(dict(self.refused)))
        object.__setattr__(self, "aspects", MappingProxyType(dict(self.aspects)))

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
            "user": self.user,
            "price_per_image": self.price_per_image,
            "edit": _edit_dict(self.edit),
        }


def _edit_dict(edit: EditSpec | None) -> dict[str, Any] | None:
    if edit is None:
        return None
    return {
        "route": edit.route, "max_inputs": edit.max_inputs, "formats": list(edit.formats), "max_bytes": edit.max_bytes,
        "mask": edit.mask, "square_png": edit.square_png,
        "fields": {name: {"flag": flag_for(name), "kind": rule.kind, **rule.to_dict()} for name, rule in edit.fields.items()},
        "note": edit.note,
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


_FIDELITY = {"input_fidelity": Enum(("high", "low"))}
_TO_EDIT = "to change an image, use imgen edit IMAGE PROMPT"


def _upload(max_inputs: int, formats: tuple[str, ...], max_mb: int, **kw: Any) -> EditSpec:
    return EditSpec(route="upload", dialect="openai_edits", max_inputs=max_inputs, formats=formats, max_bytes=max_mb * MB, **kw)


# How the GPT image models and Gemini edit; also what a model imgen has no record of gets on
# those APIs (models/editing.py).
GPT_EDIT = _upload(16, ("png", "jpeg", "webp"), 50, mask=True)
GEMINI_EDIT = EditSpec(route="references", max_inputs=14, formats=("png", "jpeg", "webp"), max_bytes=10 * MB,
                       note="inputs go inline beside the prompt (URLs are fetched first)")


def _gpt_image(id: str, sizes: Sizes = _GPT_SIZES, note: str = "", fidelity: bool = True) -> ModelSpec:
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
        refused={"response_format": "GPT image models always return base64", "image": _TO_EDIT},
        prompt_max=32000,
        results=("b64_json",),
        default_size="auto",
        features=("text-to-image", "edit", "streaming"),
        combos=(*_GPT_COMBOS, PARTIALS_NEED_STREAM),
        edit=replace(GPT_EDIT, fields=_FIDELITY) if fidelity else replace(
            GPT_EDIT, note="input_fidelity is not sent: sources disagree whether this model takes it"),
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

GEMINI_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
BRIA_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9")
_GEMINI_ONE = "makes one image per request (n must be 1)"


def _gemini(id: str, *, ratios: tuple[str, ...], sizes: tuple[str, ...], note: str) -> ModelSpec:
    return ModelSpec(
        id=id,
        provider="Google (Gemini)",
        dialect="gemini",
        fields={
            # Several images would be several billed calls: say so rather than multiply them.
            "n": IntRange(1, 1, reason=_GEMINI_ONE, forward="use -n 1, and --batch with one line per image for more"),
            "size": Sizes(sizes),
            "aspect_ratio": Enum(ratios),
            "image": ListOf(14),
        },
        prompt_max=32000,
        results=("b64_json",),
        default_size="1K",
        features=("text-to-image", "image-to-image", "edit"),
        note=note + "; images come inline (base64); the model's text goes to stderr and --json",
        edit=GEMINI_EDIT,
    )


# Midjourney takes any --ar W:H; these are the shapes worth offering (the nearest is used otherwise).
MJ_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "1:2", "2:1", "7:4", "4:7", "21:9", "9:21")
# BFL's aspect_ratio runs from 21:9 to 9:21.
FLUX_RATIOS = ("21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16", "9:21")
FLUX1_FREE = FreeSize(min_edge=256, max_edge=1440, multiple=32)
FLUX2_FREE = FreeSize(min_edge=64, multiple=16, max_pixels=4 * 1024 * 1024)
_FLUX_COMMON: dict[str, Rule] = {
    "n": IntRange(1, 1, reason="makes one image per task (n must be 1)", forward="use -n 1, and --batch with one line per image for more"),
    "seed": IntRange(0, 2_147_483_647),
    "output_format": Enum(("jpeg", "png")),
}
_TASK_NOTE = "a task: submitted once, polled, saved the moment it is done; imgen task wait ID picks it up after an interrupt"


def _midjourney(id: str, bot: str) -> ModelSpec:
    return ModelSpec(
        id=id,
        provider="Midjourney",
        dialect="midjourney",
        fields={
            "n": IntRange(1, 1, reason="makes one 2x2 grid per task (n must be 1)", forward="use -n 1; imgen task action ID U1..U4 upscales one"),
            "aspect_ratio": Enum(MJ_RATIOS),
            "image": ListOf(5),
            "negative_prompt": Text(),
            "mj_speed": Enum(("fast", "relax", "turbo")),
        },
        prompt_max=6000,
        results=("url",),
        default_size=None,
        features=("text-to-image", "image-to-image", "task"),
        note=f"{bot}: one 2x2 grid per task; --aspect is sent as --ar W:H, --negative-prompt as --no; " + _TASK_NOTE,
    )


def _flux(id: str, *, sizes: FreeSize | None, fields: dict[str, Rule], refs: int, note: str, safety: int = 6) -> ModelSpec:
    shape: dict[str, Rule] = {"size": Sizes((), free=sizes, examples=("1024x1024", "1344x768", "768x1344"))} if sizes else {
        "aspect_ratio": Enum(FLUX_RATIOS)}
    return ModelSpec(
        id=id,
        provider="Black Forest Labs (Flux)",
        dialect="flux",
        fields={**_FLUX_COMMON, **shape, "safety_tolerance": IntRange(0, safety), "image": ListOf(refs), **fields},
        prompt_max=10000,
        results=("url",),
        default_size="1024x768" if sizes else None,
        features=("text-to-image", "image-to-image", "task") + (("edit",) if id.startswith("flux-kontext") else ()),
        note=note + "; the sample link expires about 10 minutes after it is ready; " + _TASK_NOTE,
        edit=EditSpec(route="references", max_inputs=refs, formats=("png", "jpeg", "webp"), max_bytes=10 * MB,
                      note="the input goes as input_image") if id.startswith(("flux-kontext", "flux-2")) else None,
    )


_STEPS = {"steps": IntRange(1, 50), "guidance_scale": FloatRange(1.5, 5.0)}

# Models a provider has shut down: id -> (when, what replaces it). Refused with that news.
RETIRED: Mapping[str, tuple[str, str]] = MappingProxyType({
    "gemini-2.5-flash-image": ("2026-10-02", "gemini-3.1-flash-image-preview"),
    "gemini-2.5-flash-image-preview": ("2026-10-02", "gemini-3.1-flash-image-preview"),
})

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
        refused={"image": _TO_EDIT},
        prompt_max=1000,
        results=("url", "b64_json"),
        default_size="1024x1024",
        features=("text-to-image", "edit"),
        note="URLs expire after 60 minutes",
        edit=_upload(1, ("png",), 4, mask=True, square_png=True),
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
        aspects={"16:9": "1792x1024", "9:16": "1024x1792"},
    ),
    _gpt_image("gpt-image-1"),
    _gpt_image("gpt-image-1-mini", fidelity=False),
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
        aspects={"16:9": "1664x928", "4:3": "1472x1140", "3:4": "1140x1472", "9:16": "928x1664"},
    ),
    ModelSpec(
        id="qwen-image-edit",
        provider="Alibaba (Qwen)",
        dialect="openai",
        fields={"n": IntRange(1, 1, reason=_ONE_IMAGE, forward="use -n 1 and run again for more")},
        prompt_max=800,
        results=("url",),
        default_size=None,
        features=("edit",),
        note="edits only (imgen edit); one image in, one out; other fields are the provider's own (--param)",
        edit=_upload(1, ("png", "jpeg", "webp"), 10),
        edit_only=True,
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
        features=("text-to-image", "image-to-image", "edit", "sequential"),
        combos=(REFS_PLUS_OUTPUTS, MAX_IMAGES_NEEDS_AUTO, SEEDREAM_VERSION_NOTES),
        edit=EditSpec(route="references", max_inputs=14, formats=("png", "jpeg", "webp", "gif", "bmp", "tiff"), max_bytes=10 * MB,
                      note="inputs go as reference images (files inline, URLs as given)"),
        note="URLs are signed and expire after 24 h; the returned size can differ from the preset; watermark defaults to true",
        # The provider's recommended 2K sizes; other ratios and -s 4K are computed.
        aspects={
            "1:1": "2048x2048", "4:3": "2304x1728", "3:4": "1728x2304", "16:9": "2848x1600", "9:16": "1600x2848",
            "3:2": "2496x1664", "2:3": "1664x2496", "21:9": "3136x1344",
        },
        aspect_scale="2K",
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
    _gemini(
        "gemini-3.1-flash-image-preview",
        ratios=(*GEMINI_RATIOS, "1:4", "4:1", "1:8", "8:1"),
        sizes=("512", "1K", "2K", "4K"),
        note="the default Gemini image model on CometAPI; 512 is its fast tier",
    ),
    _gemini("gemini-3-pro-image-preview", ratios=GEMINI_RATIOS, sizes=("1K", "2K", "4K"), note="higher quality, slower"),
    ModelSpec(
        id="bria",
        provider="Bria",
        dialect="bria",
        aliases=("bria-text-to-image",),
        fields={
            "n": IntRange(1, 4),
            "aspect_ratio": Enum(BRIA_RATIOS),
            "seed": IntRange(0, 2_147_483_647),
            "negative_prompt": Text(),
        },
        prompt_max=10000,
        results=("url",),
        default_size=None,
        features=("text-to-image",),
        note="1 MP images; URLs are temporary; moderation can drop results (fewer images than -n); more fields via --param",
    ),
    _midjourney("midjourney", "Midjourney"),
    _midjourney("niji", "Niji (anime)"),
    _flux("flux-pro-1.1", sizes=FLUX1_FREE, fields={}, refs=1, note="FLUX1.1 [pro]; sizes 256-1440 on steps of 32; -i as image_prompt"),
    _flux("flux-pro", sizes=FLUX1_FREE, fields=_STEPS, refs=1, note="FLUX.1 [pro]; -i as image_prompt"),
    _flux("flux-dev", sizes=FLUX1_FREE, fields=_STEPS, refs=1, note="FLUX.1 [dev]; -i as image_prompt"),
    _flux("flux-pro-1.1-ultra", sizes=None, fields={}, refs=1, note="up to 4 MP; --aspect 21:9..9:21, no -s; -i as image_prompt"),
    _flux("flux-kontext-pro", sizes=None, fields={}, refs=1, note="edits with imgen edit (input_image); --aspect 21:9..9:21"),
    _flux("flux-kontext-max", sizes=None, fields={}, refs=1, note="edits with imgen edit (input_image); --aspect 21:9..9:21"),
    _flux("flux-2-pro", sizes=FLUX2_FREE, fields={}, refs=8, safety=5, note="FLUX.2; sizes on steps of 16 up to 4 MP; -i up to 8 (input_image, _2..)"),
    _flux("flux-2-max", sizes=FLUX2_FREE, fields={}, refs=8, safety=5, note="FLUX.2; sizes on steps of 16 up to 4 MP; -i up to 8"),
    _flux("flux-2-flex", sizes=FLUX2_FREE, fields={"steps": IntRange(1, 50), "guidance_scale": FloatRange(1.5, 10.0)}, refs=8, safety=5,
          note="FLUX.2 [flex]: --steps and --guidance; sizes on steps of 16 up to 4 MP"),
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

# The records the user's config file describes ([models."ID"]); config.settings sets them each
# time it reads the file. They come first: a user's record of a built-in id replaces it.
_USER: tuple[ModelSpec, ...] = ()


def use_user_specs(specs: tuple[ModelSpec, ...]) -> None:
    global _USER
    _USER = specs


def all_specs() -> tuple[ModelSpec, ...]:
    return _USER + SPECS


def builtin(model_id: str) -> ModelSpec | None:
    return next((s for s in SPECS if model_id == s.id or model_id in s.aliases), None)


def lookup(model_id: str, dialect: str | None = None) -> ModelSpec | None:
    """The record for `model_id`: the user's before built-in ones, exact ids and aliases before
    families, and among equals the one for `dialect` (gpt-image-1.5 exists both on
    OpenAI-shaped APIs and on the envelope)."""
    for table in (_USER, SPECS):
        for exact in (True, False):
            found = [s for s in table if (model_id == s.id or model_id in s.aliases) == exact and s.matches(model_id)]
            if found:
                same = [s for s in found if s.dialect == dialect]
                openai = [s for s in found if s.dialect == "openai"]
                return (same or openai or found)[0]
    return None


def known_ids() -> list[str]:
    specs = all_specs()
    return sorted({s.id for s in specs} | {a for s in specs for a in s.aliases})


def close_ids(model_id: str, n: int = 3) -> list[str]:
    return difflib.get_close_matches(model_id, known_ids(), n=n, cutoff=0.5)


def sizes_for(model_id: str, dialect: str | None = None) -> list[str]:
    """Sizes to offer for completion: presets first, then valid examples. [] when unknown."""
    spec = lookup(model_id, dialect)
    sizes = spec.sizes if spec else None
    return list(sizes.all_sizes()) if sizes else []
