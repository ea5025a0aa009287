"""--aspect: parsing, and the mapping for every record (pure; no server)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from imgen.errors import UsageError
from imgen.models import aspect, capabilities, preflight
from imgen.models.aspect import Ratio
from imgen.models.rules import parse_size
from imgen.request import GenerateRequest

SPECS = {f"{s.id}@{s.dialect}": s for s in capabilities.SPECS}


def shape(model: str, raw: str, size=None, strict=False, dialect=None):
    spec = capabilities.lookup(model, dialect)
    return aspect.shape(spec, model, raw, size, strict=strict)


# The table the closing note of this feature gives: model x ratio -> what is sent.
MAPPING = [
    ("dall-e-3", "16:9", None, {"size": "1792x1024"}),
    ("dall-e-3", "9:16", None, {"size": "1024x1792"}),
    ("dall-e-3", "1:1", None, {"size": "1024x1024"}),
    ("dall-e-2", "1:1", None, {"size": "1024x1024"}),
    ("gpt-image-1", "3:2", None, {"size": "1536x1024"}),
    ("gpt-image-1", "2:3", None, {"size": "1024x1536"}),
    ("gpt-image-2", "16:9", None, {"size": "1360x768"}),
    ("gpt-image-2", "16:9", "4K", {"size": "3840x2160"}),
    ("gpt-image-2", "1:1", "2K", {"size": "2048x2048"}),
    ("gpt-image-2", "3:2", None, {"size": "1536x1024"}),
    ("qwen-image", "16:9", None, {"size": "1664x928"}),
    ("qwen-image", "3:4", None, {"size": "1140x1472"}),
    ("doubao-seedream-5-0-260128", "16:9", None, {"size": "2848x1600"}),
    ("doubao-seedream-5-0-260128", "21:9", "2K", {"size": "3136x1344"}),
    ("gemini-3.1-flash-image-preview", "16:9", "2K", {"aspect_ratio": "16:9"}),
    ("gemini-3.1-flash-image-preview", "1:8", None, {"aspect_ratio": "1:8"}),
    ("bria", "4:5", None, {"aspect_ratio": "4:5"}),
    ("placeholder", "16:9", None, {"size": "1360x768"}),
]


@pytest.mark.parametrize(("model", "ratio", "size", "sent"), MAPPING, ids=[f"{m}-{r}-{s}" for m, r, s, _ in MAPPING])
def test_each_model_gets_its_own_field(model, ratio, size, sent):
    result = shape(model, ratio, size)
    assert (result.fields, result.warning, result.problem) == (sent, None, None)


def test_a_ratio_the_model_lacks_gets_the_nearest_with_a_warning_naming_it():
    result = shape("dall-e-3", "5:4")
    assert result.fields == {"size": "1024x1024"}
    assert result.warning == "--aspect 5:4: dall-e-3 has no 5:4; asking for 1024x1024 (1:1), the nearest it has"
    ratio = shape("bria", "21:9")
    assert ratio.fields == {"aspect_ratio": "16:9"} and "asking for 16:9" in ratio.warning
    wide = shape("gpt-image-2", "4:1")  # past its 3:1 limit: computed at the limit, and said so
    assert wide.fields["size"] and "asking for" in wide.warning
    w, h = parse_size(wide.fields["size"])
    assert w == 3 * h


def test_strict_refuses_the_nearest():
    result = shape("dall-e-3", "5:4", strict=True)
    assert result.fields == {} and result.warning is None
    assert result.problem.startswith("--aspect 5:4: dall-e-3 has no 5:4 (sizes: ")


@pytest.mark.parametrize("raw", ["16-9", "0:1", "99:1", "16:0", "a:b", "", "1.5:1", "16:9:1"])
def test_bad_ratios_name_the_accepted_form(raw):
    result = shape("dall-e-3", raw)
    assert result.problem and "W:H with whole numbers" in result.problem and result.problem.startswith("--aspect")


def test_ratios_compare_reduced_and_keep_their_spelling():
    assert Ratio.parse("32:18") == Ratio.parse("16:9") and str(Ratio.parse("32:18")) == "32:18"
    assert Ratio.parse("21:9") == Ratio.parse("7:3") and Ratio.parse("7:3").among(["16:9", "21:9"]) == "21:9"
    assert shape("bria", "32:18").fields == {"aspect_ratio": "16:9"}


def test_aspect_with_a_pixel_size_is_refused():
    assert "give one or the other" in shape("gpt-image-2", "16:9", "1024x1024").problem
    assert "fixed sizes" in shape("dall-e-3", "16:9", "2K").problem


def test_a_model_without_a_shape_is_refused():
    fields = {"aspect": "16:9"}
    result = aspect.apply(fields, None, "some-new-model", strict=False)
    assert "no record of some-new-model" in result.problem and "aspect" not in fields


def every_ratio_case():
    for key, spec in SPECS.items():
        for ratio in aspect.mapping(spec)["sends"]:
            yield key, ratio


@pytest.mark.parametrize(("key", "ratio"), list(every_ratio_case()))
def test_every_ratio_a_model_lists_maps_to_a_value_its_record_allows(key, ratio):
    spec = SPECS[key]
    result = aspect.shape(spec, spec.id, ratio, None, strict=True)
    assert result.problem is None and result.warning is None
    request = GenerateRequest(prompt="p", model=spec.id, fields=dict(result.fields))
    assert preflight.check(request, spec.dialect).problems == []


@given(
    key=st.sampled_from(sorted(SPECS)),
    w=st.integers(1, 16),
    h=st.integers(1, 16),
    scale=st.sampled_from([None, "1K", "2K", "4K"]),
)
@example(key="qwen-image@openai", w=6, h=8, scale=None)  # a listed size a little off its ratio
def test_any_ratio_maps_to_something_the_record_allows_or_a_clear_refusal(key, w, h, scale):
    spec = SPECS[key]
    result = aspect.shape(spec, spec.id, f"{w}:{h}", scale, strict=False)
    if result.problem:
        assert result.problem.startswith(("--aspect", "--size")) and not result.fields
        return
    fields = dict(result.fields)
    if scale and "size" not in fields and "size" in spec.fields:
        fields["size"] = scale  # a ratio field leaves the scale to the model's own size field
    problems = preflight.check(GenerateRequest(prompt="p", model=spec.id, fields=fields), spec.dialect).problems
    assert problems == [] or all(p.startswith("--size") for p in problems) and scale, problems
    got = Ratio.of_size(fields["size"]) if "size" in result.fields else Ratio.parse(fields["aspect_ratio"])
    # The size a provider lists for a ratio is that ratio (qwen-image's 3:4 is 1140x1472); any
    # other size given without a warning must be the ratio asked for, give or take rounding.
    listed = {Ratio.parse(ratio): size for ratio, size in spec.aspects.items()}
    if result.warning is None and listed.get(Ratio.parse(f"{w}:{h}")) != fields.get("size"):
        assert abs(got.value / (w / h) - 1) <= 0.021


def test_a_shape_on_the_command_line_beats_the_profiles(tmp_path, monkeypatch):
    from imgen.pipeline import prepare

    config = tmp_path / "config.toml"
    config.write_text('[profiles.cometapi]\naspect = "16:9"\nsize = "1024x1024"\n')
    monkeypatch.setenv("IMGEN_CONFIG", str(config))
    sized = prepare("p", flags={"model": "gpt-image-2"}, fields={"size": "1536x1024"}, params={})
    assert sized.request.fields["size"] == "1536x1024" and "aspect" not in sized.request.fields
    shaped = prepare("p", flags={"model": "gpt-image-2"}, fields={"aspect": "1:1"}, params={})
    assert shaped.request.fields["size"] == "1024x1024"  # the ratio asked for, at the default scale
    with pytest.raises(UsageError, match="give one or the other"):  # both from one place stays a question
        prepare("p", flags={"model": "gpt-image-2"}, fields={}, params={})
