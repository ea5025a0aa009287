import struct
import zlib

import pytest

from imgen.files import imagetype
from imgen.files.imagetype import HEAD_BYTES, png_size, sniff


def _png_head(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + crc


def _bmp_head(dib_size: int = 40) -> bytes:
    return b"BM" + struct.pack("<IHHI", 1000, 0, 0, 54) + struct.pack("<I", dib_size) + b"\x00" * 16


SAMPLES = {
    "png": _png_head(16, 9),
    "jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01",
    "webp": b"RIFF\x24\x00\x00\x00WEBPVP8 ",
    "gif": b"GIF89a\x01\x00\x01\x00",
    "bmp": _bmp_head(),
    "tiff": b"II*\x00\x08\x00\x00\x00",
}


@pytest.mark.parametrize("fmt, head", SAMPLES.items())
def test_sniff_each_signature(fmt, head):
    assert sniff(head) == fmt
    assert sniff(head + b"\x00" * 100) == fmt
    assert fmt in imagetype.EXTENSIONS and fmt in imagetype.MIME


@pytest.mark.parametrize(
    "head, fmt",
    [
        (b"GIF87a", "gif"),
        (b"MM\x00*\x00\x00\x00\x08", "tiff"),
        (b"\xff\xd8\xff", "jpeg"),
        (b"RIFF\x00\x00\x00\x00WEBP", "webp"),
        (_bmp_head(12), "bmp"),
        (_bmp_head(124), "bmp"),
    ],
)
def test_sniff_variants(head, fmt):
    assert sniff(head) == fmt


@pytest.mark.parametrize("fmt, head", SAMPLES.items())
def test_truncated_heads_are_not_images(fmt, head):
    signature_len = {"png": 8, "jpeg": 3, "webp": 12, "gif": 6, "bmp": 18, "tiff": 4}[fmt]
    for cut in range(signature_len):
        assert sniff(head[:cut]) is None, (fmt, cut)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b'{"error": {"message": "Invalid API key", "type": "invalid_request_error"}}',
        b'  {"code": 500}',
        b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title>",
        b"<html>\r\n<head><title>403 Forbidden</title></head>",
        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>',
        b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        b"data: [DONE]\n\n",
        b"event: image_generation.partial_image\ndata: {}",
        b"RIFF\x24\x00\x00\x00WAVEfmt ",  # RIFF, but audio
        b"BMW is not a bitmap, whatever its first two letters",
        b"GIF88a\x01\x00",
        b"\x89PNG\r\n\x1a",  # one byte short
        b"iVBORw0KGgoAAAANSUhEUgAA",  # a PNG still in base64
    ],
)
def test_error_bodies_and_lookalikes_are_not_images(body):
    assert sniff(body) is None


def test_sniff_reads_only_the_head():
    assert sniff(b"x" * HEAD_BYTES + b"\x89PNG\r\n\x1a\n") is None
    assert sniff(bytearray(SAMPLES["png"])) == "png"
    assert sniff(memoryview(SAMPLES["gif"])) == "gif"


def test_head_bytes_is_enough_for_everything():
    for head in SAMPLES.values():
        assert sniff(head[:HEAD_BYTES]) is not None
    assert HEAD_BYTES >= 24  # png_size needs the whole IHDR


def test_formats_tables():
    assert imagetype.SAVE_FORMATS == {"png", "jpeg", "webp", "gif"}
    assert imagetype.SAVE_FORMATS <= imagetype.REFERENCE_FORMATS
    assert imagetype.REFERENCE_FORMATS == set(imagetype.MIME) == set(imagetype.EXTENSIONS)
    assert imagetype.EXTENSIONS["jpeg"] == "jpg"
    assert all(mime == f"image/{fmt}" for fmt, mime in imagetype.MIME.items())
    assert all(ext.isalnum() and ext.islower() for ext in imagetype.EXTENSIONS.values())


@pytest.mark.parametrize("size", [(1, 1), (1024, 1024), (1536, 1024), (4096, 2160), (2**31 - 1, 7)])
def test_png_size(size):
    assert png_size(_png_head(*size)) == size
    assert png_size(_png_head(*size)[:24]) == size


def test_png_size_refuses_what_is_not_a_png_head():
    good = _png_head(64, 32)
    assert png_size(good[:23]) is None
    assert png_size(b"") is None
    assert png_size(SAMPLES["jpeg"] + b"\x00" * 30) is None
    assert png_size(good[:12] + b"IDAT" + good[16:]) is None  # IHDR must come first
    assert png_size(good[:8] + struct.pack(">I", 12) + good[12:]) is None
    assert png_size(_png_head(0, 5)) is None
    assert png_size(_png_head(5, 0)) is None
    assert png_size(_png_head(2**31, 5)) is None
