import struct
import time
import zlib

import pytest

from imgen.dialects import placeholder
from imgen.dialects.placeholder import MAX_SIDE, generate, parse_size, render_png
from imgen.files.imagetype import png_size, sniff


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB bytes) of an 8-bit RGB PNG, checking every chunk's CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        payload = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        assert len(payload) == length
        assert crc == zlib.crc32(kind + payload), kind
        chunks.append((kind, payload))
        pos += 12 + length
    assert pos == len(data)
    kinds = [kind for kind, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour, compression, filtering, interlace) == (8, 2, 0, 0, 0)
    raw = zlib.decompress(b"".join(payload for kind, payload in chunks if kind == b"IDAT"))
    stride = 1 + 3 * width
    assert len(raw) == height * stride
    rows = []
    for y in range(height):
        row = raw[y * stride : (y + 1) * stride]
        assert row[0] == 0  # filter type None: the rows below are the pixels
        rows.append(row[1:])
    return width, height, rows


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (7, 1), (2, 3), (5, 5), (64, 48), (1024, 1024), (300, 4096)])
def test_valid_png_of_the_requested_size(size):
    data = render_png("a paper boat", *size)
    assert sniff(data) == "png"
    assert png_size(data) == size
    width, height, rows = decode_png(data)
    assert (width, height) == size


def test_same_request_same_bytes():
    assert render_png("a paper boat", 64, 32, 2) == render_png("a paper boat", 64, 32, 2)
    assert generate("a paper boat", "64x32", 3) == generate("a paper boat", "64x32", 3)


def test_index_and_prompt_change_the_image():
    images = {render_png("a paper boat", 64, 32, i) for i in range(10)}
    assert len(images) == 10
    assert render_png("a paper boat", 64, 32) != render_png("a paper ship", 64, 32)


def test_it_looks_like_bands_of_gradients():
    _, _, rows = decode_png(render_png("a paper boat", 600, 256))
    top, bottom = rows[0], rows[-1]
    pixels = [top[i : i + 3] for i in range(0, len(top), 3)]
    bands = [pixels[0]] + [p for prev, p in zip(pixels, pixels[1:]) if p != prev]
    assert 3 <= len(bands) <= 6
    assert top != bottom
    # Each column changes gradually from top to bottom.
    for y in range(1, 256):
        assert all(abs(a - b) <= 2 for a, b in zip(rows[y - 1], rows[y]))


def test_generate_defaults_and_count():
    images = generate("a paper boat", None, 2)
    assert [png_size(image) for image in images] == [(1024, 1024)] * 2
    assert images[0] != images[1]
    assert images[0] == render_png("a paper boat", 1024, 1024, 0)
    assert png_size(generate("x", "auto", 1)[0]) == (1024, 1024)
    assert png_size(generate("x", "1536X1024", 1)[0]) == (1536, 1024)


@pytest.mark.parametrize(
    "size, expected",
    [("1024x1024", (1024, 1024)), ("1x4096", (1, 4096)), ("4096x1", (4096, 1)), (" 640 x 480 ", (640, 480)),
     ("AUTO", (1024, 1024)), (None, (1024, 1024))],
)
def test_parse_size(size, expected):
    assert parse_size(size) == expected


@pytest.mark.parametrize(
    "size",
    ["0x10", "10x0", "4097x10", "10x4097", "99999999999999999999x1", "abc", "1024", "1024x", "x1024", "-5x10",
     "10*10", "1e3x10", "10.5x10", "", "1024x1024x3", "2K", "１０２４x１０２４"],
)
def test_bad_sizes_are_refused_clearly(size):
    with pytest.raises(ValueError) as info:
        generate("a paper boat", size, 1)
    message = str(info.value)
    assert repr(size) in message
    assert "WxH" in message or str(MAX_SIDE) in message


@pytest.mark.parametrize("size", [(0, 1), (1, 0), (MAX_SIDE + 1, 1), (1, MAX_SIDE + 1), (-1, 5)])
def test_render_png_bounds(size):
    with pytest.raises(ValueError, match=str(MAX_SIDE)):
        render_png("x", *size)


def test_n_must_be_positive():
    with pytest.raises(ValueError, match="n must be"):
        generate("x", "8x8", 0)


def test_largest_image_is_fast():
    start = time.perf_counter()
    data = render_png("a paper boat floating on calm water", MAX_SIDE, MAX_SIDE)
    elapsed = time.perf_counter() - start
    assert png_size(data) == (MAX_SIDE, MAX_SIDE)
    # About 0.2 s where this was written; the bound only catches a per-pixel loop sneaking in.
    assert elapsed < 2.0, elapsed
    raw = zlib.decompress(data[data.index(b"IDAT") + 4 : data.index(b"IEND") - 8])
    assert len(raw) == MAX_SIDE * (1 + 3 * MAX_SIDE)


def test_prompt_with_lone_surrogates():
    # A prompt from argv can carry surrogate escapes of undecodable bytes.
    assert png_size(render_png("caf\udce9", 4, 4)) == (4, 4)


def test_compression_level_is_moderate():
    assert 1 <= placeholder._ZLIB_LEVEL <= 6
