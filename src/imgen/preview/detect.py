"""Which inline-image protocol the terminal on a stream speaks.

The environment answers for most terminals; where it cannot (xterm and its many look-alikes) the terminal itself is
asked for its Primary Device Attributes, whose parameter 4 means sixel. Inside tmux, an outer terminal named by the
environment is reached through tmux's passthrough, which tmux 3.3+ drops unless `allow-passthrough` is on.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO

PROTOCOLS = ("kitty", "iterm", "sixel", "blocks", "none")
GRAPHICS = ("kitty", "iterm", "sixel")  # the protocols that draw pixels, so need passthrough inside tmux

QUERY_TIMEOUT = 0.2  # seconds a terminal gets to answer; every terminal worth asking answers in a few ms
TMUX_TIMEOUT = 1.0

_DA1_REPLY = re.compile(rb"\x1b\[\?([0-9;]*)c")


@dataclass(frozen=True)
class Choice:
    """How to draw: the protocol, and whether its escapes must be wrapped in tmux passthrough to reach the terminal
    outside tmux."""

    protocol: str
    tmux_passthrough: bool = False

    def wrap(self, payload: bytes) -> bytes:
        return wrap_tmux(payload) if self.tmux_passthrough else payload


def wrap_tmux(payload: bytes) -> bytes:
    """tmux's passthrough DCS: tmux forwards the body to the outer terminal with each doubled ESC halved."""
    return b"\x1bPtmux;" + payload.replace(b"\x1b", b"\x1b\x1b") + b"\x1b\\"


def choose(
    environ: Mapping[str, str],
    stream: IO,
    query: bool = True,
    *,
    passthrough_allowed: Callable[[], bool] | None = None,
    device_attributes: Callable[[], tuple[str, ...] | None] | None = None,
) -> Choice:
    """The protocol for drawing on `stream`. IMGEN_PREVIEW overrides everything (a value not in PROTOCOLS raises
    ValueError); otherwise "none" off a terminal, under CI and for TERM=dumb. `query` allows asking the terminal on
    /dev/tty when the environment is inconclusive. The two callables replace the tmux option check and the terminal
    query (tests inject them)."""
    passthrough_allowed = passthrough_allowed or tmux_allows_passthrough
    device_attributes = device_attributes or query_device_attributes
    in_tmux = bool(environ.get("TMUX"))
    forced = environ.get("IMGEN_PREVIEW", "").strip().lower()
    if forced:
        if forced not in PROTOCOLS:
            raise ValueError(f"IMGEN_PREVIEW={environ['IMGEN_PREVIEW']!r} is not one of {', '.join(PROTOCOLS)}")
        return Choice(forced, in_tmux and forced in GRAPHICS and passthrough_allowed())
    if environ.get("CI") or environ.get("TERM") == "dumb" or not _isatty(stream):
        return Choice("none")
    if in_tmux:
        outer = from_environment(environ, inside_multiplexer=True)
        if outer in GRAPHICS and passthrough_allowed():
            return Choice(outer, True)
    elif not environ.get("STY"):  # GNU screen has its own passthrough, not spoken here: only its own answer counts
        found = from_environment(environ)
        if found:
            return Choice(found)
    # Inside tmux this asks tmux, which says 4 only when it draws sixel itself (3.4+ built with sixel).
    if query and "4" in (device_attributes() or ()):
        return Choice("sixel")
    return Choice("blocks")


def from_environment(environ: Mapping[str, str], inside_multiplexer: bool = False) -> str | None:
    """The protocol the environment names, or None when it does not tell. TERM_PROGRAM and TERM are the current
    terminal's own (a multiplexer replaces them), so they come before variables a terminal leaves to its children,
    which survive into tmux and into other terminals started from it."""
    program = environ.get("TERM_PROGRAM", "")
    term = environ.get("TERM", "")
    if not inside_multiplexer:
        if program == "ghostty" or term in ("xterm-kitty", "xterm-ghostty"):
            return "kitty"  # Ghostty implements the kitty graphics protocol
        if program in ("iTerm.app", "WezTerm"):
            return "iterm"
        if term.startswith(("foot", "mlterm")) or "sixel" in term:
            return "sixel"
        if program == "Apple_Terminal":
            return "blocks"
    if environ.get("KITTY_WINDOW_ID") or environ.get("GHOSTTY_RESOURCES_DIR"):
        return "kitty"
    if environ.get("WEZTERM_PANE") or environ.get("LC_TERMINAL") == "iTerm2" or environ.get("ITERM_SESSION_ID"):
        return "iterm"  # WezTerm's kitty graphics are off by default; its iTerm2 images are always on
    if environ.get("KONSOLE_VERSION") or environ.get("WT_SESSION") or environ.get("MLTERM"):
        return "sixel"  # Konsole 22.04+ and Windows Terminal 1.22+ draw sixel; Konsole's kitty support is partial
    return None


def _isatty(stream: IO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def tmux_allows_passthrough() -> bool:
    """Whether tmux forwards passthrough sequences: `allow-passthrough` on or all (tmux 3.3+). Any failure (no tmux
    on PATH, an older tmux without the option, a timeout) counts as no."""
    import subprocess

    try:
        done = subprocess.run(["tmux", "show", "-gv", "allow-passthrough"], check=False, capture_output=True, text=True,
                              timeout=TMUX_TIMEOUT, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and done.stdout.strip() in ("on", "all")


def query_device_attributes(timeout: float = QUERY_TIMEOUT) -> tuple[str, ...] | None:
    """The parameters of the terminal's Primary Device Attributes reply (ESC [ ? 62 ; 4 ; ... c), or None when there
    is no terminal to ask, the process is not in its foreground, or no answer comes within `timeout`.

    The reply arrives as input, so the terminal is put in non-canonical, no-echo mode for the wait (the reply must
    not show, nor wait for Enter) and restored whatever happens. A background process must not touch the terminal at
    all: changing its modes would stop the process with SIGTTOU."""
    try:
        import select
        import termios
    except ImportError:  # not a POSIX system
        return None
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    try:
        if os.tcgetpgrp(fd) != os.getpgrp():
            return None
        saved = termios.tcgetattr(fd)
        quiet = termios.tcgetattr(fd)
        quiet[3] &= ~(termios.ICANON | termios.ECHO)
        quiet[6][termios.VMIN] = 0
        quiet[6][termios.VTIME] = 0
        try:
            termios.tcsetattr(fd, termios.TCSANOW, quiet)
            os.write(fd, b"\x1b[c")
            return _read_reply(fd, timeout, select.select)
        finally:
            termios.tcsetattr(fd, termios.TCSANOW, saved)
    except (OSError, termios.error):
        return None
    finally:
        os.close(fd)


def _read_reply(fd: int, timeout: float, wait: Callable) -> tuple[str, ...] | None:
    import time

    deadline = time.monotonic() + timeout
    got = b""
    while (left := deadline - time.monotonic()) > 0 and len(got) < 4096:
        ready, _, _ = wait([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 256)
        if not chunk:
            break
        got += chunk
        params = parse_device_attributes(got)
        if params is not None:
            return params
    return None


def parse_device_attributes(reply: bytes) -> tuple[str, ...] | None:
    found = _DA1_REPLY.search(reply)
    return tuple(p for p in found.group(1).decode("ascii").split(";") if p) if found else None
