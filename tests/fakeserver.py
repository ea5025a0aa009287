"""A local HTTP server that answers like the image APIs imgen talks to, with fault injection.

It reproduces the shapes in ``shared/api-notes.md``: the OpenAI-compatible generation and edit endpoints
(DALL-E, GPT image with SSE streaming, qwen-image, Seedream), Gemini's generateContent with inline
base64 images and Google-shaped errors, Bria's text-to-image, signed download URLs that break when
a single byte changes, the envelope gateway and the model catalog. Midjourney's and Flux's task APIs,
whose tasks change state over time, live in ``fakeserver_tasks``. Tests queue faults with
``FakeServer.fault``; benchmarks and manual runs start it standalone::

    python tests/fakeserver.py --port 0 --latency 1.0 --image-bytes 33554432 --api-key sk-test

Standard library only, so it runs wherever the tests run and never depends on the code under test.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import random
import re
import secrets
import signal
import socket
import struct
import sys
import threading
import time
import uuid
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

__all__ = ["FAULT_KINDS", "FakeServer", "Recorded", "default_catalog", "main", "make_image"]

MiB = 1 << 20

EDITS_PATH = "/v1/images/edits"
GENERATION_PATHS = (
    "/v1/images/generations", "/api/v1/image/generation", "/placeholder/v1/tasks", "/bria/text-to-image", EDITS_PATH,
)
# Gemini names the model in the path, so its route is a pattern rather than one of GENERATION_PATHS.
GEMINI_ROUTE = re.compile(r"^/v1beta/models/([^/]+):generateContent$")
TASK_PATH = "/placeholder/v1/tasks"

# Every fault kind with its options and their defaults; unknown kinds or options are refused so a
# typo in a test fails loudly instead of silently injecting nothing.
FAULT_KINDS: dict[str, dict[str, Any]] = {
    # generation side, any generation request
    "status": {"status": 500, "body": None, "headers": None},
    "insufficient_quota": {"headers": None},
    "moderation": {},
    "html": {"status": 502},
    "invalid_json": {"status": 200, "body": None},
    "slow": {"delay": 2.0},
    "reset": {},
    # generation side, non-stream requests
    "shape": {"variant": "no_data"},
    # generation side, non-stream OpenAI-compatible requests
    "invalid_b64": {"index": 0},
    "item_error": {
        "index": 0,
        "code": "OutputImageSensitiveContentDetected",
        "message": "The generated image may contain sensitive content and was not returned.",
    },
    # generation side, envelope gateway only
    "envelope_error": {"code": 1001, "message": "upstream generation failed"},
    "envelope_pending": {"task_status": "running"},
    # generation side, stream requests only
    "stream_error_event": {
        "after_partials": 1,
        "code": "image_generation_failed",
        "message": "Image generation failed.",
    },
    "stream_json_error": {"status": 400, "body": None, "lying_content_type": False},
    "stream_cut": {"after_partials": 1},
    "stream_split": {"chunk": None, "seed": 0, "pause": 0.0005},
    "stream_few_partials": {"partials": 0},
    # generation side, image edits only: refuse the next edit with this 400
    "edit_reject": {"param": "image", "message": "Invalid image file or mode for image 1, please check your image file.",
                    "code": "invalid_image_file"},
    # generation side, Gemini only
    "gemini_blocked_prompt": {"reason": "SAFETY"},
    "gemini_blocked_image": {"reason": "IMAGE_SAFETY"},
    "gemini_text_only": {"text": "I can't draw that, but here is a description..."},
    "gemini_markdown": {},
    "gemini_snake": {},
    "google_error": {"status": 429, "retry_delay": "1s", "message": None},
    # generation side, Bria only
    "bria_moderation": {"message": "Prompt was flagged by content moderation"},
    "bria_fewer": {"drop": 1},
    "bria_multi_urls": {},
    # the placeholder task API: decided at the submit, or on one poll
    "task_failed": {"message": "the task failed at the provider"},
    "poll_status": {"status": 503, "body": None, "headers": None},
    "poll_reset": {},
    # Midjourney (fakeserver_tasks): the next submit, imagine or action, is answered with this code...
    "mj_queue_full": {},
    "mj_banned": {"word": "blood"},
    "mj_invalid": {"description": "参数校验错误"},
    "mj_gateway_400": {"description": "quota_not_enough"},
    "mj_saturated": {"description": "upstream_saturated"},
    "mj_existing": {},
    "mj_queued": {"position": 1},
    "mj_numeric_id": {},
    # ...or the task it creates ends so (mj_stuck: stays IN_PROGRESS for ever)...
    "mj_failure": {"reason": "[Invalid parameter] Invalid value"},
    "mj_modal": {},
    "mj_stuck": {},
    # ...and a fetch or list-by-condition answers 500
    "mj_poll_500": {},
    # Flux (fakeserver_tasks): the next submit is refused, or the task it creates ends so, or a get_result answers 500
    "flux_rate_limited": {"message": "You have exceeded the number of active tasks (24). Wait for a task to finish."},
    "flux_moderated_request": {"reasons": ["Derivative Works Filter"]},
    "flux_moderated_content": {"reasons": ["NSFW"]},
    "flux_error": {"message": "Internal error while generating the image"},
    "flux_failed": {"message": "Task failed"},
    "flux_slow": {"delay": 30.0},
    "flux_poll_500": {},
    # download side (GET /files/...)
    "dl_cut": {"content_length": True, "at": None},
    "dl_reset": {},
    "dl_extra": {"extra": 64, "short": False},
    "dl_error_as_png": {"format": "xml"},
    "dl_html": {},
    "dl_403": {},
    "dl_redirect_loop": {"status": 302},
    "dl_redirect": {"location": None, "status": 302},
    "dl_slow": {"rate": 16384, "delay": 0.0},
    "dl_status": {"status": 500, "body": None, "headers": None},
}

_ANY_API = {"status", "insufficient_quota", "moderation", "html", "invalid_json", "slow", "reset"}
_NON_STREAM = {"shape"}
_OPENAI_NON_STREAM = {"invalid_b64", "item_error"}
_ENVELOPE_ONLY = {"envelope_error", "envelope_pending"}
_STREAM_ONLY = {"stream_error_event", "stream_json_error", "stream_cut", "stream_split", "stream_few_partials"}
_GEMINI_ONLY = {"gemini_blocked_prompt", "gemini_blocked_image", "gemini_text_only", "gemini_markdown",
                "gemini_snake", "google_error"}
_BRIA_ONLY = {"bria_moderation", "bria_fewer", "bria_multi_urls"}
_EDIT_ONLY = {"edit_reject"}
# Gemini, Bria, Midjourney and Flux answer in their providers' own shapes: of the OpenAI-shaped faults only
# those the gateway in front of them would produce apply (OpenAI's safety system is not in that path).
_OWN_SHAPES = {"gemini", "bria", "mj", "flux"}
_TASK_POLL_FAULTS = {"mj_poll_500", "flux_poll_500"}
_GATEWAY = _ANY_API - {"moderation"}

_ANSWERED = object()  # a fault that was the whole response: the route has nothing left to do

DEFAULT_RANDOM_KINDS: list[tuple[str, dict[str, Any]]] = [
    ("status", {"status": 500}),
    ("status", {"status": 429, "headers": {"Retry-After": "0"}}),
    ("reset", {}),
    ("dl_cut", {}),
    ("dl_reset", {}),
    ("invalid_json", {}),
]


def _tasks() -> Any:
    import fakeserver_tasks  # Midjourney and Flux; it needs nothing from here

    return fakeserver_tasks


def _is_generation(route: str) -> bool:
    return route in GENERATION_PATHS or GEMINI_ROUTE.match(route) is not None or _tasks().is_submit(route)


def _matches(kind: str, ctx: tuple[str, str, bool]) -> bool:
    side, dialect, stream = ctx
    if kind.startswith(("mj_", "flux_")):
        return side == ("poll" if kind in _TASK_POLL_FAULTS else "api") and dialect == kind.split("_", 1)[0]
    if kind.startswith("dl_"):
        return side == "dl"
    if kind.startswith("poll_"):
        return side == "poll"
    if kind == "task_failed":
        return side == "api" and dialect == "task"
    if side != "api":
        return False
    if kind in _GEMINI_ONLY:
        return dialect == "gemini"
    if kind in _BRIA_ONLY:
        return dialect == "bria"
    if kind in _EDIT_ONLY:
        return dialect == "edit"
    if dialect in _OWN_SHAPES:
        return kind in _GATEWAY
    if kind in _ANY_API:
        return True
    if kind in _NON_STREAM:
        return not stream
    if kind in _OPENAI_NON_STREAM:
        return dialect in ("openai", "edit") and not stream
    if kind in _ENVELOPE_ONLY:
        return dialect == "envelope"
    if kind in _STREAM_ONLY:
        return stream
    return False


@dataclass
class Recorded:
    """One request exactly as it arrived."""

    method: str
    path: str  # raw request target, query included, never decoded
    headers: dict[str, str]  # lower-case names
    body: bytes
    json: Any = None
    fault: str | None = None  # the fault kind injected into this request, if any
    time: float = 0.0
    form: Any = None  # an image edit's parsed multipart form: fakeserver_edits.Form (fields, files, chunked, ...)


@dataclass
class _Fault:
    kind: str
    opts: dict[str, Any]
    remaining: int


# --------------------------------------------------------------------------------------------
# Image bytes. An image is head + a run of zero bytes + tail so that a padded 512 MiB image costs
# a few hundred bytes to hold; uniqueness lives in the tail so hashes of the shared head+zeros
# prefix can be reused across images of the same size.


class _Run:
    __slots__ = ("byte", "count")

    def __init__(self, byte: int, count: int) -> None:
        self.byte = byte
        self.count = count


_run_buffers: dict[int, bytes] = {}


def _run_buffer(byte: int) -> bytes:
    buf = _run_buffers.get(byte)
    if buf is None:
        buf = _run_buffers[byte] = bytes([byte]) * MiB
    return buf


def _seg_len(seg: Any) -> int:
    return seg.count if isinstance(seg, _Run) else len(seg)


def _pieces(segments: list[Any], size: int = MiB) -> Iterator[memoryview | bytes]:
    """Yield the bytes of ``segments`` in pieces of at most ``size``, without joining them."""
    for seg in segments:
        if isinstance(seg, _Run):
            buf = memoryview(_run_buffer(seg.byte))[:size]
            left = seg.count
            while left > 0:
                k = min(left, len(buf))
                yield buf[:k]
                left -= k
        else:
            view = memoryview(seg)
            for i in range(0, len(view), size):
                yield view[i : i + size]


def _flatten(segments: list[Any]) -> bytes:
    return b"".join(bytes(p) for p in _pieces(segments))


_cache_lock = threading.Lock()
_zero_crcs: dict[tuple[bytes, int], int] = {}
_prefix_hashes: OrderedDict[tuple[bytes, int], Any] = OrderedDict()


def _zero_crc(kind: bytes, length: int) -> int:
    key = (kind, length)
    with _cache_lock:
        crc = _zero_crcs.get(key)
        if crc is None:
            crc = zlib.crc32(kind)
            for piece in _pieces([_Run(0, length)]):
                crc = zlib.crc32(piece, crc)
            _zero_crcs[key] = crc & 0xFFFFFFFF
            crc = _zero_crcs[key]
    return crc


class _Image:
    __slots__ = ("head", "zeros", "tail", "fmt", "_sha")

    CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}

    def __init__(self, head: bytes, zeros: int = 0, tail: bytes = b"", fmt: str = "png") -> None:
        self.head = head
        self.zeros = zeros
        self.tail = tail
        self.fmt = fmt
        self._sha: str | None = None

    @property
    def size(self) -> int:
        return len(self.head) + self.zeros + len(self.tail)

    @property
    def content_type(self) -> str:
        return self.CONTENT_TYPES[self.fmt]

    def segments(self) -> list[Any]:
        return [s for s in (self.head, _Run(0, self.zeros), self.tail) if _seg_len(s)]

    def to_bytes(self) -> bytes:
        return _flatten(self.segments())

    def b64_segments(self) -> list[Any]:
        # base64 of three zero bytes is "AAAA": align the zero run to a multiple of three and the
        # middle of the encoding is a run of "A", so a 32 MiB image never gets encoded for real.
        if self.zeros < 6:
            return [base64.b64encode(self.to_bytes())]
        lead = (-len(self.head)) % 3
        groups, rest = divmod(self.zeros - lead, 3)
        return [
            base64.b64encode(self.head + b"\0" * lead),
            _Run(ord("A"), 4 * groups),
            base64.b64encode(b"\0" * rest + self.tail),
        ]

    def sha256(self) -> str:
        if self._sha is None:
            if self.zeros < MiB:
                self._sha = hashlib.sha256(self.to_bytes()).hexdigest()
            else:
                key = (self.head, self.zeros)
                with _cache_lock:
                    state = _prefix_hashes.get(key)
                    if state is None:
                        state = hashlib.sha256(self.head)
                        for piece in _pieces([_Run(0, self.zeros)]):
                            state.update(piece)
                        _prefix_hashes[key] = state
                        while len(_prefix_hashes) > 4:
                            _prefix_hashes.popitem(last=False)
                h = state.copy()
                h.update(self.tail)
                self._sha = h.hexdigest()
        return self._sha


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(rgb: bytes, tag: str, total: int | None, side: int = 8) -> _Image:
    ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
    text = _png_chunk(b"tEXt", b"Comment\x00" + tag.encode())
    idat = _png_chunk(b"IDAT", zlib.compress(b"".join(b"\x00" + rgb * side for _ in range(side)), 9))
    iend = _png_chunk(b"IEND", b"")
    small = PNG_SIGNATURE + ihdr + text + idat + iend
    if total is None:
        return _Image(small)
    # A private ancillary chunk ("paDd") of zeros before the pixel data keeps the file a valid PNG
    # at any size; decoders skip it.
    pad = total - len(small) - 12
    if pad < 0:
        # Too small to pad validly: keep the signature and the exact length.
        data = small[:total] if total <= len(small) else small + b"\0" * (total - len(small))
        return _Image(data)
    head = PNG_SIGNATURE + ihdr + struct.pack(">I", pad) + b"paDd"
    tail = struct.pack(">I", _zero_crc(b"paDd", pad)) + text + idat + iend
    return _Image(head, pad, tail)


def _huffman_codes(bits: list[int], values: list[int]) -> dict[int, tuple[int, int]]:
    codes, code, k = {}, 0, 0
    for length, count in enumerate(bits, start=1):
        for _ in range(count):
            codes[values[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


_DC_BITS = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
_DC_CODES = _huffman_codes(_DC_BITS, list(range(12)))


def _jpeg_bytes(rgb: bytes, tag: str) -> bytes:
    """An 8x8 baseline JPEG of one flat colour: one block per component, DC only, quantisers all 1."""
    r, g, b = rgb
    ycc = (
        0.299 * r + 0.587 * g + 0.114 * b,
        128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
        128 + 0.5 * r - 0.418688 * g - 0.081312 * b,
    )
    acc, nbits = 0, 0
    for v in ycc:
        dc = 8 * (min(255, max(0, round(v))) - 128)
        cat = abs(dc).bit_length()
        code, length = _DC_CODES[cat]
        acc, nbits = (acc << length) | code, nbits + length
        if cat:
            extra = dc if dc > 0 else dc + (1 << cat) - 1
            acc, nbits = (acc << cat) | extra, nbits + cat
        acc, nbits = acc << 1, nbits + 1  # EOB, the only AC symbol, coded as a single 0 bit
    pad = (-nbits) % 8
    acc, nbits = (acc << pad) | ((1 << pad) - 1), nbits + pad
    scan = acc.to_bytes(nbits // 8, "big").replace(b"\xff", b"\xff\x00")

    def seg(marker: int, payload: bytes) -> bytes:
        return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload

    comps = b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"
    return (
        b"\xff\xd8"
        + seg(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
        + seg(0xFE, tag.encode())
        + seg(0xDB, b"\x00" + b"\x01" * 64)
        + seg(0xC0, struct.pack(">BHHB", 8, 8, 8, 3) + comps)
        + seg(0xC4, b"\x00" + bytes(_DC_BITS) + bytes(range(12)) + b"\x10" + bytes([1] + [0] * 15) + b"\x00")
        + seg(0xDA, b"\x03\x01\x00\x02\x00\x03\x00\x00\x3f\x00")
        + scan
        + b"\xff\xd9"
    )


def _vp8l_bytes(rgb: bytes, side: int = 8) -> bytes:
    """A lossless WebP bitstream of one flat colour: single-symbol prefix codes cost zero bits per pixel."""
    acc, nbits = 0, 0

    def put(value: int, length: int) -> None:
        nonlocal acc, nbits
        acc |= value << nbits
        nbits += length

    put(0x2F, 8)
    put(side - 1, 14)
    put(side - 1, 14)
    put(0, 1)  # alpha hint
    put(0, 3)  # version
    put(0, 1)  # no transform
    put(0, 1)  # no colour cache
    put(0, 1)  # no meta prefix codes
    for symbol in (rgb[1], rgb[0], rgb[2], 255):  # green, red, blue, alpha
        put(1, 1)  # simple code
        put(0, 1)  # one symbol
        put(1, 1)  # eight-bit symbol
        put(symbol, 8)
    put(1, 1)
    put(0, 1)
    put(0, 1)
    put(0, 1)  # distance code: the single symbol 0
    return acc.to_bytes((nbits + 7) // 8, "little")


def _webp(rgb: bytes, total: int | None) -> _Image:
    payload = _vp8l_bytes(rgb)
    chunk = b"VP8L" + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) % 2)
    small_len = 12 + len(chunk)
    if total is None or total < small_len + 8:
        data = b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk
        if total is not None:
            data = data[:total] + b"\0" * max(0, total - len(data))
        return _Image(data, fmt="webp")
    pad = total - small_len - 8
    declared = pad - (pad % 2)  # RIFF chunks are even-sized; an odd pad leaves the pad byte
    head = b"RIFF" + struct.pack("<I", total - 8) + b"WEBP" + chunk + b"JUNK" + struct.pack("<I", declared)
    return _Image(head, pad, b"", fmt="webp")


def _jpeg(rgb: bytes, tag: str, total: int | None) -> _Image:
    data = _jpeg_bytes(rgb, tag)
    if total is None:
        return _Image(data, fmt="jpeg")
    if total <= len(data):
        return _Image(data[:total], fmt="jpeg")
    return _Image(data, total - len(data), b"", fmt="jpeg")  # decoders ignore bytes after EOI


def make_image(seed: str, fmt: str = "png", total: int | None = None) -> _Image:
    digest = hashlib.sha256(seed.encode()).digest()
    rgb, tag = digest[:3], digest[3:11].hex()
    if fmt == "jpeg":
        return _jpeg(rgb, tag, total)
    if fmt == "webp":
        return _webp(rgb, total)
    return _png(rgb, tag, total)


# --------------------------------------------------------------------------------------------
# Catalog


def _endpoints(kind: str) -> str:
    paths = {
        "image": ("openai-image", "/v1/images/generations"),
        "text": ("openai", "/v1/chat/completions"),
        "video": ("openai-video", "/v1/videos"),
        "audio": ("openai-audio", "/v1/audio/speech"),
        "gemini": ("gemini", "/v1beta/models/{model}:generateContent"),
        "bria": ("bria", "/bria/text-to-image"),
        "edit": ("openai-image", "/v1/images/edits"),
        "midjourney": ("midjourney", "/mj/submit/imagine"),
        "flux": ("flux", "/flux/v1/{model}"),
    }
    name, path = paths[kind]
    return json.dumps({name: {"path": path, "method": "POST"}}, indent=2)


def _entry(
    model_id: str,
    name: str,
    provider: str,
    provider_code: str,
    model_type: str,
    features: list[str],
    pricing: dict[str, Any],
    created: int,
    endpoints: str | None = None,
) -> dict[str, Any]:
    return {
        "created": created,
        "id": model_id,
        "code": model_id,
        "provider": provider,
        "provider_code": provider_code,
        "name": name,
        "model_type": model_type,
        "features": features,
        "endpoints": endpoints if endpoints is not None else _endpoints(model_type),
        "pricing": {"currency": "USD", "input": None, "output": None, "per_request": None, "per_second": None}
        | pricing,
    }


def default_catalog() -> list[dict[str, Any]]:
    """A few dozen entries; image models are spread across pages so a client must page through."""
    tokens = {"currency": "USD / M Tokens", "input": 5, "output": 40}

    def text(model_id: str, name: str, provider: str, code: str, inp: float, out: float, created: int):
        return _entry(
            model_id, name, provider, code, "text", ["chat"],
            {"currency": "USD / M Tokens", "input": inp, "output": out}, created,
        )

    t2i = ["text-to-image"]
    edit = ["text-to-image", "image-to-image"]
    return [
        text("gpt-5", "GPT-5", "OpenAI", "openai", 1.25, 10, 1754611200),
        text("gpt-5-mini", "GPT-5 mini", "OpenAI", "openai", 0.25, 2, 1754611200),
        text("gpt-4.1", "GPT-4.1", "OpenAI", "openai", 2, 8, 1744675200),
        text("gpt-4o", "GPT-4o", "OpenAI", "openai", 2.5, 10, 1715558400),
        text("gpt-4o-mini", "GPT-4o mini", "OpenAI", "openai", 0.15, 0.6, 1721260800),
        text("o3", "o3", "OpenAI", "openai", 2, 8, 1744848000),
        text("claude-sonnet-4-5", "Claude Sonnet 4.5", "Anthropic", "anthropic", 3, 15, 1759190400),
        text("claude-haiku-4-5", "Claude Haiku 4.5", "Anthropic", "anthropic", 1, 5, 1760486400),
        _entry("dall-e-2", "DALL-E 2", "OpenAI", "openai", "image", t2i, {"per_request": 0.02}, 1698796800),
        _entry("dall-e-3", "DALL-E 3", "OpenAI", "openai", "image", t2i, {"per_request": 0.04}, 1698796800),
        _entry("gpt-image-1", "GPT Image 1", "OpenAI", "openai", "image", edit, tokens, 1745366400),
        text("gemini-2.5-pro", "Gemini 2.5 Pro", "Google", "google", 1.25, 10, 1750118400),
        text("gemini-2.5-flash", "Gemini 2.5 Flash", "Google", "google", 0.3, 2.5, 1750118400),
        _entry(
            "gemini-3.1-flash-image-preview", "Gemini 3.1 Flash Image (preview)", "Google", "google", "image", edit,
            {"currency": "USD / M Tokens", "input": 0.5, "output": 60}, 1771977600, endpoints=_endpoints("gemini"),
        ),
        text("deepseek-v3.1", "DeepSeek V3.1", "DeepSeek", "deepseek", 0.56, 1.68, 1755648000),
        text("deepseek-r1", "DeepSeek R1", "DeepSeek", "deepseek", 0.55, 2.19, 1737331200),
        _entry("gpt-image-1-mini", "GPT Image 1 mini", "OpenAI", "openai", "image", edit, tokens, 1759708800),
        _entry("gpt-image-1.5", "GPT Image 1.5", "OpenAI", "openai", "image", edit, tokens, 1765843200),
        text("qwen3-max", "Qwen3 Max", "Qwen", "qwen", 1.2, 6, 1758153600),
        text("kimi-k2", "Kimi K2", "Moonshot", "moonshot", 0.6, 2.5, 1752192000),
        text("grok-4", "Grok 4", "xAI", "xai", 3, 15, 1752105600),
        _entry("gpt-image-2", "GPT Image 2", "OpenAI", "openai", "image", edit, tokens, 1776729600),
        _entry("qwen-image", "Qwen Image", "Qwen", "qwen", "image", t2i, {"per_request": 0.03}, 1754352000),
        _entry(
            "qwen-image-edit", "Qwen Image Edit", "Qwen", "qwen", "image", ["image-to-image"], {"per_request": 0.03},
            1755475200, endpoints=_endpoints("edit"),
        ),
        _entry(
            "gemini-3-pro-image-preview", "Gemini 3 Pro Image (preview)", "Google", "google", "image", edit,
            {"currency": "USD / M Tokens", "input": 2, "output": 120}, 1763596800, endpoints=_endpoints("gemini"),
        ),
        _entry(
            "flux-1-kontext-pro", "FLUX.1 Kontext [pro]", "Black Forest Labs", "bfl", "image", edit,
            {"per_request": 0.04}, 1748476800,
            endpoints='{\n  "openai-image": {\n    "path": "/v1/images/generations", "method": "POST"\n  ',
        ),
        _entry(
            "doubao-seedream-5-0-260128", "Seedream 5.0", "ByteDance", "doubao", "image", edit,
            {"per_request": 0.035}, 1769558400,
        ),
        _entry(
            "doubao-seedream-4-0-250828", "Seedream 4.0", "ByteDance", "doubao", "image", edit,
            {"per_request": 0.035}, 1756339200,
        ),
        text("glm-4.6", "GLM-4.6", "Zhipu", "zhipu", 0.6, 2.2, 1759104000),
        _entry(
            "bria", "Bria Text-to-Image", "Bria", "bria", "image", t2i, {"per_request": 0.04}, 1740787200,
            endpoints=_endpoints("bria"),
        ),
        _entry(
            "midjourney", "Midjourney", "Midjourney", "midjourney", "image", edit, {"per_request": 0.035}, 1720742400,
            endpoints=_endpoints("midjourney"),
        ),
        _entry(
            "flux-pro-1.1", "FLUX1.1 [pro]", "Black Forest Labs", "bfl", "image", edit, {"per_request": 0.04},
            1727740800, endpoints=_endpoints("flux"),
        ),
        _entry(
            "flux-pro-1.1-ultra", "FLUX1.1 [pro] Ultra", "Black Forest Labs", "bfl", "image", edit, {"per_request": 0.06},
            1731024000, endpoints=_endpoints("flux"),
        ),
        _entry(
            "flux-2-pro", "FLUX.2 [pro]", "Black Forest Labs", "bfl", "image", edit, {"per_request": 0.03}, 1764028800,
            endpoints=_endpoints("flux"),
        ),
        text("llama-4-maverick", "Llama 4 Maverick", "Meta", "meta", 0.27, 0.85, 1743811200),
        text("mistral-large-latest", "Mistral Large", "Mistral", "mistral", 2, 6, 1731974400),
        text("claude-opus-4-1", "Claude Opus 4.1", "Anthropic", "anthropic", 15, 75, 1754352000),
        text("o4-mini", "o4-mini", "OpenAI", "openai", 1.1, 4.4, 1744848000),
        _entry("sora-2", "Sora 2", "OpenAI", "openai", "video", ["text-to-video"], {"per_second": 0.1}, 1759190400),
        _entry("tts-1", "TTS 1", "OpenAI", "openai", "audio", ["text-to-speech"], {"input": 15}, 1699228800),
    ]


# --------------------------------------------------------------------------------------------
# Model families and request validation


def _family(model: str) -> str:
    if model == "dall-e-2":
        return "dalle2"
    if model == "dall-e-3":
        return "dalle3"
    if model.startswith("gpt-image-"):
        return "gpt"
    if model == "qwen-image":
        return "qwen"
    if model.startswith("doubao-seedream-"):
        return "seedream"
    return "other"


_SIZE_RE = re.compile(r"^(\d+)x(\d+)$")
_PROMPT_MAX = {"dalle2": 1000, "dalle3": 4000, "gpt": 32000}
_SIZES = {
    "dalle2": ("256x256", "512x512", "1024x1024"),
    "dalle3": ("1024x1024", "1792x1024", "1024x1792"),
    "gpt": ("1024x1024", "1536x1024", "1024x1536", "auto"),
}
_GPT_OUTPUT_TOKENS = {"low": 272, "medium": 1056, "high": 4160}


class _BadRequest(Exception):
    def __init__(self, message: str, param: str | None, code: str | None = "invalid_value") -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


def _check_int(body: dict, name: str, lo: int, hi: int, default: int) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        found = type(value).__name__
        raise _BadRequest(f"Invalid type for '{name}': expected an integer, but got {found} instead.",
                          name, "invalid_type")
    if value < lo:
        raise _BadRequest(f"Invalid '{name}': integer below minimum value. "
                          f"Expected a value >= {lo}, but got {value} instead.", name, "integer_below_min_value")
    if value > hi:
        raise _BadRequest(f"Invalid '{name}': integer above maximum value. "
                          f"Expected a value <= {hi}, but got {value} instead.", name, "integer_above_max_value")
    return value


def _check_choice(body: dict, name: str, choices: tuple[str, ...], default: str) -> str:
    value = body.get(name)
    if value is None:
        return default
    if value not in choices:
        listed = ", ".join(f"'{c}'" for c in choices)
        raise _BadRequest(f"Invalid value: '{value}'. Supported values are: {listed}.", name)
    return value


def _gpt2_size_ok(size: str) -> bool:
    m = _SIZE_RE.match(size)
    if not m:
        return False
    w, h = int(m.group(1)), int(m.group(2))
    if w <= 0 or h <= 0 or w % 16 or h % 16:
        return False
    if max(w, h) > 3 * min(w, h):
        return False
    return max(w, h) <= 3840 and w * h <= 3840 * 2160


class _Rejected(Exception):
    """A request a route refuses, with the status and provider-shaped body to answer."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status, self.body = status, body


def _google_bad(message: str) -> _Rejected:
    return _Rejected(400, _google_error(400, message))


_GEMINI_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
_GEMINI_MODELS = {  # aspect ratios, image sizes
    "gemini-3.1-flash-image-preview": (_GEMINI_RATIOS + ("1:4", "4:1", "1:8", "8:1"), ("512", "1K", "2K", "4K")),
    "gemini-3-pro-image-preview": (_GEMINI_RATIOS, ("1K", "2K", "4K")),
}
_GEMINI_SHUT_DOWN = {"gemini-2.5-flash-image": ("Gemini 2.5 Flash Image", "2026-10-02")}
_GEMINI_MIME = ("image/png", "image/jpeg", "image/webp", "image/heic", "image/heif")
_GEMINI_MAX_IMAGES = 14
# Output tokens per image as Gemini 3 Pro Image bills them (1K and 2K cost the same); 512 is a guess.
_GEMINI_IMAGE_TOKENS = {"512": 560, "1K": 1120, "2K": 1120, "4K": 2000}
_GEMINI_INPUT_IMAGE_TOKENS = 258
# The fields of the request messages: Google's JSON parser refuses any other name, in either spelling.
_PART_DATA = {"text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
              "codeExecutionResult"}
_GEMINI_FIELDS = {
    "request": {"contents", "tools", "toolConfig", "safetySettings", "systemInstruction", "generationConfig",
                "cachedContent", "labels"},
    "content": {"role", "parts"},
    "part": _PART_DATA | {"thought", "thoughtSignature", "videoMetadata"},
    "blob": {"mimeType", "data"},
    "generationConfig": {"stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema",
                         "responseModalities", "candidateCount", "maxOutputTokens", "temperature", "topP", "topK",
                         "seed", "presencePenalty", "frequencyPenalty", "responseLogprobs", "logprobs",
                         "speechConfig", "thinkingConfig", "imageConfig", "mediaResolution"},
    "imageConfig": {"aspectRatio", "imageSize"},
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _snake_keys(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {_snake(k): _snake_keys(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_snake_keys(v) for v in obj]
    return obj


def _proto(obj: Any, where: str, fields: str) -> dict[str, Any]:
    """``obj`` read as the message ``fields``: names in lowerCamelCase whichever spelling was sent, null as unset."""
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise _google_bad(f"Invalid JSON payload received. Expected an object at '{where or 'request'}'.")
    known = _GEMINI_FIELDS[fields]
    out: dict[str, Any] = {}
    for name, value in obj.items():
        camel = _camel(name)
        if camel not in known:
            at = f" at '{where}'" if where else ""
            raise _google_bad(f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.')
        out[camel] = value
    return out


def _check_blob(raw: Any, where: str) -> None:
    blob = _proto(raw, where, "blob")
    mime, data = blob.get("mimeType"), blob.get("data")
    if mime is None:
        raise _google_bad(f"* GenerateContentRequest.{where}.mime_type: required field is not set.")
    if mime not in _GEMINI_MIME:
        raise _google_bad(f"Unsupported MIME type: {mime}")
    if not isinstance(data, str):
        raise _google_bad(f"Invalid value at '{where}.data' (TYPE_BYTES), {json.dumps(data)[:40]}")
    try:
        # Google's JSON reader takes either base64 alphabet, padded or not; a data: prefix is no base64.
        decoded = base64.b64decode(data.replace("-", "+").replace("_", "/") + "=" * (-len(data) % 4), validate=True)
    except ValueError:
        preview = json.dumps(data[:40])
        raise _google_bad(f"Invalid value at '{where}.data' (TYPE_BYTES), Base64 decoding failed for {preview}") from None
    if not decoded:
        raise _google_bad("Unable to process input image. Please retry or report in "
                          "https://developers.generativeai.google/guide/troubleshooting")


def _gemini_plan(model: str, raw: dict) -> dict[str, Any]:
    if model in _GEMINI_SHUT_DOWN:
        name, day = _GEMINI_SHUT_DOWN[model]
        raise _Rejected(404, _google_error(
            404, f"{name} ({model}) was shut down on {day}. Consider switching to a different model, "
                 "for example gemini-3.1-flash-image-preview.",
        ))
    if model not in _GEMINI_MODELS:
        raise _Rejected(404, _google_error(
            404, f"models/{model} is not found for API version v1beta, or is not supported for generateContent. "
                 "Call ListModels to see the list of available models and their supported methods.",
        ))
    ratios, sizes = _GEMINI_MODELS[model]
    body = _proto(raw, "", "request")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise _google_bad("* GenerateContentRequest.contents: contents is not specified")
    texts: list[str] = []
    images = 0
    for ci, item in enumerate(contents):
        where = f"contents[{ci}]"
        content = _proto(item, where, "content")
        role = content.get("role") or "user"
        if role not in ("user", "model"):
            raise _google_bad("Please use a valid role: user, model.")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise _google_bad(f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty.")
        for pi, raw_part in enumerate(parts):
            at = f"{where}.parts[{pi}]"
            part = _proto(raw_part, at, "part")
            if not _PART_DATA & part.keys():
                raise _google_bad(f"* GenerateContentRequest.{at}.data: required oneof field 'data' must have one "
                                  "initialized field")
            if "text" in part:
                if not isinstance(part["text"], str):
                    raise _google_bad(f"Invalid value at '{at}.text' (TYPE_STRING), {json.dumps(part['text'])[:40]}")
                if role == "user" and part["text"].strip():
                    texts.append(part["text"])
            if "inlineData" in part:
                _check_blob(part["inlineData"], f"{at}.inline_data")
                images += 1
                # Gemini 3 wants its earlier images back with the signature it gave them.
                if role == "model" and not part.get("thought") and not part.get("thoughtSignature"):
                    raise _google_bad(f"Image part is missing a thought_signature in content position {ci + 1}, "
                                      f"part position {pi + 1}.")
    if not texts:
        raise _google_bad("* GenerateContentRequest.contents: the request has no text prompt; "
                          "an image model needs a text part.")
    if images > _GEMINI_MAX_IMAGES:
        raise _google_bad(f"Too many input images: {images}. This model accepts at most {_GEMINI_MAX_IMAGES}.")
    config = _proto(body.get("generationConfig"), "generation_config", "generationConfig")
    modalities = config.get("responseModalities")
    enum = "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerationConfig.Modality"
    if modalities is not None and not isinstance(modalities, list):
        raise _google_bad(f"Invalid value at 'generation_config.response_modalities' ({enum}), {json.dumps(modalities)}")
    wanted = set()
    for i, modality in enumerate(modalities or []):
        # Google's examples spell them "Text" and "Image" as often as "TEXT" and "IMAGE": both work.
        name = modality.upper() if isinstance(modality, str) else None
        if name not in ("TEXT", "IMAGE", "AUDIO", "MODALITY_UNSPECIFIED"):
            raise _google_bad(
                f"Invalid value at 'generation_config.response_modalities[{i}]' ({enum}), {json.dumps(modality)}"
            )
        if name == "AUDIO":
            raise _google_bad("Model does not support the requested response modalities: audio")
        wanted.add(name)
    image_config = _proto(config.get("imageConfig"), "generation_config.image_config", "imageConfig")
    ratio = image_config.get("aspectRatio")
    if ratio is not None and ratio not in ratios:
        raise _google_bad(f"Unsupported aspect ratio: {ratio}. Supported values are: {', '.join(ratios)}.")
    size = image_config.get("imageSize")
    if size is not None and size not in sizes:
        raise _google_bad(f"Unsupported image size: {size}. Supported values are: {', '.join(sizes)}.")
    return {"prompt": "\n".join(texts), "images": images, "modalities": wanted, "size": size or "1K"}


_BRIA_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9")
_BRIA_BOOLS = ("prompt_enhancement", "enhance_image", "prompt_content_moderation", "content_moderation",
               "ip_signal", "sync")
_BRIA_FIELDS = {"prompt", "num_results", "aspect_ratio", "seed", "negative_prompt", "steps_num",
                "text_guidance_scale", "medium", *_BRIA_BOOLS}


def _bria_plan(body: dict) -> dict[str, Any]:
    """Validate like FastAPI does: every problem at once, as ``detail`` items, or the plan."""
    errors: list[dict[str, Any]] = []

    def error(name: str, msg: str, type_: str = "value_error") -> None:
        errors.append({"loc": ["body", name], "msg": msg, "type": type_})

    def number(name: str, lo: float | None, hi: float | None, integral: bool) -> Any:
        value = body.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int if integral else (int, float)):
            if integral:
                error(name, "value is not a valid integer", "type_error.integer")
            else:
                error(name, "value is not a valid float", "type_error.float")
            return None
        if lo is not None and value < lo:
            error(name, f"ensure this value is greater than or equal to {lo}", "value_error.number.not_ge")
        elif hi is not None and value > hi:
            error(name, f"ensure this value is less than or equal to {hi}", "value_error.number.not_le")
        return value

    def choice(name: str, choices: tuple[str, ...]) -> None:
        value = body.get(name)
        if value is not None and value not in choices:
            permitted = ", ".join(f"'{c}'" for c in choices)
            error(name, f"value is not a valid enumeration member; permitted: {permitted}")

    for name in body:
        if name not in _BRIA_FIELDS:
            error(name, "extra fields not permitted", "value_error.extra")
    prompt = body.get("prompt")
    if "prompt" not in body:
        error("prompt", "field required", "value_error.missing")
    elif prompt is None:
        error("prompt", "none is not an allowed value", "type_error.none.not_allowed")
    elif not isinstance(prompt, str):
        error("prompt", "str type expected", "type_error.str")
    elif not prompt.strip():
        error("prompt", "ensure this value has at least 1 characters", "value_error.any_str.min_length")
    n = number("num_results", 1, 4, integral=True)
    choice("aspect_ratio", _BRIA_RATIOS)
    seed = number("seed", None, None, integral=True)
    if body.get("negative_prompt") is not None and not isinstance(body["negative_prompt"], str):
        error("negative_prompt", "str type expected", "type_error.str")
    number("steps_num", 20, 50, integral=True)
    number("text_guidance_scale", 1, 10, integral=False)
    choice("medium", ("photography", "art"))
    for name in _BRIA_BOOLS:
        if body.get(name) is not None and not isinstance(body[name], bool):
            error(name, "value could not be parsed to a boolean", "type_error.bool")
    if errors:
        raise _Rejected(422, {"detail": errors})
    return {"prompt": prompt, "n": n or 1, "seed": seed}


def _mask(key: str) -> str:
    return f"{key[:3]}...{key[-4:]}" if len(key) >= 12 else "***"


def _openai_error(message: str | None, type_: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


_STATUS_ERRORS = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Invalid authentication.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to access this resource.", "invalid_request_error", None),
    404: ("The requested resource was not found.", "invalid_request_error", None),
    408: ("Request timed out.", "server_error", None),
    409: ("Conflict.", "invalid_request_error", None),
    413: ("Request entity too large.", "invalid_request_error", None),
    429: ("Rate limit reached for requests. Please try again later.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
    504: ("Gateway timeout.", "server_error", None),
}


def _status_error(status: int) -> dict:
    message, type_, code = _STATUS_ERRORS.get(
        status, (f"HTTP {status}", "server_error" if status >= 500 else "invalid_request_error", None)
    )
    return _openai_error(message, type_, None, code)


_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ABORTED",
    429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}
_GOOGLE_MESSAGES = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials.",
    403: "The caller does not have permission.",
    404: "Requested entity was not found.",
    429: "You exceeded your current quota, please check your plan and billing details. For more information on "
         "this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    500: "An internal error has occurred. Please retry or report in "
         "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}


def _google_error(code: int, message: str, details: list[dict[str, Any]] | None = None) -> dict:
    error: dict[str, Any] = {"code": code, "message": message, "status": _GOOGLE_STATUS.get(code, "UNKNOWN")}
    if details:
        error["details"] = details
    return {"error": error}


# What invalid_json sends by default: a response of the route's own shape, cut short.
_TRUNCATED = {
    "openai": b'{"created": 1779872000, "data": [{"url": "http',
    "gemini": b'{"candidates": [{"content": {"role": "model", "parts": [{"inlineData": {"mimeType": "image/png", '
              b'"data": "iVBORw0KGgo',
    "bria": b'{"result": [{"urls": ["http',
    "mj": b'{"code": 1, "description": "\xe6\x8f\x90\xe4\xba\xa4\xe6\x88\x90\xe5\x8a\x9f", "result": "17',
    "flux": b'{"id": "3f1c0e52-',
}

_ACCESS_DENIED = b'{"Code":"AccessDenied","Message":"Access Denied","EC":"0003-00000015"}'
_NO_SUCH_KEY = b'{"Code":"NoSuchKey","Message":"The specified key does not exist.","EC":"0017-00000003"}'
_HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
_HTML_PORTAL = (
    b"<!DOCTYPE html><html><head><title>Sign in to the network</title></head>"
    b"<body><h1>Welcome</h1><p>Please accept the terms of use to continue.</p></body></html>"
)
_XML_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message>'
    b"<RequestId>4c6f6f6b696e67466f72</RequestId><HostId>tos-cn-beijing.volces.com</HostId>"
    b"<EC>0003-00000015</EC></Error>"
)
# The credential holds a %3D-encoded base64 pad on purpose: decoding it is one way clients mangle URLs.
_TOS_QUERY = (
    "X-Tos-Algorithm=TOS4-HMAC-SHA256"
    "&X-Tos-Credential=AKLTZmFrZWFrMQ%3D%3D%2F20261121%2Fcn-beijing%2Ftos%2Frequest"
    "&X-Tos-Date=20261121T120000Z&X-Tos-Expires=86400&X-Tos-SignedHeaders=host"
)
_SIG_MARKER = "&X-Tos-Signature="


def _signature_at(raw: str) -> tuple[int, str]:
    """Where a signed link's signature starts: TOS style, or Azure-blob style for Flux samples."""
    for marker in (_SIG_MARKER, _tasks().SAMPLE_SIG_MARKER):
        cut = raw.rfind(marker)
        if cut > 0:
            return cut, marker
    return -1, _SIG_MARKER


class _Abort(Exception):
    """The connection was deliberately dropped; nothing more may be written."""


# --------------------------------------------------------------------------------------------
# The server


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
    fake: FakeServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError, _Abort)):
            return  # clients hanging up is routine here, not worth a traceback
        super().handle_error(request, client_address)


class FakeServer:
    """A threaded local server speaking the image APIs; see the module docstring."""

    def __init__(
        self,
        api_key: str | None = None,
        latency: float = 0.0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        image_bytes: int | None = None,
        sse_done: bool = False,
        stream_interval: float = 0.0,
        catalog: list[dict[str, Any]] | None = None,
    ) -> None:
        self.api_key = api_key
        self.latency = latency
        self.image_bytes = image_bytes
        self.sse_done = sse_done  # end streams with "data: [DONE]"
        self.stream_interval = stream_interval  # seconds between SSE events
        self.catalog = catalog if catalog is not None else default_catalog()
        self.host, self.port = host, port
        self.requests: list[Recorded] = []
        self.served: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._random: tuple[float, random.Random, list[tuple[str, dict[str, Any]]]] | None = None
        self._files: dict[str, _Image] = {}
        # The placeholder task API: a task answers "pending" to this many polls, then is done.
        self.task_pending_polls = 2
        self._tasks: dict[str, dict[str, Any]] = {}
        # Midjourney and Flux: sets the knobs mj_timeline, flux_timeline, flux_sample_ttl, flux_result_ttl,
        # flux_polling_host and task_clock (see fakeserver_tasks) and the task state behind submits.
        _tasks().install(self)
        self._loops: set[str] = set()
        self._secret = secrets.token_bytes(32)
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeServer:
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self.port), _Handler)
        self._httpd.fake = self
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fakeserver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        # Idle keep-alive connections would otherwise keep handler threads alive after the test.
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    close = stop

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # test-facing API -----------------------------------------------------------------------

    def api_requests(self) -> list[Recorded]:
        """Recorded requests to the generation endpoints only."""
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and _is_generation(r.path.split("?", 1)[0])]

    def polls(self) -> list[Recorded]:
        """Recorded polls: of the placeholder task API, Midjourney fetches and list-by-condition, Flux get_result."""
        is_poll = _tasks().is_poll
        with self._lock:
            return [r for r in self.requests if (r.method == "GET" and r.path.startswith(TASK_PATH + "/"))
                    or is_poll(r.method, r.path.split("?", 1)[0])]

    @property
    def submits(self) -> list[dict[str, Any]]:
        """Accepted Midjourney and Flux submits, oldest first: {"kind", "id", "path", "time", ...}."""
        return self._task_state.submits()

    def submit_count(self, kind: str | None = None) -> int:
        """How many submits created a task: kind "mj-imagine", "mj-action", "mj" (both) or "flux"; None for all."""
        return self._task_state.submit_count(kind)

    def downloads(self) -> list[Recorded]:
        """Recorded requests for signed download URLs."""
        with self._lock:
            return [r for r in self.requests if r.path.startswith("/files/")]

    def fault(self, kind: str, times: int = 1, **opts: Any) -> None:
        """Queue ``kind`` for the next ``times`` matching requests, after any faults already queued."""
        self._validate_fault(kind, opts)
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._faults.append(_Fault(kind, {**FAULT_KINDS[kind], **opts}, times))

    def pending_faults(self) -> list[tuple[str, int]]:
        """Queued faults not yet consumed, as (kind, remaining uses)."""
        with self._lock:
            return [(f.kind, f.remaining) for f in self._faults]

    def random_faults(
        self, probability: float = 0.1, seed: int = 1, kinds: list[Any] | None = None
    ) -> None:
        """Give every generation/download request an independent chance of a random fault.

        ``kinds`` items are a kind name, a ``(kind, opts)`` pair or a dict with a ``"kind"`` key.
        A probability of 0 turns random faults off. Queued faults take precedence.
        """
        chosen: list[tuple[str, dict[str, Any]]] = []
        for item in DEFAULT_RANDOM_KINDS if kinds is None else kinds:
            if isinstance(item, str):
                kind, opts = item, {}
            elif isinstance(item, dict):
                opts = dict(item)
                kind = opts.pop("kind")
            else:
                kind, opts = item[0], dict(item[1])
            self._validate_fault(kind, opts)
            chosen.append((kind, {**FAULT_KINDS[kind], **opts}))
        with self._lock:
            self._random = (probability, random.Random(seed), chosen) if probability > 0 and chosen else None

    def reset(self) -> None:
        """Forget recorded requests, served images, accepted task submits, queued and random faults and the in-flight peak."""
        with self._lock:
            self.requests.clear()
            self.served.clear()
            self._faults.clear()
            self._random = None
            self._loops.clear()
            self.max_in_flight = self.in_flight
        self._task_state.forget_submits()

    # internals -----------------------------------------------------------------------------

    @staticmethod
    def _validate_fault(kind: str, opts: dict[str, Any]) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        unknown = set(opts) - set(FAULT_KINDS[kind])
        if unknown:
            raise ValueError(f"fault {kind!r} takes no option(s) {sorted(unknown)}; known: {sorted(FAULT_KINDS[kind])}")

    def _take_fault(self, ctx: tuple[str, str, bool]) -> tuple[str, dict[str, Any]] | None:
        with self._lock:
            for f in self._faults:
                if _matches(f.kind, ctx):
                    f.remaining -= 1
                    if f.remaining <= 0:
                        self._faults.remove(f)
                    return f.kind, f.opts
            if self._random is not None:
                probability, rng, kinds = self._random
                if rng.random() < probability:
                    candidates = [k for k in kinds if _matches(k[0], ctx)]
                    if candidates:
                        return rng.choice(candidates)
        return None

    def _record(self, rec: Recorded) -> None:
        with self._lock:
            self.requests.append(rec)

    @contextlib.contextmanager
    def _busy(self) -> Iterator[None]:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1

    def _sleep(self, seconds: float) -> None:
        if seconds and seconds > 0:
            self._stopping.wait(seconds)

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _image(self, seed: str, fmt: str, padded: bool = True) -> _Image:
        return make_image(seed, fmt, self.image_bytes if padded else None)

    def _sign(self, unsigned: str) -> str:
        return hmac.new(self._secret, unsigned.encode(), hashlib.sha256).hexdigest()

    def _publish(self, image: _Image) -> str:
        token = secrets.token_hex(12)
        with self._lock:
            self._files[token] = image
        unsigned = f"/files/{token}.{image.fmt}?{_TOS_QUERY}"
        return f"{self.base_url}{unsigned}{_SIG_MARKER}{self._sign(unsigned)}"

    def _serve_record(self, image: _Image, url: str | None, index: int, model: str) -> None:
        entry = {
            "sha256": image.sha256(),
            "bytes": image.size,
            "url": url,
            "index": index,
            "format": image.fmt,
            "model": model,
        }
        with self._lock:
            self.served.append(entry)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fakeserver/1.0"
    sys_version = ""
    disable_nagle_algorithm = True  # small SSE fragments must leave at once
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track(self.connection, add=False)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    # plumbing ------------------------------------------------------------------------------

    @property
    def fake(self) -> FakeServer:
        return self.server.fake

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self, method: str) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        parsed = None
        if body and not headers.get("content-type", "").lower().startswith("multipart/"):
            with contextlib.suppress(ValueError):
                parsed = json.loads(body)
        rec = Recorded(method, self.path, headers, body, parsed, time=time.time())
        self.fake._record(rec)
        route = self.path.split("?", 1)[0]
        gemini = GEMINI_ROUTE.match(route)
        try:
            if method == "POST" and route == "/v1/images/generations":
                with self.fake._busy():
                    self._openai(rec)
            elif method == "POST" and route == EDITS_PATH:
                with self.fake._busy():
                    self._edit(rec)
            elif method == "POST" and route == "/api/v1/image/generation":
                with self.fake._busy():
                    self._envelope(rec)
            elif method == "POST" and gemini:
                with self.fake._busy():
                    self._gemini(rec, gemini.group(1))
            elif method == "POST" and route == "/bria/text-to-image":
                with self.fake._busy():
                    self._bria(rec)
            elif method == "POST" and route == TASK_PATH:
                with self.fake._busy():
                    self._task_submit(rec)
            elif method == "GET" and route.startswith(TASK_PATH + "/"):
                self._task_poll(rec, route[len(TASK_PATH) + 1 :])
            elif method == "GET" and route.startswith("/files/"):
                self._download(rec)
            elif method == "GET" and route == "/api/models":
                self._catalog()
            elif method == "GET" and route == "/v1/models":
                self._models()
            elif _tasks().owns(method, route):
                _tasks().handle(self, rec, method, route)
            else:
                self._json(404, _openai_error(f"Invalid URL ({method} {route})", "invalid_request_error"))
        except (_Abort, ConnectionError, TimeoutError):
            self.close_connection = True

    def _respond(
        self,
        status: int,
        body: bytes | list[Any],
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        segments = [body] if isinstance(body, (bytes, bytearray)) else body
        fields = {"Content-Type": content_type, "Content-Length": str(sum(_seg_len(s) for s in segments))}
        for name, value in (headers or {}).items():
            for existing in [k for k in fields if k.lower() == name.lower()]:
                del fields[existing]
            fields[name] = str(value)
        self.send_response(status)
        for name, value in fields.items():
            self.send_header(name, value)
        self.end_headers()
        for piece in _pieces(segments):
            self.wfile.write(piece)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._respond(status, json.dumps(obj).encode(), "application/json", headers)

    def _body_response(self, status: int, body: Any, default: Any, headers: dict[str, str] | None) -> None:
        """A fault's response: a dict/list goes out as JSON, bytes/str verbatim."""
        if body is None:
            body = default
        if isinstance(body, (dict, list)):
            self._json(status, body, headers)
        else:
            data = body.encode() if isinstance(body, str) else bytes(body)
            self._respond(status, data, "application/json", headers)

    def _reset_connection(self) -> None:
        # SO_LINGER 0 turns the close into a TCP RST: the client sees a reset, not a clean EOF.
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        raise _Abort

    def _auth(self) -> tuple[bool, str | None]:
        key = self.fake.api_key
        if not key:
            return True, None
        header = self.headers.get("Authorization")
        if header is None:
            return False, None
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False, token or scheme
        return hmac.compare_digest(token.encode(), key.encode()), token

    def _refused(self) -> bool:
        """Answer 401 and say so when the request carries no valid key."""
        ok, token = self._auth()
        if not ok:
            self._json(401, self._auth_failure_body(token))
        return not ok

    def _auth_failure_body(self, token: str | None) -> dict:
        if token is None:
            message = (
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
        else:
            message = f"Incorrect API key provided: {_mask(token)}. You can find your API key in your account settings."
        return _openai_error(message, "invalid_request_error", None, "invalid_api_key")

    def _google_refused(self) -> bool:
        """Gemini's key check, Bearer or x-goog-api-key: answer in Google's shape and say so when it fails."""
        if self.headers.get("Authorization") is not None:
            ok, token = self._auth()
        else:
            key, token = self.fake.api_key, self.headers.get("x-goog-api-key")
            ok = not key or (token is not None and hmac.compare_digest(token.strip().encode(), key.encode()))
        if ok:
            return False
        if token:
            self._json(401, _google_error(401, "API key not valid. Please pass a valid API key."))
        else:
            self._json(403, _google_error(
                403, "Method doesn't allow unregistered callers (callers without established identity). "
                     "Please use API Key or other form of API consumer identity to call this API.",
            ))
        return True

    def _api_fault(self, rec: Recorded, dialect: str, stream: bool) -> Any:
        """The fault queued for this generation request, after the server's latency: _ANSWERED
        when the fault was the whole response, else the fault (or None) for the route to apply."""
        fault = self.fake._take_fault(("api", dialect, stream))
        rec.fault = fault[0] if fault else None
        self.fake._sleep(self.fake.latency)
        return _ANSWERED if self._early_fault(fault, dialect) else fault

    def _early_fault(self, fault: tuple[str, dict[str, Any]] | None, dialect: str) -> bool:
        """Answer the faults that replace the whole response; True if the request is done."""
        if fault is None:
            return False
        kind, opts = fault
        if kind == "status":
            self._body_response(opts["status"], opts["body"], _status_error(opts["status"]), opts["headers"])
        elif kind == "insufficient_quota":
            body = _openai_error(
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota", None, "insufficient_quota",
            )
            self._json(429, body, opts["headers"])
        elif kind == "moderation":
            body = _openai_error(
                "Your request was rejected as a result of our safety system. Your request may contain content "
                "that is not allowed by our safety system.",
                "image_generation_user_error", None, "moderation_blocked",
            )
            self._json(400, body)
        elif kind == "html":
            self._respond(opts["status"], _HTML_502, "text/html")
        elif kind == "invalid_json":
            body = opts["body"] if opts["body"] is not None else _TRUNCATED.get(dialect, _TRUNCATED["openai"])
            self._respond(opts["status"], body.encode() if isinstance(body, str) else body, "application/json")
        elif kind == "google_error":
            status = opts["status"]
            message = opts["message"] if opts["message"] is not None else _GOOGLE_MESSAGES.get(status, f"HTTP {status}")
            details = None
            if status == 429 and opts["retry_delay"] is not None:
                details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": opts["retry_delay"]}]
            self._json(status, _google_error(status, message, details))
        elif kind == "reset":
            self._reset_connection()
        elif kind == "slow":
            self.fake._sleep(opts["delay"])
            return False
        elif kind == "stream_json_error":
            default = _openai_error(
                "Your request was rejected as a result of our safety system.",
                "image_generation_user_error", None, "moderation_blocked",
            )
            ctype = "text/event-stream; charset=utf-8" if opts["lying_content_type"] else "application/json"
            self._body_response(opts["status"], opts["body"], default, {"Content-Type": ctype})
        else:
            return False
        return True

    # generation: OpenAI-compatible -----------------------------------------------------------

    def _openai(self, rec: Recorded) -> None:
        if self._refused():
            return
        body = rec.json
        if not isinstance(body, dict):
            self._json(400, _openai_error(
                "We could not parse the JSON body of your request. The API expects a JSON payload, "
                "but what was sent was not valid JSON.",
                "invalid_request_error",
            ))
            return
        model = body.get("model") or "dall-e-2"
        family = _family(model) if isinstance(model, str) else "other"
        stream = family == "gpt" and body.get("stream") is True
        fault = self._api_fault(rec, "openai", stream)
        if fault is _ANSWERED:
            return
        try:
            plan = self._plan(body, model, family)
        except _BadRequest as exc:
            self._json(400, _openai_error(exc.message, "invalid_request_error", exc.param, exc.code))
            return
        if stream:
            self._stream(plan, fault)
            return
        if fault and fault[0] == "shape":
            self._wrong_shape(fault[1]["variant"])
            return
        self._generate(plan, model, family, fault)

    def _plan(self, body: dict, model: str, family: str) -> dict[str, Any]:
        prompt = body.get("prompt")
        if prompt is None:
            raise _BadRequest("Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter")
        if not isinstance(prompt, str):
            raise _BadRequest("Invalid type for 'prompt': expected a string.", "prompt", "invalid_type")
        limit = _PROMPT_MAX.get(family)
        if limit and len(prompt) > limit:
            raise _BadRequest(
                f"Invalid 'prompt': string too long. Expected a string with maximum length {limit}, "
                f"but got a string with length {len(prompt)} instead.",
                "prompt", "string_above_max_length",
            )
        plan: dict[str, Any] = {"prompt": prompt, "fmt": "png", "url": True, "model": model}
        if family == "gpt":
            if "response_format" in body:
                raise _BadRequest("Unknown parameter: 'response_format'.", "response_format", "unknown_parameter")
            plan["n"] = _check_int(body, "n", 1, 10, 1)
            size = body.get("size") or "auto"
            if model.startswith("gpt-image-2"):
                if size != "auto" and not (isinstance(size, str) and _gpt2_size_ok(size)):
                    raise _BadRequest(
                        f"Invalid size '{size}'. Both sides must be multiples of 16, the aspect ratio between "
                        "1:3 and 3:1, at most 3840x2160.", "size",
                    )
            else:
                _check_choice(body, "size", _SIZES["gpt"], "auto")
            quality = _check_choice(body, "quality", ("low", "medium", "high", "auto"), "auto")
            background = _check_choice(body, "background", ("transparent", "opaque", "auto"), "auto")
            fmt = _check_choice(body, "output_format", ("png", "jpeg", "webp"), "png")
            _check_choice(body, "moderation", ("low", "auto"), "auto")
            _check_int(body, "output_compression", 0, 100, 100)
            plan["partials"] = _check_int(body, "partial_images", 0, 3, 0)
            if background == "transparent" and fmt == "jpeg":
                raise _BadRequest(
                    "Transparent background is not supported for output format 'jpeg'. Use 'png' or 'webp'.",
                    "background",
                )
            plan.update(
                fmt=fmt, url=False,
                size="1024x1024" if size == "auto" else size,
                quality="medium" if quality == "auto" else quality,
                background="opaque" if background == "auto" else background,
            )
            return plan
        if family == "dalle3":
            plan["n"] = _check_int(body, "n", 1, 10, 1)
            if plan["n"] != 1:
                raise _BadRequest("You must provide n=1 for this model.", "n")
            plan["size"] = _check_choice(body, "size", _SIZES["dalle3"], "1024x1024")
            _check_choice(body, "quality", ("standard", "hd"), "standard")
            _check_choice(body, "style", ("vivid", "natural"), "vivid")
        elif family == "dalle2":
            plan["n"] = _check_int(body, "n", 1, 10, 1)
            plan["size"] = _check_choice(body, "size", _SIZES["dalle2"], "1024x1024")
        elif family == "qwen":
            plan["n"] = _check_int(body, "n", 1, 10, 1)
            if plan["n"] != 1:
                raise _BadRequest("qwen-image generates exactly one image per request: n must be 1.", "n")
            plan["size"] = body.get("size") or "1328x1328"
            return plan  # always a URL
        elif family == "seedream":
            return self._plan_seedream(body, plan)
        else:
            plan["n"] = _check_int(body, "n", 1, 10, 1)
            plan["size"] = body.get("size") or "1024x1024"
        plan["url"] = _check_choice(body, "response_format", ("url", "b64_json"), "url") == "url"
        return plan

    def _plan_seedream(self, body: dict, plan: dict[str, Any]) -> dict[str, Any]:
        plan["url"] = _check_choice(body, "response_format", ("url", "b64_json"), "url") == "url"
        size = body.get("size") or "2048x2048"
        presets = {"1K": "1024x1024", "2K": "2048x2048", "4K": "4096x4096"}
        if isinstance(size, str) and size.upper() in presets:
            size = presets[size.upper()]
        elif not (isinstance(size, str) and _SIZE_RE.match(size)):
            raise _BadRequest(f"The parameter `size` specified in the request is not valid: {size}.", "size")
        plan["size"] = size
        images = body.get("image")
        if isinstance(images, str):
            images = [images]
        if images is not None and not isinstance(images, list):
            raise _BadRequest("The parameter `image` must be a string or a list of strings.", "image")
        references = len(images or [])
        if references > 14:
            raise _BadRequest(f"At most 14 reference images are allowed, got {references}.", "image")
        count = 1
        if body.get("sequential_image_generation") == "auto":
            options = body.get("sequential_image_generation_options")
            options = options if isinstance(options, dict) else {}
            count = _check_int(options, "max_images", 1, 15, 15 - references)
            if references + count > 15:
                raise _BadRequest(
                    "The total of reference images and generated images must not exceed 15.",
                    "sequential_image_generation_options.max_images",
                )
        plan["n"] = max(1, count)
        plan["fmt"] = _check_choice(body, "output_format", ("png", "jpeg"), "png")
        return plan

    def _wrong_shape(self, variant: str) -> None:
        now = int(time.time())
        shapes: dict[str, Any] = {
            "no_data": {"created": now},
            "data_not_list": {"created": now, "data": {"url": f"{self.fake.base_url}/files/x.png"}},
            "empty_item": {"created": now, "data": [{}]},
            "empty_list": {"created": now, "data": []},
            "null_data": {"created": now, "data": None},
            "not_object": [{"url": f"{self.fake.base_url}/files/x.png"}],
        }
        if variant not in shapes:
            raise ValueError(f"unknown shape variant {variant!r}; known: {', '.join(shapes)}")
        self._json(200, shapes[variant])

    def _generate(self, plan: dict[str, Any], model: str, family: str, fault: Any) -> None:
        fake = self.fake
        n, prompt = plan["n"], plan["prompt"]
        broken, broken_kind = None, None
        if fault and fault[0] in ("item_error", "invalid_b64"):
            broken, broken_kind = fault[1]["index"] % n, fault[0]
        nonce = secrets.token_hex(8)
        blobs: dict[str, list[Any]] = {}
        data: list[dict[str, Any]] = []
        produced = 0
        for i in range(n):
            if i == broken and broken_kind == "item_error":
                data.append({"error": {"code": fault[1]["code"], "message": fault[1]["message"]}})
                continue
            if i == broken:
                data.append({"b64_json": "@@not*base64!!"})
                continue
            image = fake._image(f"{prompt}\x00{i}", plan["fmt"])
            item: dict[str, Any] = {}
            url = None
            if plan["url"]:
                url = item["url"] = fake._publish(image)
            else:
                placeholder = f"@@B64_{nonce}_{i}@@"
                blobs[placeholder] = image.b64_segments()
                item["b64_json"] = placeholder
            if family == "dalle3":
                item["revised_prompt"] = f"A detailed, vivid rendering of: {prompt}"
            if family == "seedream":
                item["size"] = plan["size"]
            data.append(item)
            fake._serve_record(image, url, i, model)
            produced += 1
        now = int(time.time())
        response: dict[str, Any] = {"created": now, "data": data}
        if family == "gpt":
            w, h = (int(x) for x in plan["size"].split("x"))
            per_image = int(_GPT_OUTPUT_TOKENS[plan["quality"]] * max(1.0, w * h / 1024**2))
            text_tokens = max(1, len(prompt.split()))
            image_tokens = plan.get("input_image_tokens", 0)  # an edit's input images
            response.update(
                background=plan["background"], output_format=plan["fmt"], quality=plan["quality"], size=plan["size"],
                usage={
                    "input_tokens": text_tokens + image_tokens,
                    "input_tokens_details": {"image_tokens": image_tokens, "text_tokens": text_tokens},
                    "output_tokens": per_image * n,
                    "output_tokens_details": {"image_tokens": per_image * n, "text_tokens": 0},
                    "total_tokens": text_tokens + image_tokens + per_image * n,
                },
            )
        elif family == "seedream":
            w, h = (int(x) for x in plan["size"].split("x"))
            tokens = produced * (w * h // 256)
            response = {
                "model": model, "created": now, "data": data,
                "usage": {"generated_images": produced, "output_tokens": tokens, "total_tokens": tokens},
            }
        self._respond(200, _json_segments(response, blobs), "application/json")

    # generation: SSE ------------------------------------------------------------------------

    def _stream(self, plan: dict[str, Any], fault: Any, prefix: str = "image_generation") -> None:
        """Answer as SSE; ``prefix`` names the event types: image_generation.* or image_edit.*."""
        fake = self.fake
        kind, opts = fault if fault else (None, {})
        partials = plan["partials"]
        if kind == "stream_few_partials":
            partials = min(partials, opts["partials"])
        common = {
            "size": plan["size"], "quality": plan["quality"],
            "background": plan["background"], "output_format": plan["fmt"],
        }
        prompt = plan["prompt"]
        text_tokens = max(1, len(prompt.split()))
        image_tokens = plan.get("input_image_tokens", 0)
        per_image = _GPT_OUTPUT_TOKENS[plan["quality"]]
        nonce = secrets.token_hex(8)
        partial_type, completed_type = f"{prefix}.partial_image", f"{prefix}.completed"
        error_type = f"{prefix}_server_error"
        events: list[tuple[str, list[Any]]] = []
        for i in range(plan["n"]):
            for k in range(partials):
                image = fake._image(f"{prompt}\x00{i}\x00partial\x00{k}", plan["fmt"], padded=False)
                placeholder = f"@@B64_{nonce}_{i}_{k}@@"
                data = {"type": partial_type, "b64_json": placeholder,
                        "created_at": int(time.time()), **common, "partial_image_index": k}
                events.append(("partial", _sse_event(partial_type, data, {placeholder: image.b64_segments()})))
            image = fake._image(f"{prompt}\x00{i}", plan["fmt"])
            placeholder = f"@@B64_{nonce}_{i}@@"
            data = {
                "type": completed_type, "b64_json": placeholder, "created_at": int(time.time()),
                **common,
                "usage": {
                    "input_tokens": text_tokens + image_tokens,
                    "input_tokens_details": {"image_tokens": image_tokens, "text_tokens": text_tokens},
                    "output_tokens": per_image,
                    "output_tokens_details": {"image_tokens": per_image, "text_tokens": 0},
                    "total_tokens": text_tokens + image_tokens + per_image,
                },
            }
            events.append(("completed", _sse_event(completed_type, data, {placeholder: image.b64_segments()})))
            fake._serve_record(image, None, i, plan["model"])
        if fake.sse_done:
            events.append(("done", [b"data: [DONE]\n\n"]))

        cut_at = None
        if kind in ("stream_error_event", "stream_cut"):
            cut_at = _cut_position(events, opts["after_partials"])
        if kind == "stream_error_event":
            error = {"type": "error", "error": {"type": error_type, "code": opts["code"],
                                                "message": opts["message"], "param": None}}
            events = events[:cut_at] + [("error", _sse_event("error", error, {}))]

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        if kind == "stream_split":
            whole = b"".join(_flatten(segs) for _, segs in events)
            rng = random.Random(opts["seed"])
            pos = 0
            while pos < len(whole):
                step = opts["chunk"] or rng.randint(1, 7)
                self._chunk([whole[pos : pos + step]])
                pos += step
                fake._sleep(opts["pause"])
            self.wfile.write(b"0\r\n\r\n")
            return
        for number, (_, segs) in enumerate(events):
            if number and fake.stream_interval:
                fake._sleep(fake.stream_interval)
            if number == cut_at and kind == "stream_cut":
                raw = _flatten(segs)
                self._chunk([raw[: len(raw) // 2]])
                self.close_connection = True
                return
            self._chunk(segs)
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, segments: list[Any]) -> None:
        size = sum(_seg_len(s) for s in segments)
        if not size:
            return
        self.wfile.write(b"%x\r\n" % size)
        for piece in _pieces(segments):
            self.wfile.write(piece)
        self.wfile.write(b"\r\n")

    # image edits: a multipart form in, the generation answers out ------------------------------

    def _edit(self, rec: Recorded) -> None:
        import fakeserver_edits as edits  # on first use: only this route needs it, and it needs nothing from here

        if self._refused():
            return
        try:
            rec.form = edits.read_form(rec.body, rec.headers)
        except edits.EditError as exc:
            self._json(400, _openai_error(exc.message, "invalid_request_error", exc.param, exc.code))
            return
        fault = self._api_fault(rec, "edit", edits.wants_stream(rec.form))
        if fault is _ANSWERED:
            return
        try:
            if fault and fault[0] == "edit_reject":
                raise _BadRequest(fault[1]["message"], fault[1]["param"], fault[1]["code"])
            plan, family = edits.edit_plan(rec.form, self._plan)
        except (_BadRequest, edits.EditError) as exc:
            self._json(400, _openai_error(exc.message, "invalid_request_error", exc.param, exc.code))
            return
        if plan["stream"]:
            self._stream(plan, fault, "image_edit")
        elif fault and fault[0] == "shape":
            self._wrong_shape(fault[1]["variant"])
        else:
            self._generate(plan, plan["model"], family, fault)

    # generation: envelope gateway -----------------------------------------------------------

    def _envelope(self, rec: Recorded) -> None:
        fake = self.fake
        request_id = "req-" + secrets.token_hex(8)

        def reply(code: int, message: str, data: Any = None) -> None:
            body: dict[str, Any] = {"code": code, "message": message, "request_id": request_id}
            if data is not None:
                body["data"] = data
            self._json(200, body)

        ok, _ = self._auth()
        if not ok:
            reply(401, "invalid token")
            return
        body = rec.json
        if not isinstance(body, dict):
            reply(400, "invalid request body: expected a JSON object")
            return
        fault = self._api_fault(rec, "envelope", False)
        if fault is _ANSWERED:
            return
        for name in ("prompt", "n", "size", "stream", "output_compression", "model"):
            if body.get(name) is None:
                reply(400, f"missing required field: {name}")
                return
        n = body["n"]
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 10:
            reply(400, "invalid field n: must be an integer between 1 and 10")
            return
        if body["size"] not in ("auto", "1024x1024", "1536x1024", "1024x1536"):
            reply(400, f"invalid field size: {body['size']}")
            return
        if not str(body["model"]).startswith("gpt-image"):
            reply(400, f"invalid field model: {body['model']}")
            return
        task_id = "task-" + secrets.token_hex(8)
        if fault and fault[0] == "envelope_error":
            reply(fault[1]["code"], fault[1]["message"])
            return
        if fault and fault[0] == "envelope_pending":
            reply(0, "success", {
                "urls": [], "expired": "", "task_id": task_id, "task_status": fault[1]["task_status"],
                "usage": {"images": 0, "seconds": 0, "input_tokens": 0, "total_tokens": 0, "output_tokens": 0},
            })
            return
        fmt = body.get("output_format") if body.get("output_format") in ("png", "jpeg", "webp") else "png"
        urls = []
        for i in range(n):
            image = fake._image(f"{body['prompt']}\x00{i}", fmt)
            url = fake._publish(image)
            urls.append(url)
            fake._serve_record(image, url, i, str(body["model"]))
        data: dict[str, Any] = {
            "urls": urls,
            "expired": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400)),
            "task_id": task_id,
            "task_status": "succeeded",
            "usage": {"images": n, "seconds": 3, "input_tokens": 10, "total_tokens": 20, "output_tokens": 10},
        }
        if fault and fault[0] == "shape":
            self._wrong_envelope(fault[1]["variant"], request_id, data)
            return
        reply(0, "success", data)

    def _wrong_envelope(self, variant: str, request_id: str, data: dict[str, Any]) -> None:
        urls = data["urls"]
        head = {"code": 0, "message": "success", "request_id": request_id}
        shapes: dict[str, Any] = {
            "no_data": head,
            "data_not_list": {**head, "data": {**data, "urls": urls[0]}},
            "empty_item": {**head, "data": {**data, "urls": [""]}},
            "empty_list": {**head, "data": {**data, "urls": []}},
            "null_data": {**head, "data": None},
            "not_object": [urls],
        }
        if variant not in shapes:
            raise ValueError(f"unknown shape variant {variant!r}; known: {', '.join(shapes)}")
        self._json(200, shapes[variant])

    # generation: Gemini ---------------------------------------------------------------------

    def _gemini(self, rec: Recorded, model: str) -> None:
        fake = self.fake
        if self._google_refused():
            return
        body = rec.json
        if not isinstance(body, dict):
            why = "Unexpected token." if body is None else "Root element must be a message."
            self._json(400, _google_error(400, f"Invalid JSON payload received. {why}"))
            return
        fault = self._api_fault(rec, "gemini", False)
        if fault is _ANSWERED:
            return
        try:
            plan = _gemini_plan(model, body)
        except _Rejected as exc:
            self._json(exc.status, exc.body)
            return
        kind, opts = fault if fault else (None, {})
        prompt = plan["prompt"]
        prompt_tokens = max(1, len(prompt.split())) + _GEMINI_INPUT_IMAGE_TOKENS * plan["images"]
        thought_tokens = 0 if kind == "gemini_blocked_prompt" else 180
        trailer = {"modelVersion": model, "responseId": secrets.token_urlsafe(16)}

        def usage(candidate_tokens: int) -> dict[str, int]:
            counts = {"promptTokenCount": prompt_tokens}
            if candidate_tokens:
                counts["candidatesTokenCount"] = candidate_tokens
            counts["totalTokenCount"] = prompt_tokens + candidate_tokens + thought_tokens
            if thought_tokens:
                counts["thoughtsTokenCount"] = thought_tokens
            return counts

        def signature() -> str:
            return base64.b64encode(secrets.token_bytes(48)).decode()

        def answer(parts: list[dict[str, Any]], candidate_tokens: int) -> dict[str, Any]:
            candidate = {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0,
                         "safetyRatings": []}
            return {"candidates": [candidate], "usageMetadata": usage(candidate_tokens), **trailer}

        blobs: dict[str, list[Any]] = {}
        if kind == "gemini_blocked_prompt":
            response = {"promptFeedback": {"blockReason": opts["reason"], "safetyRatings": []},
                        "usageMetadata": usage(0), **trailer}
        elif kind == "gemini_blocked_image":
            response = {"candidates": [{"finishReason": opts["reason"], "index": 0}], "usageMetadata": usage(0),
                        **trailer}
        elif kind == "gemini_text_only" or "IMAGE" not in plan["modalities"]:
            # Without IMAGE among the response modalities the model only writes.
            text = opts["text"] if kind == "gemini_text_only" else f"Here is a description of the image: {prompt}"
            response = answer([{"text": text, "thoughtSignature": signature()}], len(text.split()))
        else:
            nonce = secrets.token_hex(8)
            # The draft is a thought: unpadded like the SSE partials, so only the final image is big.
            draft = fake._image(f"{prompt}\x00draft", "png", padded=False)
            final = fake._image(f"{prompt}\x00final", "png")
            draft_ph, final_ph = f"@@B64_{nonce}_draft@@", f"@@B64_{nonce}_final@@"
            blobs[final_ph] = final.b64_segments()
            parts: list[dict[str, Any]] = [{
                "text": "**Composing the scene**\n\nI'm laying out the composition before rendering it.",
                "thought": True,
            }]
            if kind != "gemini_markdown":
                blobs[draft_ph] = draft.b64_segments()
                parts.append({"inlineData": {"mimeType": "image/png", "data": draft_ph}, "thought": True})
            text_tokens = 0
            if "TEXT" in plan["modalities"]:
                parts.append({"text": "Here is your image.", "thoughtSignature": signature()})
                text_tokens = 4
            if kind == "gemini_markdown":
                parts.append({"text": f"![image](data:image/png;base64,{final_ph})", "thoughtSignature": signature()})
            else:
                parts.append({"inlineData": {"mimeType": "image/png", "data": final_ph},
                              "thoughtSignature": signature()})
            response = answer(parts, _GEMINI_IMAGE_TOKENS[plan["size"]] + text_tokens)
            fake._serve_record(final, None, 0, model)
        if kind == "gemini_snake":
            response = _snake_keys(response)
        self._respond(200, _json_segments(response, blobs), "application/json")

    # generation: Bria -----------------------------------------------------------------------

    def _bria(self, rec: Recorded) -> None:
        fake = self.fake
        if self._refused():
            return
        body = rec.json
        if not isinstance(body, dict):
            if body is None:
                problem = {"loc": ["body"], "msg": "Expecting value", "type": "value_error.jsondecode"}
            else:
                problem = {"loc": ["body"], "msg": "value is not a valid dict", "type": "type_error.dict"}
            self._json(422, {"detail": [problem]})
            return
        fault = self._api_fault(rec, "bria", False)
        if fault is _ANSWERED:
            return
        try:
            plan = _bria_plan(body)
        except _Rejected as exc:
            self._json(exc.status, exc.body)
            return
        kind, opts = fault if fault else (None, {})
        if kind == "bria_moderation":
            self._json(422, {"detail": [{"loc": ["body", "prompt"], "msg": opts["message"],
                                         "type": "content_moderation"}]})
            return
        # content_moderation drops unsafe outputs without a word: the list is just shorter.
        count = max(0, plan["n"] - opts["drop"]) if kind == "bria_fewer" else plan["n"]
        result = []
        position = 0
        for i in range(count):
            seed = plan["seed"] + i if plan["seed"] is not None else secrets.randbelow(2**31)
            images = [fake._image(f"{plan['prompt']}\x00{seed}", "png")]
            if kind == "bria_multi_urls" and i == 0:
                images.append(fake._image(f"{plan['prompt']}\x00{seed}\x00second", "png"))
            urls = []
            for image in images:
                urls.append(fake._publish(image))
                fake._serve_record(image, urls[-1], position, "bria")
                position += 1
            result.append({"urls": urls, "seed": seed, "uuid": f"{uuid.uuid4()}_{seed}"})
        self._json(200, {"result": result})

    # the placeholder task API ---------------------------------------------------------------
    #
    # POST /placeholder/v1/tasks {"prompt", "size", "n"} -> {"id"}: accepted and billed at once.
    # GET /placeholder/v1/tasks/{id} -> {"id", "status": "pending", "progress": 0..1} for
    # task_pending_polls polls, then {"status": "done", "urls": [signed links]}, or
    # {"status": "failed", "error": "..."}; an unknown id is a 404.

    def _task_submit(self, rec: Recorded) -> None:
        fake = self.fake
        if self._refused():
            return
        fault = self._api_fault(rec, "task", False)
        if fault is _ANSWERED:
            return
        body = rec.json if isinstance(rec.json, dict) else {}
        if not str(body.get("prompt") or "").strip():
            self._json(422, {"detail": [{"loc": ["body", "prompt"], "msg": "field required", "type": "value_error.missing"}]})
            return
        task_id = "pt-" + secrets.token_hex(8)
        task = {"prompt": body["prompt"], "n": body.get("n") or 1, "polls": 0, "urls": None,
                "failed": fault[1]["message"] if fault and fault[0] == "task_failed" else None}
        with fake._lock:
            fake._tasks[task_id] = task
        self._json(200, {"id": task_id})

    def _task_poll(self, rec: Recorded, task_id: str) -> None:
        fake = self.fake
        if self._refused():
            return
        fault = fake._take_fault(("poll", "task", False))
        rec.fault = fault[0] if fault else None
        if fault and fault[0] == "poll_reset":
            self._reset_connection()
        if fault and fault[0] == "poll_status":
            opts = fault[1]
            self._body_response(opts["status"], opts["body"], _status_error(opts["status"]), opts["headers"])
            return
        with fake._lock:
            task = fake._tasks.get(task_id)
            if task is not None:
                task["polls"] += 1
        if task is None:
            self._json(404, {"detail": "Task not found"})
            return
        if task["polls"] <= fake.task_pending_polls:
            progress = round(task["polls"] / (fake.task_pending_polls + 1), 2)
            self._json(200, {"id": task_id, "status": "pending", "progress": progress})
            return
        if task["failed"]:
            self._json(200, {"id": task_id, "status": "failed", "error": task["failed"]})
            return
        if task["urls"] is None:
            urls = []
            for i in range(int(task["n"])):
                image = fake._image(f"{task['prompt']}\x00{i}", "png")
                urls.append(fake._publish(image))
                fake._serve_record(image, urls[-1], i, "placeholder-task")
            task["urls"] = urls
        self._json(200, {"id": task_id, "status": "done", "urls": task["urls"]})

    # downloads ------------------------------------------------------------------------------

    def _download(self, rec: Recorded) -> None:
        fake = self.fake
        raw = self.path  # the raw request target: any decoding would hide mangled URLs
        cut, marker = _signature_at(raw)
        valid = cut > 0 and hmac.compare_digest(fake._sign(raw[:cut]), raw[cut + len(marker) :])
        if not valid:
            self._respond(403, _ACCESS_DENIED, "application/json")
            return
        token = raw[len("/files/") :].split("?", 1)[0].rsplit(".", 1)[0]
        with fake._lock:
            image = fake._files.get(token)
            looping = token in fake._loops
        if image is None:
            self._respond(404, _NO_SUCH_KEY, "application/json")
            return
        if _tasks().refuse_expired(self, token):
            return
        here = fake.base_url + raw
        if looping:
            self._respond(302, b"", "text/plain", {"Location": here})
            return
        fault = fake._take_fault(("dl", "", False))
        rec.fault = fault[0] if fault else None
        kind, opts = fault if fault else (None, {})
        size = image.size
        if kind == "dl_reset":
            self._reset_connection()
        elif kind == "dl_cut":
            at = opts["at"] if opts["at"] is not None else size // 2
            self.send_response(200)
            self.send_header("Content-Type", image.content_type)
            if opts["content_length"]:
                self.send_header("Content-Length", str(size))
            else:
                self.send_header("Connection", "close")  # framing by EOF: the cut looks like a clean end
            self.end_headers()
            self._write_prefix(image.segments(), at)
            self.close_connection = True
        elif kind == "dl_extra":
            declared = size - opts["extra"] if opts["short"] else size
            self.send_response(200)
            self.send_header("Content-Type", image.content_type)
            self.send_header("Content-Length", str(max(0, declared)))
            self.end_headers()
            for piece in _pieces(image.segments()):
                self.wfile.write(piece)
            if not opts["short"]:
                self.wfile.write(b"\xde\xad\xbe\xef" * (opts["extra"] // 4) + b"\xde" * (opts["extra"] % 4))
            self.close_connection = True  # the surplus would corrupt the next response on this connection
        elif kind == "dl_error_as_png":
            body = _XML_ERROR if opts["format"] == "xml" else _ACCESS_DENIED
            self._respond(200, body, "image/png")
        elif kind == "dl_html":
            self._respond(200, _HTML_PORTAL, "text/html; charset=utf-8")
        elif kind == "dl_403":
            self._respond(403, _ACCESS_DENIED, "application/json")
        elif kind == "dl_redirect_loop":
            with fake._lock:
                fake._loops.add(token)
            self._respond(opts["status"], b"", "text/plain", {"Location": here})
        elif kind == "dl_redirect":
            self._respond(opts["status"], b"", "text/plain", {"Location": opts["location"] or here})
        elif kind == "dl_slow":
            fake._sleep(opts["delay"])
            self.send_response(200)
            self.send_header("Content-Type", image.content_type)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            rate = max(1, int(opts["rate"]))
            step = max(1, rate // 20)
            for piece in _pieces(image.segments(), step):
                self.wfile.write(piece)
                fake._sleep(len(piece) / rate)
                if fake._stopping.is_set():
                    self.close_connection = True
                    return
        elif kind == "dl_status":
            default = {"Code": "InternalError", "Message": "We encountered an internal error. Please try again.",
                       "EC": "0005-00000001"}
            self._body_response(opts["status"], opts["body"], default, opts["headers"])
        else:
            self._respond(200, image.segments(), image.content_type)

    def _write_prefix(self, segments: list[Any], limit: int) -> None:
        left = limit
        for piece in _pieces(segments):
            if left <= 0:
                break
            self.wfile.write(piece[:left])
            left -= len(piece)

    # catalog --------------------------------------------------------------------------------

    def _catalog(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        try:
            page = int(query.get("page", ["1"])[0])
            page_size = int(query.get("page_size", ["20"])[0])
        except ValueError:
            self._json(400, {"success": False, "message": "page and page_size must be integers"})
            return
        if page < 0 or page_size < 1:
            self._json(400, {"success": False, "message": "page must be >= 0 and page_size >= 1"})
            return
        items = list(self.fake.catalog)
        if page == 0:
            data, page_size = items, len(items)
        else:
            data = items[(page - 1) * page_size : page * page_size]
        self._json(200, {"success": True, "page": page, "page_size": page_size, "total": len(items), "data": data})

    def _models(self) -> None:
        if self._refused():
            return
        data = [
            {"id": m["id"], "object": "model", "created": m.get("created", 0), "owned_by": m.get("provider_code", "")}
            for m in self.fake.catalog
        ]
        self._json(200, {"object": "list", "data": data})


def _json_segments(obj: Any, blobs: dict[str, list[Any]]) -> list[Any]:
    """JSON-encode ``obj`` with each placeholder string replaced by its base64 segments, unjoined."""
    encoded = json.dumps(obj).encode()
    if not blobs:
        return [encoded]
    pattern = re.compile(b"|".join(re.escape(k.encode()) for k in blobs))
    out: list[Any] = []
    pos = 0
    for m in pattern.finditer(encoded):
        out.append(encoded[pos : m.start()])
        out.extend(blobs[m.group().decode()])
        pos = m.end()
    out.append(encoded[pos:])
    return [s for s in out if _seg_len(s)]


def _sse_event(name: str, data: Any, blobs: dict[str, list[Any]]) -> list[Any]:
    return [f"event: {name}\ndata: ".encode(), *_json_segments(data, blobs), b"\n\n"]


def _cut_position(events: list[tuple[str, list[Any]]], after_partials: int) -> int:
    """Index of the event that follows the first ``after_partials`` partials (or the first completed)."""
    seen = 0
    for i, (kind, _) in enumerate(events):
        if seen >= after_partials or kind != "partial":
            return i
        seen += 1
    return len(events) - 1


# --------------------------------------------------------------------------------------------
# Standalone


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve fake image APIs until SIGTERM/SIGINT.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before answering a generation request")
    parser.add_argument("--image-bytes", type=int, default=None, help="pad every produced image to exactly N bytes")
    parser.add_argument("--api-key", default=None, help="require this Bearer key (default: no auth)")
    parser.add_argument("--sse-done", action="store_true", help="end SSE streams with data: [DONE]")
    parser.add_argument("--fault-probability", type=float, default=0.0, help="random fault chance per request")
    parser.add_argument("--seed", type=int, default=1, help="seed for random faults")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = FakeServer(
        api_key=args.api_key, latency=args.latency, host=args.host, port=args.port,
        image_bytes=args.image_bytes, sse_done=args.sse_done,
    )
    server.start()
    if args.fault_probability > 0:
        server.random_faults(args.fault_probability, seed=args.seed)
    print(server.base_url, flush=True)
    try:
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
