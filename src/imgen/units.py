"""Sizes as people read them, in one system (binary: KiB, MiB, GiB) wherever imgen prints one:
progress bars, limits, stream lines, errors."""

from __future__ import annotations


def human_size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value == int(value) or value >= 100 else f"{value:.1f} {unit}"
    return f"{n} bytes"
