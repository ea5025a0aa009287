"""What a generation costs, from the catalog's pricing, and on what basis:

  billed     computed from the usage the API reported and the catalog's token (or time) prices
  estimated  from a per-request price, or before the call from the usage typical of the size
             and quality asked for (token-priced models: gpt-image-*, Gemini), documented below
  unknown    no figure, with the reason (no price, another currency, nothing to go on)

Never a silent 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .catalog import Catalog, CatalogEntry, Pricing


def price_for(model_id: str, entries: Catalog | Iterable[CatalogEntry]) -> Pricing | None:
    if isinstance(entries, Catalog):
        entry = entries.get(model_id)
        return entry.pricing if entry else None
    return next((e.pricing for e in entries if e.id == model_id), None)


def _usd(pricing: Pricing) -> bool:
    return pricing.currency is None or "USD" in pricing.currency.upper()


# Gemini's usageMetadata names for the same counts; its thinking tokens are billed as output.
_ALSO = {
    "input_tokens": (("promptTokenCount",), ("prompt_token_count",)),
    "output_tokens": (("candidatesTokenCount", "thoughtsTokenCount"), ("candidates_token_count", "thoughts_token_count")),
}


def _count(usage: Mapping[str, Any] | None, key: str) -> int | None:
    usage = usage or {}
    names = [(key,), *_ALSO.get(key, ())]
    for group in names:
        values = [usage.get(name) for name in group]
        counts = [v for v in values if isinstance(v, int) and not isinstance(v, bool) and v >= 0]
        if counts:
            return sum(counts)
    return None


@dataclass(frozen=True)
class Cost:
    usd: float | None
    basis: str  # "billed" | "estimated" | "unknown"
    note: str

    def to_dict(self) -> dict[str, Any]:
        return {"usd": self.usd, "basis": self.basis, "note": self.note}


# Output tokens of one image, as OpenAI publishes them for gpt-image-1 (quality x size); other
# sizes scale with their area. "auto" (and unset) quality is counted as high: a budget kept with
# the larger figure is kept.
GPT_IMAGE_TOKENS = {
    "low": {"1024x1024": 272, "1024x1536": 408, "1536x1024": 400},
    "medium": {"1024x1024": 1056, "1024x1536": 1584, "1536x1024": 1568},
    "high": {"1024x1024": 4160, "1024x1536": 6240, "1536x1024": 6208},
}
# Gemini's image output tokens: 1290 per image (flash); the pro model 1120 up to 2K, 2000 at 4K.
GEMINI_TOKENS = {"gemini-3-pro-image-preview": {"4K": 2000, "default": 1120}, "default": {"default": 1290}}


def typical_usage(model_id: str, n: int, fields: Mapping[str, Any], prompt: str = "") -> dict[str, int] | None:
    """The usage a request of this size and quality typically reports, for a token-priced model
    imgen knows the figures of; None for others."""
    text_tokens = max(1, len(prompt) // 4)  # about four characters a token
    if model_id.startswith("gpt-image"):
        quality = str(fields.get("quality") or "high")
        table = GPT_IMAGE_TOKENS.get(quality, GPT_IMAGE_TOKENS["high"])
        size = str(fields.get("size") or "1024x1024")
        if size not in table:
            w, _, h = size.partition("x")
            area = int(w) * int(h) if w.isdigit() and h.isdigit() else 1024 * 1024
            per_image = round(table["1024x1024"] * area / (1024 * 1024))
        else:
            per_image = table[size]
        return {"input_tokens": text_tokens, "output_tokens": per_image * n}
    if model_id.startswith("gemini"):
        sizes = GEMINI_TOKENS.get(model_id, GEMINI_TOKENS["default"])
        return {"input_tokens": text_tokens, "output_tokens": sizes.get(str(fields.get("size")), sizes["default"]) * n}
    return None


def estimate(
    model_id: str,
    n: int,
    catalog: Catalog | Iterable[CatalogEntry],
    usage: Mapping[str, Any] | None = None,
    *,
    fields: Mapping[str, Any] | None = None,
    prompt: str = "",
) -> Cost:
    """The cost of `n` images of `model_id`: from the reported `usage` when there is one, else
    (given the request's `fields`) from the usage typical of it."""
    pricing = price_for(model_id, catalog)
    if pricing is None:
        return Cost(None, "unknown", f"no price for {model_id} in the catalog")
    if not _usd(pricing):
        return Cost(None, "unknown", f"{model_id} is priced in {pricing.currency}; imgen totals US dollars only")
    if pricing.per_request is not None:
        # Decimal: 0.04 x 3 should print as 0.12, not 0.12000000000000001.
        total = Decimal(str(pricing.per_request)) * n
        return Cost(float(total), "estimated", f"${pricing.per_request:g} per request x {n}")
    if pricing.input is not None or pricing.output is not None:
        rates = f"${pricing.input or 0:g} input / ${pricing.output or 0:g} output per million tokens"
        used_in, used_out = _count(usage, "input_tokens"), _count(usage, "output_tokens")
        if used_in is not None or used_out is not None:
            usd = ((used_in or 0) * (pricing.input or 0) + (used_out or 0) * (pricing.output or 0)) / 1e6
            return Cost(usd, "billed", f"from the reported usage: {used_in or 0} input + {used_out or 0} output tokens at {rates}")
        typical = typical_usage(model_id, n, fields, prompt) if fields is not None else None
        if typical is None:
            return Cost(None, "unknown", f"priced by tokens ({rates}); known only once the response reports its usage")
        usd = (typical["input_tokens"] * (pricing.input or 0) + typical["output_tokens"] * (pricing.output or 0)) / 1e6
        return Cost(usd, "estimated", f"typical usage for the size and quality: {typical['output_tokens']} output tokens at {rates}")
    if pricing.per_second is not None:
        seconds = (usage or {}).get("seconds")
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds > 0:
            return Cost(seconds * pricing.per_second, "billed", f"{seconds:g} s at ${pricing.per_second:g}/s")
        return Cost(None, "unknown", f"priced by time (${pricing.per_second:g}/s); known only once the response reports it")
    return Cost(None, "unknown", f"no price for {model_id} in the catalog")


def estimate_cost(
    model_id: str,
    n: int,
    catalog: Catalog | Iterable[CatalogEntry],
    usage: Mapping[str, Any] | None = None,
) -> tuple[float | None, str]:
    """(US dollars or None, how the figure was reached or why there is none)."""
    found = estimate(model_id, n, catalog, usage)
    return found.usd, found.note
