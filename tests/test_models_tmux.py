"""`imgen models` on a real terminal (tmux) 80 columns wide: no model id or price is broken
across lines, whatever Rich or the terminal would wrap."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
import uuid

import pytest

from conftest import IMGEN, require_tool
from fakeserver import FakeServer

pytestmark = pytest.mark.slow

WIDTH = 80


@pytest.fixture
def fake(tmp_path, monkeypatch):
    monkeypatch.setenv("IMGEN_CACHE_DIR", str(tmp_path / "cache"))
    with FakeServer() as srv:
        yield srv


def _tmux_screen(args: list[str], seconds: float = 30) -> list[str]:
    """Run imgen in a detached tmux pane WIDTH columns wide; return every line it showed,
    scrolled off or not, split where the terminal wrapped it."""
    require_tool("tmux", "tmux")
    # A server of our own, without the developer's tmux.conf, so nothing resizes or restyles the pane.
    tmux = ["tmux", "-f", "/dev/null", "-L", f"imgen-{uuid.uuid4().hex[:8]}"]
    # Without COLUMNS Rich asks the terminal for its width, as it does for a person.
    command = f"env -u COLUMNS -u LINES TERM=xterm-256color {shlex.join([IMGEN, *args])}; echo EXIT=$?; sleep 30"
    subprocess.run([*tmux, "new-session", "-d", "-x", str(WIDTH), "-y", "50", command], check=True, env=os.environ)
    try:
        width = subprocess.run([*tmux, "display-message", "-p", "#{pane_width}"], check=False, capture_output=True, text=True).stdout.strip()
        assert width == str(WIDTH), f"the tmux pane is {width} columns wide, not {WIDTH}"
        lines: list[str] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            # -S -: the history too, as the table is taller than the pane; no -J: a wrapped line stays split.
            screen = subprocess.run([*tmux, "capture-pane", "-p", "-S", "-"], check=False, capture_output=True, text=True).stdout
            lines = screen.splitlines()
            if any(line.startswith("EXIT=") for line in lines):
                break
            time.sleep(0.05)
    finally:
        subprocess.run([*tmux, "kill-server"], check=False, capture_output=True)
    assert "EXIT=0" in lines, "\n".join(lines)
    return lines


def _json(args: list[str]) -> dict:
    proc = subprocess.run([IMGEN, *args, "--json"], capture_output=True, text=True, stdin=subprocess.DEVNULL, check=True)
    return json.loads(proc.stdout)


def _on_one_line(text: str, lines: list[str]) -> bool:
    return any(text in line for line in lines)


def test_models_ids_stay_whole_at_80_columns():
    lines = _tmux_screen(["models"])
    ids = {m["id"] for m in _json(["models"])["models"]}
    broken = sorted(i for i in ids if not _on_one_line(i, lines))
    assert not broken, f"ids split across lines: {broken}\n" + "\n".join(lines)


def test_remote_ids_and_prices_stay_whole_at_80_columns(fake):
    args = ["models", "--remote", "--base-url", fake.base_url]
    lines = _tmux_screen(args)
    from imgen.models import catalog

    entries = catalog.load(fake.base_url).entries  # the copy imgen just cached: what it showed
    assert {e["id"] for e in _json(args)["models"]} == {e.id for e in entries}
    broken = sorted(e.id for e in entries if not _on_one_line(e.id, lines))
    broken += sorted(e.pricing.summary() for e in entries if e.pricing and not _on_one_line(e.pricing.summary(), lines))
    assert not broken, f"split across lines: {broken}\n" + "\n".join(lines)
