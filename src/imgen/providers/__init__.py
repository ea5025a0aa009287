"""API dialects. Each module offers `build_request(req) -> ApiCall` (pure) and
`parse(payload) -> GenerationResponse`; the offline placeholder offers `generate(req)` instead."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ..errors import ConfigError

DIALECTS = {
    "openai": "openai_images",
    "envelope": "envelope",
    "placeholder": "placeholder",
}


@dataclass
class ApiCall:
    method: str
    path: str
    body: dict[str, Any] = field(default_factory=dict)
    stream: bool = False


def get(dialect: str) -> ModuleType:
    module = DIALECTS.get(dialect)
    if module is None:
        raise ConfigError(
            f"api = {dialect!r}: unknown API dialect",
            hint="use one of: " + ", ".join(DIALECTS),
        )
    return importlib.import_module(f"{__name__}.{module}")
