"""Provenance put into a PNG as it is written (files/writer.Insertion), not in a second copy of the
file: the result is the very file `metadata.embed` makes from the bytes received, and when the file
turns out unfit (Content Credentials, its own XMP, no image data) it is taken out again."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from conftest import API_KEY, IMGEN
from hostile import HostileServer, head
from imgen.files import metadata
from test_rawbody import png as random_png

SIZES = [60_000, 20 * 1024 * 1024]  # through httpx's iterator, and read from the socket


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def with_chunk_after_ihdr(data: bytes, extra: bytes) -> bytes:
    return data[:33] + extra + data[33:]


def serve(image: bytes) -> HostileServer:
    def script(request, send):
        if request.method == "POST":
            body = json.dumps({"created": 1, "data": [{"url": f"{server.base_url}/img.png"}]}).encode()
            send(head(200, length=len(body)) + body)
        else:
            send(head(200, {"Content-Type": "image/png"}, length=len(image)) + image)

    server = HostileServer(script)
    return server


def generate(server: HostileServer, out: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    env = {**os.environ, "COMETAPI_KEY": API_KEY, "IMGEN_BASE_URL": server.base_url, "IMGEN_METADATA": "embed"}
    proc = subprocess.run([IMGEN, "generate", "-m", "dall-e-2", "-o", str(out), "--json", "-v", *extra, "a paper boat"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc, json.loads(proc.stdout)


def legacy_embed(original: bytes, saved: Path, tmp_path: Path) -> bytes:
    """What metadata.embed writes for the bytes received and the record the saved file carries."""
    src, dst = tmp_path / "received.png", tmp_path / "embedded.png"
    src.write_bytes(original)
    found = metadata.read(saved)
    metadata.embed(src, dst, "png", found["imgen"], found["parameters"])
    return dst.read_bytes()


@pytest.mark.parametrize("size", SIZES)
def test_the_record_goes_in_as_the_file_arrives_and_the_file_is_what_embed_makes(tmp_path, size):
    original = random_png(size, 11)
    out = tmp_path / "out"
    with serve(original) as server:
        _, doc = generate(server, out)
    [image] = doc["images"]
    saved = Path(image["path"])
    data = saved.read_bytes()
    assert image["sha256"] == hashlib.sha256(data).hexdigest() and image["bytes"] == len(data) > size
    assert data == legacy_embed(original, saved, tmp_path)
    assert data[:33] == original[:33] and data.endswith(original[33:])
    assert metadata.read(saved)["imgen"]["prompt"] == "a paper boat"
    assert not saved.with_name(saved.name + ".json").exists()
    assert sorted(p.name for p in out.iterdir()) == [saved.name]


@pytest.mark.parametrize("size", SIZES)
def test_content_credentials_found_later_in_the_file_take_the_record_out_again(tmp_path, size):
    claim = b"\x6fclaim_generator\x6bChatGPT 1.0"
    jumbf = struct.pack(">I", 8 + 8 + 4 + len(claim)) + b"jumb" + struct.pack(">I", 8 + 4) + b"jumdc2pa" + claim
    plain = random_png(size, 12)
    signed = plain[:-12] + chunk(b"caBX", jumbf) + plain[-12:]  # after the image data, where a writer sees it last
    out = tmp_path / "out"
    with serve(signed) as server:
        proc, doc = generate(server, out)
    [image] = doc["images"]
    saved = Path(image["path"])
    assert saved.read_bytes() == signed, "a file with Content Credentials must be saved byte for byte"
    assert image["sha256"] == hashlib.sha256(signed).hexdigest()
    assert "Content Credentials" in proc.stderr
    sidecar = json.loads(saved.with_name(saved.name + ".json").read_text())
    assert sidecar["prompt"] == "a paper boat"


@pytest.mark.parametrize("size", SIZES)
def test_a_png_with_its_own_xmp_keeps_it_and_gets_no_second_packet(tmp_path, size):
    xmp = chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    original = random_png(size, 13)
    original = original[:-12] + xmp + original[-12:]
    out = tmp_path / "out"
    with serve(original) as server:
        _, doc = generate(server, out)
    saved = Path(doc["images"][0]["path"])
    data = saved.read_bytes()
    assert data.count(b"XML:com.adobe.xmp") == 1
    assert data == legacy_embed(original, saved, tmp_path)
    assert doc["images"][0]["sha256"] == hashlib.sha256(data).hexdigest()


def test_a_png_without_image_data_is_saved_as_received_with_a_sidecar(tmp_path):
    original = random_png(60_000, 14)
    idat = original.rindex(b"IDAT") - 4
    broken = original[:idat] + original[-12:]  # IEND follows the private chunk directly: no IDAT at all
    out = tmp_path / "out"
    with serve(broken) as server:
        proc, doc = generate(server, out)
    saved = Path(doc["images"][0]["path"])
    assert saved.read_bytes() == broken
    assert "sidecar" in proc.stderr
    assert json.loads(saved.with_name(saved.name + ".json").read_text())["prompt"] == "a paper boat"


def test_with_metadata_none_nothing_is_inserted(tmp_path):
    original = random_png(20 * 1024 * 1024, 15)
    out = tmp_path / "out"
    with serve(original) as server:
        _, doc = generate(server, out, "--metadata", "none")
    assert Path(doc["images"][0]["path"]).read_bytes() == original
