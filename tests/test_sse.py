import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgen.transport.sse import Event, SSEDecoder, StreamCut, iter_events


def events_of(stream: bytes) -> list[Event]:
    return list(iter_events([stream]))


def bytewise(stream: bytes) -> list[bytes]:
    return [stream[i : i + 1] for i in range(len(stream))]


def decode_in(chunks: list[bytes]) -> tuple[list[Event], bool, int, Event | None]:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    events += decoder.flush()
    return events, decoder.pending, decoder.pending_bytes, decoder.partial


# --- the examples of the WHATWG spec ---------------------------------------------------------


def test_spec_multiline_data():
    stream = b"data: YHOO\ndata: +2\ndata: 10\n\n"
    assert events_of(stream) == [Event(data="YHOO\n+2\n10")]


def test_spec_ids_and_comments():
    stream = b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n"
    assert events_of(stream) == [
        Event(data="first event", id="1"),
        Event(data="second event"),  # a bare `id` empties the last event id
        Event(data=" third event"),  # only one leading space is stripped
    ]


def test_spec_empty_data_and_unfinished_last_event():
    stream = b"data\n\ndata\ndata\n\ndata:"
    decoder = SSEDecoder()
    assert decoder.feed(stream) == [Event(data=""), Event(data="\n")]
    assert decoder.flush() == []
    assert decoder.pending
    with pytest.raises(StreamCut):
        events_of(stream)


def test_spec_space_after_colon_is_optional():
    assert events_of(b"data:test\n\ndata: test\n\n") == [Event(data="test"), Event(data="test")]


# --- fields -----------------------------------------------------------------------------------


def test_openai_image_stream_shape():
    partial = {"type": "image_generation.partial_image", "b64_json": "iVBORw0KGgo=", "partial_image_index": 0}
    done = {"type": "image_generation.completed", "b64_json": "iVBORw0KGgo=", "usage": {"total_tokens": 5}}
    stream = (
        f"event: image_generation.partial_image\ndata: {json.dumps(partial)}\n\n"
        f"event: image_generation.completed\ndata: {json.dumps(done)}\n\n"
        "data: [DONE]\n\n"
    ).encode()
    events = events_of(stream)
    kinds = ["image_generation.partial_image", "image_generation.completed", "message"]
    assert [e.event for e in events] == kinds
    assert json.loads(events[0].data) == partial and json.loads(events[1].data) == done
    assert events[2] == Event(data="[DONE]")  # just data: the caller decides what it means


def test_event_type_resets_after_each_event():
    stream = b"event: a\ndata: 1\n\ndata: 2\n\nevent:\ndata: 3\n\n"
    assert [(e.event, e.data) for e in events_of(stream)] == [("a", "1"), ("message", "2"), ("message", "3")]


def test_event_without_data_is_not_dispatched():
    assert events_of(b"event: ping\n\nid: 7\n\n: just a comment\n\n") == []


def test_id_persists_and_nul_is_ignored():
    stream = b"id: 1\ndata: a\n\ndata: b\n\nid: x\x00y\ndata: c\n\nid:\ndata: d\n\n"
    assert [(e.data, e.id) for e in events_of(stream)] == [("a", "1"), ("b", "1"), ("c", "1"), ("d", None)]


def test_retry_only_digits_and_persists():
    decoder = SSEDecoder()
    events = decoder.feed(b"retry: 1500\ndata: a\n\nretry: 20x\ndata: b\n\nretry:\n\nretry: 3000\n\n")
    assert [(e.data, e.retry) for e in events] == [("a", 1500), ("b", 1500)]
    assert decoder.retry == 3000
    assert events_of(b"retry: -5\ndata: c\n\n") == [Event(data="c")]
    assert events_of(b"retry: \xd9\xa3\ndata: c\n\n") == [Event(data="c")]  # Arabic-Indic 3 is no ASCII digit


def test_unknown_fields_and_field_without_colon_are_ignored():
    stream = b"foo: bar\nDATA: shout\ndata\nevent\n\n"
    assert events_of(stream) == [Event(data="")]


def test_colon_inside_value_and_no_space():
    assert events_of(b"data:a: b :c\n\n") == [Event(data="a: b :c")]
    assert events_of(b"data:\tx\n\n") == [Event(data="\tx")]


def test_invalid_utf8_is_replaced():
    assert events_of(b"data: \xff\xfe ok\n\n") == [Event(data="\ufffd\ufffd ok")]


# --- line endings, splits, BOM ----------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_each_line_ending(eol):
    stream = eol.join([b"event: e", b"data: 1", b"data: 2", b"", b"data: 3", b"", b""])
    assert events_of(stream) == [Event(event="e", data="1\n2"), Event(data="3")]


def test_mixed_line_endings():
    assert events_of(b"data: a\rdata: b\r\ndata: c\n\r\n") == [Event(data="a\nb\nc")]


@pytest.mark.parametrize("cut", range(1, 14))
def test_crlf_split_across_chunks(cut):
    stream = b"data: a\r\n\r\ndata: b\r\n\r\n"
    whole = events_of(stream)
    assert whole == [Event(data="a"), Event(data="b")]
    assert list(iter_events([stream[:cut], stream[cut:]])) == whole


def test_cr_then_crlf_is_two_line_ends():
    assert list(iter_events([b"data: a\r", b"\r\n"])) == [Event(data="a")]
    assert list(iter_events([b"data: a\r", b"", b"\n", b"\r"])) == [Event(data="a")]


def test_utf8_character_split_across_chunks():
    stream = "data: 一只纸船 🛶\n\n".encode()
    assert list(iter_events(bytewise(stream))) == [Event(data="一只纸船 🛶")]


@pytest.mark.parametrize("split", [False, True])
def test_one_leading_bom_is_dropped(split):
    stream = b"\xef\xbb\xbfdata: a\n\n\xef\xbb\xbfdata: b\n\n"
    chunks = bytewise(stream) if split else [stream]
    # The second BOM is part of a field name, so that field is unknown and ignored.
    assert list(iter_events(chunks)) == [Event(data="a")]


def test_short_stream_that_starts_like_a_bom():
    with pytest.raises(StreamCut):
        list(iter_events([b"\xef\xbb"]))
    assert events_of(b"\xef\xbb\xbf") == []
    assert events_of(b"") == []


def test_accepts_bytearray_and_memoryview():
    decoder = SSEDecoder()
    assert decoder.feed(bytearray(b"data: a\n")) == []
    assert decoder.feed(memoryview(b"\n")) == [Event(data="a")]


# --- end of stream ----------------------------------------------------------------------------


def test_cut_inside_a_line_raises_stream_cut():
    stream = b'event: image_generation.completed\ndata: {"b64_json": "iVBORw0K'
    with pytest.raises(StreamCut) as info:
        list(iter_events([stream[:20], stream[20:]]))
    assert info.value.pending_bytes == len(stream)
    assert info.value.partial is None
    assert "ended inside an event" in str(info.value)


def test_cut_before_the_blank_line_keeps_the_would_be_event():
    stream = b"data: one\n\nevent: x\ndata: [DONE]\n"
    seen = []
    with pytest.raises(StreamCut) as info:
        for event in iter_events([stream]):
            seen.append(event)
    assert seen == [Event(data="one")]
    assert info.value.partial == Event(event="x", data="[DONE]")
    assert info.value.pending_bytes == len(b"event: x\ndata: [DONE]\n")


@pytest.mark.parametrize(
    "stream",
    [
        b"data: a\n\n",
        b"data: a\n\n: keep-alive\n",
        b"data: a\n\n: keep-al",
        b": hi\n\n\n",
        b"\n\n",
        b"data: a\r\n\r\n",
    ],
)
def test_clean_ends_are_not_cuts(stream):
    decoder = SSEDecoder()
    decoder.feed(stream)
    decoder.flush()
    assert not decoder.pending and decoder.pending_bytes == 0
    list(iter_events([stream]))


def test_json_error_body_is_not_an_event_stream():
    # What a gateway sends instead of a stream: no event, and a cut, so the caller must sniff first.
    body = b'{"error": {"message": "Invalid size", "type": "invalid_request_error"}}'
    with pytest.raises(StreamCut):
        list(iter_events([body]))
    with pytest.raises(StreamCut):
        list(iter_events([body + b"\n"]))


def test_feed_after_flush_is_a_bug():
    decoder = SSEDecoder()
    decoder.flush()
    with pytest.raises(ValueError):
        decoder.feed(b"data: a\n\n")


# --- cost -------------------------------------------------------------------------------------


def test_a_ten_megabyte_event_in_small_chunks_is_linear():
    body = b"A" * (10 * 1024 * 1024)
    stream = b"event: image_generation.completed\ndata: " + body + b"\n\n"
    chunks = [stream[i : i + 1024] for i in range(0, len(stream), 1024)]
    start = time.perf_counter()
    events = list(iter_events(chunks))
    elapsed = time.perf_counter() - start
    assert len(events) == 1 and len(events[0].data) == len(body)
    # About 0.1 s where this was written; re-scanning the buffer per chunk would take minutes.
    assert elapsed < 3.0, elapsed


def test_many_small_events_in_one_chunk():
    stream = b"data: x\n\n" * 50_000
    start = time.perf_counter()
    assert len(events_of(stream)) == 50_000
    assert time.perf_counter() - start < 3.0


# --- properties -------------------------------------------------------------------------------

_LINE_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=20)
_EOLS = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def streams(draw):
    """A valid event stream, its lines in any order, and the events it must yield."""
    parts, expected, last_id = [], [], ""
    previous_eol = ""

    def eol() -> str:
        nonlocal previous_eol
        # After a bare CR, an LF would join it into one CRLF line end.
        previous_eol = draw(st.sampled_from(["\r", "\r\n"]) if previous_eol == "\r" else _EOLS)
        return previous_eol

    if draw(st.booleans()):
        parts.append("\ufeff")
    for _ in range(draw(st.integers(0, 6))):
        values = draw(st.lists(_LINE_TEXT, max_size=4))
        lines = [("data", value, draw(st.sampled_from([": ", ":"]))) for value in values]
        for name in ("event", "id", ""):  # "" is a comment
            if draw(st.booleans()):
                lines.append((name, draw(_LINE_TEXT), ": "))
        event_type, data = None, []
        for name, value, sep in draw(st.permutations(lines)):
            parts.append(f"{name}{sep}{value}{eol()}")
            if name == "data":
                data.append(value[1:] if sep == ":" and value.startswith(" ") else value)
            elif name == "event":
                event_type = value
            elif name == "id" and "\x00" not in value:
                last_id = value
        parts.append(eol())
        if data:
            expected.append(Event(data="\n".join(data), event=event_type or "message", id=last_id or None))
    return "".join(parts).encode(), expected


@st.composite
def split(draw, stream: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    bounds = [0, *cuts, len(stream)]
    return [stream[a:b] for a, b in zip(bounds, bounds[1:])]


@given(st.data())
@settings(max_examples=200, deadline=None)
def test_any_chunking_of_a_valid_stream_yields_its_events(data):
    stream, expected = data.draw(streams())
    whole = decode_in([stream])
    assert whole == (expected, False, 0, None)
    assert decode_in(data.draw(split(stream))) == whole
    assert decode_in(bytewise(stream)) == whole


_PIECES = st.sampled_from(
    [b"\r", b"\n", b"\r\n", b"data", b"event", b"id", b"retry", b":", b" ", b"1", b"x",
     b"\xef\xbb\xbf", b"\xe7\x8c", b"\xab", b"\xff", b"\x00"]
)  # fmt: skip


@given(st.data())
@settings(max_examples=200, deadline=None)
def test_any_chunking_of_any_bytes_gives_the_same_result(data):
    stream = data.draw(st.lists(_PIECES, max_size=40).map(b"".join) | st.binary(max_size=60))
    whole = decode_in([stream])
    assert decode_in(data.draw(split(stream))) == whole
    assert decode_in(bytewise(stream)) == whole
    try:
        list(iter_events([stream]))
    except StreamCut as cut:
        assert whole[1] and cut.pending_bytes == whole[2] > 0
    else:
        assert not whole[1]
