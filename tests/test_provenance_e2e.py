"""Provenance end to end: the record written into each saved file (PNG, JPEG, WebP), Content
Credentials left alone, sidecars, imgen inspect and imgen rerun, through the installed imgen."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from imgen.files import metadata

EMBED = {"IMGEN_METADATA": "embed"}  # the default, which the other test files turn off
FAST = {**EMBED, "IMGEN_POLL_INTERVAL": "0.05"}


def sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def inspect(imgen, path) -> dict:
    res = imgen("inspect", str(path), "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_png_from_gpt_image_carries_its_record_and_parameters(imgen, server, outdir):
    res = imgen("generate", "-m", "gpt-image-1", "-Q", "low", "-s", "1024x1536", "a paper boat", "-o", str(outdir), "--json", env=EMBED)
    assert res.returncode == 0, res.stderr
    (image,) = json.loads(res.stdout)["images"]
    path = Path(image["path"])
    assert image["sha256"] == sha(path) and image["bytes"] == path.stat().st_size  # of the final file, record included
    assert image["sha256"] != server.served[-1]["sha256"]
    doc = inspect(imgen, path)
    record = doc["imgen"]
    assert doc["record_from"] == "embedded" and (record["model"], record["prompt"], record["dialect"]) == ("gpt-image-1", "a paper boat", "openai")
    assert record["fields"] == {"quality": "low", "size": "1024x1536"} and record["api_host"] == server.base_url.split("//")[1]
    assert doc["parameters"].startswith("a paper boat\n") and "Size: 1024x1536, Model: gpt-image-1" in doc["parameters"]
    with Image.open(path) as img:  # another reader sees the same text, and the image still decodes
        assert json.loads(img.text["imgen"])["prompt"] == "a paper boat"
        img.load()


def test_jpeg_from_flux_and_webp_from_gpt_image(imgen, server, outdir):
    flux = imgen("generate", "-m", "flux-pro-1.1", "--seed", "7", "a desk lamp", "-o", str(outdir), env=FAST)
    assert flux.returncode == 0, flux.stderr
    doc = inspect(imgen, flux.lines[0])
    assert doc["format"] == "jpeg" and doc["imgen"]["model"] == "flux-pro-1.1" and doc["imgen"]["task_id"]
    assert doc["imgen"]["seed"] == 7
    assert doc["xmp"]["digital_source_type"].endswith("trainedAlgorithmicMedia")
    webp = imgen("generate", "-m", "gpt-image-1", "--output-format", "webp", "a logo", "-o", str(outdir), env=EMBED)
    assert webp.returncode == 0, webp.stderr
    doc = inspect(imgen, webp.lines[0])
    assert doc["format"] == "webp" and doc["imgen"]["fields"] == {"output_format": "webp"}
    text = imgen("inspect", webp.lines[0], flux.lines[0])
    assert text.returncode == 0 and "prompt: a logo" in text.stdout and "prompt: a desk lamp" in text.stdout


def c2pa_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    claim = b"\x6fclaim_generator\x6bChatGPT 1.0"  # CBOR: a 15-byte text key, an 11-byte text value
    jumbf = struct.pack(">I", 8 + 8 + 4 + len(claim)) + b"jumb" + struct.pack(">I", 8 + 4) + b"jumdc2pa" + claim
    rows = b"".join(b"\0" + bytes(8 * 3) for _ in range(8))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)) + chunk(b"caBX", jumbf)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_content_credentials_are_saved_unchanged_and_the_record_goes_beside(imgen, server, outdir):
    signed = c2pa_png()
    answer = {"created": 1, "data": [{"b64_json": base64.b64encode(signed).decode()}]}
    server.fault("invalid_json", status=200, body=json.dumps(answer))  # an answer of the test's own making
    res = imgen("generate", "-m", "gpt-image-1", "a signed image", "-o", str(outdir), "-v", env=EMBED)
    assert res.returncode == 0, res.stderr
    path = Path(res.lines[0])
    assert path.read_bytes() == signed  # byte for byte: any change would read as tampering
    assert "Content Credentials" in res.stderr
    doc = inspect(imgen, path)
    assert doc["c2pa"]["present"] and doc["c2pa"]["claim_generator"] == "ChatGPT 1.0"
    assert doc["record_from"] == "sidecar" and doc["imgen"]["prompt"] == "a signed image"


def test_metadata_modes_and_single_run_sidecars(imgen, server, outdir):
    for mode in ("sidecar", "none", "both"):
        res = imgen("generate", "-m", "dall-e-3", f"mode {mode}", "-o", str(outdir), "--metadata", mode, env=EMBED)
        assert res.returncode == 0, res.stderr
        path = Path(res.lines[0])
        sidecar = path.with_name(path.name + ".json")
        assert (sha(path) == server.served[-1]["sha256"]) is (mode != "both")
        assert sidecar.exists() is (mode != "none")
        if sidecar.exists():
            assert json.loads(sidecar.read_text())["prompt"] == f"mode {mode}"
    both = imgen("generate", "-m", "dall-e-3", "embed and sidecar", "-o", str(outdir), "--sidecar", env=EMBED)
    path = Path(both.lines[0])
    assert inspect(imgen, path)["record_from"] == "embedded" and path.with_name(path.name + ".json").exists()
    bad = imgen("generate", "-m", "dall-e-3", "x", "--metadata", "exif")
    assert bad.returncode == 2 and "embed, sidecar, both, none" in bad.stderr


def test_stdout_gets_the_record_too(imgen, server, tmp_path):
    res = imgen("generate", "-m", "gpt-image-1", "to a pipe", "-o", "-", env=EMBED)
    assert res.returncode == 0, res.stderr
    saved = tmp_path / "piped.png"
    saved.write_bytes(res.stdout_bytes)
    assert inspect(imgen, saved)["imgen"]["prompt"] == "to a pipe"


def test_rerun_makes_the_same_image_again(imgen, outdir):
    first = imgen("-P", "offline", "generate", "a paper boat", "-s", "64x48", "-o", str(outdir), env=EMBED)
    assert first.returncode == 0, first.stderr
    again = imgen("-P", "offline", "rerun", first.lines[0], "-o", str(outdir / "again"), env=EMBED)
    assert again.returncode == 0, again.stderr
    original, remade = Path(first.lines[0]), Path(again.lines[0])
    assert metadata.strip_check(original, remade, "png")  # the same image; only the record's time differs
    dry = imgen("-P", "offline", "rerun", str(original), "-s", "32x32", "--dry-run", "--json", env=EMBED)
    assert dry.returncode == 0 and json.loads(dry.stdout)["body"]["size"] == "32x32"


def test_rerun_overrides_and_reports_a_newer_record(imgen, server, outdir):
    first = imgen("generate", "-m", "dall-e-3", "-s", "1792x1024", "a harbour", "-o", str(outdir), env=EMBED)
    path = Path(first.lines[0])
    dry = imgen("rerun", str(path), "-m", "gpt-image-2", "-s", "1536x1024", "--dry-run", "--json", env=EMBED)
    assert dry.returncode == 0, dry.stderr
    body = json.loads(dry.stdout)["body"]
    assert (body["model"], body["prompt"], body["size"]) == ("gpt-image-2", "a harbour", "1536x1024")
    newer = outdir / "newer.png"
    Image.new("RGB", (16, 16)).save(newer)
    record = {**inspect(imgen, path)["imgen"], "colour_profile": "display-p3"}
    newer.with_name("newer.png.json").write_text(json.dumps(record))
    assert inspect(imgen, newer)["unknown_record_keys"] == ["colour_profile"]
    res = imgen("rerun", str(newer), "--dry-run", env=EMBED)
    assert res.returncode == 0 and "colour_profile" in res.stderr


def test_an_edit_reruns_with_its_sources(imgen, server, tmp_path, outdir):
    photo = tmp_path / "photo.png"
    Image.new("RGB", (256, 256), (10, 20, 30)).save(photo)
    edit = imgen("edit", str(photo), "make it night", "-m", "gpt-image-1", "-o", str(outdir), env=EMBED)
    assert edit.returncode == 0, edit.stderr
    result = Path(edit.lines[0])
    assert inspect(imgen, result)["imgen"]["sources"] == [{"role": "image", "name": "photo.png", "sha256": sha(photo)}]
    missing = imgen("rerun", str(result), env=EMBED)
    assert missing.returncode == 2 and "is not beside the file" in missing.stderr
    given = imgen("rerun", str(result), "-i", str(photo), env=EMBED)
    assert given.returncode == 0, given.stderr
    (outdir / "source.png").write_bytes(photo.read_bytes())  # beside it: found by its sha256
    found = imgen("rerun", str(result), env=EMBED)
    assert found.returncode == 0, found.stderr
    uploads = [r.form.files[0]["sha256"] for r in server.api_requests() if r.path == "/v1/images/edits"]
    assert uploads == [sha(photo)] * 3


def test_inspect_refuses_what_is_not_an_image_and_says_when_nothing_is_recorded(imgen, tmp_path):
    plain = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(plain)
    res = imgen("inspect", str(plain))
    assert res.returncode == 0 and "nothing recorded" in res.stdout
    (tmp_path / "notes.png").write_text("hello")
    assert imgen("inspect", str(tmp_path / "notes.png")).returncode == 2
    assert imgen("inspect", str(tmp_path / "missing.png")).returncode == 2


def test_embedding_never_changes_a_pixel(imgen, outdir):
    # The placeholder draws the same pixels for the same prompt and size: one file without the
    # record, one with it (the JPEG and WebP cases are test_metadata.py's property tests).
    plain = imgen("-P", "offline", "generate", "pixels", "-s", "96x64", "-o", str(outdir / "plain"), "--metadata", "none")
    embedded = imgen("-P", "offline", "generate", "pixels", "-s", "96x64", "-o", str(outdir / "embedded"), env=EMBED)
    assert plain.returncode == embedded.returncode == 0
    a, b = Path(plain.lines[0]), Path(embedded.lines[0])
    assert sha(a) != sha(b) and metadata.strip_check(a, b, "png")
    with Image.open(a) as left, Image.open(b) as right:
        assert left.mode == right.mode and left.size == right.size and left.tobytes() == right.tobytes()


@pytest.mark.parametrize(("model", "args", "fields"), [
    ("gemini-3.1-flash-image-preview", ("--aspect", "16:9"), {"aspect_ratio": "16:9"}),
    ("bria", ("-n", "2", "--seed", "5"), {"n": 2, "seed": 5}),
    ("doubao-seedream-5-0-260128", ("-s", "2K", "--no-watermark"), {"size": "2K", "watermark": False}),
    ("dall-e-3", ("--style", "natural"), {"style": "natural"}),
    ("midjourney", ("--aspect", "2:3"), {"aspect_ratio": "2:3"}),
])
def test_every_dialect_records_what_was_sent(imgen, server, outdir, model, args, fields):
    res = imgen("generate", "-m", model, *args, "a lighthouse", "-o", str(outdir), env=FAST)
    assert res.returncode == 0, res.stderr
    for path in res.lines:
        record = inspect(imgen, path)["imgen"]
        assert (record["model"], record["prompt"], record["fields"]) == (model, "a lighthouse", fields)
