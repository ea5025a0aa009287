"""imgen edit's pieces, in process: reading the inputs, the pure edit check, the multipart call,
the upload's progress, {stem} names and batch edit jobs. (End to end: test_edit_e2e.py.)"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from imgen.batch import jobs
from imgen.dialects import openai_edits
from imgen.errors import UsageError
from imgen.files import inputs, names
from imgen.files.imageinfo import ImageInfo
from imgen.files.inputs import InputImage
from imgen.models import editing, preflight
from imgen.models.capabilities import lookup
from imgen.pipeline import prepare
from imgen.request import GenerateRequest
from imgen.transport import upload


def picture(path: Path, size=(64, 64), mode="RGBA", fmt=None) -> Path:
    colour = (200, 40, 40, 0) if mode == "RGBA" else (200, 40, 40) if mode == "RGB" else 128
    Image.new(mode, size, colour).save(path, format=fmt)
    return path


def given(shown="photo.png", fmt="png", w=1024, h=1024, alpha=True, size=100_000, flag="IMAGE", url=None) -> InputImage:
    info = None if url else ImageInfo(fmt, w, h, alpha)
    return InputImage(shown, f"{flag} {shown}", path=None if url else Path(shown), url=url, info=info, size=size)


def problems(model, images, mask=None, dialect="openai"):
    return editing.check(lookup(model, dialect), model, dialect, images, mask).problems


# --------------------------------------------------------------------------- reading inputs


def test_load_reads_format_size_and_dimensions_from_the_bytes(tmp_path):
    path = picture(tmp_path / "photo.jpg", (300, 200), "RGB", "PNG")  # a PNG whatever its name says
    found: list[str] = []
    image = inputs.load(str(path), "IMAGE", found)
    assert found == [] and image is not None
    assert (image.format, image.dimensions, image.content_type) == ("png", (300, 200), "image/png")
    assert image.size == path.stat().st_size and image.file_name == "photo.png" and image.stem == "photo"
    assert len(image.sha256) == 64


@pytest.mark.parametrize(("make", "words"), [
    (lambda d: d / "missing.png", "no such file"),
    (lambda d: d, "not a regular file"),
    (lambda d: (d / "notes.png").write_text("hello") and d / "notes.png", "not an image"),
])
def test_load_names_the_flag_and_the_file_when_it_cannot(tmp_path, make, words):
    found: list[str] = []
    target = make(tmp_path)
    assert inputs.load(str(target), "-i", found) is None
    assert found == [f"-i {target}: {words}" + found[0].split(words, 1)[1]]


def test_a_url_is_kept_as_a_url():
    image = inputs.load("https://example.com/a/b.webp?x=1", "IMAGE", [])
    assert image.url and image.path is None and image.stem == "b"


def test_stdin_is_spooled_to_a_private_file(tmp_path):
    data = io.BytesIO()
    Image.new("RGBA", (32, 48)).save(data, format="PNG")
    data.seek(0)
    image = inputs.load("-", "IMAGE", [], spool_dir=tmp_path, stdin=data)
    assert image.path.parent == tmp_path and (image.path.stat().st_mode & 0o777) == 0o600
    assert image.dimensions == (32, 48) and image.stem == "stdin" and image.shown == "-"


def test_stdin_empty_or_too_big_is_refused(tmp_path, monkeypatch):
    found: list[str] = []
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert inputs.load("-", "IMAGE", found, spool_dir=tmp_path / "a", stdin=io.BytesIO(b"")) is None
    monkeypatch.setattr(inputs, "STDIN_LIMIT", 10)
    assert inputs.load("-", "IMAGE", found, spool_dir=tmp_path / "b", stdin=io.BytesIO(b"x" * 11)) is None
    assert "stdin was empty" in found[0] and "more than" in found[1]


# --------------------------------------------------------------------------- the check


def test_a_valid_gpt_edit_passes():
    assert problems("gpt-image-1", [given(), given("b.webp", "webp", 640, 480, False)], given("m.png", flag="--mask")) == []


def test_every_problem_at_once_each_naming_its_file():
    found = problems(
        "gpt-image-1",
        [given("a.gif", "gif", size=60_000_000), *[given(f"{i}.png") for i in range(16)]],
        given("m.jpg", "jpeg", 512, 512, False, flag="--mask"),
    )
    assert found == [
        "IMAGE and -i: 17 images; gpt-image-1 takes at most 16; drop 1 of them",
        "IMAGE a.gif: a gif image; gpt-image-1 takes png, jpeg, webp; convert it to png",
        "IMAGE a.gif: 60.0 MB; gpt-image-1 takes each image under 50.0 MB; shrink or recompress it",
        "--mask m.jpg: a jpeg image; a mask must be a PNG with an alpha channel",
        "--mask m.jpg: 512x512, but IMAGE a.gif is 1024x1024; the mask must be exactly the first image's size",
    ]


def test_dall_e_2_takes_one_square_png_with_transparency_or_a_mask():
    assert problems("dall-e-2", [given(alpha=True)]) == []
    assert problems("dall-e-2", [given(alpha=False)], given("m.png", flag="--mask")) == []
    found = problems("dall-e-2", [given(w=1024, h=768, alpha=False, size=5_000_000)])
    assert [p.split(": ", 1)[1][:30] for p in found] == [
        "5.0 MB; dall-e-2 takes each im", "1024x768; dall-e-2 edits squar", "has no transparency and no --m",
    ]


def test_a_mask_without_alpha_or_on_a_model_without_masks():
    assert problems("gpt-image-2", [given()], given("m.png", alpha=False, flag="--mask")) == [
        "--mask m.png: has no alpha channel; its transparent pixels mark what to change: save it as RGBA"
    ]
    (refusal,) = problems("gemini-3.1-flash-image-preview", [given()], given("m.png", flag="--mask"), dialect="gemini")
    assert refusal.startswith("--mask m.png: gemini-3.1-flash-image-preview takes no mask; drop --mask, or use a model that does: dall-e-2,")
    assert "gemini" not in refusal.split("does:")[1] and "qwen-image-edit" not in refusal


def test_a_model_that_cannot_edit_names_those_that_can():
    (refusal,) = problems("dall-e-3", [given()])
    assert refusal.startswith("--model dall-e-3: cannot edit images; models that can: dall-e-2, gpt-image-1,")
    assert "doubao-seedream-*" in refusal and "YYYY" not in refusal
    (envelope,) = problems("gpt-image-1.5", [given()], dialect="envelope")
    assert envelope.startswith("--model gpt-image-1.5: cannot edit images")


def test_urls_only_where_the_model_takes_them():
    url = given("https://x.test/a.png", url="https://x.test/a.png")
    assert problems("gpt-image-1", [url]) == ["IMAGE https://x.test/a.png: gpt-image-1 edits files it is sent, not URLs; download it and give the file"]
    assert problems("doubao-seedream-5-0-260128", [url]) == []


def test_the_preflight_check_routes_an_edit_and_checks_its_fields():
    req = GenerateRequest("make it night", "gpt-image-1-mini", fields={"input_fidelity": "high"}, inputs=(given(),))
    result = preflight.check(req, "openai")
    assert result.edit.route == "upload"
    assert result.problems == ["--input-fidelity high: gpt-image-1-mini does not accept input_fidelity (gpt-image-1 and gpt-image-1.5 and gpt-image-2 do); "
                               "drop --input-fidelity"]
    assert preflight.check(GenerateRequest("x", "gpt-image-1.5", fields={"input_fidelity": "low"}, inputs=(given(),)), "openai").ok
    # Without inputs --input-fidelity is an edit's field, not a generation's.
    assert not preflight.check(GenerateRequest("x", "gpt-image-1.5", fields={"input_fidelity": "low"}), "openai").ok


def test_generate_with_image_on_a_gpt_model_points_at_edit():
    (problem,) = preflight.check(GenerateRequest("x", "gpt-image-1", fields={"image": ["a.png"]}), "openai").problems
    assert problem.endswith("(to change an image, use imgen edit IMAGE PROMPT); drop --image")


# --------------------------------------------------------------------------- the call


def test_the_multipart_call_types_each_part_from_its_bytes(tmp_path):
    first = inputs.load(str(picture(tmp_path / "a.bin", (64, 64), fmt="PNG")), "IMAGE", [])
    second = inputs.load(str(picture(tmp_path / "b.png", (64, 64), "RGB", "JPEG")), "-i", [])
    mask = inputs.load(str(picture(tmp_path / "m.png", (64, 64))), "--mask", [])
    req = GenerateRequest("x", "gpt-image-1", fields={"n": 2, "stream": True, "partial_images": 1}, inputs=(first, second), mask=mask)
    call = openai_edits.build(req)
    assert (call.method, call.path, call.stream) == ("POST", "/v1/images/edits", True)
    assert call.body == {"model": "gpt-image-1", "prompt": "x", "n": "2", "stream": "true", "partial_images": "1"}
    assert [(f.name, f.file_name, f.content_type) for f in call.files] == [
        ("image[]", "a.png", "image/png"), ("image[]", "b.jpg", "image/jpeg"), ("mask", "m.png", "image/png"),
    ]
    single = openai_edits.build(GenerateRequest("x", "dall-e-2", inputs=(first,)))
    assert [f.name for f in single.files] == ["image"] and "response_format" not in single.body


def test_form_values_are_json_spelled():
    assert [openai_edits.form_value(v) for v in ("high", 3, False, {"a": 1})] == ["high", "3", "false", '{"a":1}']


def test_the_upload_counts_every_byte_and_starts_again_on_a_retry(tmp_path):
    (tmp_path / "a").write_bytes(b"a" * 100_000)
    (tmp_path / "b").write_bytes(b"b" * 50)
    parts = [openai_edits.FilePart("image[]", tmp_path / n, n, "image/png", (tmp_path / n).stat().st_size) for n in "ab"]
    seen = []
    with upload.open_parts(parts, lambda sent, total: seen.append((sent, total))) as files:
        for attempt in range(2):
            for _, (_, f, _) in files:
                f.seek(0)
            for _, (_, f, _) in files:
                while f.read(65536):
                    pass
            assert seen[-1] == (100_050, 100_050)
        assert files[0][1][1].fileno() > 2  # httpx sizes the part from the open file: a Content-Length, not chunks
    assert seen.count((0, 100_050)) >= 2  # each attempt's rewind starts the count from nothing


# --------------------------------------------------------------------------- names


def test_stem_names_the_first_input():
    render = lambda stem: names.render(names.EDIT_TEMPLATE, prompt="make it night", index=2, ext="png", model="m", stem=stem)  # noqa: E731
    assert render("photo") == "photo-edit-2.png"
    assert render("a\x07b") == "a_b-edit-2.png"
    assert render(None) == "make-it-night-edit-2.png"
    assert render(".hidden") == "_.hidden-edit-2.png"


# --------------------------------------------------------------------------- plans and batches


def test_an_edit_plan_uses_the_edit_endpoint_names_and_timeout(tmp_path):
    image = inputs.load(str(picture(tmp_path / "photo.png")), "IMAGE", [])
    plan = prepare("night", flags={"model": "gpt-image-2"}, fields={}, params={}, output=str(tmp_path), inputs=[image])
    assert plan.dialect == "openai_edits" and plan.template == names.EDIT_TEMPLATE
    assert plan.settings["timeout"] == 600.0
    own = prepare("night", flags={"model": "gpt-image-2", "timeout": 30.0, "name": "{stem}.{ext}"}, fields={}, params={}, inputs=[image])
    assert own.settings["timeout"] == 30.0 and own.template == "{stem}.{ext}"


def test_a_reference_route_edit_sends_the_inputs_as_data_uris(tmp_path):
    image = inputs.load(str(picture(tmp_path / "photo.png")), "IMAGE", [])
    plan = prepare("night", flags={"model": "gemini-3.1-flash-image-preview"}, fields={}, params={}, inputs=[image])
    assert plan.dialect == "gemini"
    (ref,) = plan.request.fields["image"]
    assert ref.startswith("data:image/png;base64,")


def test_a_refused_edit_raises_every_problem(tmp_path):
    image = inputs.load(str(picture(tmp_path / "photo.png", (100, 50), "RGB")), "IMAGE", [])
    with pytest.raises(UsageError) as err:
        prepare("night", flags={"model": "dall-e-2"}, fields={"size": "999x999"}, params={}, inputs=[image], known_problems=["-i x.png: no such file"])
    text = err.value.message
    assert text.startswith("4 problems:") and "-i x.png: no such file" in text and "100x50" in text and "--size 999x999" in text


def test_batch_jobs_with_image_are_edits_keyed_by_their_bytes(tmp_path):
    picture(tmp_path / "a.png")
    picture(tmp_path / "m.png")
    specs = [jobs.parse_object(n, obj)[0] for n, obj in enumerate([
        {"prompt": "night", "model": "gpt-image-1", "image": "a.png", "mask": "m.png"},
        {"prompt": "night", "model": "gpt-image-1", "image": ["a.png"]},
        {"prompt": "day", "model": "gpt-image-1", "mask": "m.png"},
        {"prompt": "day", "model": "dall-e-3", "image": "missing.png"},
    ], 1)]
    planned, found, _ = jobs.plan_all(specs, jobs.Defaults({}, {}, {}), tmp_path / "out", tmp_path)
    assert [j.line for j in planned] == [1, 2]
    assert all(j.plan.dialect == "openai_edits" for j in planned) and planned[0].plan.request.mask is not None
    assert found[0].startswith('line 3: mask without "image"') and found[1] == "line 4: image missing.png: no such file"
    before = planned[1].key
    picture(tmp_path / "a.png", (64, 64), "RGB")  # other bytes: another job
    again, _, _ = jobs.plan_all(specs[1:2], jobs.Defaults({}, {}, {}), tmp_path / "out", tmp_path)
    assert again[0].key != before
