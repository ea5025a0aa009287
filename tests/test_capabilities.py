"""The capability table and the pre-flight check: pure, so no server and no CLI here."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgen.errors import ExitCode, UsageError
from imgen.files.imageinfo import ImageInfo
from imgen.files.inputs import InputImage
from imgen.models import capabilities as caps
from imgen.models import preflight
from imgen.request import FLAG_FOR_FIELD, GenerateRequest


def run(model: str, dialect: str = "openai", prompt: str = "a paper boat", strict: bool = False, inputs=(), **fields):
    return preflight.check(GenerateRequest(prompt=prompt, model=model, fields=fields, inputs=inputs), dialect, strict=strict)


# An edit's input as files/inputs.py reads it (headers only): no file is opened by the check.
PHOTO = InputImage("photo.png", "IMAGE photo.png", path=Path("photo.png"), info=ImageInfo("png", 1024, 1024, False), size=200_000)


# One request per record that uses as many fields as the model takes, all valid.
VALID = [
    ("dall-e-2", "openai", dict(n=10, size="256x256", quality="standard", response_format="url", user="u1")),
    ("dall-e-3", "openai", dict(n=1, size="1792x1024", quality="hd", style="natural", response_format="b64_json", user="u")),
    ("gpt-image-1", "openai", dict(n=10, size="1536x1024", quality="high", background="transparent", output_format="webp",
                                   output_compression=50, moderation="low", stream=True, partial_images=3, user="u")),
    ("gpt-image-1-mini", "openai", dict(n=2, size="auto", quality="low", output_format="jpeg", output_compression=0)),
    ("gpt-image-1.5", "openai", dict(size="1024x1536", background="opaque", output_format="jpeg", stream=False)),
    ("gpt-image-2", "openai", dict(size="3840x2160", quality="medium", stream=True, partial_images=0)),
    ("qwen-image", "openai", dict(n=1, size="928x1664")),
    ("qwen-image-edit", "openai", dict(n=1, inputs=(PHOTO,))),
    ("doubao-seedream-5-0-260128", "openai", dict(
        size="4K", response_format="url", image=["https://x/a.png"] * 5, watermark=False,
        sequential_image_generation="auto", sequential_image_generation_options={"max_images": 10},
        output_format="png")),
    ("gpt-image-1.5", "envelope", dict(n=10, size="auto", stream=False, output_compression=100, output_format="webp",
                                       background="transparent", moderation="auto", quality="high", user="u")),
    ("gemini-3.1-flash-image-preview", "gemini", dict(n=1, size="512", aspect_ratio="8:1", image=["data:image/png;base64,AAAA"] * 14)),
    ("gemini-3-pro-image-preview", "gemini", dict(size="4K", aspect_ratio="21:9")),
    ("bria", "bria", dict(n=4, aspect_ratio="4:5", seed=7, negative_prompt="text, logos")),
    ("midjourney", "midjourney", dict(n=1, aspect_ratio="16:9", image=["data:image/png;base64,AAAA"] * 5, negative_prompt="text",
                                      mj_speed="relax")),
    ("niji", "midjourney", dict(aspect_ratio="9:21", mj_speed="turbo")),
    ("flux-pro-1.1", "flux", dict(size="1344x768", seed=7, output_format="png", safety_tolerance=6, image=["https://x/a.png"])),
    ("flux-pro", "flux", dict(size="256x1440", steps=50, guidance_scale=5.0)),
    ("flux-dev", "flux", dict(size="1440x1440", steps=1, guidance_scale=1.5)),
    ("flux-pro-1.1-ultra", "flux", dict(aspect_ratio="21:9", seed=0)),
    ("flux-kontext-pro", "flux", dict(aspect_ratio="9:21", image=["data:image/png;base64,AAAA"])),
    ("flux-kontext-max", "flux", dict(aspect_ratio="1:1")),
    ("flux-2-pro", "flux", dict(size="2048x2048", image=["u"] * 8, safety_tolerance=5)),
    ("flux-2-max", "flux", dict(size="64x1024")),
    ("flux-2-flex", "flux", dict(size="1024x1024", steps=50, guidance_scale=10.0)),
    ("placeholder", "placeholder", dict(n=10, size="4096x4096")),
]

# At least one refused request per record, with the message it must produce.
INVALID = [
    ("dall-e-2", "openai", dict(quality="hd"), "--quality hd: dall-e-2 accepts standard; drop --quality (standard is the only choice)"),
    ("dall-e-2", "openai", dict(n=11), "-n 11: dall-e-2 accepts 1 to 10; use -n 10"),
    ("dall-e-2", "openai", dict(size="1792x1024"), "--size 1792x1024: dall-e-2 accepts 256x256, 512x512, 1024x1024;"),
    ("dall-e-3", "openai", dict(n=4), "-n 4: dall-e-3 makes one image per request (n must be 1); use -n 1, or a GPT image model for up to 10"),
    ("dall-e-3", "openai", dict(style="vivd"), "--style vivd: dall-e-3 accepts vivid, natural; use --style vivid"),
    ("dall-e-3", "openai", dict(background="transparent"), "--background transparent: dall-e-3 does not accept background"),
    ("gpt-image-1", "openai", dict(response_format="b64_json"),
     "--response-format b64_json: gpt-image-1 does not accept response_format (GPT image models always return base64); drop --response-format"),
    ("gpt-image-1", "openai", dict(style="vivid"), "--style vivid: gpt-image-1 does not accept style (dall-e-3 does); drop --style"),
    ("gpt-image-1-mini", "openai", dict(quality="hd"), "--quality hd: gpt-image-1-mini accepts low, medium, high, auto; use --quality high"),
    ("gpt-image-1.5", "openai", dict(partial_images=4, stream=True), "--partials 4: gpt-image-1.5 accepts 0 to 3; use --partials 3"),
    ("gpt-image-1.5", "openai", dict(size="2048x2048"), "--size 2048x2048: gpt-image-1.5 accepts auto, 1024x1024, 1536x1024, 1024x1536; use --size 1024x1024"),
    ("gpt-image-2", "openai", dict(size="1000x1000"), "--size 1000x1000: gpt-image-2 needs both sides divisible by 16; use --size 992x992"),
    ("gpt-image-2", "openai", dict(size="3840x2400"), "--size 3840x2400: gpt-image-2 needs at most 8294400 pixels (not 9216000)"),
    ("gpt-image-2", "openai", dict(moderation="none"), "--moderation none: gpt-image-2 accepts low, auto"),
    ("qwen-image", "openai", dict(n=2), "-n 2: qwen-image makes one image per request (n must be 1)"),
    ("qwen-image", "openai", dict(size="1024x1024"), "--size 1024x1024: qwen-image accepts 1664x928, 1472x1140, 1328x1328, 1140x1472, 928x1664; use --size 1328x1328"),
    ("qwen-image", "openai", dict(quality="hd"), "--quality hd: qwen-image does not accept quality"),
    ("qwen-image-edit", "openai", dict(), "--model qwen-image-edit: only edits images; use imgen edit IMAGE PROMPT --model qwen-image-edit"),
    ("doubao-seedream-5-0-260128", "openai", dict(image=["u"] * 15), "--image (x15): doubao-seedream-5-0-260128 accepts at most 14; drop 1 of them"),
    ("doubao-seedream-5-0-260128", "openai", dict(size="2k"), "--size 2k: doubao-seedream-5-0-260128 accepts 2K, 4K, WIDTHxHEIGHT; use --size 2K"),
    ("doubao-seedream-5-0-260128", "openai", dict(seed=-2), "--seed -2: doubao-seedream-5-0-260128 accepts -1 to 2147483647; use --seed -1"),
    ("doubao-seedream-5-0-260128", "openai", dict(guidance_scale=0.5), "--guidance 0.5: doubao-seedream-5-0-260128 accepts 1.0 to 10.0; use --guidance 1.0"),
    ("doubao-seedream-5-0-260128", "openai", dict(output_format="webp"), "--output-format webp: doubao-seedream-5-0-260128 accepts png, jpeg"),
    ("doubao-seedream-5-0-260128", "openai", dict(watermark="no"), "--watermark 'no': must be true or false"),
    ("doubao-seedream-5-0-260128", "openai", dict(sequential_image_generation="on"), "--sequential on: doubao-seedream-5-0-260128 accepts auto, disabled"),
    ("doubao-seedream-5-0-260128", "openai", dict(n=3), "-n 3: doubao-seedream-5-0-260128 makes one image per request (n must be 1); for several related images use --sequential auto --max-images N"),
    ("doubao-seedream-5-0-260128", "openai", dict(size="100x100"), "--size 100x100: doubao-seedream-5-0-260128 needs at least 921600 pixels (not 10000)"),
    ("gpt-image-1.5", "envelope", dict(stream=True), "--stream: gpt-image-1.5 answers with URLs, not an event stream (stream must be false); drop --stream"),
    ("gpt-image-1.5", "envelope", dict(style="vivid"), "--style vivid: gpt-image-1.5 does not accept style ("),
    ("gpt-image-1.5", "envelope", dict(n=0), "-n 0: gpt-image-1.5 accepts 1 to 10; use -n 1"),
    ("placeholder", "placeholder", dict(quality="hd"), "--quality hd: placeholder does not accept quality (models that do: "),
    ("gemini-3.1-flash-image-preview", "gemini", dict(n=2),
     "-n 2: gemini-3.1-flash-image-preview makes one image per request (n must be 1); use -n 1, and --batch with one line per image"),
    ("gemini-3.1-flash-image-preview", "gemini", dict(size="1k"), "--size 1k: gemini-3.1-flash-image-preview accepts 512, 1K, 2K, 4K; use --size 1K"),
    ("gemini-3-pro-image-preview", "gemini", dict(size="512"), "--size 512: gemini-3-pro-image-preview accepts 1K, 2K, 4K"),
    ("gemini-3-pro-image-preview", "gemini", dict(aspect_ratio="8:1"), "--aspect 8:1: gemini-3-pro-image-preview accepts 1:1, 2:3,"),
    ("bria", "bria", dict(n=5), "-n 5: bria accepts 1 to 4; use -n 4"),
    ("bria", "bria", dict(size="1024x1024"), "--size 1024x1024: bria does not accept size"),
    ("midjourney", "midjourney", dict(n=4), "-n 4: midjourney makes one 2x2 grid per task (n must be 1); use -n 1; imgen task action ID U1..U4"),
    ("niji", "midjourney", dict(mj_speed="slow"), "--mj-speed slow: niji accepts fast, relax, turbo"),
    ("flux-pro-1.1", "flux", dict(size="1000x768"), "--size 1000x768: flux-pro-1.1 needs both sides divisible by 32; use --size 992x768"),
    ("flux-pro", "flux", dict(size="128x128"), "--size 128x128: flux-pro needs the shorter side at least 256"),
    ("flux-dev", "flux", dict(steps=51), "--steps 51: flux-dev accepts 1 to 50; use --steps 50"),
    ("flux-pro-1.1-ultra", "flux", dict(size="1024x1024"), "--size 1024x1024: flux-pro-1.1-ultra does not accept size"),
    ("flux-kontext-pro", "flux", dict(image=["a", "b"]), "--image (x2): flux-kontext-pro accepts at most 1; drop 1 of them"),
    ("flux-kontext-max", "flux", dict(safety_tolerance=7), "--safety-tolerance 7: flux-kontext-max accepts 0 to 6; use --safety-tolerance 6"),
    ("flux-2-pro", "flux", dict(size="2064x2064"), "--size 2064x2064: flux-2-pro needs at most 4194304 pixels (not 4260096)"),
    ("flux-2-max", "flux", dict(safety_tolerance=6), "--safety-tolerance 6: flux-2-max accepts 0 to 5; use --safety-tolerance 5"),
    ("flux-2-flex", "flux", dict(size="1000x1000"), "--size 1000x1000: flux-2-flex needs both sides divisible by 16; use --size 992x992"),
    ("placeholder", "placeholder", dict(size="4097x16"), "--size 4097x16: placeholder needs the longer side at most 4096; use --size 4096x16"),
    ("placeholder", "placeholder", dict(n=11), "-n 11: placeholder accepts 1 to 10; use -n 10"),
]


@pytest.mark.parametrize(("model", "dialect", "fields"), VALID, ids=[f"{m}@{d}" for m, d, _ in VALID])
def test_valid_request_passes(model, dialect, fields):
    result = run(model, dialect, **fields)
    assert result.problems == []
    assert result.ok and result.error() is None
    assert result.spec is not None and result.spec.dialect == dialect


def test_every_record_has_a_valid_and_an_invalid_case():
    records = {(s.id, s.dialect) for s in caps.all_specs()}
    assert records == {(m, d) for m, d, _ in VALID}
    assert records == {(m, d) for m, d, _, _ in INVALID}


@pytest.mark.parametrize(("model", "dialect", "fields", "message"), INVALID, ids=[m[3][:40] for m in INVALID])
def test_invalid_request_refused(model, dialect, fields, message):
    result = run(model, dialect, **fields)
    assert len(result.problems) == 1, result.problems
    assert result.problems[0].startswith(message)
    assert not result.ok


def test_every_problem_reported_at_once():
    result = run("dall-e-3", n=3, size="800x600", quality="ultra", output_format="png", prompt="x" * 4001)
    assert len(result.problems) == 5
    assert [p.split(":")[0] for p in result.problems] == ["PROMPT", "-n 3", "--size 800x600", "--quality ultra", "--output-format png"]
    err = result.error()
    assert isinstance(err, UsageError) and err.exit_code == ExitCode.USAGE
    assert err.message.startswith("5 problems:") and all(p in err.message for p in result.problems)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(n="4"), "-n '4': must be a whole number"),
        (dict(n=True), "-n True: must be a whole number"),
        (dict(size=1024), "--size 1024: must be text"),
    ],
)
def test_wrong_types_from_a_profile(fields, message):
    assert run("dall-e-2", **fields).problems == [message]


def test_params_are_never_checked():
    req = GenerateRequest(prompt="a", model="dall-e-3", params={"n": 7, "style": "weird", "foo": [1]})
    assert preflight.check(req, "openai").problems == []


def test_unset_fields_are_ignored():
    assert run("dall-e-3", n=None, style=None).problems == []


# ----------------------------------------------------------------- cross-field rules

CROSS = [
    ("gpt-image-1", "openai", dict(background="transparent", output_format="jpeg"),
     "--background transparent: needs --output-format png or webp (jpeg has no transparency)"),
    ("gpt-image-1.5", "envelope", dict(background="transparent", output_format="jpeg"), "--background transparent: needs"),
    ("gpt-image-2", "openai", dict(output_compression=80),
     "--compression 80: applies only to jpeg or webp output (the output format defaults to png)"),
    ("gpt-image-1", "openai", dict(output_compression=80, output_format="png"),
     "--compression 80: applies only to jpeg or webp output (--output-format is png)"),
    ("gpt-image-1-mini", "openai", dict(partial_images=2), "--partials 2: partial images come only with --stream; add --stream"),
    ("gpt-image-1-mini", "openai", dict(partial_images=2, stream=False), "--partials 2: partial images come only with --stream"),
    ("doubao-seedream-5-0-260128", "openai",
     dict(image=["u"] * 8, sequential_image_generation="auto", sequential_image_generation_options={"max_images": 10}),
     "--max-images 10: with 8 reference images at most 7 more fit (references + generated <= 15); use --max-images 7"),
    ("doubao-seedream-5-0-260128", "openai", dict(sequential_image_generation_options={"max_images": 3}),
     "--max-images 3: applies only in sequential mode; add --sequential auto"),
]


@pytest.mark.parametrize(("model", "dialect", "fields", "message"), CROSS, ids=[c[3][:40] for c in CROSS])
def test_cross_field_rules(model, dialect, fields, message):
    result = run(model, dialect, **fields)
    assert len(result.problems) == 1, result.problems
    assert result.problems[0].startswith(message)


@pytest.mark.parametrize(
    "fields",
    [
        dict(background="transparent", output_format="png"),
        dict(background="transparent"),  # png is the default
        dict(output_compression=80, output_format="webp"),
        dict(stream=True, partial_images=2),
    ],
)
def test_cross_field_rules_allow_good_combinations(fields):
    assert run("gpt-image-1", **fields).problems == []


def test_references_plus_outputs_boundary():
    ok = dict(image=["u"] * 14, sequential_image_generation="auto", sequential_image_generation_options={"max_images": 1})
    assert run("doubao-seedream-5-0-260128", **ok).problems == []
    ok["sequential_image_generation_options"] = {"max_images": 2}
    assert run("doubao-seedream-5-0-260128", **ok).problems[0].startswith("--max-images 2: with 14 reference images at most 1 more")


def test_max_images_range():
    result = run("doubao-seedream-5-0-260128", sequential_image_generation="auto", sequential_image_generation_options={"max_images": 16})
    assert result.problems == ["--max-images 16: doubao-seedream-5-0-260128 accepts 1 to 15; use --max-images 15"]


def test_seedream_version_warnings():
    five = run("doubao-seedream-5-0-260128", seed=42, guidance_scale=3.0)
    assert five.problems == []
    assert any("ignores guidance_scale" in w for w in five.warnings) and any("ignores seed" in w for w in five.warnings)
    four = run("doubao-seedream-4-0-250828", seed=42, guidance_scale=3.0, output_format="png")
    assert four.problems == [] and four.warnings == [
        "--output-format: doubao-seedream-4-0-250828 may ignore output_format (Seedream 5.0 and later take it)"
    ]


# ----------------------------------------------------------------- ids, dialects, unknown models


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("gpt-image-2-2026-04-21", "gpt-image-2"),
        ("gpt-image-1-2025-04-15", "gpt-image-1"),
        ("gpt-image-1-mini", "gpt-image-1-mini"),
        ("gpt-image-1.5", "gpt-image-1.5"),
        ("dall-e-3-2025-01-31", "dall-e-3"),
        ("doubao-seedream-4-0-250828", "doubao-seedream-5-0-260128"),
        ("doubao-seedream-4-5-251128", "doubao-seedream-5-0-260128"),
        ("gpt-image-1-latest", None),
        ("gpt-image-2-2026-4-21", None),
        ("dall-e-4", None),
        ("qwen-image-plus", None),
    ],
)
def test_lookup_dated_ids_and_families(model_id, expected):
    spec = caps.lookup(model_id)
    assert (spec.id if spec else None) == expected


def test_dated_id_checked_against_its_family():
    result = run("gpt-image-2-2026-04-21", size="1000x1000")
    assert result.spec.id == "gpt-image-2"
    assert result.problems[0].startswith("--size 1000x1000: gpt-image-2-2026-04-21 needs")


def test_lookup_prefers_the_dialect():
    assert caps.lookup("gpt-image-1.5", "envelope").dialect == "envelope"
    assert caps.lookup("gpt-image-1.5", "openai").dialect == "openai"
    assert caps.lookup("gpt-image-1.5").dialect == "openai"
    assert caps.lookup("dall-e-3", "envelope").dialect == "openai"


def test_model_on_the_wrong_dialect_is_a_problem():
    result = run("dall-e-3", "envelope")
    assert result.problems == [
        "--model dall-e-3: served over the openai API, but this profile speaks envelope; "
        "use --model gpt-image-1.5, or a profile whose api is openai"
    ]
    assert run("gpt-image-1", "placeholder").problems[0].startswith("--model gpt-image-1: served over the openai API")


def test_unknown_model_warns_and_passes_through():
    result = run("zz-42", quality="whatever", n=99)
    assert result.problems == [] and result.spec is None
    assert result.warnings == ["unknown model 'zz-42': passing it through unchecked; --strict refuses unknown models"]


def test_unknown_model_refused_when_strict():
    result = run("dalle-3", strict=True)
    assert len(result.problems) == 1 and result.warnings == []
    assert result.problems[0].startswith("--model dalle-3: unknown model, and --strict refuses")
    assert result.problems[0].endswith("did you mean dall-e-3?")


def test_strict_does_not_touch_known_models():
    assert run("dall-e-3", strict=True).problems == []


# ----------------------------------------------------------------- prompts

PROMPT_LIMITS = [
    ("dall-e-2", "openai", 1000),
    ("dall-e-3", "openai", 4000),
    ("gpt-image-1", "openai", 32000),
    ("gpt-image-2", "openai", 32000),
    ("qwen-image", "openai", 800),
    ("doubao-seedream-5-0-260128", "openai", 4000),
    ("gpt-image-1.5", "envelope", 32000),
    ("placeholder", "placeholder", 32000),
]


@pytest.mark.parametrize(("model", "dialect", "limit"), PROMPT_LIMITS)
def test_prompt_length_boundary(model, dialect, limit):
    assert run(model, dialect, prompt="a" * limit).problems == []
    over = run(model, dialect, prompt="a" * (limit + 1))
    assert over.problems == [
        f"PROMPT: {limit + 1} characters, {model} accepts at most {limit}; shorten it by 1 (imgen never cuts a prompt)"
    ]


def test_prompt_counts_characters_not_bytes():
    assert run("qwen-image", prompt="猫" * 800).problems == []


def test_empty_prompt_refused():
    assert run("dall-e-3", prompt="   ").problems == ["PROMPT: empty; describe the image you want"]


def test_seedream_prompt_advice_is_a_warning():
    assert run("doubao-seedream-5-0-260128", prompt="a" * 1000).warnings == []
    long = run("doubao-seedream-5-0-260128", prompt="a" * 1001)
    assert long.problems == [] and long.warnings[0].startswith("PROMPT: 1001 characters;")
    chinese = run("doubao-seedream-5-0-260128", prompt="猫" * 301)
    assert chinese.problems == [] and "works best under 300" in chinese.warnings[0]


# ----------------------------------------------------------------- sizes


def _gpt_image_2_oracle(w: int, h: int) -> bool:
    """Written from the upstream wording, independently of FreeSize."""
    long_edge, short_edge = max(w, h), min(w, h)
    return (
        w % 16 == 0
        and h % 16 == 0
        and long_edge <= 3840
        and long_edge <= 3 * short_edge
        and 655_360 <= w * h <= 8_294_400
    )


dims = st.integers(min_value=1, max_value=5000)
aligned = st.integers(min_value=1, max_value=320).map(lambda k: k * 16)


@settings(max_examples=400, deadline=None)
@given(w=st.one_of(dims, aligned), h=st.one_of(dims, aligned))
def test_gpt_image_2_sizes_match_the_oracle(w, h):
    result = run("gpt-image-2", size=f"{w}x{h}")
    assert (result.problems == []) == _gpt_image_2_oracle(w, h), result.problems


@settings(max_examples=300, deadline=None)
@given(w=dims, h=dims)
def test_gpt_image_2_suggestion_is_always_valid(w, h):
    best = caps.GPT_IMAGE_2_FREE.nearest(w, h)
    assert best is not None and _gpt_image_2_oracle(*best)


@pytest.mark.parametrize("size", ["3840x2160", "2160x3840", "2880x2880", "1024x640", "3840x1280", "auto", "1536x1024"])
def test_gpt_image_2_edge_cases_pass(size):
    assert run("gpt-image-2", size=size).problems == []


@pytest.mark.parametrize(
    ("size", "needs"),
    [
        ("3856x1296", "the longer side at most 3840"),
        ("3840x1264", "an aspect ratio within 1:3..3:1"),
        ("1024x624", "at least 655360 pixels (not 638976)"),
        ("1024X1024", "a lowercase x"),
        ("big", None),
    ],
)
def test_gpt_image_2_bad_sizes(size, needs):
    problem = run("gpt-image-2", size=size).problems[0]
    assert problem.startswith(f"--size {size}: gpt-image-2 ")
    if needs:
        assert needs in problem


def test_sizes_for():
    assert caps.sizes_for("dall-e-3") == ["1024x1024", "1792x1024", "1024x1792"]
    assert caps.sizes_for("gpt-image-2-2026-04-21")[:4] == ["auto", "1024x1024", "1536x1024", "1024x1536"]
    assert "2K" in caps.sizes_for("doubao-seedream-4-0-250828")
    assert caps.sizes_for("no-such-model") == []
    for spec in caps.all_specs():
        for size in caps.sizes_for(spec.id, spec.dialect):
            assert run(spec.id, spec.dialect, size=size).problems == [], (spec.id, size)


def test_default_sizes_are_valid():
    for spec in caps.all_specs():
        inputs = (PHOTO,) if spec.edit_only else ()
        assert run(spec.id, spec.dialect, size=spec.default_size, inputs=inputs).problems == [], spec.id


# ----------------------------------------------------------------- the table itself


def test_every_field_has_a_flag_and_one_kind():
    for spec in caps.all_specs():
        for name, rule in spec.fields.items():
            assert name in FLAG_FOR_FIELD, name
            assert preflight.FIELD_KINDS[name] == rule.kind, name


def test_n_ranges():
    ranges = {(s.id, s.dialect): s.n_range for s in caps.all_specs()}
    assert ranges[("dall-e-3", "openai")] == (1, 1)
    assert ranges[("dall-e-2", "openai")] == (1, 10)
    assert ranges[("qwen-image", "openai")] == (1, 1)
    assert ranges[("gpt-image-1.5", "envelope")] == (1, 10)


def test_gpt_image_models_return_base64_only():
    for spec in caps.all_specs():
        if spec.id.startswith("gpt-image") and spec.dialect == "openai":
            assert spec.results == ("b64_json",)
            assert "response_format" not in spec.fields and "response_format" in spec.refused
            assert "streaming" in spec.features


def test_to_dict_is_json_ready():
    import json

    for spec in caps.all_specs():
        doc = json.loads(json.dumps(spec.to_dict()))
        assert doc["id"] == spec.id and set(doc["fields"]) == set(spec.fields)


@pytest.mark.parametrize(
    ("field", "raw", "value"),
    [
        ("n", "4", 4),
        ("guidance_scale", "2.5", 2.5),
        ("watermark", "false", False),
        ("watermark", "Yes", True),
        ("stream", "1", True),
        ("image", "a.png", ["a.png"]),
        ("sequential_image_generation_options", "4", {"max_images": 4}),
        ("size", "2K", "2K"),
        ("seed", "-1", -1),
    ],
)
def test_parse_value(field, raw, value):
    assert preflight.parse_value(field, raw) == value


@pytest.mark.parametrize(
    ("field", "raw", "message"),
    [
        ("n", "four", "-n four: must be a whole number"),
        ("guidance_scale", "nan", "--guidance nan: must be a number"),
        ("watermark", "maybe", "--watermark maybe: must be true or false"),
    ],
)
def test_parse_value_refuses(field, raw, message):
    with pytest.raises(UsageError) as info:
        preflight.parse_value(field, raw)
    assert info.value.message == message
