"""`imgen show` on a real terminal (tmux): with nothing in the environment naming a graphics protocol, the terminal is
asked, says no sixel, and gets half-blocks in the colours of the image."""

from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import time
import uuid

import pytest
from PIL import Image

from conftest import IMGEN, require_tool

pytestmark = pytest.mark.slow

# Everything detection reads: the pane gets none of the developer's own.
UNSET = ("TERM_PROGRAM", "KITTY_WINDOW_ID", "GHOSTTY_RESOURCES_DIR", "WEZTERM_PANE", "LC_TERMINAL", "ITERM_SESSION_ID",
         "KONSOLE_VERSION", "WT_SESSION", "MLTERM", "STY", "COLORTERM", "CI", "IMGEN_PREVIEW")


def _tmux_screen(command: str, env: dict[str, str], seconds: float) -> str:
    """Run command in a detached tmux pane; the pane once it has finished, colours included (capture-pane -e)."""
    require_tool("tmux", "tmux")
    session = f"imgen-{uuid.uuid4().hex[:8]}"
    unset = " ".join(f"-u {name}" for name in UNSET)
    assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    shell = f"env {unset} {assignments} {command}; echo EXIT=$?; sleep 30"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "30", shell], check=True)
    screen = ""
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            screen = subprocess.run(["tmux", "capture-pane", "-p", "-e", "-t", session], check=False,
                                    capture_output=True, text=True).stdout
            if "EXIT=" in screen:
                break
            time.sleep(0.05)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False, capture_output=True)
    return screen


def _cells(screen: str) -> list[list[tuple[str, str | None, str | None]]]:
    """The half-block lines of the pane, each cell as (glyph, foreground SGR, background SGR). tmux sets attributes
    only where they change, so the state carries from line to line."""
    fg = bg = None
    lines = []
    for line in screen.splitlines():
        cells = []
        for sgr, glyph in re.findall(r"\x1b\[([0-9;]*)m|(.)", line):
            if glyph:
                cells.append((glyph, fg, bg))
            elif sgr in ("", "0"):
                fg = bg = None
            elif sgr.startswith("38;"):
                fg = sgr[3:]
            elif sgr.startswith("48;"):
                bg = sgr[3:]
            elif sgr == "39":
                fg = None
            elif sgr == "49":
                bg = None
        if any(glyph == "\u2580" for glyph, _, _ in cells):
            lines.append(cells)
    return lines


@pytest.mark.parametrize("colorterm, red, blue", [("truecolor", "2;255;0;0", "2;0;0;255"), (None, "5;196", "5;21")])
def test_show_draws_half_blocks_in_the_images_colours(tmp_path, colorterm, red, blue):
    picture = tmp_path / "red-blue.png"
    image = Image.new("RGB", (32, 32), (255, 0, 0))
    image.paste((0, 0, 255), (0, 16, 32, 32))
    out = io.BytesIO()
    image.save(out, format="PNG")
    picture.write_bytes(out.getvalue())
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "TERM": "xterm-256color"}
    if colorterm:
        env["COLORTERM"] = colorterm
    screen = _tmux_screen(f"{IMGEN} show -r 4 {picture}", env, 20)
    assert "EXIT=0" in screen, screen
    assert str(picture) in screen
    assert "\x1bP" not in screen and "previews need a terminal" not in screen, screen
    cells = _cells(screen)
    # 32 x 32 pixels in 4 rows of 8 x 16 px cells: 8 columns, the upper two rows red, the lower two blue.
    assert [len(line) for line in cells] == [8, 8, 8, 8], screen
    assert all(cell == ("\u2580", red, red) for line in cells[:2] for cell in line), cells
    assert all(cell == ("\u2580", blue, blue) for line in cells[2:] for cell in line), cells


def test_generate_preview_in_a_terminal_draws_the_saved_image_below_the_progress(tmp_path, server):
    """generate --preview on a real terminal, progress display and all: the image appears once, whole, and the
    path still goes to stdout (here the pane) as a line of its own."""
    from conftest import API_KEY

    out = tmp_path / "out"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "TERM": "xterm-256color", "COLORTERM": "truecolor",
           "IMGEN_BASE_URL": server.base_url, "COMETAPI_KEY": API_KEY, "IMGEN_CONFIG": str(tmp_path / "c.toml"),
           "IMGEN_METADATA": "none", "IMGEN_DATA_DIR": str(tmp_path / "data"), "IMGEN_STATE_DIR": str(tmp_path / "state")}
    command = f"{IMGEN} generate -m gpt-image-1 --stream --partials 2 --preview --preview-rows 4 -o {out} 'a cat'"
    screen = _tmux_screen(command, env, 30)
    assert "EXIT=0" in screen, screen
    cells = _cells(screen)
    assert len(cells) == 4, screen  # three images drawn in one place: four rows, not twelve
    saved = [p.name for p in out.iterdir()]
    assert len(saved) == 1 and any(saved[0] in line for line in screen.splitlines()), screen
