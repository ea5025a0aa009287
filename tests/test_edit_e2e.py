"""imgen edit end to end: the installed imgen against the test server's /v1/images/edits (and
Gemini and Seedream, whose edits go through their generation calls)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from pathlib import Path

from PIL import Image

from conftest import API_KEY, IMGEN


def sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def picture(path: Path, size=(64, 64), mode="RGBA", fmt="PNG", alpha=0) -> Path:
    colour = {"RGBA": (200, 40, 40, alpha), "RGB": (200, 40, 40), "L": 90}[mode]
    Image.new(mode, size, colour).save(path, format=fmt)
    return path


def edits(server):
    return [r for r in server.api_requests() if r.path == "/v1/images/edits"]


def test_one_edit_is_uploaded_as_its_bytes_say_and_saved_under_the_input_name(imgen, server, tmp_path, outdir):
    photo = picture(tmp_path / "photo.png", (1024, 1024), "RGB")
    res = imgen("edit", str(photo), "make it night, keep the people", "-m", "gpt-image-2", "-o", str(outdir))
    assert res.returncode == 0, res.stderr
    assert res.lines == [str(outdir / "photo-edit-1.png")]
    (call,) = edits(server)
    form = call.form
    assert form.fields == {"model": "gpt-image-2", "prompt": "make it night, keep the people"}
    (part,) = form.files
    assert (part["name"], part["content_type"], part["sha256"], part["bytes"]) == ("image", "image/png", sha(photo), photo.stat().st_size)
    assert form.chunked is False and form.content_length == len(call.body)  # streamed from disk, with its length
    assert "authorization" in call.headers and call.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert sha(res.lines[0]) == server.served[-1]["sha256"]


def test_a_mask_and_input_fidelity(imgen, server, tmp_path, outdir):
    room = picture(tmp_path / "room.png", (1536, 1024), "RGB")
    mask = picture(tmp_path / "sofa-area.png", (1536, 1024), "RGBA")
    res = imgen("edit", str(room), "add a green sofa", "--mask", str(mask), "-m", "gpt-image-1", "--input-fidelity", "high", "-o", str(outdir))
    assert res.returncode == 0, res.stderr
    form = edits(server)[0].form
    assert form.fields["input_fidelity"] == "high"
    assert [(f["name"], f["sha256"]) for f in form.files] == [("image", sha(room)), ("mask", sha(mask))]
    assert res.lines == [str(outdir / "room-edit-1.png")]


def test_several_inputs_go_as_image_array_each_typed_from_its_bytes(imgen, server, tmp_path, outdir):
    a = picture(tmp_path / "a.png", (256, 256), "RGB")
    b = picture(tmp_path / "b.png", (300, 200), "RGB", fmt="JPEG")  # named .png, holds a JPEG
    c = picture(tmp_path / "c", (128, 128), "RGBA", fmt="WEBP")
    res = imgen("edit", str(a), "-i", str(b), "-i", str(c), "a product collage of these three", "-m", "gpt-image-1.5", "-o", str(outdir),
                "--json")
    assert res.returncode == 0, res.stderr
    form = edits(server)[0].form
    assert [(f["name"], f["filename"], f["content_type"]) for f in form.files] == [
        ("image[]", "a.png", "image/png"), ("image[]", "b.jpg", "image/jpeg"), ("image[]", "c.webp", "image/webp"),
    ]
    doc = json.loads(res.stdout)
    assert [i["sha256"] for i in doc["inputs"]] == [sha(a), sha(b), sha(c)]
    assert doc["usage"]["input_tokens_details"]["image_tokens"] > 0 and doc["images"][0]["path"].endswith("a-edit-1.png")


def test_dall_e_2_four_variants_by_url(imgen, server, tmp_path, outdir):
    icon = picture(tmp_path / "icon.png", (512, 512), "RGBA")
    res = imgen("edit", str(icon), "a red version", "-m", "dall-e-2", "-n", "4", "-s", "512x512", "-o", str(outdir))
    assert res.returncode == 0, res.stderr
    assert res.lines == [str(outdir / f"icon-edit-{i}.png") for i in range(1, 5)]
    form = edits(server)[0].form
    assert form.fields == {"model": "dall-e-2", "prompt": "a red version", "n": "4", "size": "512x512"}  # no response_format
    assert len(server.downloads()) == 4


def test_gemini_edits_send_the_input_inline(imgen, server, tmp_path, outdir):
    portrait = picture(tmp_path / "portrait.jpg", (600, 800), "RGB", fmt="JPEG")
    res = imgen("edit", str(portrait), "as a pencil drawing", "-m", "gemini-3.1-flash-image-preview", "-o", str(outdir))
    assert res.returncode == 0, res.stderr
    (call,) = server.api_requests()
    text, inline = call.json["contents"][0]["parts"]
    assert text == {"text": "as a pencil drawing"}
    assert inline["inlineData"]["mimeType"] == "image/jpeg" and base64.b64decode(inline["inlineData"]["data"]) == portrait.read_bytes()
    assert res.lines == [str(outdir / "portrait-edit-1.png")]


def test_seedream_edits_send_the_inputs_as_references(imgen, server, tmp_path, outdir):
    sketch = picture(tmp_path / "sketch.png", (512, 512), "RGB")
    res = imgen("edit", str(sketch), "-i", "https://example.com/style.jpg", "in this style", "-m", "doubao-seedream-5-0-260128",
                "-o", str(outdir))
    assert res.returncode == 0, res.stderr
    (call,) = server.api_requests()
    assert call.path == "/v1/images/generations"
    first, second = call.json["image"]
    assert first == "data:image/png;base64," + base64.b64encode(sketch.read_bytes()).decode() and second == "https://example.com/style.jpg"


def test_qwen_image_edit_only_edits(imgen, server, tmp_path, outdir):
    photo = picture(tmp_path / "photo.webp", (640, 480), "RGB", fmt="WEBP")
    res = imgen("edit", str(photo), "remove the car", "-m", "qwen-image-edit", "-o", str(outdir))
    assert res.returncode == 0, res.stderr
    assert res.lines == [str(outdir / "photo-edit-1.png")]
    refused = imgen("generate", "-m", "qwen-image-edit", "a car")
    assert refused.returncode == 2 and "only edits images; use imgen edit" in refused.stderr


def test_a_generated_image_piped_into_an_edit(server, tmp_path):
    env = {**os.environ, "IMGEN_BASE_URL": server.base_url, "COMETAPI_KEY": API_KEY}
    script = f'{IMGEN} generate -m gpt-image-1 "a cottage" -o - | {IMGEN} edit - "in winter" -m gpt-image-1 -o cottage-winter.png'
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().splitlines() == ["cottage-winter.png"]
    generated, edited = server.served[0], server.served[-1]
    (part,) = edits(server)[0].form.files
    assert part["sha256"] == generated["sha256"] and part["filename"] == "stdin.png"
    assert sha(tmp_path / "cottage-winter.png") == edited["sha256"]
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["cottage-winter.png"]  # nothing half-written beside it


def test_bad_inputs_send_nothing_and_say_everything(imgen, server, tmp_path):
    photo = picture(tmp_path / "photo.png", (1024, 1024), "RGB")
    small_mask = picture(tmp_path / "mask.png", (512, 512), "RGB")
    notes = tmp_path / "notes.png"
    notes.write_text("not an image")
    res = imgen("edit", str(photo), "x", "-m", "gpt-image-1", "--mask", str(small_mask), "-i", str(notes), "-i", str(tmp_path / "gone.png"),
                "--input-fidelity", "medium")
    assert res.returncode == 2
    assert "5 problems" in res.stderr
    for words in ("notes.png: not an image", "gone.png: no such file", "mask.png: has no alpha channel", "512x512, but IMAGE",
                  "--input-fidelity medium: gpt-image-1 accepts high, low"):
        assert words in res.stderr, words
    assert server.requests == []


def test_models_that_cannot_edit_and_masks_they_cannot_take(imgen, server, tmp_path):
    photo = picture(tmp_path / "photo.png")
    mask = picture(tmp_path / "mask.png")
    cannot = imgen("edit", str(photo), "x", "-m", "dall-e-3")
    assert cannot.returncode == 2 and "models that can: dall-e-2, gpt-image-1" in cannot.stderr
    no_mask = imgen("edit", str(photo), "x", "-m", "gemini-3-pro-image-preview", "--mask", str(mask))
    assert no_mask.returncode == 2 and "takes no mask" in no_mask.stderr
    both = imgen("edit", "-", "-", input=b"")
    assert both.returncode == 2 and "both '-'" in both.stderr
    assert server.requests == []


def test_streaming_edit_saves_partials_and_the_image(imgen, server, tmp_path, outdir):
    photo = picture(tmp_path / "photo.png", (1024, 1024), "RGB")
    res = imgen("edit", str(photo), "night", "-m", "gpt-image-1", "--stream", "--partials", "2", "--save-partials", "-o", str(outdir))
    assert res.returncode == 0, res.stderr
    assert edits(server)[0].form.fields["stream"] == "true" and edits(server)[0].form.fields["partial_images"] == "2"
    assert res.lines == [str(outdir / "photo-edit-1.png")]
    assert sorted(p.name for p in outdir.iterdir()) == ["photo-edit-1.partial-1.png", "photo-edit-1.partial-2.png", "photo-edit-1.png"]


def test_a_retried_edit_uploads_the_whole_file_again(imgen, server, tmp_path, outdir):
    photo = picture(tmp_path / "photo.png", (1024, 1024), "RGB")
    server.fault("status", status=503)
    res = imgen("edit", str(photo), "night", "-m", "gpt-image-1", "-o", str(outdir), "--retries", "1")
    assert res.returncode == 0, res.stderr
    first, second = edits(server)
    assert first.form.files[0]["sha256"] == second.form.files[0]["sha256"] == sha(photo)


def test_dry_run_shows_the_form_and_a_curl_that_types_each_part(imgen, server, tmp_path):
    photo = picture(tmp_path / "photo.png")
    res = imgen("edit", str(photo), "night", "-m", "gpt-image-1", "--dry-run", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["url"].endswith("/v1/images/edits") and doc["files"] == [
        {"field": "image", "path": str(photo), "content_type": "image/png", "bytes": photo.stat().st_size}
    ]
    assert f"-F 'image=@{photo};type=image/png'" in doc["curl"] and API_KEY not in res.stdout
    assert server.requests == []


def test_batch_jobs_with_image_are_edits_and_a_rerun_sends_nothing(imgen, server, tmp_path, outdir):
    picture(tmp_path / "a.png", (1024, 1024), "RGB")
    picture(tmp_path / "m.png", (1024, 1024), "RGBA")
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("\n".join(json.dumps(j) for j in [
        {"prompt": "night", "model": "gpt-image-1", "image": "a.png", "mask": "m.png", "name": "a-night"},
        {"prompt": "a fox", "model": "gpt-image-1", "name": "fox"},
    ]) + "\n")
    res = imgen("generate", "--batch", str(jobs), "-o", str(outdir))
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in outdir.iterdir() if p.suffix == ".png") == ["a-night.png", "fox.png"]
    (edit,) = edits(server)
    assert [f["name"] for f in edit.form.files] == ["image", "mask"]
    server.reset()
    again = imgen("generate", "--batch", str(jobs), "-o", str(outdir))
    assert again.returncode == 0, again.stderr
    assert server.api_requests() == []


def test_the_upload_reports_its_progress_to_the_end(server, tmp_path, outdir):
    from imgen import pipeline
    from imgen.files import inputs

    photo = picture(tmp_path / "photo.png", (1024, 1024), "RGB")
    padded = photo.read_bytes() + bytes(3 * 1024 * 1024)  # bytes after IEND: still the same PNG to every reader
    photo.write_bytes(padded)
    image = inputs.load(str(photo), "IMAGE", [])
    plan = pipeline.prepare("night", flags={"model": "gpt-image-1", "base_url": server.base_url}, fields={}, params={},
                            output=str(outdir), inputs=[image], environ={"COMETAPI_KEY": API_KEY})
    seen: list[tuple[str, int | None]] = []
    updates: list[tuple[int, int]] = []

    class Task:
        def update(self, sent, total=None):
            updates.append((sent, total))

        def done(self):
            seen.append(("done", None))

    def upload_task(description, total):
        seen.append((description, total))
        return Task()

    outcome = pipeline.run(plan, pipeline.Hooks(upload_task=upload_task))
    assert [s.image.path.name for s in outcome.saved] == ["photo-edit-1.png"]
    assert seen == [("uploading 1 image", len(padded)), ("done", None)]
    assert updates[-1] == (len(padded), len(padded)) and len(updates) > 10  # chunk by chunk, not one jump
