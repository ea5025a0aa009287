"""Metadata written into PNG, JPEG and WebP files: read back by imgen, by exiftool and by Pillow, with every pixel
unchanged, C2PA-signed files left alone, and hostile files bounded."""

import io
import json
import os
import random
import struct
import subprocess
import tempfile
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from conftest import require_tool
from imgen.files import imageinfo, metadata
from imgen.files.metadata import CUT_MARK, TRAINED_ALGORITHMIC_MEDIA, Signed, embed, has_c2pa, read, strip_check

EXIFTOOL_PACKAGE = "libimage-exiftool-perl"

PROMPT = "A 猫 on a \"mat\" <b>bold</b> & 🐱‍👤 emoji\nsecond line\r\n\ttabbed, 'quoted'"
RECORD = {"prompt": PROMPT, "model": "gpt-image-1", "size": "48x32", "seed": 42, "n": 1, "quality": None, "tags": ["ü", "<&>"]}
PARAMETERS = "A 猫 on a mat\nNegative prompt: blurry, <ugly> & bad\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 48x32"
LATIN1_PARAMETERS = "a cat, café\nNegative prompt: ugly\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512"

EXT = {"png": "png", "jpeg": "jpg", "webp": "webp"}


# --- building images --------------------------------------------------------------------------------------------


def noise(mode: str, size: tuple[int, int], seed: int) -> Image.Image:
    bands = {"RGB": 3, "RGBA": 4, "L": 1, "P": 1}[mode]
    data = random.Random(seed).randbytes(size[0] * size[1] * bands)
    im = Image.frombytes(mode, size, data)
    if mode == "P":
        im.putpalette(random.Random(seed + 1).randbytes(768))
    if mode == "RGBA":
        im.putpixel((0, 0), (0, 0, 0, 0))  # an encoder may drop an alpha channel nothing uses
    return im


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **kw)
    return out.getvalue()


def exif_block(**tags: str) -> Image.Exif:
    exif = Image.Exif()
    names = {"Software": 0x0131, "ImageDescription": 0x010E, "Artist": 0x013B}
    for name, value in tags.items():
        exif[names[name]] = value
    return exif


# (format, how Pillow writes it): the variants the pixel property covers.
VARIANTS = {
    "png-RGB": ("png", "RGB", {}),
    "png-RGBA": ("png", "RGBA", {}),
    "png-P": ("png", "P", {}),
    "png-L": ("png", "L", {}),
    "png-text": ("png", "RGB", {"pnginfo": "text"}),
    "jpeg-baseline": ("jpeg", "RGB", {"quality": 85}),
    "jpeg-progressive": ("jpeg", "RGB", {"quality": 85, "progressive": True}),
    "jpeg-exif": ("jpeg", "RGB", {"quality": 90, "exif": "exif"}),
    "jpeg-gray": ("jpeg", "L", {}),
    "webp-lossy": ("webp", "RGB", {"quality": 80}),
    "webp-lossless": ("webp", "RGB", {"lossless": True}),
    "webp-alpha-lossy": ("webp", "RGBA", {"quality": 80}),
    "webp-alpha-lossless": ("webp", "RGBA", {"lossless": True}),
    "webp-exif": ("webp", "RGBA", {"lossless": True, "exif": "exif"}),
}


def variant_bytes(name: str, size: tuple[int, int] = (48, 32), seed: int = 1) -> bytes:
    fmt, mode, kw = VARIANTS[name]
    kw = dict(kw)
    if kw.get("pnginfo") == "text":
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", "made by a test")
        kw["pnginfo"] = info
    if kw.get("exif") == "exif":
        kw["exif"] = exif_block(Software="TestSoft 1.0", Artist="Ada")
    return encode(noise(mode, size, seed), fmt.upper(), **kw)


def write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with(chunks: list[bytes], base: bytes | None = None) -> bytes:
    """`base` (a small PNG) with `chunks` inserted right after its IHDR."""
    base = base or encode(noise("RGB", (4, 4), 0), "PNG")
    return base[:33] + b"".join(chunks) + base[33:]


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk, each CRC checked."""
    out, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        payload = data[pos + 8 : pos + 8 + length]
        assert struct.unpack_from(">I", data, pos + 8 + length)[0] == zlib.crc32(kind + payload), kind
        out.append((kind, payload))
        pos += 12 + length
    return out


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) of every segment before the first scan."""
    out, pos = [], 2
    while True:
        marker, length = data[pos + 1], struct.unpack_from(">H", data, pos + 2)[0]
        out.append((marker, data[pos + 4 : pos + 2 + length]))
        if marker == 0xDA:
            return out
        pos += 2 + length


def webp_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 12
    assert struct.unpack_from("<I", data, 4)[0] == len(data) - 8
    while pos < len(data):
        kind, length = struct.unpack_from("<4sI", data, pos)
        out.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 8 + length + (length & 1)
    assert pos == len(data)
    return out


def webp_add(data: bytes, chunk: bytes) -> bytes:
    """`data` (an extended WebP) with `chunk` appended and the RIFF size fixed."""
    body = data[8:] + chunk
    return b"RIFF" + struct.pack("<I", len(body)) + body


def riff_chunk(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack("<I", len(data)) + data + b"\0" * (len(data) & 1)


def exiftool(*paths: Path) -> list[dict]:
    exe = require_tool("exiftool", EXIFTOOL_PACKAGE)
    done = subprocess.run([exe, "-j", "-G1", "-a", "-all", "-validate", "-warning", *map(str, paths)], capture_output=True, text=True)
    assert done.stdout, done.stderr
    return json.loads(done.stdout)


def no_new_warnings(before: dict, after: dict) -> None:
    """exiftool's -validate (CRCs, segment and chunk lengths, RIFF size, XMP syntax) finds nothing that embed added."""
    assert after["ExifTool:Validate"] == before["ExifTool:Validate"], after
    assert after.get("ExifTool:Warning") == before.get("ExifTool:Warning"), after


def same_pixels(a: Path, b: Path) -> None:
    with Image.open(a) as x, Image.open(b) as y:
        assert (x.format, x.mode, x.size) == (y.format, y.mode, y.size)
        assert x.tobytes() == y.tobytes()
        assert x.getpalette() == y.getpalette()


# --- round trips ---------------------------------------------------------------------------------------------------


ROUND_TRIP = ["png-RGBA", "png-text", "jpeg-baseline", "jpeg-exif", "webp-lossy", "webp-alpha-lossless", "webp-exif"]


@pytest.mark.parametrize("variant", ROUND_TRIP)
def test_embed_then_read_gives_back_record_parameters_and_source_type(tmp_path, variant):
    fmt = VARIANTS[variant][0]
    src = write(tmp_path, f"src.{EXT[fmt]}", variant_bytes(variant))
    dst = tmp_path / f"dst.{EXT[fmt]}"
    embed(src, dst, fmt, RECORD, PARAMETERS)
    got = read(dst)
    assert (got["format"], got["width"], got["height"]) == (fmt, 48, 32)
    assert got["imgen"] == RECORD
    assert got["parameters"] == PARAMETERS
    assert got["xmp"]["description"] == PROMPT
    assert got["xmp"]["digital_source_type"] == TRAINED_ALGORITHMIC_MEDIA
    assert got["xmp"]["creator_tool"].startswith("imgen ")
    assert got["c2pa"] is None and got["comfyui"] is None
    assert strip_check(src, dst, fmt)
    assert not has_c2pa(dst)
    umask = os.umask(0)
    os.umask(umask)
    assert dst.stat().st_mode & 0o777 == 0o644 & ~umask
    if variant.endswith("exif"):
        assert got["exif"] == {"Software": "TestSoft 1.0", "Artist": "Ada"}
    if variant == "png-text":
        assert got["text"] == {"Comment": "made by a test"}


def test_exiftool_reads_what_embed_wrote(tmp_path):
    pairs = []
    for variant in ("png-RGB", "jpeg-exif", "webp-lossless", "webp-alpha-lossy", "png-L"):
        fmt = VARIANTS[variant][0]
        src = write(tmp_path, f"{variant}.src.{EXT[fmt]}", variant_bytes(variant))
        dst = tmp_path / f"{variant}.{EXT[fmt]}"
        latin = variant == "png-L"
        embed(src, dst, fmt, {"prompt": "x"} if latin else RECORD, LATIN1_PARAMETERS if latin else PARAMETERS)
        pairs += [src, dst]
    found = exiftool(*pairs)
    for before, after in zip(found[::2], found[1::2]):
        no_new_warnings(before, after)
        assert after["XMP-iptcExt:DigitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
        assert after["XMP-xmp:CreatorTool"].startswith("imgen ")
    png, jpeg, webp, webp_alpha, latin_png = found[1::2]
    assert found[0]["ExifTool:Validate"] == "OK"
    assert json.loads(png["PNG:Imgen"]) == RECORD
    assert png["PNG:Parameters"] == PARAMETERS  # an iTXt, as the text is not Latin-1
    assert latin_png["PNG:Parameters"] == LATIN1_PARAMETERS  # a tEXt
    assert png["XMP-dc:Description"] == PROMPT
    for tags in (jpeg, webp, webp_alpha):
        assert tags["XMP-dc:Description"] == PROMPT
        assert tags["XMP-exif:UserComment"] == PARAMETERS
        assert json.loads(tags["XMP-imgen:Record"]) == RECORD
    assert jpeg["IFD0:Software"] == "TestSoft 1.0"  # the Exif block is still there and still read
    assert webp["RIFF:WebP_Flags"] == "XMP"
    assert webp_alpha["RIFF:WebP_Flags"] == "XMP, Alpha"


def test_pillow_reads_the_png_text_chunks(tmp_path):
    src = write(tmp_path, "src.png", variant_bytes("png-RGB"))
    embed(src, tmp_path / "a.png", "png", RECORD, PARAMETERS)
    embed(src, tmp_path / "b.png", "png", RECORD, LATIN1_PARAMETERS)
    with Image.open(tmp_path / "a.png") as a, Image.open(tmp_path / "b.png") as b:
        assert json.loads(a.info["imgen"]) == RECORD
        assert a.info["parameters"] == PARAMETERS and b.info["parameters"] == LATIN1_PARAMETERS
        assert "Iptc4xmpExt:DigitalSourceType" in a.info["XML:com.adobe.xmp"]


def test_png_layout_record_right_after_ihdr_tEXt_when_latin1(tmp_path):
    src = write(tmp_path, "src.png", variant_bytes("png-text"))
    embed(src, tmp_path / "a.png", "png", RECORD, LATIN1_PARAMETERS)
    chunks = png_chunks((tmp_path / "a.png").read_bytes())
    kinds = [kind for kind, _ in chunks]
    assert kinds[:4] == [b"IHDR", b"iTXt", b"tEXt", b"iTXt"]
    assert chunks[1][1] == b"imgen\0\0\0\0\0" + json.dumps(RECORD, ensure_ascii=False).encode()
    assert chunks[2][1] == b"parameters\0" + LATIN1_PARAMETERS.encode("latin-1")
    assert chunks[3][1].startswith(b"XML:com.adobe.xmp\0\0\0\0\0<?xpacket")
    assert kinds.index(b"IDAT") > 3 and kinds[-1] == b"IEND"


def test_png_that_has_xmp_gets_no_second_packet(tmp_path):
    packet = b"XML:com.adobe.xmp\0\0\0\0\0<x:xmpmeta xmlns:x='adobe:ns:meta/'/>"
    src = write(tmp_path, "src.png", png_with([png_chunk(b"iTXt", packet)]))
    embed(src, tmp_path / "a.png", "png", RECORD)
    kinds = [kind for kind, payload in png_chunks((tmp_path / "a.png").read_bytes()) if payload.startswith(b"XML:com.adobe.xmp")]
    assert len(kinds) == 1
    assert read(tmp_path / "a.png")["imgen"] == RECORD


def test_jpeg_xmp_goes_after_jfif_and_exif(tmp_path):
    src = write(tmp_path, "src.jpg", variant_bytes("jpeg-exif"))
    embed(src, tmp_path / "a.jpg", "jpeg", RECORD)
    segments = jpeg_segments((tmp_path / "a.jpg").read_bytes())
    assert [m for m, _ in segments[:3]] == [0xE0, 0xE1, 0xE1]
    assert segments[1][1].startswith(b"Exif\0\0")
    assert segments[2][1].startswith(b"http://ns.adobe.com/xap/1.0/\0<?xpacket")
    assert read(tmp_path / "a.jpg")["parameters"] is None


def test_webp_simple_file_becomes_extended(tmp_path):
    for variant, flags in (("webp-lossy", 0x04), ("webp-alpha-lossless", 0x14)):
        src = write(tmp_path, f"{variant}.webp", variant_bytes(variant, size=(301, 7)))
        assert webp_chunks(src.read_bytes())[0][0] in (b"VP8 ", b"VP8L")
        dst = tmp_path / f"{variant}.out.webp"
        embed(src, dst, "webp", RECORD, PARAMETERS)
        chunks = webp_chunks(dst.read_bytes())
        assert chunks[0] == (b"VP8X", bytes([flags, 0, 0, 0]) + (300).to_bytes(3, "little") + (6).to_bytes(3, "little"))
        assert chunks[-1][0] == b"XMP " and len(chunks) == 3
        assert imageinfo.probe(dst) == imageinfo.probe(src)


def test_webp_extended_file_keeps_its_chunks_and_gets_the_flag(tmp_path):
    src = write(tmp_path, "src.webp", variant_bytes("webp-exif"))
    before = webp_chunks(src.read_bytes())
    embed(src, tmp_path / "a.webp", "webp", RECORD)
    after = webp_chunks((tmp_path / "a.webp").read_bytes())
    assert after[0][1][0] == before[0][1][0] | 0x04 and after[0][1][1:] == before[0][1][1:]
    assert after[1:-1] == before[1:]  # the EXIF chunk stays, and XMP follows it at the end
    assert [kind for kind, _ in after[-2:]] == [b"EXIF", b"XMP "]


def test_odd_sized_webp_xmp_chunk_is_padded(tmp_path):
    src = write(tmp_path, "src.webp", variant_bytes("webp-lossy"))
    sizes = set()
    for i in range(2):
        dst = tmp_path / f"{i}.webp"
        embed(src, dst, "webp", {"k": "x" * i})
        sizes.add(len(webp_chunks(dst.read_bytes())[-1][1]) % 2)  # webp_chunks checks the padding and RIFF size
        same_pixels(src, dst)
    assert sizes == {0, 1}


def test_xml_hostile_characters_and_lone_surrogates(tmp_path):
    record = {"prompt": "bell\x07 nul\x00 esc\x1b ffff\uffff cr\r end", "odd": "\ud800 lone", "k\x01": "v"}
    for variant in ("png-RGB", "jpeg-baseline", "webp-lossless"):
        fmt = VARIANTS[variant][0]
        src = write(tmp_path, f"{variant}.{EXT[fmt]}", variant_bytes(variant))
        dst = tmp_path / f"{variant}.out.{EXT[fmt]}"
        embed(src, dst, fmt, record, "nul\x00 and \x07bell")
        got = read(dst)
        assert got["imgen"] == record  # JSON escapes carry every code point, lone surrogates included
        assert got["xmp"]["description"] == "bell\ufffd nul\ufffd esc\ufffd ffff\ufffd cr\r end"  # XML cannot
    assert read(tmp_path / "png-RGB.out.png")["parameters"] == "nul and \x07bell"


def test_no_prompt_and_no_parameters(tmp_path):
    src = write(tmp_path, "src.jpg", variant_bytes("jpeg-baseline"))
    embed(src, tmp_path / "a.jpg", "jpg", {"model": "m"})
    got = read(tmp_path / "a.jpg")
    assert got["imgen"] == {"model": "m"} and got["parameters"] is None and got["xmp"]["description"] is None


# --- every pixel preserved ----------------------------------------------------------------------------------------

XML_SAFE = st.characters(codec="utf-8", exclude_characters="\0\ufffe\uffff").filter(lambda c: c in "\t\n\r" or ord(c) >= 0x20)


@settings(max_examples=60, deadline=None)
@given(
    variant=st.sampled_from(sorted(VARIANTS)),
    size=st.tuples(st.integers(1, 64), st.integers(1, 64)),
    seed=st.integers(0, 2**16),
    prompt=st.text(max_size=80),
    parameters=st.none() | st.text(XML_SAFE, max_size=80),
)
def test_embed_preserves_every_pixel(variant, size, seed, prompt, parameters):
    fmt = VARIANTS[variant][0]
    record = {"prompt": prompt, "seed": seed, "size": f"{size[0]}x{size[1]}"}
    with tempfile.TemporaryDirectory() as tmp:
        src = write(Path(tmp), f"src.{EXT[fmt]}", variant_bytes(variant, size, seed))
        dst = Path(tmp) / f"dst.{EXT[fmt]}"
        embed(src, dst, fmt, record, parameters)
        same_pixels(src, dst)
        assert strip_check(src, dst, fmt)
        info = imageinfo.probe(dst)
        assert (info.format, info.width, info.height) == (fmt, *size)
        assert info == imageinfo.probe(src)
        got = read(dst)
        assert got["imgen"] == record
        assert got["parameters"] == parameters
        assert got["xmp"]["digital_source_type"] == TRAINED_ALGORITHMIC_MEDIA


def image_byte(data: bytes, fmt: str) -> int:
    """An offset inside the image data proper: IDAT, the entropy-coded scan, the WebP bitstream."""
    if fmt == "png":
        return data.index(b"IDAT") + 8
    if fmt == "jpeg":
        return len(data) - 10
    return len(data) - 4


def test_strip_check_sees_a_changed_image_byte(tmp_path):
    for variant in ("png-RGB", "jpeg-baseline", "webp-lossless"):
        fmt = VARIANTS[variant][0]
        data = variant_bytes(variant)
        src = write(tmp_path, f"{variant}.{EXT[fmt]}", data)
        damaged = bytearray(data)
        damaged[image_byte(data, fmt)] ^= 0x01
        damaged_src = write(tmp_path, f"{variant}.bad.{EXT[fmt]}", bytes(damaged))
        dst = tmp_path / f"{variant}.out.{EXT[fmt]}"
        embed(damaged_src, dst, fmt, RECORD)
        assert strip_check(damaged_src, dst, fmt)
        assert not strip_check(src, dst, fmt)
        assert not strip_check(src, dst, {"png": "jpeg", "jpeg": "webp", "webp": "png"}[fmt])


# --- C2PA ---------------------------------------------------------------------------------------------------------

C2PA_UUID = b"c2pa" + bytes.fromhex("00110010800000aa00389b71")


def cbor_text(text: str) -> bytes:
    raw = text.encode()
    if len(raw) < 24:
        return bytes([0x60 + len(raw)]) + raw
    if len(raw) < 256:
        return bytes([0x78, len(raw)]) + raw
    return b"\x79" + len(raw).to_bytes(2, "big") + raw


def cbor_map(pairs: list[tuple[str, bytes]]) -> bytes:
    return bytes([0xA0 + len(pairs)]) + b"".join(cbor_text(k) + v for k, v in pairs)


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def jumd(uuid: bytes, label: str) -> bytes:
    return box(b"jumd", uuid + b"\x03" + label.encode() + b"\0")


def manifest_store(claim: bytes) -> bytes:
    """A JUMBF manifest store shaped like c2pa-rs output: store > manifest > (assertions, claim, signature)."""
    thumbnail = box(b"jumb", jumd(b"\0" * 16, "c2pa.thumbnail.claim.jpeg") + box(b"bidb", random.Random(3).randbytes(5000)))
    assertions = box(b"jumb", jumd(b"c2as" + bytes(12), "c2pa.assertions") + thumbnail)
    claim_box = box(b"jumb", jumd(b"c2cl" + bytes(12), "c2pa.claim") + box(b"cbor", claim))
    signature = box(b"jumb", jumd(b"c2cs" + bytes(12), "c2pa.signature") + box(b"cbor", b"\xd2\x84" + bytes(300)))
    manifest = box(b"jumb", jumd(b"c2ma" + bytes(12), "urn:uuid:0d5c4e1c-7d0c-4e1d-9d3c-2f4b5a6c7d8e") + assertions + claim_box + signature)
    return box(b"jumb", jumd(C2PA_UUID, "c2pa") + manifest)


def claim_v1(generator: str) -> bytes:
    return cbor_map(
        [
            ("claim_generator", cbor_text(generator)),
            ("claim_generator_info", b"\x81" + cbor_map([("name", cbor_text("ChatGPT")), ("version", cbor_text("1"))])),
            ("signature", cbor_text("self#jumbf=c2pa.signature")),
            ("dc:format", cbor_text("image/png")),
        ]
    )


def claim_v2(name: str) -> bytes:
    return cbor_map([("claim_generator_info", cbor_map([("name", cbor_text(name))])), ("alg", cbor_text("sha256"))])


def app11(store: bytes, parts: int = 1) -> bytes:
    """`store` framed as JPEG XT APP11 segments; later ones repeat the superbox header, as c2pa-rs writes them."""
    step = -(-len(store) // parts)
    segments = []
    for i in range(parts):
        piece = store[i * step : (i + 1) * step] if i == 0 else store[:8] + store[i * step : (i + 1) * step]
        payload = b"JP" + b"\x02\x11" + struct.pack(">I", i + 1) + piece
        segments.append(b"\xff\xeb" + struct.pack(">H", 2 + len(payload)) + payload)
    return b"".join(segments)


def signed_png(claim: bytes) -> bytes:
    return png_with([png_chunk(b"caBX", manifest_store(claim))])


def signed_jpeg(claim: bytes, parts: int = 1) -> bytes:
    plain = variant_bytes("jpeg-baseline")
    return plain[:20] + app11(manifest_store(claim), parts) + plain[20:]  # after SOI and the 18-byte JFIF APP0


def signed_webp(claim: bytes) -> bytes:
    return webp_add(variant_bytes("webp-exif"), riff_chunk(b"C2PA", manifest_store(claim)))


GENERATOR = "ChatGPT c2pa-rs/0.49.5 (OpenAI image generation pipeline)"  # over 23 bytes: a one-byte CBOR length


@pytest.mark.parametrize("make, fmt", [(signed_png, "png"), (signed_jpeg, "jpeg"), (signed_webp, "webp")])
def test_c2pa_is_detected_reported_and_never_touched(tmp_path, make, fmt):
    src = write(tmp_path, f"signed.{EXT[fmt]}", make(claim_v1(GENERATOR)))
    original = src.read_bytes()
    with Image.open(src) as im:
        im.load()  # the fixtures are real images around the manifest
    assert has_c2pa(src)
    got = read(src)
    assert got["c2pa"] == {"present": True, "claim_generator": GENERATOR}
    assert (got["width"], got["height"]) == ((4, 4) if fmt == "png" else (48, 32))
    with pytest.raises(Signed):
        embed(src, tmp_path / f"out.{EXT[fmt]}", fmt, RECORD, PARAMETERS)
    assert not (tmp_path / f"out.{EXT[fmt]}").exists()
    assert src.read_bytes() == original
    v2 = write(tmp_path, f"v2.{EXT[fmt]}", make(claim_v2("Firefly")))
    assert read(v2)["c2pa"] == {"present": True, "claim_generator": "Firefly"}


def test_c2pa_split_over_app11_segments_is_joined(tmp_path):
    claim = claim_v1("Split Generator " + "x" * 300)  # a two-byte CBOR length
    store = manifest_store(claim)
    parts = 3
    at = store.index(b"Split Generator")
    while not any(at < i * -(-len(store) // parts) < at + 300 for i in range(1, parts)):
        parts += 1  # make a segment boundary fall inside the string
    src = write(tmp_path, "split.jpg", signed_jpeg(claim, parts))
    assert has_c2pa(src)
    assert read(src)["c2pa"]["claim_generator"] == "Split Generator " + "x" * 300


def test_files_without_c2pa(tmp_path):
    for variant in ("png-RGB", "jpeg-exif", "webp-exif", "webp-lossy"):
        fmt = VARIANTS[variant][0]
        src = write(tmp_path, f"{variant}.{EXT[fmt]}", variant_bytes(variant))
        assert not has_c2pa(src)
        assert read(src)["c2pa"] is None
    other_jumbf = variant_bytes("jpeg-baseline")
    other_jumbf = other_jumbf[:20] + app11(box(b"jumb", jumd(b"jp2x" + bytes(12), "not-a-manifest"))) + other_jumbf[20:]
    assert not has_c2pa(write(tmp_path, "jumbf.jpg", other_jumbf))
    assert not has_c2pa(write(tmp_path, "note.txt", b"just some text, long enough to sniff"))


def test_unreadable_claims_give_none(tmp_path):
    bad = [
        b"\xa1\x6fclaim_generator\x7a\xff\xff\xff\xff",  # a 4 GiB string in a few bytes
        b"\xa1\x6fclaim_generator\x7f\x61a\xff",  # indefinite length
        b"\xa1\x6fclaim_generator\x18\x2a",  # not text
        b"\xa1\x6fclaim_generator\x62\xff\xfe",  # not UTF-8
        b"\xa1\x6fclaim_generator",  # cut off
    ]
    for i, claim in enumerate(bad):
        assert read(write(tmp_path, f"{i}.png", signed_png(claim)))["c2pa"] == {"present": True, "claim_generator": None}


# --- hostile files ------------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(variant=st.sampled_from(["png-RGBA", "png-P", "jpeg-baseline", "jpeg-exif", "webp-lossy", "webp-exif"]), cut=st.floats(0, 1))
def test_truncated_files_are_refused_and_leave_nothing(variant, cut):
    fmt = VARIANTS[variant][0]
    data = variant_bytes(variant, (16, 16))
    with tempfile.TemporaryDirectory() as tmp:
        src = write(Path(tmp), "src", data[: min(int(len(data) * cut), len(data) - 1)])
        dst = Path(tmp) / "dst"
        with pytest.raises(ValueError):
            embed(src, dst, fmt, RECORD, PARAMETERS)
        assert not dst.exists()
        try:
            read(src)  # whatever survives of the header, or not an image at all
        except ValueError:
            pass
        has_c2pa(src)


def test_existing_destination_is_never_overwritten(tmp_path):
    src = write(tmp_path, "src.png", variant_bytes("png-RGB"))
    dst = write(tmp_path, "dst.png", b"someone else's file")
    with pytest.raises(FileExistsError):
        embed(src, dst, "png", RECORD)
    assert dst.read_bytes() == b"someone else's file"


def test_an_error_while_copying_removes_the_partial_file(tmp_path, monkeypatch):
    src = write(tmp_path, "src.png", variant_bytes("png-RGB"))

    def failing_copy(source, out, offset, length):
        out.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(metadata, "_copy", failing_copy)
    with pytest.raises(OSError, match="disk full"):
        embed(src, tmp_path / "dst.png", "png", RECORD)
    assert not (tmp_path / "dst.png").exists()


def test_wrong_format_unsupported_format_and_existing_xmp_are_refused(tmp_path):
    png = write(tmp_path, "a.png", variant_bytes("png-RGB"))
    gif = write(tmp_path, "a.gif", encode(noise("P", (4, 4), 1), "GIF"))
    xmp = b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta xmlns:x='adobe:ns:meta/'/>"
    plain = variant_bytes("jpeg-baseline")
    jpeg_xmp = write(tmp_path, "x.jpg", plain[:20] + b"\xff\xe1" + struct.pack(">H", 2 + len(xmp)) + xmp + plain[20:])
    webp_xmp = write(tmp_path, "x.webp", webp_add(variant_bytes("webp-exif"), riff_chunk(b"XMP ", xmp[29:])))
    for src, fmt in ((png, "jpeg"), (gif, "gif"), (gif, "png"), (jpeg_xmp, "jpeg"), (webp_xmp, "webp")):
        with pytest.raises(ValueError):
            embed(src, tmp_path / "out", fmt, RECORD)
        assert not (tmp_path / "out").exists()
    assert read(gif)["format"] == "gif"


def test_jpeg_segment_overflow_cuts_the_longest_strings(tmp_path):
    record = {
        "prompt": "長い夢 🐉 <&> " * 8000,
        "revised_prompt": "r" * 120_000,
        "negative": "short & sweet",
        "model": "gpt-image-1",
        "nested": {"notes": ["n" * 50_000, "tiny"]},
    }
    parameters = "p" * 90_000
    src = write(tmp_path, "src.jpg", variant_bytes("jpeg-exif"))
    dst = tmp_path / "dst.jpg"
    embed(src, dst, "jpeg", record, parameters)
    same_pixels(src, dst)
    assert strip_check(src, dst, "jpeg")
    xmp = [payload for marker, payload in jpeg_segments(dst.read_bytes()) if payload.startswith(b"http://ns.adobe.com/xap/1.0/\0")]
    assert len(xmp) == 1 and 60_000 < len(xmp[0]) + 2 <= 65535
    got = read(dst)["imgen"]
    assert got["negative"] == "short & sweet" and got["model"] == "gpt-image-1" and got["nested"]["notes"][1] == "tiny"
    for cut, whole in ((got["prompt"], record["prompt"]), (got["revised_prompt"], record["revised_prompt"])):
        assert cut.endswith(CUT_MARK) and whole.startswith(cut[: -len(CUT_MARK)])
    assert read(dst)["parameters"].endswith(CUT_MARK)
    before, tags = exiftool(src, dst)
    no_new_warnings(before, tags)
    assert tags["XMP-dc:Description"] == got["prompt"]
    # Bulk that is not strings cannot be cut: refused, for the caller's sidecar.
    with pytest.raises(ValueError):
        embed(src, tmp_path / "numbers.jpg", "jpeg", {"prompt": "x", "numbers": list(range(20_000))})
    assert not (tmp_path / "numbers.jpg").exists()
    # PNG and WebP have no such limit and keep everything.
    embed(write(tmp_path, "src.webp", variant_bytes("webp-lossy")), tmp_path / "big.webp", "webp", record, parameters)
    assert read(tmp_path / "big.webp")["imgen"] == record


def test_ztxt_bomb_is_capped(tmp_path):
    packer = zlib.compressobj(9)
    block = bytes(1 << 20)
    bomb = b"".join(packer.compress(block) for _ in range(256)) + packer.flush()  # 256 MiB of zeros
    small = zlib.compress(b"a modest zTXt value")
    itxt = b"itxt-key\0\x01\0en\0Key\0" + zlib.compress("ünïcode, compressed".encode())
    src = write(
        tmp_path,
        "bomb.png",
        png_with(
            [
                png_chunk(b"zTXt", b"bomb\0\0" + bomb),
                png_chunk(b"zTXt", b"small\0\0" + small),
                png_chunk(b"iTXt", itxt),
                png_chunk(b"zTXt", b"broken\0\0" + b"not zlib at all"),
            ]
        ),
    )
    tracemalloc.start()
    started = time.perf_counter()
    got = read(src)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert got["text"] == {"small": "a modest zTXt value", "itxt-key": "ünïcode, compressed"}
    assert elapsed < 2 and peak < 24 << 20


def test_png_with_100k_chunks_is_walked_boundedly(tmp_path):
    filler = png_chunk(b"prVt", b"")
    late = png_chunk(b"tEXt", b"late\0after the cap")
    early = png_chunk(b"tEXt", b"early\0before the cap")
    src = write(tmp_path, "many.png", png_with([early, filler * 100_000, late]))
    started = time.perf_counter()
    got = read(src)
    assert time.perf_counter() - started < 2
    assert got["text"] == {"early": "before the cap"}  # the walk stopped at imageinfo's cap, long before "late"
    assert (got["width"], got["height"]) == (4, 4)
    assert not has_c2pa(src)
    embed(src, tmp_path / "out.png", "png", RECORD)  # embedding walks every chunk, as it must copy a valid file
    assert strip_check(src, tmp_path / "out.png", "png")


def test_big_image_is_streamed_not_read_whole(tmp_path):
    base = encode(noise("RGB", (4, 4), 0), "PNG")
    idat = png_chunk(b"IDAT", random.Random(0).randbytes(12 << 20))
    src = write(tmp_path, "big.png", base[:33] + idat + base[33:])  # image data no decoder could use, but sound chunks
    tracemalloc.start()
    embed(src, tmp_path / "out.png", "png", RECORD, PARAMETERS)
    got = read(tmp_path / "out.png")
    same = strip_check(src, tmp_path / "out.png", "png")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert same and got["imgen"] == RECORD
    assert peak < 4 << 20


def test_xmp_with_a_dtd_is_ignored(tmp_path):
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>&b;</x:xmpmeta>"
    )
    src = write(tmp_path, "bomb.webp", webp_add(variant_bytes("webp-exif"), riff_chunk(b"XMP ", bomb)))
    assert read(src)["xmp"] is None
    wide = write(tmp_path, "wide.webp", webp_add(variant_bytes("webp-exif"), riff_chunk(b"XMP ", bomb.decode().encode("utf-16"))))
    assert read(wide)["xmp"] is None
    garbage = write(tmp_path, "garbage.webp", webp_add(variant_bytes("webp-exif"), riff_chunk(b"XMP ", b"<not xml")))
    assert read(garbage)["xmp"] is None


@settings(max_examples=80, deadline=None)
@given(exif=st.binary(max_size=300), manifest=st.binary(max_size=300), text=st.binary(max_size=100))
def test_read_survives_random_metadata(exif, manifest, text):
    plain = variant_bytes("jpeg-baseline", (8, 8))
    payload = b"Exif\0\0" + (b"MM\0*" if exif[:1] == b"M" else b"II*\0") + exif
    jpeg = plain[:20] + b"\xff\xe1" + struct.pack(">H", 2 + len(payload)) + payload + plain[20:]
    png = png_with([png_chunk(b"eXIf", exif), png_chunk(b"caBX", manifest), png_chunk(b"iTXt", text), png_chunk(b"zTXt", text)])
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in (("a.jpg", jpeg), ("a.png", png)):
            got = read(write(Path(tmp), name, data))
            assert got["exif"] is None or isinstance(got["exif"], dict)


def test_deeply_nested_json_text_does_not_crash(tmp_path):
    deep = [png_chunk(b"tEXt", b"prompt\0" + b"[" * 200_000), png_chunk(b"tEXt", b"imgen\0" + b"{" * 200_000)]
    src = write(tmp_path, "deep.png", png_with(deep))
    got = read(src)
    assert got["imgen"] is None and got["comfyui"] == {"prompt": "[" * 200_000, "workflow": None}


# --- what other tools write ---------------------------------------------------------------------------------------

A1111 = (
    "masterpiece, a cat wearing a hat\n"
    "Negative prompt: lowres, bad anatomy\n"
    "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1234567890, Size: 512x768, Model hash: 6ce0161689, "
    "Model: v1-5-pruned-emaonly, Version: v1.6.0"
)
COMFY_PROMPT = {
    "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 20, "model": ["4", 0]}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat"}},
}
COMFY_WORKFLOW = {"last_node_id": 9, "nodes": [{"id": 3, "type": "KSampler", "widgets_values": [5, "fixed", 20]}], "version": 0.4}


def test_a1111_png_parameters(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111)  # what A1111's images.save_image_with_geninfo does
    src = write(tmp_path, "a1111.png", encode(noise("RGB", (8, 8), 1), "PNG", pnginfo=info))
    got = read(src)
    assert got["parameters"] == A1111 and got["imgen"] is None and got["comfyui"] is None and got["text"] == {}


def test_a1111_jpeg_user_comment(tmp_path):
    exif = exif_block(Software="AUTOMATIC1111")
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + A1111.encode("utf-16-be")  # piexif's UserComment.dump, as A1111 calls it
    src = write(tmp_path, "a1111.jpg", encode(noise("RGB", (8, 8), 1), "JPEG", exif=exif))
    got = read(src)
    assert got["parameters"] == A1111
    assert got["exif"] == {"Software": "AUTOMATIC1111", "UserComment": A1111}
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + "le text".encode("utf-16-le")
    little = write(tmp_path, "le.jpg", encode(noise("RGB", (8, 8), 1), "JPEG", exif=exif))
    assert read(little)["exif"]["UserComment"] == "le text"


def test_comfyui_png_prompt_and_workflow(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(COMFY_PROMPT))  # ComfyUI's SaveImage node
    info.add_text("workflow", json.dumps(COMFY_WORKFLOW))
    info.add_text("Title", "mine")
    src = write(tmp_path, "comfy.png", encode(noise("RGBA", (8, 8), 1), "PNG", pnginfo=info))
    got = read(src)
    assert got["comfyui"] == {"prompt": COMFY_PROMPT, "workflow": COMFY_WORKFLOW}
    assert got["text"] == {"Title": "mine"} and got["parameters"] is None
    info = PngImagePlugin.PngInfo()
    info.add_text("workflow", "{not json")
    assert read(write(tmp_path, "bad.png", encode(noise("L", (8, 8), 1), "PNG", pnginfo=info)))["comfyui"] == {
        "prompt": None,
        "workflow": "{not json",
    }
    embed(src, tmp_path / "both.png", "png", RECORD, A1111)  # imgen's own record sits beside ComfyUI's
    got = read(tmp_path / "both.png")
    assert got["imgen"] == RECORD and got["parameters"] == A1111 and got["comfyui"]["prompt"] == COMFY_PROMPT
