"""Where a base URL's catalog is cached. Apart from the catalog itself so that pricing a run can
find there is no cached catalog (the usual case) without loading the catalog's records."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def normalize(base_url: str) -> str:
    return base_url.strip().rstrip("/")


def cache_dir() -> Path:
    override = os.environ.get("IMGEN_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_cache_path

    return user_cache_path("imgen")


def cache_path(base_url: str) -> Path:
    key = hashlib.sha256(normalize(base_url).encode()).hexdigest()[:16]
    return cache_dir() / f"catalog-{key}.json"


def is_cached(base_url: str) -> bool:
    """Whether a cache file is there to read (catalog.read_cache still decides whether it is usable)."""
    try:
        cache_path(base_url).stat()
    except OSError:
        return False
    return True
