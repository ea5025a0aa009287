"""JSON from outside (an API's answer, a stream event, a batch line, a record on disk), parsed with
bounds: nesting that would exhaust the stack is an error like any other malformed document, not a
crash, and numbers JSON cannot carry (NaN, Infinity, 1e999) are refused before anything is sent."""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 64  # far past any real document; well inside the recursion every later walk of it needs


class TooDeep(ValueError):
    def __init__(self) -> None:
        super().__init__(f"it is nested deeper than {MAX_DEPTH} levels")


def loads(text: str | bytes, *, finite: bool = False) -> Any:
    """json.loads, raising ValueError (TooDeep among them) for any document it cannot take whole;
    `finite`: NaN, Infinity and numbers past float's range are refused too."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float) if finite else json.loads(text)
    except RecursionError:
        raise TooDeep() from None
    check_depth(value)
    return value


def check_depth(value: Any) -> None:
    """Walk without recursion: a deep document must fail here, not in the recursive code after."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > MAX_DEPTH:
            raise TooDeep()
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON can carry")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range for a JSON number")
    return value
