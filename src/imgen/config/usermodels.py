"""Models the user describes in the config file, for gateways that serve ids imgen does not know.

    [models."acme-image-1"]
    like = "gpt-image-1"                 # start from a built-in record and change fields
    sizes = ["1024x1024", "2048x2048"]
    n = 4                                # or [1, 4]

    [models."acme-flux"]
    dialect = "openai"                   # or describe one from nothing
    sizes = ["1024x1024", "1536x1024"]
    ratios = ["1:1", "16:9"]             # a model that takes aspect_ratio itself
    price_per_image = 0.03
    [models."acme-flux".fields]
    seed = [0, 4294967295]               # [lo, hi] numbers, ["a", "b"] choices, "text", "bool"

Each becomes a ModelSpec the capability check treats like a built-in one. A malformed table is a
ConfigError naming the file, the line and the key.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import dialects
from ..errors import ConfigError
from ..models import capabilities
from ..models.capabilities import ModelSpec
from ..models.rules import Bool, Enum, FloatRange, IntRange, ListOf, Rule, Sizes, Text
from ..request import FLAG_FOR_FIELD

KEYS = ("like", "dialect", "provider", "sizes", "default_size", "n", "ratios", "fields", "prompt_max", "price_per_image", "note")
_NOT_FIELDS = {"prompt", "model", "aspect", "n", "size", "aspect_ratio"}  # set by their own keys above
FIELD_NAMES = tuple(sorted(set(FLAG_FOR_FIELD) - _NOT_FIELDS))


def load(path: Path, data: Mapping[str, Any]) -> tuple[ModelSpec, ...]:
    tables = data.get("models", {})
    if not isinstance(tables, dict):
        raise _error(path, None, None, 'models must be tables: [models."ID"]')
    return tuple(_spec(path, model_id, table) for model_id, table in tables.items())


def _spec(path: Path, model_id: str, table: Any) -> ModelSpec:
    def fail(key: str | None, what: str) -> ConfigError:
        return _error(path, model_id, key, what)

    if not isinstance(table, dict):
        raise fail(None, f'must be a table: [models."{model_id}"]')
    for key in table:
        if key not in KEYS:
            raise fail(key, f"is not a key a model takes; use: {', '.join(KEYS)}")
    like = table.get("like")
    if like is not None:
        base = capabilities.builtin(str(like)) if isinstance(like, str) else None
        if base is None:
            raise fail("like", f"{like!r} is not a built-in model; use one of: {', '.join(s.id for s in capabilities.SPECS)}")
        base = dataclasses.replace(base, id=model_id, aliases=(), family_pattern=None, family_label=None)
    else:
        if "dialect" not in table:
            raise fail(None, 'needs like = "A-BUILT-IN-ID", or a dialect')
        base = ModelSpec(id=model_id, provider="", dialect="openai", fields={}, prompt_max=32000, results=("url", "b64_json"),
                         default_size=None, features=("text-to-image",))
    fields: dict[str, Rule] = dict(base.fields)
    changes: dict[str, Any] = {"user": True, "provider": base.provider or "user-defined"}
    dialect = table.get("dialect")
    if dialect is not None:
        if dialect not in dialects.DIALECTS:
            raise fail("dialect", f"{dialect!r} is not an API imgen speaks; use one of: {', '.join(dialects.DIALECTS)}")
        changes["dialect"] = dialect
    for key in ("provider", "note"):
        if key in table:
            changes[key] = _string(table[key], lambda what, k=key: fail(k, what))
    if "sizes" in table:
        sizes = table["sizes"]
        if not isinstance(sizes, list) or not sizes or not all(isinstance(s, str) and s for s in sizes):
            raise fail("sizes", 'must be a list of sizes, e.g. ["1024x1024", "1536x1024"]')
        fields["size"] = Sizes(tuple(sizes))
        changes["aspects"] = {}  # the inherited labels named the old sizes
        changes["default_size"] = sizes[0]
    if "default_size" in table:
        changes["default_size"] = _string(table["default_size"], lambda what: fail("default_size", what))
    if "n" in table:
        lo, hi = _range(table["n"], lambda what: fail("n", what + "; e.g. n = 4 or n = [1, 4]"))
        fields["n"] = IntRange(lo, hi)
    if "ratios" in table:
        from ..models import aspect  # only a record that lists ratios needs them parsed

        ratios = table["ratios"]
        try:
            parsed = [str(aspect.Ratio.parse(r)) for r in ratios] if isinstance(ratios, list) and ratios else None
        except (aspect.AspectError, TypeError):
            parsed = None
        if not parsed:
            raise fail("ratios", 'must be a list of W:H ratios, e.g. ["1:1", "16:9"]')
        fields["aspect_ratio"] = Enum(tuple(parsed))
    extra = table.get("fields", {})
    if not isinstance(extra, dict):
        raise fail("fields", "must be a table of field = rule")
    for name, raw in extra.items():
        if name not in FIELD_NAMES:
            raise fail(f"fields.{name}", f"is not a field imgen sets; use one of: {', '.join(FIELD_NAMES)} (others go through --param)")
        fields[name] = _rule(raw, lambda what, n=name: fail(f"fields.{n}", what))
    if "prompt_max" in table:
        changes["prompt_max"] = _range(table["prompt_max"], lambda what: fail("prompt_max", what))[1]
    if "price_per_image" in table:
        price = table["price_per_image"]
        if not isinstance(price, (int, float)) or isinstance(price, bool) or price < 0:
            raise fail("price_per_image", "must be a number of US dollars, 0 or more")
        changes["price_per_image"] = float(price)
    return dataclasses.replace(base, fields=fields, **changes)


def _string(value: Any, fail: Any) -> str:
    if not isinstance(value, str) or not value:
        raise fail("must be text")
    return value


def _range(value: Any, fail: Any) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return 1, value
    ok = isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    if not ok or not 1 <= value[0] <= value[1]:
        raise fail("must be a whole number of 1 or more, or [lo, hi]")
    return value[0], value[1]


def _rule(raw: Any, fail: Any) -> Rule:
    if raw == "text":
        return Text()
    if raw == "bool":
        return Bool()
    if raw == "images":
        return ListOf(14)
    if isinstance(raw, list) and raw and all(isinstance(v, str) for v in raw):
        return Enum(tuple(raw))
    if isinstance(raw, list) and len(raw) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
        lo, hi = raw
        if lo > hi:
            raise fail(f"[{lo}, {hi}]: the lower bound is above the upper")
        return IntRange(lo, hi) if all(isinstance(v, int) for v in raw) else FloatRange(float(lo), float(hi))
    raise fail('must be "text", "bool", "images", a list of choices, or [lo, hi]')


def _error(path: Path, model_id: str | None, key: str | None, what: str) -> ConfigError:
    where = f'models."{model_id}"' + (f".{key}" if key else "") if model_id is not None else "models"
    line = _line_of(path, model_id, key.split(".")[-1] if key else None)
    at = f" (line {line})" if line else ""
    return ConfigError(f"{path}{at}: {where} {what}", hint="fix the table by hand (see README: Models a user can add)")


def _line_of(path: Path, model_id: str | None, key: str | None) -> int | None:
    """The line of the key (or the table's header) in the file: tomllib keeps no positions."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if model_id is None:
        return next((i for i, text in enumerate(lines, 1) if re.match(r"\s*\[+\s*models\b", text)), None)
    name = r"""(?:"%s"|'%s'|%s)""" % ((re.escape(model_id),) * 3)
    header = re.compile(r"\s*\[\s*models\s*\.\s*" + name + r"\s*[\].]")
    start = next((i for i, text in enumerate(lines) if header.match(text)), None)
    if start is None:
        return None
    if key:
        key_line = re.compile(r"\s*" + re.escape(key) + r"\s*=")
        for i in range(start + 1, len(lines)):
            if lines[i].lstrip().startswith("[") and not lines[i].lstrip().startswith(f"[models.\"{model_id}\".fields"):
                break
            if key_line.match(lines[i]):
                return i + 1
    return start + 1
