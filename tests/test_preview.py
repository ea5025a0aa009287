"""Inline previews: which protocol each terminal gets, the escapes of each protocol byte for byte (or decoded back),
sizing, redrawing in place, life without Pillow, and `imgen show` on a pipe and on a real pseudo-terminal."""

from __future__ import annotations

import base64
import fcntl
import io
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time

import pytest
from PIL import Image

from conftest import IMGEN
from imgen.preview import (
    PROTOCOLS,
    Choice,
    NeedsPillow,
    Previewer,
    blocks,
    choose,
    draw,
    fit,
    iterm,
    kitty,
    sixel,
    tmux_allows_passthrough,
    wrap_tmux,
)
from imgen.preview.detect import _read_reply as read_reply
from imgen.preview.detect import parse_device_attributes

ESC = b"\x1b"
# Everything a terminal leaves in the environment that detection reads: none may leak in from the developer's own.
TERMINAL_VARS = ("TERM", "TERM_PROGRAM", "KITTY_WINDOW_ID", "GHOSTTY_RESOURCES_DIR", "WEZTERM_PANE", "LC_TERMINAL",
                 "ITERM_SESSION_ID", "KONSOLE_VERSION", "WT_SESSION", "MLTERM", "TMUX", "STY", "COLORTERM", "CI",
                 "IMGEN_PREVIEW")


class TTY(io.BytesIO):
    """A binary stream that says it is a terminal (and has no size, so the defaults apply)."""

    def isatty(self) -> bool:
        return True


def png_of(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def two_colour(width: int = 32, height: int = 32) -> Image.Image:
    image = Image.new("RGB", (width, height), (255, 0, 0))
    image.paste((0, 0, 255), (0, height // 2, width, height))
    return image


def never(*args):
    raise AssertionError("must not be called")


# --- detection --------------------------------------------------------------------------------------------------

DETECTED = {
    "kitty": ({"TERM": "xterm-kitty", "KITTY_WINDOW_ID": "1"}, "kitty"),
    "kitty by TERM alone": ({"TERM": "xterm-kitty"}, "kitty"),
    "kitty by its window id alone": ({"TERM": "xterm-256color", "KITTY_WINDOW_ID": "7"}, "kitty"),
    "ghostty": ({"TERM": "xterm-ghostty", "TERM_PROGRAM": "ghostty"}, "kitty"),
    "ghostty by TERM_PROGRAM": ({"TERM": "xterm-256color", "TERM_PROGRAM": "ghostty"}, "kitty"),
    "ghostty by TERM": ({"TERM": "xterm-ghostty"}, "kitty"),
    "iTerm2": ({"TERM": "xterm-256color", "TERM_PROGRAM": "iTerm.app"}, "iterm"),
    "iTerm2 over ssh (LC_TERMINAL)": ({"TERM": "xterm-256color", "LC_TERMINAL": "iTerm2"}, "iterm"),
    "WezTerm": ({"TERM": "xterm-256color", "TERM_PROGRAM": "WezTerm"}, "iterm"),
    "WezTerm by its pane": ({"TERM": "wezterm", "WEZTERM_PANE": "0"}, "iterm"),
    "WezTerm started from kitty": ({"TERM_PROGRAM": "WezTerm", "KITTY_WINDOW_ID": "1"}, "iterm"),
    "foot": ({"TERM": "foot"}, "sixel"),
    "foot-extra": ({"TERM": "foot-extra"}, "sixel"),
    "a sixel TERM": ({"TERM": "xterm-sixel"}, "sixel"),
    "mlterm": ({"TERM": "mlterm"}, "sixel"),
    "Konsole": ({"TERM": "xterm-256color", "KONSOLE_VERSION": "230804"}, "sixel"),
    "Windows Terminal": ({"TERM": "xterm-256color", "WT_SESSION": "5a1f-..."}, "sixel"),
    "Apple Terminal": ({"TERM": "xterm-256color", "TERM_PROGRAM": "Apple_Terminal"}, "blocks"),
}


@pytest.mark.parametrize("case", DETECTED)
def test_each_terminal_gets_its_protocol_without_asking_it(case):
    environ, expected = DETECTED[case]
    assert choose(environ, TTY(), device_attributes=never, passthrough_allowed=never) == Choice(expected)


def test_xterm_without_a_query_gets_half_blocks():
    assert choose({"TERM": "xterm-256color"}, TTY(), query=False, device_attributes=never) == Choice("blocks")


@pytest.mark.parametrize("reply, expected", [(("62", "4", "22"), "sixel"), (("64", "1", "2", "6", "22"), "blocks"), (None, "blocks"),
                                             (("14",), "blocks")])
def test_xterm_is_asked_and_sixel_is_parameter_4(reply, expected):
    asked = []

    def attributes():
        asked.append(True)
        return reply

    assert choose({"TERM": "xterm-256color"}, TTY(), device_attributes=attributes) == Choice(expected)
    assert asked == [True]


@pytest.mark.parametrize("environ", [{"TERM": "dumb", "KITTY_WINDOW_ID": "1"}, {"TERM": "xterm-kitty", "CI": "true"}])
def test_dumb_terminals_and_ci_get_nothing(environ):
    assert choose(environ, TTY(), device_attributes=never) == Choice("none")


def test_a_stream_that_is_not_a_terminal_gets_nothing():
    assert choose({"TERM": "xterm-kitty"}, io.BytesIO(), device_attributes=never) == Choice("none")
    assert choose({"TERM": "xterm-kitty"}, object(), device_attributes=never) == Choice("none")  # no isatty at all


@pytest.mark.parametrize("value", PROTOCOLS)
def test_imgen_preview_overrides_everything(value):
    # Not a terminal, under CI, with kitty's variables: the override still wins.
    environ = {"IMGEN_PREVIEW": value, "CI": "1", "KITTY_WINDOW_ID": "1", "TERM": "dumb"}
    assert choose(environ, io.BytesIO(), device_attributes=never, passthrough_allowed=never) == Choice(value)


def test_a_bad_imgen_preview_names_the_values_allowed():
    with pytest.raises(ValueError) as caught:
        choose({"IMGEN_PREVIEW": "ascii"}, TTY())
    assert "ascii" in str(caught.value)
    assert all(p in str(caught.value) for p in PROTOCOLS)


TMUX = {"TMUX": "/tmp/tmux-1000/default,4242,0", "TERM_PROGRAM": "tmux", "TERM": "tmux-256color"}


@pytest.mark.parametrize("outer, expected", [
    ({"KITTY_WINDOW_ID": "3"}, "kitty"),
    ({"GHOSTTY_RESOURCES_DIR": "/usr/share/ghostty"}, "kitty"),
    ({"WEZTERM_PANE": "1"}, "iterm"),
    ({"LC_TERMINAL": "iTerm2"}, "iterm"),
    ({"KONSOLE_VERSION": "230804"}, "sixel"),
])
def test_tmux_passes_the_outer_terminals_protocol_through_when_allowed(outer, expected):
    choice = choose({**TMUX, **outer}, TTY(), device_attributes=never, passthrough_allowed=lambda: True)
    assert choice == Choice(expected, tmux_passthrough=True)


def test_tmux_without_passthrough_falls_back_to_what_tmux_itself_draws():
    environ = {**TMUX, "KITTY_WINDOW_ID": "3"}
    assert choose(environ, TTY(), device_attributes=lambda: ("1", "2"), passthrough_allowed=lambda: False) == Choice("blocks")
    # tmux 3.4+ built with sixel says 4 itself, and then draws sixel without any passthrough.
    assert choose(environ, TTY(), device_attributes=lambda: ("61", "4"), passthrough_allowed=lambda: False) == Choice("sixel")


def test_tmux_with_no_outer_terminal_known_does_not_ask_tmux_for_passthrough():
    assert choose(TMUX, TTY(), query=False, passthrough_allowed=never) == Choice("blocks")


def test_tmux_ignores_its_own_term_program_and_term():
    environ = {"TMUX": "x", "TERM_PROGRAM": "iTerm.app", "TERM": "foot"}  # stale values a shell could carry in
    assert choose(environ, TTY(), query=False, passthrough_allowed=never) == Choice("blocks")


def test_an_override_inside_tmux_is_wrapped_when_tmux_allows():
    environ = {**TMUX, "IMGEN_PREVIEW": "kitty"}
    assert choose(environ, TTY(), passthrough_allowed=lambda: True) == Choice("kitty", True)
    assert choose(environ, TTY(), passthrough_allowed=lambda: False) == Choice("kitty", False)
    assert choose({**TMUX, "IMGEN_PREVIEW": "blocks"}, TTY(), passthrough_allowed=never) == Choice("blocks", False)


def test_gnu_screen_is_not_sent_graphics_it_cannot_pass_on():
    environ = {"STY": "1234.pts-0.host", "TERM": "screen-256color", "KITTY_WINDOW_ID": "1"}
    assert choose(environ, TTY(), query=False) == Choice("blocks")


@pytest.mark.parametrize("script, expected", [
    ("echo on", True), ("echo all", True), ("echo off", False),
    ("echo 'invalid option: allow-passthrough' >&2; exit 1", False),
])
def test_the_tmux_option_is_read_from_tmux(tmp_path, monkeypatch, script, expected):
    fake = tmp_path / "tmux"
    fake.write_text(f'#!/bin/sh\n[ "$*" = "show -gv allow-passthrough" ] || exit 9\n{script}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert tmux_allows_passthrough() is expected


def test_no_tmux_on_the_path_means_no_passthrough(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert tmux_allows_passthrough() is False


def test_device_attributes_are_parsed_out_of_whatever_precedes_them():
    assert parse_device_attributes(b"typed ahead\x1b[?62;4;9;22c") == ("62", "4", "9", "22")
    assert parse_device_attributes(b"\x1b[?1;2c") == ("1", "2")
    assert parse_device_attributes(b"\x1b[?1;2") is None  # cut short


def test_reading_the_reply_waits_at_most_the_timeout():
    r, w = os.pipe()
    try:
        os.write(w, b"\x1b[?62;")
        started = time.monotonic()
        assert read_reply(r, 0.1, select.select) is None
        assert time.monotonic() - started < 1.0
        os.write(w, b"4c")
        assert read_reply(r, 0.1, select.select) is None  # the first half was already taken: no whole reply
        os.write(w, b"\x1b[?65;1;4c")
        assert read_reply(r, 1.0, select.select) == ("65", "1", "4")
    finally:
        os.close(r)
        os.close(w)


QUERY_CHILD = """
import sys, termios
from imgen.preview import query_device_attributes
before = termios.tcgetattr(0)
reply = query_device_attributes(timeout=float(sys.argv[1]))
print(repr(reply), termios.tcgetattr(0) == before, file=sys.stderr)
"""


def on_pty(argv: list[str], env: dict[str, str], answer: bytes | None, size=(24, 100, 0, 0), timeout=30.0) -> tuple[bytes, bytes, int]:
    """Run argv with a new pseudo-terminal as its controlling terminal, stdin and stderr (stdout is a pipe);
    `answer` is written to the terminal when the program asks for device attributes. (terminal output, stdout, rc)"""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *size))
    proc = subprocess.Popen(argv, stdin=slave, stdout=subprocess.PIPE, stderr=slave, env=env, start_new_session=True,
                            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))  # noqa: PLW1509 - no other way to a controlling tty
    os.close(slave)
    screen, answered = b"", False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every process holding the terminal has gone
                    break
                if not chunk:
                    break
                screen += chunk
            if answer is not None and not answered and b"\x1b[c" in screen:
                os.write(master, answer)
                answered = True
            if proc.poll() is not None and not ready:
                break
        stdout = proc.stdout.read()
        rc = proc.wait(timeout=10)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return screen, stdout, rc


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in TERMINAL_VARS}
    env.update(extra)
    return env


@pytest.mark.parametrize("answer, timeout, expected", [
    (b"\x1b[?62;4;22c", 2.0, "('62', '4', '22') True"),
    (None, 0.2, "None True"),
], ids=["answered", "silent"])
def test_the_terminal_is_asked_on_dev_tty_and_left_as_it_was(answer, timeout, expected):
    screen, _, rc = on_pty([sys.executable, "-c", QUERY_CHILD, str(timeout)], clean_env(), answer)
    assert rc == 0, screen
    # The question, then the child's answer alone: the terminal's reply was read, not echoed.
    assert screen == b"\x1b[c" + expected.encode() + b"\r\n"


# --- kitty ------------------------------------------------------------------------------------------------------

def test_kitty_sends_a_small_png_in_one_chunk():
    data = png_of(two_colour(4, 4))
    expected = b"\x1b_Ga=T,f=100,q=2,C=1,r=3,m=0;" + base64.b64encode(data) + b"\x1b\\"
    assert kitty.encode(data, rows=3) == expected


def test_kitty_chunks_at_4096_with_the_keys_on_the_first_only():
    data = bytes(range(256)) * 20  # 5120 bytes: 6828 of base64
    b64 = base64.b64encode(data)
    expected = (b"\x1b_Ga=T,f=100,q=2,C=1,i=77,c=12,m=1;" + b64[:4096] + b"\x1b\\"
                + b"\x1b_Gm=0;" + b64[4096:] + b"\x1b\\")
    assert kitty.encode(data, columns=12, image_id=77) == expected
    assert len(b64[:4096]) % 4 == 0


def test_kitty_three_chunks_are_marked_more_more_last():
    data = os.urandom(7000)  # 9336 of base64: 4096 + 4096 + 1144
    got = kitty.encode(data, rows=2)
    assert re.findall(rb"\x1b_G([^;]*);", got) == [b"a=T,f=100,q=2,C=1,r=2,m=1", b"m=1", b"m=0"]
    payload = b"".join(re.findall(rb";([A-Za-z0-9+/=]*)\x1b\\", got))
    assert base64.b64decode(payload) == data


def test_kitty_data_of_exactly_two_chunks_ends_on_the_second():
    data = os.urandom(6144)  # 8192 of base64
    got = kitty.encode(data, rows=1)
    b64 = base64.b64encode(data)
    assert got == b"\x1b_Ga=T,f=100,q=2,C=1,r=1,m=1;" + b64[:4096] + b"\x1b\\\x1b_Gm=0;" + b64[4096:] + b"\x1b\\"


def test_kitty_delete_is_by_id_with_the_data():
    assert kitty.delete(9) == b"\x1b_Ga=d,d=I,i=9,q=2\x1b\\"


def frame(rows: int, body: bytes) -> bytes:
    """What draw writes around a graphics protocol's escapes: rows reserved, cursor saved at the top, restored after."""
    return b"\r" + b"\n" * rows + b"\x1b[%dA" % rows + b"\x1b7" + body + b"\x1b8" + b"\x1b[%dB" % rows


def test_draw_kitty_gives_rows_when_the_height_binds():
    data = png_of(two_colour(64, 32))  # 8 rows of 16 px allow 256 px of width, 32 columns of 8: rows bind at 4
    out = io.BytesIO()
    drawn = draw(data, out, Choice("kitty"), rows=4, columns=80)
    assert drawn.rows == 4
    assert out.getvalue() == frame(4, b"\x1b_Ga=T,f=100,q=2,C=1,r=4,m=0;" + base64.b64encode(data) + b"\x1b\\")


def test_draw_kitty_gives_columns_when_the_width_binds():
    data = png_of(two_colour(256, 16))  # 10 columns are 80 px: 5 px high, one row
    out = io.BytesIO()
    drawn = draw(data, out, Choice("kitty"), rows=8, columns=10)
    assert drawn.rows == 1
    assert out.getvalue() == frame(1, b"\x1b_Ga=T,f=100,q=2,C=1,c=10,m=0;" + base64.b64encode(data) + b"\x1b\\")


def test_draw_kitty_converts_a_jpeg_to_png():
    jpeg = io.BytesIO()
    two_colour(40, 20).save(jpeg, format="JPEG")
    out = io.BytesIO()
    draw(jpeg.getvalue(), out, Choice("kitty"), rows=2, columns=80)
    payload = base64.b64decode(re.search(rb"\x1b_G[^;]*f=100[^;]*;([^\x1b]*)", out.getvalue()).group(1))
    assert payload.startswith(b"\x89PNG") and Image.open(io.BytesIO(payload)).size == (40, 20)


def test_tmux_passthrough_doubles_every_escape():
    assert wrap_tmux(b"\x1b_Ga=T;AAAA\x1b\\") == b"\x1bPtmux;\x1b\x1b_Ga=T;AAAA\x1b\x1b\\\x1b\\"
    assert Choice("kitty", True).wrap(b"x\x1by") == b"\x1bPtmux;x\x1b\x1by\x1b\\"
    assert Choice("kitty").wrap(b"x\x1by") == b"x\x1by"


def unwrap_tmux(data: bytes) -> tuple[list[bytes], bytes]:
    """(each passthrough's payload, its doubled escapes halved; everything outside them)."""
    payloads, outside, at = [], b"", 0
    while (start := data.find(b"\x1bPtmux;", at)) >= 0:
        outside += data[at:start]
        at, payload = start + len(b"\x1bPtmux;"), b""
        while data[at:at + 2] != b"\x1b\\":
            if data[at] == 0x1B:
                assert data[at + 1] == 0x1B, "a lone ESC inside a passthrough"
                at += 1
            payload += data[at:at + 1]
            at += 1
        payloads.append(payload)
        at += 2
    return payloads, outside + data[at:]


def test_kitty_through_tmux_wraps_each_chunk_and_nothing_else():
    big = png_of(Image.frombytes("RGB", (48, 48), os.urandom(48 * 48 * 3)))  # noise: no smaller as a PNG
    out = io.BytesIO()
    draw(big, out, Choice("kitty", tmux_passthrough=True), rows=2, columns=80)
    payloads, outside = unwrap_tmux(out.getvalue())
    chunks = list(kitty.chunks(big, rows=2))
    assert len(chunks) >= 3
    assert payloads == chunks
    assert outside == frame(2, b"")  # the cursor handling goes to tmux itself


# --- iTerm2 -----------------------------------------------------------------------------------------------------

def test_iterm_sends_the_file_as_it_is_with_its_name(tmp_path):
    path = tmp_path / "a fox.png"
    data = png_of(two_colour(64, 32))
    path.write_bytes(data)
    out = io.BytesIO()
    drawn = draw(path, out, Choice("iterm"), rows=4, columns=80)
    name = base64.b64encode(b"a fox.png").decode()
    expected = (f"\x1b]1337;File=name={name};size={len(data)};width=16;height=4;preserveAspectRatio=1;inline=1:".encode()
                + base64.b64encode(data) + b"\x07")
    assert drawn.rows == 4
    assert out.getvalue() == frame(4, expected)


def test_iterm_from_bytes_has_no_name_and_sends_a_jpeg_as_it_is():
    jpeg = io.BytesIO()
    two_colour(30, 30).save(jpeg, format="JPEG")
    data = jpeg.getvalue()
    expected = (f"\x1b]1337;File=size={len(data)};width=5;height=3;preserveAspectRatio=1;inline=1:".encode()
                + base64.b64encode(data) + b"\x07")
    assert iterm.encode(data, columns=5, rows=3) == expected


def test_iterm_through_tmux_is_wrapped():
    data = png_of(two_colour(8, 8))
    out = io.BytesIO()
    draw(data, out, Choice("iterm", True), rows=1, columns=80)
    body = (f"\x1b]1337;File=size={len(data)};width=2;height=1;preserveAspectRatio=1;inline=1:".encode()
            + base64.b64encode(data) + b"\x07")
    assert out.getvalue() == frame(1, b"\x1bPtmux;" + body.replace(b"\x1b", b"\x1b\x1b") + b"\x1b\\")
    assert unwrap_tmux(out.getvalue()) == ([body], frame(1, b""))


# --- sixel ------------------------------------------------------------------------------------------------------

def decode_sixel(data: bytes) -> tuple[bytes, tuple[int, ...], dict[tuple[int, int], tuple[int, int, int]]]:
    """(the DCS parameters, the raster attributes, every painted pixel's colour), refusing any pixel painted twice."""
    assert data.startswith(b"\x1bP") and data.endswith(b"\x1b\\")
    start = data.index(b"q")
    params, body = data[2:start], data[start + 1:-2]
    palette: dict[int, tuple[int, int, int]] = {}
    pixels: dict[tuple[int, int], tuple[int, int, int]] = {}
    raster: tuple[int, ...] = ()
    x = band = 0
    colour = None
    at = 0

    def numbers() -> list[int]:
        nonlocal at
        found = re.match(rb"[0-9;]*", body[at:]).group(0)
        at += len(found)
        return [int(n) for n in found.split(b";") if n]

    def paint(char: int, count: int) -> None:
        nonlocal x
        assert 63 <= char <= 126, chr(char)
        for _ in range(count):
            for bit in range(6):
                if (char - 63) >> bit & 1:
                    assert (x, band * 6 + bit) not in pixels, "painted twice"
                    pixels[(x, band * 6 + bit)] = palette[colour]
            x += 1

    while at < len(body):
        c = body[at]
        at += 1
        if c == ord('"'):
            raster = tuple(numbers())
        elif c == ord("#"):
            n = numbers()
            if len(n) == 5:
                assert n[1] == 2 and all(0 <= v <= 100 for v in n[2:])  # RGB, in percent
                palette[n[0]] = tuple(round(v * 255 / 100) for v in n[2:])
            else:
                colour = n[0]
        elif c == ord("!"):
            (count,) = numbers()
            paint(body[at], count)
            at += 1
        elif c == ord("$"):
            x = 0
        elif c == ord("-"):
            x, band = 0, band + 1
        else:
            paint(c, 1)
    return params, raster, pixels


# Multiples of 51 are whole percentages; 140 is 54.9 %, which survives the palette's percent only rounded to 55.
RED, GREEN, BLUE, GREY = (255, 0, 0, 255), (0, 153, 0, 255), (51, 102, 255, 255), (140, 140, 140, 255)


def seven_by_thirteen(transparent: bool) -> Image.Image:
    image = Image.new("RGBA", (7, 13), GREY)
    for y in range(13):
        for x in range(7):
            if y < 4:
                image.putpixel((x, y), RED)
            elif (x + y) % 3 == 0:
                image.putpixel((x, y), GREEN)
            elif y > 9 and x > 3:
                image.putpixel((x, y), BLUE)
            if transparent and (x == 0 or y == 12 and x % 2):
                image.putpixel((x, y), (9, 9, 9, 0))
    return image


@pytest.mark.parametrize("transparent", [False, True])
def test_sixel_decodes_back_to_the_image(transparent):
    image = seven_by_thirteen(transparent)
    params, raster, pixels = decode_sixel(sixel.encode(image))
    assert params == b"0;1;0"  # P2=1: pixels not painted stay as they were
    assert raster == (1, 1, 7, 13)
    expected = {(x, y): image.getpixel((x, y))[:3] for y in range(13) for x in range(7) if image.getpixel((x, y))[3]}
    assert pixels == expected
    assert len(expected) == (7 * 13 - 13 - 3 if transparent else 7 * 13)


def test_sixel_runs_are_compressed():
    image = Image.new("RGB", (40, 6), (255, 0, 0))
    got = sixel.encode(image)
    assert b"!40~" in got
    assert decode_sixel(got)[2] == {(x, y): (255, 0, 0) for x in range(40) for y in range(6)}


def test_sixel_keeps_to_256_colours_of_the_quantized_image():
    gradient = Image.new("RGB", (64, 20))
    gradient.putdata([(x * 4, y * 12, (x * y) % 256) for y in range(20) for x in range(64)])
    got = sixel.encode(gradient)
    assert len(set(re.findall(rb"#(\d+);2;", got))) <= 256
    pixels = decode_sixel(got)[2]
    assert len(pixels) == 64 * 20
    error = sum(abs(a - b) for xy, rgb in pixels.items() for a, b in zip(rgb, gradient.getpixel(xy))) / (64 * 20 * 3)
    assert error < 8


def test_draw_sixel_scales_to_the_rows():
    out = io.BytesIO()
    drawn = draw(png_of(two_colour(100, 50)), out, Choice("sixel"), rows=2, columns=80)  # 2 rows: 32 px high
    assert drawn.rows == 2
    got, before, after = out.getvalue(), b"\r\n\n\x1b[2A\x1b7", b"\x1b8\x1b[2B"
    assert got.startswith(before) and got.endswith(after)
    _, raster, pixels = decode_sixel(got[len(before):-len(after)])
    assert raster == (1, 1, 64, 32)
    assert pixels[(10, 5)] == (255, 0, 0) and pixels[(10, 25)] == (0, 0, 255)


# --- half-blocks ------------------------------------------------------------------------------------------------

def xterm_colour(index: int) -> tuple[int, int, int]:
    if index >= 232:
        return (8 + 10 * (index - 232),) * 3
    levels = (0, 95, 135, 175, 215, 255)
    index -= 16
    return levels[index // 36], levels[index // 6 % 6], levels[index % 6]


def parse_cells(data: bytes) -> list[list[tuple[str, tuple | None, tuple | None]]]:
    """Each line's cells as (glyph, foreground, background), colours as RGB and None for the terminal's default."""
    lines = []
    text = data.decode("utf-8")
    assert text.endswith("\n")
    for line in text[:-1].split("\n"):
        assert line.endswith("\x1b[0m"), repr(line)
        fg = bg = None
        cells = []
        for sgr, glyph in re.findall(r"\x1b\[([0-9;]*)m|(.)", line):
            if glyph:
                cells.append((glyph, fg, bg))
                continue
            codes = [int(c) for c in sgr.split(";") if c] or [0]
            while codes:
                code = codes.pop(0)
                if code == 0:
                    fg = bg = None
                elif code in (39, 49):
                    fg, bg = (None, bg) if code == 39 else (fg, None)
                elif code in (38, 48):
                    kind = codes.pop(0)
                    colour = tuple(codes[:3]) if kind == 2 else xterm_colour(codes[0])
                    del codes[:3 if kind == 2 else 1]
                    fg, bg = (colour, bg) if code == 38 else (fg, colour)
                else:
                    raise AssertionError(f"unexpected SGR {code}")
        lines.append(cells)
    return lines


def pixels_of(cells) -> dict[tuple[int, int], tuple | None]:
    """The pixel colours the cells show (None: transparent)."""
    shown = {}
    for row, line in enumerate(cells):
        for x, (glyph, fg, bg) in enumerate(line):
            if glyph == "\u2580":
                upper, lower = fg, bg
            elif glyph == "\u2584":
                assert bg is None
                upper, lower = None, fg
            else:
                assert glyph == " " and bg is None
                upper = lower = None
            shown[(x, 2 * row)], shown[(x, 2 * row + 1)] = upper, lower
    return shown


CUBE_COLOURS = [(255, 0, 0), (0, 0, 255), (95, 135, 175), (128, 128, 128), (0, 255, 95), (238, 238, 238)]


def blocks_fixture(height: int) -> Image.Image:
    image = Image.new("RGBA", (3, height))
    for y in range(height):
        for x in range(3):
            image.putpixel((x, y), (*CUBE_COLOURS[(x + 2 * y) % len(CUBE_COLOURS)], 255))
    clear = (1, 2, 3, 0)
    image.putpixel((1, 0), clear)  # transparent over a colour: the lower half block
    image.putpixel((2, 1), clear)  # transparent under a colour: the upper half on the default background
    image.putpixel((0, 2), clear)
    image.putpixel((0, 3), clear)  # both: a space
    return image


@pytest.mark.parametrize("truecolor", [True, False])
@pytest.mark.parametrize("height", [4, 5])
def test_half_blocks_show_every_pixel(truecolor, height):
    image = blocks_fixture(height)
    cells = parse_cells(blocks.encode(image, truecolor=truecolor))
    assert len(cells) == (height + 1) // 2 and all(len(line) == 3 for line in cells)
    shown = pixels_of(cells)
    for y in range(height + height % 2):
        for x in range(3):
            pixel = image.getpixel((x, y)) if y < height else (0, 0, 0, 0)
            assert shown[(x, y)] == (pixel[:3] if pixel[3] else None), (x, y)
    assert [g for g, _, _ in cells[0]] == ["\u2580", "\u2584", "\u2580"]
    assert cells[1][0][0] == " "


def test_half_blocks_pick_the_sgr_form_by_colorterm():
    image = Image.new("RGB", (1, 2), (255, 0, 0))
    assert blocks.encode(image, truecolor=True) == "\x1b[38;2;255;0;0;48;2;255;0;0m\u2580\x1b[0m\n".encode()
    assert blocks.encode(image, truecolor=False) == "\x1b[38;5;196;48;5;196m\u2580\x1b[0m\n".encode()
    assert blocks.has_truecolor({"COLORTERM": "truecolor"}) and blocks.has_truecolor({"COLORTERM": "24bit"})
    assert not blocks.has_truecolor({}) and not blocks.has_truecolor({"COLORTERM": "yes"})


def test_256_colours_are_the_nearest_of_cube_and_greys():
    assert blocks.nearest_256((255, 0, 0)) == 196
    assert blocks.nearest_256((95, 135, 175)) == 67
    assert blocks.nearest_256((128, 128, 128)) == 244  # grey ramp: 8 + 10 * 12
    assert blocks.nearest_256((0, 0, 0)) == 16
    assert blocks.nearest_256((250, 250, 250)) in (231, 255)
    assert blocks.nearest_256((100, 140, 170)) == 67


def test_draw_blocks_writes_the_lines_and_no_cursor_tricks():
    out = io.BytesIO()
    drawn = draw(png_of(two_colour(32, 32)), out, Choice("blocks"), rows=4, columns=80, environ={"COLORTERM": "truecolor"})
    got = out.getvalue()
    assert drawn.rows == 4 and got.startswith(b"\r") and b"\x1b7" not in got
    cells = parse_cells(got[1:])
    assert [len(line) for line in cells] == [8] * 4
    assert all(cell == ("\u2580", (255, 0, 0), (255, 0, 0)) for line in cells[:2] for cell in line)
    assert all(cell == ("\u2580", (0, 0, 255), (0, 0, 255)) for line in cells[2:] for cell in line)


def test_draw_on_a_text_stream_writes_through_its_buffer():
    raw = io.BytesIO()
    text = io.TextIOWrapper(raw, encoding="ascii")  # the buffer gets the UTF-8 bytes, whatever the text encoding
    text.write("name\n")
    draw(png_of(two_colour(2, 2)), text, Choice("blocks"), rows=1, columns=80, environ={})
    assert raw.getvalue().startswith(b"name\n\r\x1b[38;5;196;48;5;21m\xe2\x96\x80")
    plain = io.StringIO()
    draw(png_of(two_colour(2, 2)), plain, Choice("blocks"), rows=1, columns=80, environ={})
    assert plain.getvalue().startswith("\r\x1b[38;5;196;48;5;21m\u2580")


# --- sizing -----------------------------------------------------------------------------------------------------

def test_fit_keeps_the_aspect_ratio_under_the_rows():
    box = fit.fit(1024, 1024, 200, 8, (8, 16))
    assert (box.width, box.height, box.columns, box.rows, box.rows_bind) == (128, 128, 16, 8, True)
    wide = fit.fit(1792, 1024, 200, 8, (8, 16))
    assert wide.height == 128 and wide.width == 224 and wide.columns == 28


def test_fit_keeps_to_the_width():
    box = fit.fit(1792, 1024, 20, 8, (8, 16))
    assert (box.width, box.columns, box.rows_bind) == (160, 20, False)
    assert box.height == round(1024 * 160 / 1792) and box.rows == 6


def test_fit_scales_small_images_up_and_tall_ones_down():
    assert fit.fit(10, 10, 80, 4, (8, 16)).height == 64
    tall = fit.fit(100, 1000, 80, 8, (8, 16))
    assert (tall.width, tall.height, tall.columns) == (13, 128, 2)


def test_fit_uses_the_real_cell_size():
    box = fit.fit(1000, 1000, 100, 5, (10, 20))
    assert (box.width, box.height, box.columns, box.rows) == (100, 100, 10, 5)


def test_fit_blocks_gives_two_pixels_per_row():
    box = fit.fit_blocks(1024, 1024, 200, 8, (8, 16))
    assert (box.width, box.height, box.columns, box.rows) == (16, 16, 16, 8)
    narrow = fit.fit_blocks(1000, 100, 20, 8, (8, 16))  # 20 columns of 8 px: 16 px high, 2 half rows
    assert (narrow.columns, narrow.height, narrow.rows, narrow.rows_bind) == (20, 2, 1, False)
    odd = fit.fit_blocks(1000, 150, 20, 8, (8, 16))  # 3 half rows: the second row has only its upper half
    assert (odd.height, odd.rows) == (3, 2)


def test_the_terminal_size_and_cells_come_from_the_stream():
    master, slave = os.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 1000, 600))  # cells of 10 x 20
        with open(slave, "wb", closefd=False) as stream:
            assert fit.screen_of(stream) == fit.Screen(100, 30, (10, 20))
            assert fit.screen_of(stream, columns=40).columns == 40
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))  # no pixel size reported
            assert fit.screen_of(stream) == fit.Screen(100, 30, (8, 16))
            assert fit.row_limit(50, fit.screen_of(stream)) == 29
            assert fit.row_limit(8, fit.screen_of(stream)) == 8
    finally:
        os.close(master)
        os.close(slave)
    assert fit.screen_of(io.BytesIO(), columns=33) == fit.Screen(33, None, (8, 16))


# --- replacing --------------------------------------------------------------------------------------------------

def test_a_previewer_draws_over_its_last_image():
    out = io.BytesIO()
    previewer = Previewer(out, Choice("blocks"), rows=2, columns=80, environ={})
    previewer.show(png_of(two_colour(8, 8)))  # 2 rows, 4 columns
    first = out.getvalue()
    assert b"\x1b[J" not in first and re.search(rb"\x1b\[\d+A", first) is None
    assert [len(line) for line in parse_cells(first[1:])] == [4, 4]
    previewer.show(png_of(two_colour(16, 8)))  # 2 rows again, now 8 columns
    second = out.getvalue()[len(first):]
    assert second.startswith(b"\x1b[2A\r\x1b[J\r")
    assert [len(line) for line in parse_cells(second[len(b"\x1b[2A\r\x1b[J\r"):])] == [8, 8]


def test_a_kitty_previewer_deletes_its_image_and_reuses_the_id():
    out = io.BytesIO()
    previewer = Previewer(out, Choice("kitty"), rows=3, columns=80)
    image_id = previewer.image_id
    assert 1 <= image_id < 2**32
    data = png_of(two_colour(16, 16))
    previewer.show(data)
    first = out.getvalue()
    assert first == frame(3, f"\x1b_Ga=T,f=100,q=2,C=1,i={image_id},r=3,m=0;".encode() + base64.b64encode(data) + b"\x1b\\")
    previewer.show(data)
    second = out.getvalue()[len(first):]
    assert second == b"\x1b[3A\r" + kitty.delete(image_id) + b"\x1b[J" + first


def test_an_iterm_previewer_moves_up_the_rows_it_drew():
    out = io.BytesIO()
    previewer = Previewer(out, Choice("iterm"), rows=5, columns=80)
    previewer.show(png_of(two_colour(20, 10)))  # 5 rows of 16 px: 160 wide, 20 columns
    assert previewer.last.rows == 5
    previewer.show(png_of(two_colour(10, 10)))
    assert out.getvalue().count(b"\x1b[5A\r\x1b[J") == 1


def test_nothing_is_drawn_for_none():
    out = io.BytesIO()
    assert draw(b"not even an image", out, Choice("none")).rows == 0
    assert out.getvalue() == b""


# --- without Pillow ---------------------------------------------------------------------------------------------

def test_without_pillow_kitty_and_iterm_still_work_and_the_rest_says_what_to_install(monkeypatch):
    data = png_of(two_colour(16, 16))
    jpeg = io.BytesIO()
    two_colour(16, 16).save(jpeg, format="JPEG")
    monkeypatch.setitem(sys.modules, "PIL", None)  # `from PIL import Image` now raises ImportError
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    for protocol in ("kitty", "iterm"):
        out = io.BytesIO()
        assert draw(data, out, Choice(protocol), rows=2, columns=80).rows == 2
        assert base64.b64encode(data) in out.getvalue()
    out = io.BytesIO()
    draw(jpeg.getvalue(), out, Choice("iterm"), rows=2, columns=80)
    assert base64.b64encode(jpeg.getvalue()) in out.getvalue()
    for protocol in ("sixel", "blocks"):
        with pytest.raises(NeedsPillow, match=r"need Pillow: pip install 'imgen\[preview\]'"):
            draw(data, io.BytesIO(), Choice(protocol), rows=2, columns=80)
    with pytest.raises(NeedsPillow, match="JPEG"):
        draw(jpeg.getvalue(), io.BytesIO(), Choice("kitty"), rows=2, columns=80)


def test_importing_the_previews_and_the_verb_loads_no_pillow(tmp_path):
    code = ("import sys, io; import imgen.cli.show, imgen.preview as p; assert 'PIL' not in sys.modules;"
            "data = open(sys.argv[1], 'rb').read(); p.draw(data, io.BytesIO(), p.Choice('kitty'), columns=80);"
            "print(sorted(m for m in sys.modules if m.startswith(('PIL', 'httpx', 'rich'))))")
    path = tmp_path / "fixture.png"
    path.write_bytes(png_of(two_colour(8, 8)))
    done = subprocess.run([sys.executable, "-c", code, path], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# --- imgen show -------------------------------------------------------------------------------------------------
# These run the installed command: `show` must be registered in imgen.cli (app.command("show")(show.show)).

@pytest.fixture
def picture(tmp_path):
    path = tmp_path / "red-blue.png"
    path.write_bytes(png_of(two_colour(32, 32)))
    return path


def run_show(*args, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([IMGEN, "show", *map(str, args)], check=False, capture_output=True, env=clean_env(**env), timeout=60,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("env", [{"TERM": "xterm-kitty"}, {"TERM": "xterm-kitty", "CI": "true"}])
def test_show_on_a_pipe_prints_a_note_and_no_escapes(picture, env):
    done = run_show(picture, **env)
    assert done.returncode == 0, done.stderr
    assert ESC not in done.stdout and ESC not in done.stderr
    assert done.stdout == b""
    assert b"previews need a terminal" in done.stderr and b"IMGEN_PREVIEW" in done.stderr


def test_show_refuses_missing_and_non_image_files(picture, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    done = run_show(picture, tmp_path / "gone.png", text, IMGEN_PREVIEW="blocks")
    assert done.returncode == 2
    assert f"{tmp_path / 'gone.png'}: no such file".encode() in done.stderr
    assert f"{text}: not an image".encode() in done.stderr
    assert ESC not in done.stderr  # nothing was drawn before the files were all checked


def test_show_refuses_a_bad_imgen_preview(picture):
    done = run_show(picture, IMGEN_PREVIEW="pictures")
    assert done.returncode == 2
    assert b"imgen: error: IMGEN_PREVIEW='pictures' is not one of kitty, iterm, sixel, blocks, none" in done.stderr


def test_show_forced_draws_on_stderr_under_the_name(picture):
    done = run_show(picture, "-r", "2", IMGEN_PREVIEW="kitty")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b""
    assert done.stderr.startswith(f"{picture}\n\r".encode())
    assert b"\x1b_Ga=T,f=100,q=2,C=1,r=2,m=0;" + base64.b64encode(picture.read_bytes()) in done.stderr


def test_show_checks_its_rows(picture):
    done = run_show(picture, "--preview-rows", "0", IMGEN_PREVIEW="blocks")
    assert done.returncode == 2 and b"--preview-rows" in done.stderr


def test_show_without_pillow_prints_a_note(picture):
    code = "import sys; sys.modules['PIL'] = None; from imgen.__main__ import main; sys.argv[0] = 'imgen'; main()"
    done = subprocess.run([sys.executable, "-c", code, "show", str(picture)], check=False, capture_output=True, timeout=60,
                          env=clean_env(IMGEN_PREVIEW="sixel"), stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert b"imgen: note: previews in this terminal need Pillow: pip install 'imgen[preview]'" in done.stderr


@pytest.mark.parametrize("answer, drawn", [(b"\x1b[?62;4;22c", b"\x1bP0;1;0q"), (b"\x1b[?62;22c", "\u2580".encode()),
                                           (None, "\u2580".encode())], ids=["sixel", "no sixel", "no answer"])
def test_show_on_a_terminal_asks_it_and_draws(picture, answer, drawn):
    screen, stdout, rc = on_pty([IMGEN, "show", "-r", "2", str(picture)], clean_env(TERM="xterm-256color"), answer)
    assert rc == 0, screen
    assert stdout == b""
    assert screen.count(b"\x1b[c") == 1
    assert f"{picture}\r\n".encode() in screen and drawn in screen
    if answer is None:
        assert b"\x1bP" not in screen
