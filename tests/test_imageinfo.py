import io
import struct
import time
import tracemalloc
import zlib

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from imgen.files.imageinfo import MAX_STEPS, ImageInfo, probe, probe_bytes, read_info
from imgen.files.imagetype import HEAD_BYTES, sniff

SIZES = st.tuples(st.integers(1, 2000), st.integers(1, 2000))
# Corners the random sizes may miss: the smallest image, and long thin ones both ways.
CORNERS = [(1, 1), (2000, 3), (3, 2000)]


class RecordingReader(io.BytesIO):
    """A BytesIO that remembers the size of every read, to prove nothing big is ever asked for."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads: list[int] = []
        self.furthest = 0

    def read(self, size: int | None = -1) -> bytes:
        self.reads.append(-1 if size is None else size)
        return super().read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        position = super().seek(offset, whence)
        self.furthest = max(self.furthest, position)
        return position


def _bounded(data: bytes) -> ImageInfo | None:
    f = RecordingReader(data)
    info = read_info(f)
    assert all(0 <= n <= HEAD_BYTES for n in f.reads), f.reads
    return info


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **kw)
    return out.getvalue()


def _with_hole(im: Image.Image) -> Image.Image:
    # An encoder may drop an alpha channel nothing uses, so every image meant to have one gets a transparent pixel.
    im.putpixel((0, 0), (0, 0, 0, 0) if im.mode == "RGBA" else (0, 0))
    return im


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, depth: int, colour: int, before_idat: bytes = b"") -> bytes:
    """A valid PNG built by hand, for the layouts Pillow will not write."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    row = b"\x00" + bytes((width * channels * depth + 7) // 8)
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
    pixels = _chunk(b"IDAT", zlib.compress(row * height))
    return b"\x89PNG\r\n\x1a\n" + ihdr + before_idat + pixels + _chunk(b"IEND", b"")


def _pillow(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


# --- PNG ---------------------------------------------------------------------------------------------------------

PNG_CASES = {
    # name: (mode, save options, can hold transparency)
    "1": ("1", {}, False),
    "L": ("L", {}, False),
    "LA": ("LA", {}, True),
    "P": ("P", {}, False),
    "P+tRNS": ("P", {"transparency": 0}, True),
    "RGB": ("RGB", {}, False),
    "RGB+tRNS": ("RGB", {"transparency": (1, 2, 3)}, True),
    "RGBA": ("RGBA", {}, True),
    "I;16": ("I;16", {}, False),
}


@pytest.mark.parametrize("case", PNG_CASES)
@settings(max_examples=15, deadline=None)
@given(size=SIZES)
@example(size=CORNERS[0])
@example(size=CORNERS[1])
@example(size=CORNERS[2])
def test_png_matches_pillow(case, size):
    mode, options, alpha = PNG_CASES[case]
    im = Image.new(mode, size)
    data = _save(_with_hole(im) if mode in ("LA", "RGBA") else im, "PNG", compress_level=1, **options)
    pillow = _pillow(data)
    assert pillow.size == size and pillow.has_transparency_data == alpha
    assert _bounded(data) == ImageInfo("png", *size, alpha)


@pytest.mark.parametrize(
    "depth, colour, alpha",
    [(16, 2, False), (16, 6, True), (16, 4, True), (8, 4, True), (2, 0, False), (4, 3, False)],
)
def test_png_depths_and_colour_types(depth, colour, alpha):
    plte = _chunk(b"PLTE", bytes(48)) if colour == 3 else b""
    data = _png(7, 5, depth, colour, plte)
    assert _pillow(data).size == (7, 5)
    assert _bounded(data) == ImageInfo("png", 7, 5, alpha)


def test_png_walks_past_big_text_chunks_to_a_late_trns():
    text = _chunk(b"zTXt", b"comment\x00\x00" + zlib.compress(bytes(300_000), 0))
    itxt = _chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + b"x" * 100_001)
    data = _png(9, 4, 8, 3, _chunk(b"PLTE", bytes(6)) + text + itxt + _chunk(b"tRNS", b"\x00"))
    assert _pillow(data).has_transparency_data
    assert data.index(b"tRNS") > 400_000
    assert _bounded(data) == ImageInfo("png", 9, 4, True)


def test_png_trns_after_idat_does_not_count():
    data = _png(3, 3, 8, 2)
    data = data[:-12] + _chunk(b"tRNS", bytes(6)) + data[-12:]
    assert _bounded(data) == ImageInfo("png", 3, 3, False)


def test_png_pillow_text_chunks():
    meta = PngImagePlugin.PngInfo()
    meta.add_itxt("Description", "é" * 50_000, zip=True)
    meta.add_text("Comment", "x" * 70_000)
    data = _save(Image.new("RGB", (640, 480)), "PNG", pnginfo=meta)
    assert data.index(b"IDAT") > 70_000
    assert _bounded(data) == ImageInfo("png", 640, 480, False)


@pytest.mark.parametrize("mode, alpha", [("RGB", False), ("RGBA", True), ("P", False)])
def test_apng(mode, alpha):
    frames = [Image.new("RGB", (31, 17), colour).convert(mode) for colour in ("red", "blue", "green")]
    data = _save(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100)
    assert b"acTL" in data and b"fcTL" in data and _pillow(data).has_transparency_data == alpha
    assert _bounded(data) == ImageInfo("png", 31, 17, alpha)


@pytest.mark.parametrize(
    "ihdr",
    [
        struct.pack(">IIBBBBB", 0, 5, 8, 2, 0, 0, 0),  # zero width
        struct.pack(">IIBBBBB", 5, 2**31, 8, 2, 0, 0, 0),  # beyond the spec's limit
        struct.pack(">IIBBBBB", 5, 5, 8, 5, 0, 0, 0),  # no such colour type
        struct.pack(">IIBBBBB", 5, 5, 4, 2, 0, 0, 0),  # RGB cannot be 4-bit
    ],
)
def test_png_corrupt_ihdr_gives_no_size(ihdr):
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IEND", b"")
    assert _bounded(data) == ImageInfo("png", None, None, None)


# --- JPEG --------------------------------------------------------------------------------------------------------

# Every byte value, 0xFF D9 (EOI) and 0xFF DA (SOS) included: payloads must be skipped, not scanned.
_NOISE = bytes(range(256))


def _jpeg_case(case: str, size: tuple[int, int], extra: int) -> tuple[Image.Image, dict]:
    if case == "L":
        return Image.new("L", size, 90), {}
    if case == "CMYK":
        return Image.new("CMYK", size, (1, 2, 3, 4)), {}
    im = Image.new("RGB", size, (200, 30, 40))
    if case == "progressive":
        return im, {"progressive": True}
    payload = (_NOISE * (extra // 256 + 1))[:extra]
    if case == "exif":
        return im, {"exif": b"Exif\x00\x00" + payload[:65_000]}
    if case == "icc":
        return im, {"icc_profile": payload * 3}  # split by Pillow over several APP2 segments
    if case == "comment":
        return im, {"comment": payload[:65_000]}
    return im, {}


@pytest.mark.parametrize("case", ["L", "RGB", "CMYK", "progressive", "exif", "icc", "comment"])
@settings(max_examples=15, deadline=None)
@given(size=SIZES, extra=st.integers(1_100, 65_000))
@example(size=CORNERS[0], extra=65_000)
@example(size=CORNERS[1], extra=1_100)
@example(size=CORNERS[2], extra=5_000)
def test_jpeg_matches_pillow(case, size, extra):
    im, options = _jpeg_case(case, size, extra)
    data = _save(im, "JPEG", quality=50, **options)
    assert Image.open(io.BytesIO(data)).size == size
    if case in ("exif", "icc", "comment"):
        assert data.index(b"\xff\xc0") > 1024
    assert _bounded(data) == ImageInfo("jpeg", *size, False)


def _segment(marker: int, payload: bytes = b"") -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def _sof(width: int, height: int, marker: int = 0xC0) -> bytes:
    return _segment(marker, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")


def test_jpeg_fill_bytes_standalone_markers_and_non_frame_c_markers():
    data = (
        b"\xff\xd8"
        + _segment(0xE0, b"JFIF\x00" + _NOISE[:9])
        + b"\xff\xff\xff"  # fill bytes before the next marker
        + b"\xff\x01\xff\xd0\xff\xd7"  # TEM and RSTn stand alone
        + _segment(0xC4, _NOISE[:40])  # DHT, not a frame
        + _segment(0xCC, b"\x00\x10")  # DAC, not a frame
        + _segment(0xC8, _NOISE[:4])  # JPG, reserved, not a frame
        + _segment(0xFE, b"\xff\xc0" * 20)  # a comment that looks like a frame header
        + _sof(321, 123, 0xC2)
    )
    assert _bounded(data) == ImageInfo("jpeg", 321, 123, False)


@pytest.mark.parametrize("marker", [0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF])
def test_jpeg_every_frame_marker(marker):
    assert _bounded(b"\xff\xd8" + _sof(17, 9, marker)) == ImageInfo("jpeg", 17, 9, False)


@pytest.mark.parametrize(
    "body",
    [
        _sof(10, 0),  # height left to a DNL marker
        _segment(0xC0, struct.pack(">BHHB", 8, 5, 5, 3) + b"\x01\x11\x00"),  # three components, one described
        _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00") + _sof(10, 10),  # scan before any frame header
        b"\xff\xd9" + _sof(10, 10),  # image over
        _segment(0xE0, b"JFIF\x00") + b"\x00" + _sof(10, 10),  # junk where a marker must begin
        b"\xff\x00" + _sof(10, 10),  # a stuffed byte is not a marker
        b"\xff\xe1\x00\x01" + _sof(10, 10),  # segment length below its own two bytes
    ],
)
def test_jpeg_corrupt_gives_no_size(body):
    assert _bounded(b"\xff\xd8" + body) == ImageInfo("jpeg", None, None, False)


# --- WebP --------------------------------------------------------------------------------------------------------

WEBP_CASES = {
    # name: (mode, save options, can hold transparency)
    "lossy RGB": ("RGB", {}, False),
    "lossy RGBA": ("RGBA", {}, True),
    "lossless RGB": ("RGB", {"lossless": True}, False),
    "lossless RGBA": ("RGBA", {"lossless": True}, True),
}


@pytest.mark.parametrize("case", WEBP_CASES)
@settings(max_examples=15, deadline=None)
@given(size=SIZES)
@example(size=CORNERS[0])
@example(size=CORNERS[1])
@example(size=CORNERS[2])
def test_webp_matches_pillow(case, size):
    mode, options, alpha = WEBP_CASES[case]
    im = Image.new(mode, size, (10, 200, 30, 255)[: len(mode)])
    data = _save(_with_hole(im) if alpha else im, "WEBP", method=0, **options)
    pillow = Image.open(io.BytesIO(data))
    assert pillow.size == size and (pillow.mode == "RGBA") == alpha
    assert _bounded(data) == ImageInfo("webp", *size, alpha)


def test_webp_lossy_rgba_layout():
    data = _save(_with_hole(Image.new("RGBA", (5, 3), "red")), "WEBP")
    assert data[12:16] == b"VP8X" and b"ALPH" in data
    assert _bounded(data) == ImageInfo("webp", 5, 3, True)


def test_webp_odd_sized_chunk_before_the_bitstream():
    data = _save(Image.new("RGB", (77, 33)), "WEBP", icc_profile=b"p" * 101)
    assert data[12:16] == b"VP8X" and b"ICCP\x65\x00\x00\x00" in data
    assert _bounded(data) == ImageInfo("webp", 77, 33, False)


@pytest.mark.parametrize("mode, alpha", [("RGB", False), ("RGBA", True)])
def test_animated_webp(mode, alpha):
    frames = [Image.new(mode, (41, 29), colour) for colour in ("red", "blue")]
    frames = [_with_hole(frame) for frame in frames] if alpha else frames
    data = _save(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=50)
    assert data[12:16] == b"VP8X" and b"ANMF" in data
    assert _bounded(data) == ImageInfo("webp", 41, 29, alpha)


def _riff(*chunks: bytes) -> bytes:
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _webp_chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + b"\x00" * (len(payload) & 1)


def _vp8x(flags: int, width: int, height: int) -> bytes:
    return _webp_chunk(b"VP8X", bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little"))


def _bitstream(mode: str, size: tuple[int, int], **options) -> bytes:
    """The first chunk of a simple Pillow WebP: a VP8 or VP8L chunk to wrap in other layouts."""
    im = Image.new(mode, size, "red")
    data = _save(_with_hole(im) if mode == "RGBA" else im, "WEBP", **options)
    assert data[12:16] in (b"VP8 ", b"VP8L")
    return data[12:]


# Layouts Pillow does not write, each checked against libwebp through Pillow's own reading of it.
@pytest.mark.parametrize(
    "data, expected",
    [
        # An ALPH chunk gives transparency though the VP8X flag does not claim it.
        (_riff(_vp8x(0, 6, 4), _webp_chunk(b"ALPH", b"\x00" + bytes(24)), _bitstream("RGB", (6, 4))), ImageInfo("webp", 6, 4, True)),
        # A lossless bitstream's own alpha bit wins over the VP8X flag, either way.
        (_riff(_vp8x(0x10, 6, 4), _bitstream("RGB", (6, 4), lossless=True)), ImageInfo("webp", 6, 4, False)),
        (_riff(_vp8x(0, 6, 4), _bitstream("RGBA", (6, 4), lossless=True)), ImageInfo("webp", 6, 4, True)),
        # The VP8X flag alone is what a lossy bitstream without ALPH has.
        (_riff(_vp8x(0x10, 6, 4), _bitstream("RGB", (6, 4))), ImageInfo("webp", 6, 4, True)),
        # A canvas the image does not fill is corrupt.
        (_riff(_vp8x(0, 7, 4), _bitstream("RGB", (6, 4))), ImageInfo("webp", None, None, None)),
    ],
)
def test_webp_extended_layouts_agree_with_libwebp(data, expected):
    assert _bounded(data) == expected
    if expected.width is None:
        with pytest.raises(OSError):
            _pillow(data)
    else:
        pillow = _pillow(data)
        assert pillow.size == (expected.width, expected.height) and (pillow.mode == "RGBA") == expected.alpha


def test_webp_lossy_size_ignores_the_upscaling_bits():
    data = bytearray(_save(Image.new("RGB", (300, 200)), "WEBP"))
    data[26:30] = struct.pack("<HH", 300 | 0x4000, 200 | 0xC000)  # scale hints in the top two bits of each side
    assert _pillow(bytes(data)).size == (300, 200)
    assert _bounded(bytes(data)) == ImageInfo("webp", 300, 200, False)


@pytest.mark.parametrize(
    "data",
    [
        _riff(_webp_chunk(b"ALPH", bytes(8))),  # no bitstream and no VP8X
        _riff(_webp_chunk(b"VP8X", bytes(12))),  # VP8X is exactly 10 bytes
        b"RIFF\x10\x00\x00\x00WEBP" + _bitstream("RGB", (5, 5))[:8] + bytes(40),  # chunk bigger than the RIFF
        _riff(b"VP8L\x05\x00\x00\x00\x2f\x00\x00\x00\x20"),  # VP8L version 1
        _riff(b"VP8 \x0a\x00\x00\x00\x01\x00\x00\x9d\x01\x2a\x05\x00\x05\x00"),  # an interframe
        _riff(b"VP8 \x0a\x00\x00\x00\x10\x00\x00\x9d\x01\x2b\x05\x00\x05\x00"),  # wrong start code
        _riff(_vp8x(0, 2**24, 2**24)),  # canvas area beyond 2**32
    ],
)
def test_webp_corrupt_gives_no_size(data):
    assert _bounded(data) == ImageInfo("webp", None, None, None)


# --- GIF and the rest --------------------------------------------------------------------------------------------


def test_gif():
    plain = _save(Image.new("P", (300, 200)), "GIF")
    transparent = _save(Image.new("P", (300, 200)), "GIF", transparency=0)
    frames = [Image.new("P", (30, 20), i) for i in range(3)]
    animated = _save(frames[0], "GIF", save_all=True, append_images=frames[1:], transparency=0, comment=b"c" * 600)
    assert _bounded(plain) == ImageInfo("gif", 300, 200, None)
    assert _bounded(transparent) == ImageInfo("gif", 300, 200, True)
    assert _bounded(animated) == ImageInfo("gif", 30, 20, True)


def test_formats_without_a_reader_have_no_size():
    assert _bounded(_save(Image.new("RGB", (4, 4)), "BMP")) == ImageInfo("bmp", None, None, None)
    assert _bounded(_save(Image.new("RGB", (4, 4)), "TIFF")) == ImageInfo("tiff", None, None, None)


@pytest.mark.parametrize("data", [b"", b"\x89PN", b"hello world", b"<html><body>502</body></html>", b'{"error": "x"}', bytes(100)])
def test_not_an_image(data):
    assert _bounded(data) is None


def test_probe(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(_save(Image.new("LA", (12, 34)), "PNG"))
    assert probe(path) == ImageInfo("png", 12, 34, True)
    with pytest.raises(FileNotFoundError):
        probe(tmp_path / "missing.png")
    with pytest.raises(IsADirectoryError):
        probe(tmp_path)


def test_reads_from_the_current_position():
    f = io.BytesIO(b"junk" + _save(Image.new("RGB", (8, 6)), "JPEG"))
    f.seek(4)
    assert read_info(f) == ImageInfo("jpeg", 8, 6, False)
    assert probe_bytes(f.getvalue()[4:]) == ImageInfo("jpeg", 8, 6, False)


# --- hostile input -----------------------------------------------------------------------------------------------


def _sample_files() -> list[bytes]:
    meta = PngImagePlugin.PngInfo()
    meta.add_text("k", "v" * 300)
    frames = [Image.new("RGBA", (9, 7), colour) for colour in ("red", "blue")]
    return [
        _save(Image.new("P", (23, 11)), "PNG", transparency=0, pnginfo=meta),
        _save(Image.new("RGB", (23, 11)), "JPEG", exif=b"Exif\x00\x00" + _NOISE * 6, progressive=True),
        _save(Image.new("CMYK", (23, 11)), "JPEG", comment=b"\xff\xd9" * 100),
        _save(_with_hole(Image.new("RGBA", (23, 11))), "WEBP"),
        _save(_with_hole(Image.new("RGBA", (23, 11))), "WEBP", lossless=True),
        _save(Image.new("RGB", (23, 11)), "WEBP", icc_profile=b"p" * 33),
        _save(frames[0], "WEBP", save_all=True, append_images=frames[1:]),
        _save(Image.new("P", (23, 11)), "GIF", transparency=0),
    ]


SAMPLES = _sample_files()


@pytest.mark.parametrize("data", SAMPLES, ids=lambda data: sniff(data))
def test_every_prefix_of_a_real_file(data):
    full = _bounded(data)
    assert full is not None and full.width is not None
    for n in range(len(data)):
        info = _bounded(data[:n])
        if info is None:
            assert sniff(data[:n]) is None
            continue
        assert info.format == full.format
        assert (info.width, info.height) in ((None, None), (full.width, full.height))
        assert info.alpha in (None, full.alpha)


@settings(max_examples=300, deadline=None)
@given(
    sample=st.sampled_from(SAMPLES),
    cut=st.integers(0, 400),
    tail=st.binary(max_size=200),
)
def test_a_real_header_cut_and_followed_by_garbage(sample, cut, tail):
    info = _bounded(sample[:cut] + tail)
    if info is not None:
        assert info.format == sniff(sample[:cut] + tail)
        assert info.width is None or 0 < info.width < 2**31
        assert info.height is None or 0 < info.height < 2**31
        assert info.alpha in (None, True, False)


@settings(max_examples=300, deadline=None)
@given(
    signature=st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF\x40\x00\x00\x00WEBP", b"GIF89a", b"GIF87a"]),
    tail=st.binary(max_size=300),
)
def test_random_bytes_after_a_signature(signature, tail):
    info = _bounded(signature + tail)
    assert info is not None and info.format == sniff(signature)
    assert (info.width is None) == (info.height is None)


@pytest.mark.parametrize("length", [2**31 - 1, 2**31, 2**32 - 1])
def test_png_chunk_lengths_that_lie(length):
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 48, 8, 2, 0, 0, 0))
    lying = struct.pack(">I", length) + b"tEXt" + b"k\x00v" + bytes(50)
    f = RecordingReader(b"\x89PNG\r\n\x1a\n" + ihdr + lying)
    assert read_info(f) == ImageInfo("png", 64, 48, None)
    assert f.furthest < 2**31 + 100  # a length over the spec's limit is corrupt, not a reason to seek further
    lying_ihdr = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", length) + ihdr[4:] + bytes(50)
    assert _bounded(lying_ihdr) == ImageInfo("png", None, None, None)


def test_a_two_gib_chunk_claim_allocates_nothing():
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 48, 8, 3, 0, 0, 0))
    data = b"\x89PNG\r\n\x1a\n" + ihdr + struct.pack(">I", 2**31) + b"PLTE" + bytes(30)
    f = RecordingReader(data)
    tracemalloc.start()
    try:
        started = time.perf_counter()
        info = read_info(f)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info == ImageInfo("png", 64, 48, None)
    assert max(f.reads) <= HEAD_BYTES and -1 not in f.reads
    assert peak < 64 * 1024
    assert elapsed < 1


def test_webp_chunk_sizes_that_lie():
    vp8x = _vp8x(0, 6, 4)
    lying = b"ICCP" + struct.pack("<I", 2**31) + bytes(20)
    assert _bounded(b"RIFF\xff\xff\xff\xffWEBP" + vp8x + lying) == ImageInfo("webp", 6, 4, False)  # cut short, flags only
    assert _bounded(_riff(vp8x, lying)) == ImageInfo("webp", None, None, None)  # overruns its RIFF
    assert _bounded(b"RIFF\xff\xff\xff\xffWEBPVP8 \xff\xff\xff\xff") == ImageInfo("webp", None, None, None)


@pytest.mark.parametrize(
    "filler",
    [
        b"\xff\xfe\x00\x02",  # an empty comment segment
        b"\xff\xd0",  # a standalone marker
        b"\xff",  # a fill byte
    ],
)
def test_jpeg_with_100_000_tiny_steps_gives_up_promptly(filler):
    data = b"\xff\xd8" + filler * 100_000 + _sof(10, 10)
    f = RecordingReader(data)
    started = time.perf_counter()
    assert read_info(f) == ImageInfo("jpeg", None, None, False)
    assert time.perf_counter() - started < 2
    assert len(f.reads) < 4 * MAX_STEPS


def test_png_with_100_000_tiny_chunks_gives_up_promptly():
    data = _png(5, 5, 8, 2, _chunk(b"tEXt", b"") * 100_000)
    f = RecordingReader(data)
    assert read_info(f) == ImageInfo("png", 5, 5, None)
    assert len(f.reads) < 2 * MAX_STEPS


def test_gif_with_endless_extensions_gives_up_promptly():
    data = _save(Image.new("P", (5, 5)), "GIF")
    header = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    data = data[:header] + b"\x21\xfe" + b"\x01c" * 100_000 + b"\x00" + data[header:]
    f = RecordingReader(data)
    assert read_info(f) == ImageInfo("gif", 5, 5, None)
    assert len(f.reads) < 3 * MAX_STEPS
