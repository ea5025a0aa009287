"""Streaming generation end to end: the installed imgen against the local server's SSE endpoint."""

import base64
import hashlib
import json
from pathlib import Path

import pytest

from fakeserver import make_image

PROMPT = "a paper boat at sunrise"
GPT = ("generate", "-m", "gpt-image-1", "--stream")


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def no_temp_files(directory: Path) -> bool:
    return not [p for p in directory.rglob("*") if p.name.endswith(".part") or p.name.startswith(".imgen-")]


def progress_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(("partial ", "image "))]


# --- the normal path ----------------------------------------------------------------------------


@pytest.mark.parametrize("partials", [0, 1, 3])
def test_partials_are_shown_and_the_final_image_saved(imgen, server, outdir, partials):
    res = imgen(*GPT, "--partials", str(partials), PROMPT, "-o", str(outdir))
    assert res.returncode == 0, res.stderr
    assert server.api_requests()[0].json == {"model": "gpt-image-1", "prompt": PROMPT, "stream": True, "partial_images": partials}
    (line,) = res.lines
    assert Path(line).parent == outdir and line.endswith("-1.png")
    assert sha(line) in {s["sha256"] for s in server.served}
    assert files(outdir) == [Path(line).name]  # partials are only saved when asked
    shown = progress_lines(res.stderr)
    assert shown[:-1] == [f"partial {k}/{partials} of image 1: {shown[k - 1].split(': ')[1]}" for k in range(1, partials + 1)]
    assert shown[-1].startswith("image 1 completed: ") and shown[-1].endswith(line)
    assert no_temp_files(outdir)


def test_save_partials_writes_each_partial_next_to_the_final_image(imgen, server, outdir):
    res = imgen(*GPT, "--partials", "2", "--save-partials", PROMPT, "-o", str(outdir), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    (image,) = doc["images"]
    final = Path(image["path"])
    stem = final.name.removesuffix(".png")
    assert files(outdir) == sorted([final.name, f"{stem}.partial-1.png", f"{stem}.partial-2.png"])
    partial_paths = [Path(p["path"]) for p in image["partials"]]
    assert [p.name for p in partial_paths] == [f"{stem}.partial-1.png", f"{stem}.partial-2.png"]
    hashes = {sha(p) for p in partial_paths}
    assert len(hashes) == 2 and sha(final) not in hashes
    for p, entry in zip(partial_paths, image["partials"]):
        data = p.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82")
        assert entry["sha256"] == sha(p) and entry["bytes"] == len(data)
    # stdout keeps to one path per final image; partials are in --json and on stderr.
    plain = imgen(*GPT, "--partials", "2", "--save-partials", PROMPT, "-o", str(outdir))
    assert plain.returncode == 0 and len(plain.lines) == 1 and ".partial-" not in plain.stdout
    assert "-2.partial-1.png" in plain.stderr  # a rerun's partials share the final image's -2


def test_json_document_matches_the_non_streamed_shape(imgen, server, outdir):
    res = imgen(*GPT, "--partials", "1", "-Q", "low", "--output-format", "jpeg", PROMPT, "-o", str(outdir), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["model"] == "gpt-image-1" and doc["exit_code"] == 0
    assert doc["usage"]["total_tokens"] > 0
    assert (doc["size"], doc["quality"], doc["background"], doc["output_format"]) == ("1024x1024", "low", "opaque", "jpeg")
    (image,) = doc["images"]
    assert image["format"] == "jpeg" and image["path"].endswith(".jpg")
    assert image["sha256"] == sha(image["path"]) and image["bytes"] == Path(image["path"]).stat().st_size
    assert image["usage"] == doc["usage"]
    assert doc["stream"] == {"completed": 1, "partial_images": 1}


def test_several_images_get_their_own_partials(imgen, server, outdir):
    res = imgen(*GPT, "-n", "2", "--partials", "2", "--save-partials", PROMPT, "-o", str(outdir), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert [i["index"] for i in doc["images"]] == [1, 2]
    assert [s["sha256"] for s in server.served] == [i["sha256"] for i in doc["images"]]
    for image in doc["images"]:
        stem = Path(image["path"]).name.removesuffix(".png")
        assert stem.endswith(f"-{image['index']}")
        assert [Path(p["path"]).name for p in image["partials"]] == [f"{stem}.partial-1.png", f"{stem}.partial-2.png"]
    assert len(files(outdir)) == 6
    # Usage is per completed event in images[], summed at the top.
    assert doc["usage"]["output_tokens"] == sum(i["usage"]["output_tokens"] for i in doc["images"])
    assert [line.split(":")[0] for line in progress_lines(res.stderr)] == [
        "partial 1/2 of image 1/2", "partial 2/2 of image 1/2", "image 1/2 completed",
        "partial 1/2 of image 2/2", "partial 2/2 of image 2/2", "image 2/2 completed",
    ]


@pytest.mark.parametrize("chunk", [1, 7, None])
def test_events_split_at_awkward_byte_boundaries(imgen, server, outdir, chunk):
    server.fault("stream_split", chunk=chunk, pause=0)
    res = imgen(*GPT, "-n", "2", "--partials", "2", "--save-partials", PROMPT, "-o", str(outdir), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert [i["sha256"] for i in doc["images"]] == [s["sha256"] for s in server.served]
    assert sum(len(i["partials"]) for i in doc["images"]) == 4
    assert no_temp_files(outdir)


def test_done_marker_ends_the_stream(imgen, server, outdir):
    server.sse_done = True
    res = imgen(*GPT, "--partials", "1", PROMPT, "-o", str(outdir))
    assert res.returncode == 0, res.stderr
    assert sha(res.lines[0]) == server.served[0]["sha256"]


def test_final_image_before_all_requested_partials(imgen, server, outdir):
    server.fault("stream_few_partials", partials=1)
    res = imgen(*GPT, "--partials", "3", PROMPT, "-o", str(outdir))
    assert res.returncode == 0, res.stderr
    assert [line.split(":")[0] for line in progress_lines(res.stderr)] == ["partial 1/3 of image 1", "image 1 completed"]


def test_raw_bytes_on_stdout(imgen, server):
    res = imgen(*GPT, "--partials", "1", PROMPT, "-o", "-")
    assert res.returncode == 0, res.stderr
    assert hashlib.sha256(res.stdout_bytes).hexdigest() == server.served[0]["sha256"]


def test_quiet_shows_no_progress(imgen, server, outdir):
    res = imgen(*GPT, "--partials", "2", PROMPT, "-o", str(outdir), "-q")
    assert res.returncode == 0 and res.stderr == ""


# --- --events -----------------------------------------------------------------------------------


def test_events_are_ndjson_in_order(imgen, server, outdir):
    res = imgen(*GPT, "-n", "2", "--partials", "2", "--save-partials", PROMPT, "-o", str(outdir), "--json", "--events")
    assert res.returncode == 0, res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert [(e["event"], e["image"], e.get("partial")) for e in events[:-1]] == [
        ("partial_image", 1, 1), ("partial_image", 1, 2), ("completed", 1, None),
        ("partial_image", 2, 1), ("partial_image", 2, 2), ("completed", 2, None),
    ]
    for event in events[:-1]:
        assert "b64_json" not in event and event["bytes"] == Path(event["path"]).stat().st_size
    completed = [e for e in events if e["event"] == "completed"]
    assert [e["sha256"] for e in completed] == [s["sha256"] for s in server.served]
    assert all(e["usage"]["total_tokens"] > 0 and e["format"] == "png" for e in completed)
    done = events[-1]
    assert done["event"] == "done" and done["exit_code"] == 0
    assert [i["path"] for i in done["images"]] == [e["path"] for e in completed]


def test_events_without_saved_partials_carry_no_path(imgen, server, outdir):
    res = imgen(*GPT, "--partials", "1", PROMPT, "-o", str(outdir), "--json", "--events", "-q")
    partial, completed, done = (json.loads(line) for line in res.stdout.splitlines())
    assert partial == {
        "event": "partial_image", "image": 1, "partial": 1, "bytes": partial["bytes"],
        "size": "1024x1024", "quality": "medium", "background": "opaque", "output_format": "png",
    }
    assert completed["path"] and done["event"] == "done"


@pytest.mark.parametrize(
    ("args", "needs"),
    [
        (("--stream", "--events"), "--json"),
        (("--json", "--events"), "--stream"),
        (("--events",), "--json and --stream"),
    ],
)
def test_events_needs_json_and_stream(imgen, server, args, needs):
    res = imgen("generate", "-m", "gpt-image-1", *args, PROMPT)
    assert res.returncode == 2
    assert f"--events: one JSON line per stream event needs --json and --stream; add {needs}" in res.stderr
    assert server.requests == [] and res.stdout == ""


def test_save_partials_needs_stream(imgen, server):
    res = imgen("generate", "-m", "gpt-image-1", "--save-partials", PROMPT)
    assert res.returncode == 2 and "--save-partials" in res.stderr and "--stream" in res.stderr
    assert server.requests == []


def test_stream_refused_for_a_model_that_cannot_stream(imgen, server):
    res = imgen("generate", "-m", "dall-e-3", "--stream", "--partials", "2", PROMPT)
    assert res.returncode == 2
    assert "dall-e-3 does not accept stream" in res.stderr and "drop --stream" in res.stderr
    assert "nothing was sent" in res.stderr
    assert server.requests == []


# --- faults -------------------------------------------------------------------------------------


def test_error_event_is_an_api_error(imgen, server, outdir):
    server.fault("stream_error_event", after_partials=1)
    res = imgen(*GPT, "--partials", "2", "--save-partials", PROMPT, "-o", str(outdir), "--json")
    assert res.returncode == 8, res.stderr  # image_generation_server_error: the service failed
    assert "Image generation failed. (code image_generation_failed)" in res.stderr
    assert "1 partial image of it arrived (1 saved)" in res.stderr
    doc = json.loads(res.stdout)
    assert doc["images"] == [] and doc["errors"][0]["code"] == "image_generation_failed"
    assert [Path(p["path"]).name for p in doc["errors"][0]["partials"]] == [f for f in files(outdir)]
    assert all(".partial-1." in f for f in files(outdir))  # the preview stays, no final image
    assert no_temp_files(outdir)


def test_error_event_moderation_is_a_rejection(imgen, server, outdir):
    server.fault("stream_error_event", after_partials=0, code="moderation_blocked", message="Rejected by the safety system.")
    res = imgen(*GPT, PROMPT, "-o", str(outdir))
    assert res.returncode == 5, res.stderr
    assert "Rejected by the safety system." in res.stderr and "rephrase" in res.stderr
    assert files(outdir) == []


@pytest.mark.parametrize(("status", "lying"), [(400, False), (400, True), (200, True), (200, False)])
def test_json_error_body_in_reply_to_a_stream_request(imgen, server, outdir, status, lying):
    server.fault("stream_json_error", status=status, lying_content_type=lying)
    res = imgen(*GPT, "--partials", "1", PROMPT, "-o", str(outdir))
    assert res.returncode == 5, res.stderr
    assert "rejected as a result of our safety system" in res.stderr
    assert "code moderation_blocked" in res.stderr and "rephrase" in res.stderr
    assert files(outdir) == [] and len(server.api_requests()) == 1


def test_plain_images_response_in_reply_to_a_stream_request(imgen, server, outdir):
    image = make_image("plain answer")
    body = {
        "created": 1779872000,
        "data": [{"b64_json": base64.b64encode(image.to_bytes()).decode()}],
        "output_format": "png", "quality": "low", "size": "1024x1024",
        "usage": {"input_tokens": 5, "output_tokens": 196, "total_tokens": 201},
    }
    server.fault("stream_json_error", status=200, body=body, lying_content_type=True)
    res = imgen(*GPT, "--partials", "2", PROMPT, "-o", str(outdir), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["images"][0]["sha256"] == image.sha256() == sha(doc["images"][0]["path"])
    assert doc["usage"]["total_tokens"] == 201 and doc["quality"] == "low"
    assert "stream" not in doc


@pytest.mark.parametrize(("after", "said"), [(1, "1 partial image of it arrived"), (0, "no partial image of it arrived")])
def test_stream_cut_mid_event_leaves_no_final_image(imgen, server, outdir, after, said):
    server.fault("stream_cut", after_partials=after)
    res = imgen(*GPT, "--partials", "2", PROMPT, "-o", str(outdir))
    assert res.returncode == 9, res.stderr
    assert "the stream was cut short" in res.stderr and said in res.stderr
    assert res.stdout == "" and files(outdir) == []
    assert no_temp_files(outdir)


def test_stream_cut_with_events_reports_done_with_the_error(imgen, server, outdir):
    server.fault("stream_cut", after_partials=1)
    res = imgen(*GPT, "--partials", "2", "--save-partials", PROMPT, "-o", str(outdir), "--json", "--events")
    assert res.returncode == 9
    first, done = (json.loads(line) for line in res.stdout.splitlines())
    assert first["event"] == "partial_image" and Path(first["path"]).exists()
    assert done["event"] == "done" and done["exit_code"] == 9 and done["images"] == []
    assert done["errors"][0]["code"] == "stream_cut"
    assert no_temp_files(outdir)


def test_http_error_with_events_ends_with_an_error_line(imgen, server, outdir):
    server.fault("moderation")
    res = imgen(*GPT, PROMPT, "-o", str(outdir), "--json", "--events")
    assert res.returncode == 5
    (line,) = res.stdout.splitlines()
    assert json.loads(line)["event"] == "error" and json.loads(line)["code"] == "moderation_blocked"
