"""The streaming base64 splitter, against json.loads as the oracle, at every chunking."""

import base64
import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgen.files import b64split


class Sink:
    def __init__(self):
        self.data = bytearray()

    def write(self, data):
        self.data += data


def chunked(body: bytes, sizes: list[int]):
    pos, i = 0, 0
    while pos < len(body):
        size = sizes[i % len(sizes)] if sizes else len(body)
        yield body[pos : pos + size]
        pos += size
        i += 1


def run(body: bytes, sizes=()):
    sinks = []

    def make(_index):
        sinks.append(Sink())
        return sinks[-1]

    skeleton, streams = b64split.split(chunked(body, list(sizes)), make)
    return json.loads(skeleton), sinks, streams


def restore(doc, sinks):
    for item in doc["data"]:
        value = item.get("b64_json")
        if isinstance(value, str) and value.startswith(b64split.PLACEHOLDER):
            item["b64_json"] = bytes(sinks[int(value[len(b64split.PLACEHOLDER) :])].data)
    return doc


images = st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=4)


@settings(max_examples=150, deadline=None)
@given(images=images, sizes=st.lists(st.integers(1, 97), min_size=1, max_size=5), escaped=st.booleans(), spaced=st.booleans())
def test_any_chunking_gives_what_json_loads_gives(images, sizes, escaped, spaced):
    items = [{"b64_json": base64.b64encode(img).decode(), "revised_prompt": 'say "b64_json": "no"'} for img in images]
    body = json.dumps({"created": 1, "data": items}, separators=(",", ": " if spaced else ":")).encode()
    if escaped:
        body = body.replace(b"/", b"\\/")  # JSON allows "\/" and some servers write it
    doc, sinks, streams = run(body, sizes)
    assert all(s.error is None for s in streams)
    restored = restore(doc, sinks)
    assert [i["b64_json"] for i in restored["data"]] == images
    assert all(i["revised_prompt"] == 'say "b64_json": "no"' for i in restored["data"])


def test_wrapped_base64_lines_are_accepted():
    data = bytes(range(256)) * 4
    wrapped = base64.encodebytes(data).decode()  # "\n" every 76 characters
    body = json.dumps({"data": [{"b64_json": wrapped}]}).encode()
    doc, sinks, _ = run(body, [5])
    assert bytes(sinks[0].data) == data


def test_one_invalid_item_does_not_sink_the_others():
    good = base64.b64encode(b"\x89PNG image bytes").decode()
    body = json.dumps({"data": [{"b64_json": good}, {"b64_json": "not*base64!"}, {"b64_json": good}]}).encode()
    doc, sinks, streams = run(body, [7])
    assert [s.error is None for s in streams] == [True, False, True]
    assert streams[1].error[0] == "invalid_base64"
    assert bytes(sinks[2].data) == b"\x89PNG image bytes"


def test_a_value_that_is_not_a_string_is_left_to_json():
    body = b'{"data": [{"b64_json": null, "url": "https://x/1.png"}]}'
    doc, sinks, streams = run(body, [3])
    assert doc == {"data": [{"b64_json": None, "url": "https://x/1.png"}]} and streams == []


def test_a_body_cut_inside_a_value_is_reported():
    body = b'{"data": [{"b64_json": "iVBORw0KGgo'
    skeleton, streams = b64split.split([body], lambda i: Sink())
    assert streams[0].error[0] == "invalid_base64"


def test_large_image_memory_is_not_held():
    big = hashlib.sha256(b"x").digest() * (1 << 15)  # 1 MiB
    body = json.dumps({"data": [{"b64_json": base64.b64encode(big).decode()}]}).encode()
    skeleton, streams = b64split.split(chunked(body, [65536]), lambda i: Sink())
    assert len(skeleton) < 100  # the remainder is tiny; the image went to the sink


def test_compressed_answers_are_decoded_before_splitting(tmp_path):
    import gzip

    import httpx

    from imgen.generation import body as answer_body

    image = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64
    body = json.dumps({"data": [{"b64_json": base64.b64encode(image).decode()}]}).encode()
    response = httpx.Response(200, headers={"content-encoding": "gzip"}, stream=httpx.ByteStream(gzip.compress(body)))
    spools = []
    skeleton = answer_body.read(response, tmp_path, 1 << 20, spools)
    assert json.loads(skeleton)["data"][0]["b64_json"].startswith(b64split.PLACEHOLDER)
    assert spools[0].size == len(image)
    spools[0].abort()


@pytest.mark.parametrize("fast", [True, False], ids=["pybase64", "binascii"])
def test_both_decoders_are_equally_strict(monkeypatch, fast):
    from imgen.files import b64

    if not fast:
        monkeypatch.setattr(b64, "pybase64", None)
    data = bytes(range(256)) * 40
    assert b64.decode(base64.b64encode(data)) == data
    assert b64.decode(memoryview(base64.b64encode(data))[:8]) == data[:6]
    for bad in (b"QUJ", b"QU=J", b"QU\nJD", b"@@@@", "QUé=".encode()):
        with pytest.raises(ValueError):
            b64.decode(bad)
