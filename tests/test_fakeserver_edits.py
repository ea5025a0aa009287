"""The fake server's image edit route: the multipart form, the per-model rules and the answers the clients are tested against."""
# ruff: noqa: F811 - the server fixtures are test_fakeserver's, imported by name as pytest wants

from __future__ import annotations

import base64
import hashlib
import json
import struct
import zlib

import httpx
import pytest

from fakeserver import FAULT_KINDS, make_image
from fakeserver_edits import image_info, parse_multipart
from test_fakeserver import AUTH, PNG, client, server, srv  # noqa: F401

MiB = 1 << 20
EDITS = "/v1/images/edits"
GPT_TYPES = "Supported file formats are 'image/jpeg', 'image/png', and 'image/webp'."


# ----------------------------------------------------------------- tiny images


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width=16, height=16, colour=6, trns=False, pad=0) -> bytes:
    """A valid PNG of zero pixels; ``pad`` adds a private chunk to reach a given upload size cheaply."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    out = PNG + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0))
    if colour == 3:
        out += _chunk(b"PLTE", b"\0\0\0\xff\xff\xff")
    if pad:
        out += _chunk(b"paDd", bytes(pad))
    if trns:
        out += _chunk(b"tRNS", b"\0" if colour == 3 else b"\0\0" * (3 if colour == 2 else 1))
    rows = b"".join(b"\0" + bytes(width * channels) for _ in range(height))
    return out + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")


def webp(kind: str, width=16, height=16, alpha=False) -> bytes:
    """Just the headers the size readers look at, for each of WebP's three first chunks."""
    if kind == "VP8 ":
        payload = b"\x10\x02\x00\x9d\x01\x2a" + struct.pack("<HH", width, height) + bytes(8)
    elif kind == "VP8L":
        payload = b"\x2f" + struct.pack("<I", (width - 1) | (height - 1) << 14 | int(alpha) << 28) + bytes(4)
    else:
        flags = 0x10 if alpha else 0
        payload = bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    chunk = kind.encode() + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


RGBA = png()
JPEG = make_image("jpeg", "jpeg").to_bytes()  # 8x8
WEBP = make_image("webp", "webp").to_bytes()  # 8x8, lossless


# ----------------------------------------------------------------- requests


def edit(client, server, fields=None, files=(), headers=AUTH):
    data = {"prompt": "add a hat"} | (fields or {})
    return client.post(server.base_url + EDITS, data=data, files=list(files), headers=headers)


def img(data=RGBA, ctype="image/png", name="image", filename="in.png"):
    return (name, (filename, data, ctype))


def refused(response, param, code=None, status=400):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    return error["message"]


def raw_form(parts: list[tuple[str, str | None, bytes]], boundary="b0undary") -> bytes:
    """A multipart body built by hand, for what httpx never sends (no Content-Type, odd quoting)."""
    out = b""
    for disposition, ctype, data in parts:
        out += f"--{boundary}\r\nContent-Disposition: form-data; {disposition}\r\n".encode()
        if ctype is not None:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def post_raw(client, server, body, boundary="b0undary", **kw):
    headers = AUTH | {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return client.post(server.base_url + EDITS, content=body, headers=headers, **kw)


# ----------------------------------------------------------------- answers


def test_gpt_edit_answers_like_generations_with_input_image_tokens(server, client):
    r = edit(client, server, {"model": "gpt-image-2"}, [img()])
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    doc = r.json()
    assert set(doc) == {"created", "background", "output_format", "quality", "size", "data", "usage"}
    assert [set(d) for d in doc["data"]] == [{"b64_json"}]
    assert base64.b64decode(doc["data"][0]["b64_json"]).startswith(PNG)
    usage = doc["usage"]
    details = usage["input_tokens_details"]
    assert details["image_tokens"] > 0 and usage["input_tokens"] == details["image_tokens"] + details["text_tokens"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert server.served[0]["model"] == "gpt-image-2"
    assert [r.path for r in server.api_requests()] == [EDITS]


def test_several_images_and_a_mask_are_recorded_part_by_part(server, client):
    files = [img(RGBA, name="image[]", filename="a.png"), img(JPEG, "image/jpeg", "image[]", "b.jpg"),
             img(WEBP, "image/webp", "image[]", "c.webp"), img(png(), name="mask", filename="m.png")]
    r = edit(client, server, {"model": "gpt-image-1.5", "n": "2", "size": "1536x1024", "input_fidelity": "high"}, files)
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 2 and r.json()["size"] == "1536x1024"
    form = server.requests[-1].form
    assert form.fields == {"prompt": "add a hat", "model": "gpt-image-1.5", "n": "2", "size": "1536x1024",
                           "input_fidelity": "high"}
    assert [(f["name"], f["filename"], f["content_type"], f["format"]) for f in form.files] == [
        ("image[]", "a.png", "image/png", "png"), ("image[]", "b.jpg", "image/jpeg", "jpeg"),
        ("image[]", "c.webp", "image/webp", "webp"), ("mask", "m.png", "image/png", "png"),
    ]
    assert [(f["width"], f["height"], f["alpha"]) for f in form.files] == [(16, 16, True), (8, 8, False),
                                                                           (8, 8, False), (16, 16, True)]
    assert [f["bytes"] for f in form.files] == [len(RGBA), len(JPEG), len(WEBP), len(RGBA)]
    assert form.files[1]["sha256"] == hashlib.sha256(JPEG).hexdigest()
    assert not form.chunked and form.content_length == len(server.requests[-1].body)
    assert server.requests[-1].json is None


def test_dalle2_answers_a_url_by_default_and_b64_on_request(server, client):
    r = edit(client, server, {"model": "dall-e-2", "size": "512x512"}, [img()])
    assert r.status_code == 200 and set(r.json()) == {"created", "data"}
    url = r.json()["data"][0]["url"]
    download = client.get(url)
    assert download.status_code == 200 and hashlib.sha256(download.content).hexdigest() == server.served[0]["sha256"]
    b64 = edit(client, server, {"response_format": "b64_json", "n": "2"}, [img()]).json()  # dall-e-2 is the default
    assert [set(d) for d in b64["data"]] == [{"b64_json"}, {"b64_json"}]
    refused(edit(client, server, {"model": "dall-e-2", "size": "1536x1024"}, [img()]), "size")


def test_qwen_image_edit_makes_one_url_from_one_image(server, client):
    r = edit(client, server, {"model": "qwen-image-edit"}, [img(JPEG, "image/jpeg")])
    assert r.status_code == 200 and list(r.json()["data"][0]) == ["url"]
    assert "n must be 1" in refused(edit(client, server, {"model": "qwen-image-edit", "n": "2"}, [img()]), "n")
    two = [img(name="image[]"), img(name="image[]")]
    assert "exactly one image" in refused(edit(client, server, {"model": "qwen-image-edit"}, two), "image")


def test_streaming_edit_names_its_events_image_edit(server, client):
    fields = {"model": "gpt-image-1", "stream": "true", "partial_images": "2"}
    with client.stream("POST", server.base_url + EDITS, data={"prompt": "p"} | fields, files=[img()],
                       headers=AUTH) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        text = r.read().decode()
    events = [e.split("\n") for e in text.split("\n\n") if e]
    assert [e[0] for e in events] == ["event: image_edit.partial_image"] * 2 + ["event: image_edit.completed"]
    payloads = [json.loads(e[1].removeprefix("data: ")) for e in events]
    assert [p["type"] for p in payloads] == ["image_edit.partial_image"] * 2 + ["image_edit.completed"]
    assert [p.get("partial_image_index") for p in payloads] == [0, 1, None]
    assert payloads[2]["usage"]["input_tokens_details"]["image_tokens"] > 0
    assert all(base64.b64decode(p["b64_json"]).startswith(PNG) for p in payloads)


# ----------------------------------------------------------------- the form itself


def test_a_body_that_is_not_multipart_is_refused(server, client):
    r = client.post(server.base_url + EDITS, json={"prompt": "p", "image": "x"}, headers=AUTH)
    assert "expected multipart/form-data" in refused(r, None, "invalid_content_type")
    no_boundary = client.post(server.base_url + EDITS, content=b"x", headers=AUTH | {"Content-Type": "multipart/form-data"})
    assert "boundary" in refused(no_boundary, None)
    unclosed = raw_form([('name="prompt"', None, b"p")]).removesuffix(b"--b0undary--\r\n")
    assert "not closed" in refused(post_raw(client, server, unclosed), None)
    assert edit(client, server, files=[img()], headers={}).status_code == 401


def test_binary_data_with_crlf_and_boundary_lookalikes_survives_parsing(server, client):
    # Inside a part, a boundary only counts after CRLF and when followed by "--" or a line end.
    tricky = b"\r\n--b0undaryX\r\n--b0undary-not\r\n\r\n\r\n--b0undar\r\n"
    body = raw_form([('name="prompt"', None, "un chapeau \u00e9l\u00e9gant".encode()),
                     ('name="image"; filename="a \\"q\\".png"', "image/png", RGBA + tricky)])
    r = post_raw(client, server, b"preamble\r\n" + body + b"epilogue")
    assert r.status_code == 200, r.text
    form = server.requests[-1].form
    assert form.fields == {"prompt": "un chapeau \u00e9l\u00e9gant"}
    (part,) = form.files
    assert part["filename"] == 'a "q".png' and part["bytes"] == len(RGBA + tricky)
    assert part["sha256"] == hashlib.sha256(RGBA + tricky).hexdigest()
    parts = parse_multipart(body, 'multipart/form-data; boundary="b0undary"')
    assert [p.name for p in parts] == ["prompt", "image"] and bytes(parts[1].data) == RGBA + tricky


def test_a_chunked_upload_is_parsed_and_recorded_as_chunked(server, client):
    body = raw_form([('name="prompt"', None, b"p"), ('name="model"', None, b"gpt-image-1-mini"),
                     ('name="image"; filename="a.png"', "image/png", RGBA)])
    r = post_raw(client, server, iter([body[:50], body[50:]]))
    assert r.status_code == 200, r.text
    rec = server.requests[-1]
    assert rec.headers["transfer-encoding"] == "chunked"
    assert rec.form.chunked and rec.form.content_length is None


def test_unknown_fields_and_parts_of_the_wrong_kind_are_refused(server, client):
    r = edit(client, server, {"model": "gpt-image-1", "style": "vivid"}, [img()])
    assert refused(r, "style", "unknown_parameter") == "Unknown parameter: 'style'."
    assert refused(edit(client, server, files=[img(), img(name="mask[]")]), "mask[]", "unknown_parameter")
    as_file = edit(client, server, files=[img(), ("prompt", ("p.txt", b"a hat", "text/plain"))])
    assert "expected a string, but got a file" in refused(as_file, "prompt", "invalid_type")
    body = raw_form([('name="prompt"', None, b"p"), ('name="image"', None, b"not a file")])
    assert "expected a file, but got a string" in refused(post_raw(client, server, body), "image", "invalid_type")
    assert "expected an integer" in refused(edit(client, server, {"n": "two"}, [img()]), "n", "invalid_type")
    assert "Missing required parameter: 'prompt'" in refused(
        client.post(server.base_url + EDITS, data={"model": "dall-e-2"}, files=[img()], headers=AUTH), "prompt")
    no_image = raw_form([('name="prompt"', None, b"p"), ('name="model"', None, b"gpt-image-1")])
    assert "Missing required parameter: 'image'" in refused(post_raw(client, server, no_image), "image")


def test_models_that_cannot_edit_are_refused(server, client):
    for model in ("dall-e-3", "gpt-image-3", "qwen-image", "doubao-seedream-5-0-260128"):
        message = refused(edit(client, server, {"model": model}, [img()]), "model", "invalid_value")
        assert f"'{model}'" in message and "does not support image edits" in message
    assert edit(client, server, {"model": "gpt-image-2-2026-04-21", "size": "2048x1152"}, [img()]).status_code == 200


# ----------------------------------------------------------------- file parts


def test_the_declared_content_type_counts_never_the_file_name(server, client):
    octet = edit(client, server, {"model": "gpt-image-1"}, [img(ctype="application/octet-stream")])
    assert refused(octet, "image", "unsupported_file") == (
        f"Invalid file 'image': unsupported mimetype ('application/octet-stream'). {GPT_TYPES}")
    dalle2 = refused(edit(client, server, {"model": "dall-e-2"}, [img(ctype="application/octet-stream")]), "image")
    assert dalle2.endswith("Supported file formats are 'image/png'.")
    body = raw_form([('name="prompt"', None, b"p"), ('name="model"', None, b"gpt-image-1"),
                     ('name="image"; filename="a.png"', None, RGBA)])
    assert "('application/octet-stream')" in refused(post_raw(client, server, body), "image", "unsupported_file")
    webp_named_png = edit(client, server, {"model": "gpt-image-1"}, [img(WEBP, "image/webp", filename="x.png")])
    assert webp_named_png.status_code == 200


def test_bytes_must_be_the_image_the_part_declares(server, client):
    lying = refused(edit(client, server, {"model": "gpt-image-1"}, [img(JPEG, "image/png")]), "image")
    assert "('image/jpeg') do not match" in lying and "('image/png')" in lying
    junk = edit(client, server, {"model": "gpt-image-1"}, [img(b"GIF89a" + bytes(64))])
    assert "Invalid image file or mode for image 1" in refused(junk, "image", "invalid_image_file")
    truncated = edit(client, server, {"model": "gpt-image-1"}, [img(PNG + b"\0\0")])
    assert refused(truncated, "image", "invalid_image_file")


def test_gpt_models_take_at_most_sixteen_images(server, client):
    sixteen = [img(name="image[]")] * 16
    assert edit(client, server, {"model": "gpt-image-1"}, sixteen).status_code == 200
    message = refused(edit(client, server, {"model": "gpt-image-1"}, sixteen + [img(name="image[]")]),
                      "image", "array_above_max_length")
    assert "maximum length 16" in message and "length 17" in message
    assert len(server.requests[-1].form.files) == 17


def test_input_fidelity_only_where_supported(server, client):
    for model in ("gpt-image-1", "gpt-image-1.5", "gpt-image-2", "gpt-image-1-2025-04-23"):
        assert edit(client, server, {"model": model, "input_fidelity": "high"}, [img()]).status_code == 200, model
    for model in ("gpt-image-1-mini", "gpt-image-1-mini-2025-10-06", "dall-e-2"):
        message = refused(edit(client, server, {"model": model, "input_fidelity": "low"}, [img()]), "input_fidelity")
        assert model in message
    assert refused(edit(client, server, {"model": "gpt-image-1", "input_fidelity": "max"}, [img()]), "input_fidelity")


def test_gpt_models_refuse_response_format_and_check_fields_like_generations(server, client):
    r = edit(client, server, {"model": "gpt-image-1", "response_format": "b64_json"}, [img()])
    assert refused(r, "response_format", "unknown_parameter") == "Unknown parameter: 'response_format'."
    assert refused(edit(client, server, {"model": "gpt-image-1", "size": "1792x1024"}, [img()]), "size")
    assert refused(edit(client, server, {"model": "gpt-image-1", "n": "11"}, [img()]), "n", "integer_above_max_value")
    jpeg_transparent = {"model": "gpt-image-1", "background": "transparent", "output_format": "jpeg"}
    assert refused(edit(client, server, jpeg_transparent, [img()]), "background")
    assert refused(edit(client, server, {"model": "gpt-image-2", "size": "1000x1000"}, [img()]), "size")
    ok = edit(client, server, {"model": "gpt-image-1", "output_format": "webp", "quality": "low", "user": "u1",
                               "moderation": "low", "output_compression": "50"}, [img()])
    assert ok.status_code == 200 and ok.json()["output_format"] == "webp" and ok.json()["quality"] == "low"


def test_dalle2_wants_one_square_png_with_transparency(server, client):
    def dalle2(*files, **fields):
        return edit(client, server, {"model": "dall-e-2"} | fields, files)

    assert dalle2(img(png(64, 64, colour=3, trns=True))).status_code == 200  # palette + tRNS
    assert dalle2(img(png(64, 64, colour=4))).status_code == 200
    assert "image must be square, got 64x32" in refused(dalle2(img(png(64, 32))), "image")
    assert refused(dalle2(img(JPEG, "image/jpeg")), "image", "unsupported_file") == (
        "Invalid file 'image': unsupported mimetype ('image/jpeg'). Supported file formats are 'image/png'.")
    rgb = refused(dalle2(img(png(colour=2))), "image", "invalid_image_format")
    assert rgb == "Invalid input image - format must be in ['RGBA', 'LA', 'L'], got RGB."
    assert "got L" in refused(dalle2(img(png(colour=0))), "image")
    assert dalle2(img(png(colour=2)), img(png(), name="mask")).status_code == 200  # the mask marks the area
    assert "exactly one image" in refused(dalle2(img(name="image[]"), img(name="image[]")), "image")
    assert "prompt" in refused(dalle2(img(), prompt="x" * 1001), "prompt")


def test_a_mask_must_be_a_png_with_alpha_the_size_of_the_first_image(server, client):
    def with_mask(mask, ctype="image/png", first=RGBA):
        files = [img(first, name="image[]"), img(png(8, 8), name="image[]"), img(mask, ctype, "mask", "m.png")]
        return edit(client, server, {"model": "gpt-image-1"}, files)

    assert with_mask(png(colour=3, trns=True)).status_code == 200
    assert refused(with_mask(png(32, 16)), "mask") == "Invalid mask image format - mask size does not match image size"
    assert "missing alpha channel" in refused(with_mask(png(colour=2)), "mask", "invalid_image_format")
    assert refused(with_mask(png(8, 8)), "mask")  # the second image's size does not count
    assert "Supported file formats are 'image/png'." in refused(with_mask(JPEG, "image/jpeg"), "mask", "unsupported_file")
    assert "('application/octet-stream')" in refused(with_mask(RGBA, "application/octet-stream"), "mask")
    assert refused(with_mask(JPEG), "mask", "invalid_image_file")
    assert "less than 4 MB" in refused(with_mask(png(pad=4 * MiB)), "mask")
    two = [img(), img(name="mask"), img(name="mask")]
    assert refused(edit(client, server, {"model": "gpt-image-1"}, two), "mask", "array_above_max_length")


def test_upload_sizes_a_60_mb_body_to_gpt_passes_and_big_files_are_refused(server, client):
    big = png(pad=30 * MiB)
    r = edit(client, server, {"model": "gpt-image-1"}, [img(big, name="image[]"), img(big, name="image[]")])
    assert r.status_code == 200, r.text
    assert len(server.requests[-1].body) > 60 * MiB
    assert server.requests[-1].form.files[0]["sha256"] == hashlib.sha256(big).hexdigest()
    too_big = refused(edit(client, server, {"model": "gpt-image-1"}, [img(png(pad=50 * MiB))]), "image", "file_too_large")
    assert "smaller than 50 MB" in too_big
    dalle2 = edit(client, server, {"model": "dall-e-2"}, [img(png(pad=4 * MiB))])
    assert refused(dalle2, "image") == "Uploaded image must be a PNG and less than 4 MB."
    server.reset()  # drop the recorded bodies


# ----------------------------------------------------------------- faults


def test_generation_faults_apply_to_edits(server, client):
    server.fault("status", status=503)
    assert edit(client, server, {"model": "gpt-image-1"}, [img()]).status_code == 503
    server.fault("moderation")
    blocked = edit(client, server, {"model": "gpt-image-1"}, [img()])
    assert blocked.status_code == 400 and blocked.json()["error"]["code"] == "moderation_blocked"
    server.fault("invalid_b64")
    r = edit(client, server, {"model": "gpt-image-1"}, [img()])
    assert r.json()["data"][0]["b64_json"] == "@@not*base64!!"
    server.fault("reset")
    with pytest.raises(httpx.TransportError):
        edit(client, server, {"model": "gpt-image-1"}, [img()])
    assert [r.fault for r in server.api_requests()] == ["status", "moderation", "invalid_b64", "reset"]
    assert all(r.form is not None for r in server.api_requests())


def test_stream_faults_apply_to_streaming_edits(server, client):
    server.fault("stream_error_event", after_partials=1)
    data = {"prompt": "p", "model": "gpt-image-1", "stream": "true", "partial_images": "2"}
    with client.stream("POST", server.base_url + EDITS, data=data, files=[img()], headers=AUTH) as r:
        text = r.read().decode()
    names = [e.split("\n")[0] for e in text.split("\n\n") if e]
    assert names == ["event: image_edit.partial_image", "event: error"]
    assert json.loads(text.split("\n\n")[1].split("\n")[1][6:])["error"]["type"] == "image_edit_server_error"


def test_edit_reject_waits_for_an_edit(server, client):
    assert FAULT_KINDS["edit_reject"].keys() == {"param", "message", "code"}
    server.fault("edit_reject", param="mask", message="mask rejected upstream", code="invalid_value")
    gen = client.post(server.base_url + "/v1/images/generations", json={"model": "gpt-image-1", "prompt": "p"},
                      headers=AUTH)
    assert gen.status_code == 200 and server.pending_faults() == [("edit_reject", 1)]
    assert refused(edit(client, server, {"model": "gpt-image-1"}, [img()]), "mask", "invalid_value") == (
        "mask rejected upstream")
    assert edit(client, server, {"model": "gpt-image-1"}, [img()]).status_code == 200


# ----------------------------------------------------------------- header readers and catalog


@pytest.mark.parametrize(("data", "expected"), [
    (png(640, 480, colour=2), ("png", 640, 480, False, "RGB")),
    (png(3, 5, colour=6), ("png", 3, 5, True, "RGBA")),
    (png(4, 4, colour=4), ("png", 4, 4, True, "LA")),
    (png(4, 4, colour=3, trns=True), ("png", 4, 4, True, "P")),
    (png(4, 4, colour=2, trns=True, pad=100), ("png", 4, 4, True, "RGB")),
    (JPEG, ("jpeg", 8, 8, False, "RGB")),
    (b"\xff\xd8\xff\xe0\x00\x04\x00\x00\xff\xff\xc2\x00\x0b\x08\x01\x2c\x02\x58\x01\x01\x11\x00",
     ("jpeg", 600, 300, False, "L")),
    (WEBP, ("webp", 8, 8, False, "RGB")),
    (webp("VP8 ", 320, 200), ("webp", 320, 200, False, "RGB")),
    (webp("VP8L", 100, 50, alpha=True), ("webp", 100, 50, True, "RGBA")),
    (webp("VP8X", 5000, 3000, alpha=True), ("webp", 5000, 3000, True, "RGBA")),
])
def test_header_readers(data, expected):
    info = image_info(data)
    assert (info.fmt, info.width, info.height, info.alpha, info.mode) == expected


@pytest.mark.parametrize("data", [b"", b"GIF89a", PNG, PNG + bytes(30), b"\xff\xd8\xff\xd9", b"RIFF\0\0\0\0WEBPVP8 "])
def test_header_readers_refuse_what_they_cannot_read(data):
    assert image_info(data) is None


def test_catalog_lists_qwen_image_edit_on_the_edits_path(server, client):
    entries = client.get(server.base_url + "/api/models?page=0").json()["data"]
    entry = next(m for m in entries if m["id"] == "qwen-image-edit")
    assert json.loads(entry["endpoints"])["openai-image"]["path"] == EDITS
    assert entry["pricing"]["per_request"] == 0.03 and entry["model_type"] == "image"
