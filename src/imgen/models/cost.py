"""What a generation costs, from the catalog's pricing.

A per-request price gives an exact figure before the call. A per-token price does not: the
token count is known only when the response reports its usage, so before that imgen says so
rather than guessing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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


def estimate_cost(
    model_id: str,
    n: int,
    catalog: Catalog | Iterable[CatalogEntry],
    usage: Mapping[str, Any] | None = None,
) -> tuple[float | None, str]:
    """(US dollars or None, how the figure was reached or why there is none)."""
    pricing = price_for(model_id, catalog)
    if pricing is None:
        return None, f"no price for {model_id} in the catalog"
    if not _usd(pricing):
        return None, f"{model_id} is priced in {pricing.currency}; imgen totals US dollars only"
    if pricing.per_request is not None:
        # Decimal: 0.04 x 3 should print as 0.12, not 0.12000000000000001.
        total = Decimal(str(pricing.per_request)) * n
        return float(total), f"${pricing.per_request:g} per request x {n}"
    if pricing.input is not None or pricing.output is not None:
        rates = f"${pricing.input or 0:g} input / ${pricing.output or 0:g} output per million tokens"
        used_in, used_out = _count(usage, "input_tokens"), _count(usage, "output_tokens")
        if used_in is None and used_out is None:
            return None, f"priced by tokens ({rates}); known only once the response reports its usage"
        usd = ((used_in or 0) * (pricing.input or 0) + (used_out or 0) * (pricing.output or 0)) / 1e6
        return usd, f"estimate from the reported usage: {used_in or 0} input + {used_out or 0} output tokens at {rates}"
    if pricing.per_second is not None:
        seconds = (usage or {}).get("seconds")
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds > 0:
            return seconds * pricing.per_second, f"estimate: {seconds:g} s at ${pricing.per_second:g}/s"
        return None, f"priced by time (${pricing.per_second:g}/s); known only once the response reports it"
    return None, f"no price for {model_id} in the catalog"
