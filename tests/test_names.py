import datetime as dt
import os
import tempfile
import unicodedata
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from imgen.files import names
from imgen.files.names import (
    DEFAULT_TEMPLATE,
    MAX_RENDERED_BYTES,
    MAX_UNIQUE_BYTES,
    NameReserver,
    TemplateError,
    render,
    safe_name,
    slugify,
    template_fields,
    unique_path,
    validate_template,
)

PROMPT = "A paper boat floating on calm water at sunrise"  # the README's example
NOW = dt.datetime(2026, 11, 21, 9, 8, 7)

# Written out here rather than imported, so the test checks the module against Windows' list.
RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{dev}{n}" for dev in ("COM", "LPT") for n in "0123456789¹²³"
}


def _render(template=DEFAULT_TEMPLATE, **kwargs):
    args = {"prompt": PROMPT, "index": 1, "ext": "png", "model": "gpt-image-1", "now": NOW}
    args.update(kwargs)
    return render(template, **args)


def _is_reserved(name: str) -> bool:
    return name.split(".")[0].rstrip(" ").upper() in RESERVED


def _assert_safe(name: str, limit: int) -> None:
    assert name and name not in (".", "..")
    assert not any(c in name for c in '/\\\x00<>:"|?*'), name
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in name), name
    assert not name.startswith((".", "-")), name
    assert not name.endswith((".", " ")), name
    assert not _is_reserved(name), name
    assert len(name.encode("utf-8")) <= limit


# --- render: examples --------------------------------------------------------------------


def test_readme_example():
    name = render(
        DEFAULT_TEMPLATE,
        prompt=PROMPT,
        index=1,
        ext="png",
        model="gpt-image-1",
        date=dt.date(2026, 11, 21),
    )
    assert name == "2026-11-21-a-paper-boat-floating-on-calm-water-1.png"


def test_index_is_the_number_shown():
    assert [_render("{index}.{ext}", index=i) for i in (1, 2, 12)] == ["1.png", "2.png", "12.png"]


def test_every_field():
    name = _render("{date}_{time}_{slug}_{index}_{model}_{hash}_{seed}.{ext}", index=5, seed=42)
    assert name == (
        "2026-11-21_090807_a-paper-boat-floating-on-calm-water_5_gpt-image-1_"
        + names._digest(PROMPT)[:8]
        + "_42.png"
    )


def test_hash_is_the_prompt_sha256():
    assert _render("{hash}", prompt="abc") == "ba7816bf"  # sha256("abc") = ba7816bf8f01...


def test_seed_absent_and_negative():
    assert _render("{slug}-{seed}.{ext}", prompt="cat") == "cat-noseed.png"
    assert _render("{seed}-{slug}.{ext}", prompt="cat", seed=-1) == "_-1-cat.png"


@pytest.mark.parametrize(
    "template, expected",
    [("{index:03}.{ext}", "007.png"), ("{index:03d}.{ext}", "007.png"), ("{index:d}.{ext}", "7.png"),
     ("{index:}.{ext}", "7.png")],
)
def test_index_zero_padding(template, expected):
    assert _render(template, index=7) == expected


def test_date_and_time_defaults():
    assert _render("{date}-{time}") == "2026-11-21-090807"
    assert _render("{date}-{time}", date=dt.date(2000, 1, 2)) == "2000-01-02-090807"
    before = dt.date.today()
    name = render("{date}", prompt="x", index=1, ext="png", model="m")
    assert name in {before.isoformat(), dt.date.today().isoformat()}


@pytest.mark.parametrize(
    "model, expected",
    [
        ("gpt-image-1", "gpt-image-1"),
        ("doubao-seedream-5-0-260128", "doubao-seedream-5-0-260128"),
        ("openai/gpt-image-1", "openai-gpt-image-1"),
        ("../../etc/passwd", "etc-passwd"),
        ("Qwen Image:Plus", "Qwen-Image-Plus"),
        ("模型", "model"),
        ("", "model"),
    ],
)
def test_model_is_sanitised(model, expected):
    assert _render("{model}", model=model) == expected


def test_literal_braces_and_text():
    assert _render("{{{slug}}} v2 ({index}).{ext}", prompt="cat") == "{cat} v2 (1).png"


def test_ext_is_normalised_and_checked():
    assert _render("{slug}.{ext}", prompt="cat", ext=".JPG") == "cat.jpg"
    for bad in ("", "p/ng", "png\n", "x" * 17):
        with pytest.raises(ValueError):
            _render(ext=bad)


@pytest.mark.parametrize("index", [0, -1])
def test_index_below_one_is_a_bug(index):
    with pytest.raises(ValueError, match="counts from 1"):
        _render(index=index)


# --- render: safety ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template, prompt, expected",
    [
        ("con.{ext}", PROMPT, "_con.png"),
        ("{slug}.{ext}", "aux", "_aux.png"),
        ("{slug}.{ext}", "LPT9", "_lpt9.png"),
        ("{slug}.{ext}", "Com1", "_com1.png"),
        ("nul .{ext}", PROMPT, "_nul .png"),
        ("prn.tar.{ext}", PROMPT, "_prn.tar.png"),
        ("COM¹.{ext}", PROMPT, "_COM¹.png"),
        ("CONOUT$", PROMPT, "_CONOUT$"),
        ("console.{ext}", PROMPT, "console.png"),
        ("{slug}-con.{ext}", "a", "a-con.png"),
    ],
)
def test_windows_device_names_are_prefixed(template, prompt, expected):
    assert _render(template, prompt=prompt) == expected


@pytest.mark.parametrize(
    "template, expected",
    [
        (".{slug}.{ext}", "_.cat.png"),
        ("..{ext}", "_..png"),
        ("-{slug}.{ext}", "_-cat.png"),
        ("{slug}. . ", "cat"),
        ("  {slug}.{ext}  ", "cat.png"),
        ("..", "image"),
        (". . .", "image"),
    ],
)
def test_leading_and_trailing_dots_spaces_dashes(template, expected):
    assert _render(template, prompt="cat") == expected


def test_long_names_are_trimmed_keeping_the_extension():
    name = _render("x" * 400 + "-{index}.{ext}")
    assert len(name.encode()) == MAX_RENDERED_BYTES
    assert name.endswith("xxx.png")

    name = _render("é" * 300 + ".{ext}")  # two bytes each: the cut must not split one
    assert name.endswith(".png")
    assert len(name.encode()) <= MAX_RENDERED_BYTES
    assert set(name[:-4]) == {"é"}

    assert MAX_RENDERED_BYTES + 40 == 255


def test_a_long_prompt_gives_a_bounded_slug():
    name = _render(prompt="word " * 10_000)
    assert len(name.encode()) < 80


# --- render: rejected templates ------------------------------------------------------------


@pytest.mark.parametrize(
    "template, field",
    [
        ("{slug.__class__}.{ext}", "{slug.__class__}"),
        ("{slug.__class__.__mro__}", "{slug.__class__.__mro__}"),
        ("{slug[0]}.{ext}", "{slug[0]}"),
        ("{0}.{ext}", "{0}"),
        ("{}.{ext}", "{}"),
        ("{index!r}.{ext}", "{index!r}"),
        ("{slug!s}", "{slug!s}"),
        ("{prompt}.{ext}", "{prompt}"),
        ("{Slug}.{ext}", "{Slug}"),
        ("{ slug }.{ext}", "{ slug }"),
        ("{slug:>40}.{ext}", "{slug:>40}"),
        ("{date:%Y}.{ext}", "{date:%Y}"),
        ("{index:5}.{ext}", "{index:5}"),
        ("{index:+d}", "{index:+d}"),
        ("{index:0}", "{index:0}"),
        ("{index:030}", "{index:030}"),
        ("{index:{slug}}", "{index:{slug}}"),
    ],
)
def test_bad_fields_are_refused_with_a_useful_message(template, field):
    with pytest.raises(TemplateError) as info:
        _render(template)
    message = str(info.value)
    assert repr(template) in message
    assert field in message
    assert info.value.field == field
    assert "allowed fields: {date} {time} {slug} {index} {model} {ext} {hash} {seed}" in message
    with pytest.raises(ValueError):
        validate_template(template)


@pytest.mark.parametrize(
    "template, words",
    [
        ("{slug", "brace"),
        ("{slug}}.{ext}", "brace"),
        ("{date}-{.{ext}", "brace"),
        ("}", "brace"),
        ("{", "brace"),
        ("", "empty"),
        ("   ", "empty"),
        ("{date}/{slug}.{ext}", "not a path"),
        ("../{slug}.{ext}", "not a path"),
        ("out\\{slug}.{ext}", "not a path"),
        ("{slug}\x00.{ext}", "U+0000"),
        ("{slug}\n.{ext}", "U+000A"),
        ("{slug}\u2028.{ext}", "U+2028"),
        ("{slug}\u202e.{ext}", "U+202E"),
        ("{slug}:{index}.{ext}", "':'"),
        ("{slug}?.{ext}", "'?'"),
        ("{slug}*.{ext}", "'*'"),
        ('{slug}".{ext}', "'\"'"),
        ("<{slug}>.{ext}", "'<'"),
        ("{slug}|.{ext}", "'|'"),
    ],
)
def test_malformed_templates_are_refused(template, words):
    with pytest.raises(TemplateError) as info:
        validate_template(template)
    assert words in str(info.value)
    assert repr(template) in str(info.value)
    assert "allowed fields" in str(info.value)


def test_template_fields():
    assert template_fields(DEFAULT_TEMPLATE) == {"date", "slug", "index", "ext"}
    assert template_fields("cat {{index}}") == set()
    with pytest.raises(TemplateError):
        template_fields("{nope}")


# --- slugify --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prompt, expected",
    [
        ("A paper boat floating on calm water", "a-paper-boat-floating-on-calm-water"),
        ("  Hello,   World!!  ", "hello-world"),
        ("Crème brûlée à la carte", "creme-brulee-a-la-carte"),
        ("Straße in Đà Nẵng", "strasse-in-da-nang"),
        ("Don't stop ’til you’re done", "dont-stop-til-youre-done"),
        ("../../etc/passwd", "etc-passwd"),
        ("...hidden file", "hidden-file"),
        ("--rm -rf", "rm-rf"),
        ("C:\\Windows\\System32", "c-windows-system32"),
        ("ｆｕｌｌｗｉｄｔｈ ①②", "fullwidth-12"),
        ("a cat 🐱 on a mat", "a-cat-on-a-mat"),
        ("line\nbreak\ttab\x00nul", "line-break-tab-nul"),
    ],
)
def test_slugify_examples(prompt, expected):
    assert slugify(prompt) == expected


def test_slugify_cuts_at_a_word_boundary():
    assert slugify(PROMPT) == "a-paper-boat-floating-on-calm-water"  # not "...-water-at"
    assert slugify("alpha beta gamma delta", max_len=16) == "alpha-beta-gamma"
    assert slugify("alpha beta gamma delta", max_len=15) == "alpha-beta"
    assert slugify("alpha beta gamma delta", max_len=10) == "alpha-beta"
    assert slugify("alpha beta", max_len=9) == "alpha"
    slug = slugify("the quick brown fox jumps over the lazy dog again and again")
    assert len(slug) <= 40 and not slug.endswith("-")
    assert slug == "the-quick-brown-fox-jumps-over-the-lazy"


def test_slugify_drops_only_words_dangling_at_a_cut():
    assert slugify("a cat sitting on") == "a-cat-sitting-on"  # not cut: kept as written
    assert slugify("a cat sitting on the mat", max_len=20) == "a-cat-sitting"
    assert slugify("the of and at", max_len=8) == "the"  # never down to nothing
    assert slugify("boat at", max_len=5) == "boat"


def test_slugify_cuts_a_single_long_word_hard():
    assert slugify("x" * 100) == "x" * 40
    assert slugify("supercalifragilistic expialidocious", max_len=5) == "super"


def test_slugify_falls_back_to_a_hash_per_prompt():
    a, b = slugify("🐱🐶"), slugify("🐶🐱")
    assert a.startswith("image-") and b.startswith("image-") and a != b
    assert len(a) == len("image-") + 6
    assert a == "image-" + names._digest("🐱🐶")[:6]
    assert slugify("!!! ???").startswith("image-")
    assert slugify("").startswith("image-")
    assert slugify("🐱🐶", max_len=5) == "image"
    assert slugify("🐱🐶", max_len=3) == "ima"


@pytest.mark.parametrize("prompt, slug", [
    ("一只纸船漂浮在平静的水面上", "yi-zhi-zhi-chuan-piao-fu-zai-ping-jing"),
    ("кошка на крыше", "koshka-na-kryshe"),
    ("Καλημέρα κόσμε", "kalimera-kosme"),
    ("고양이 그림", "goyangi-geulim"),
    ("ネコ 🐱 の絵", "neko-no-hui"),
    ("Crème brûlée à l'aube", "creme-brulee-a-laube"),
])
def test_slugify_spells_other_scripts_in_ascii(prompt, slug):
    assert slugify(prompt) == slug


def test_slugify_refuses_a_useless_max_len():
    with pytest.raises(ValueError):
        slugify("cat", max_len=0)


@given(st.text(), st.integers(min_value=1, max_value=80))
@settings(max_examples=200, deadline=None)
def test_slugify_property(prompt, max_len):
    slug = slugify(prompt, max_len=max_len)
    assert slug and len(slug) <= max_len
    assert all(c.isascii() and (c.isdigit() or c.islower() or c == "-") for c in slug)
    assert not slug.startswith("-") and not slug.endswith("-") and "--" not in slug


# --- safe_name ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("a/b\\c.png", "a_b_c.png"),
        ("a\x00b\nc.png", "a_b_c.png"),
        ("", "image"),
        (".", "image"),
        ("..", "image"),
        (".bashrc", "_.bashrc"),
        ("aux.png", "_aux.png"),
        ("name. ", "name"),
    ],
)
def test_safe_name(raw, expected):
    assert safe_name(raw) == expected


# --- unique_path ----------------------------------------------------------------------------


def test_unique_path_free_name(tmp_path):
    assert unique_path(tmp_path, "cat.png") == tmp_path / "cat.png"


def test_unique_path_never_picks_an_existing_entry(tmp_path):
    (tmp_path / "cat.png").write_bytes(b"old")
    assert unique_path(tmp_path, "cat.png") == tmp_path / "cat-2.png"
    (tmp_path / "cat-2.png").write_bytes(b"old")
    (tmp_path / "cat-3.png").mkdir()
    assert unique_path(tmp_path, "cat.png") == tmp_path / "cat-4.png"


def test_unique_path_counts_a_dangling_symlink(tmp_path):
    (tmp_path / "cat.png").symlink_to(tmp_path / "nowhere")
    assert unique_path(tmp_path, "cat.png") == tmp_path / "cat-2.png"


def test_unique_path_avoids_names_taken_in_the_run(tmp_path):
    assert unique_path(tmp_path, "cat.png", taken={"cat.png"}) == tmp_path / "cat-2.png"
    assert unique_path(tmp_path, "cat.png", taken={"CAT.PNG", "Cat-2.png"}) == tmp_path / "cat-3.png"


def test_unique_path_overwrite_skips_only_the_disk_check(tmp_path):
    (tmp_path / "cat.png").write_bytes(b"old")
    assert unique_path(tmp_path, "cat.png", overwrite=True) == tmp_path / "cat.png"
    assert unique_path(tmp_path, "cat.png", taken={"cat.png"}, overwrite=True) == tmp_path / "cat-2.png"


def test_unique_path_without_an_extension(tmp_path):
    (tmp_path / "cat").write_bytes(b"")
    (tmp_path / ".hidden").write_bytes(b"")
    assert unique_path(tmp_path, "cat") == tmp_path / "cat-2"
    assert unique_path(tmp_path, ".hidden") == tmp_path / ".hidden-2"


def test_unique_path_keeps_room_for_the_suffix(tmp_path):
    name = "x" * (MAX_UNIQUE_BYTES - 4) + ".png"
    (tmp_path / name).write_bytes(b"")
    path = unique_path(tmp_path, name)
    assert path.name.endswith("x-2.png")
    assert len(path.name.encode()) <= MAX_UNIQUE_BYTES
    assert unique_path(tmp_path, "y" * 300 + ".png").name.endswith("y.png")


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b.png", "a\\b.png", "../cat.png", "a\x00b"])
def test_unique_path_refuses_what_is_not_a_plain_name(tmp_path, bad):
    with pytest.raises(ValueError):
        unique_path(tmp_path, bad)


def test_name_reserver(tmp_path):
    (tmp_path / "cat.png").write_bytes(b"")
    reserver = NameReserver(tmp_path)
    paths = [reserver.reserve("cat.png") for _ in range(3)]
    assert [p.name for p in paths] == ["cat-2.png", "cat-3.png", "cat-4.png"]
    overwriting = NameReserver(tmp_path, overwrite=True)
    assert [overwriting.reserve("cat.png").name for _ in range(2)] == ["cat.png", "cat-2.png"]


# --- properties -------------------------------------------------------------------------------

_FIELD_TEXT = st.sampled_from(
    ["{date}", "{time}", "{slug}", "{index}", "{index:03}", "{model}", "{ext}", "{hash}", "{seed}",
     "{{", "}}", ".", "-", " ", ".."]
)  # fmt: skip
_LITERAL = st.text(
    st.characters(
        blacklist_categories=("Cc", "Cf", "Cs", "Zl", "Zp"),
        blacklist_characters='/\\<>:"|?*{}',
    ),
    max_size=80,
)
_TEMPLATES = st.lists(st.one_of(_FIELD_TEXT, _LITERAL), min_size=1, max_size=8).map("".join)
_EXTS = st.sampled_from(["png", "jpg", "webp", "gif"])


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("names")


@given(
    template=_TEMPLATES,
    prompt=st.text(),
    model=st.text(max_size=100),
    index=st.integers(min_value=1, max_value=10_000),
    ext=_EXTS,
    seed=st.none() | st.integers(min_value=-1, max_value=2**31 - 1),
)
@settings(max_examples=200, deadline=None)
def test_rendered_names_are_always_safe(shared_dir, template, prompt, model, index, ext, seed):
    assume(template.strip())
    name = render(template, prompt=prompt, index=index, ext=ext, model=model, now=NOW, seed=seed)
    _assert_safe(name, MAX_RENDERED_BYTES)
    assert (shared_dir / name).resolve().parent == shared_dir.resolve()
    path = unique_path(shared_dir, name, taken={name})
    _assert_safe(path.name, MAX_UNIQUE_BYTES)
    assert path.parent == shared_dir and path.name != name


@given(
    raw=st.text(max_size=400),
)
@settings(max_examples=200, deadline=None)
def test_safe_name_property(raw):
    _assert_safe(safe_name(raw), MAX_RENDERED_BYTES)


@given(
    template=st.sampled_from(
        [DEFAULT_TEMPLATE, "{slug}.{ext}", "out.{ext}", "{model}", "{date}-{hash}.{ext}", "CON.{ext}",
         "x" * 230 + ".{ext}"]
    ),
    prompt=st.sampled_from(["cat", "Cat", "一只猫", "x" * 300]),
    n=st.integers(min_value=1, max_value=20),
    existing=st.sets(st.integers(min_value=1, max_value=25), max_size=10),
    write=st.booleans(),
)
@settings(max_examples=100, deadline=None)
def test_one_run_never_reuses_a_name(template, prompt, n, existing, write):
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        base = render(template, prompt=prompt, index=1, ext="png", model="m", now=NOW)
        # Occupy the base name and some of its successors, with gaps, before the run starts.
        stem, ext = names._split_ext(base)
        for k in existing:
            (directory / (base if k == 1 else f"{stem}-{k}{ext}")).write_bytes(b"")
        before = set(os.listdir(directory))
        reserver = NameReserver(directory)
        chosen = []
        for i in range(1, n + 1):
            name = render(template, prompt=prompt, index=i, ext="png", model="m", now=NOW)
            path = reserver.reserve(name)
            assert path.parent == directory
            _assert_safe(path.name, MAX_UNIQUE_BYTES)
            chosen.append(path.name)
            if write:
                with open(path, "xb"):  # what the saver does: it must never find the file there
                    pass
        assert len({c.casefold() for c in chosen}) == n
        assert not before & set(chosen)


def test_a_counted_name_goes_on_counting_and_sorts(tmp_path):
    from imgen.files.names import unique_path

    for existing in ("2026-12-03-a-cat-1.png", "2026-12-03-a-cat-2.png"):
        (tmp_path / existing).write_bytes(b"x")
    assert unique_path(tmp_path, "2026-12-03-a-cat-1.png").name == "2026-12-03-a-cat-3.png"
    assert unique_path(tmp_path, "2026-12-03-a-cat-1.png", taken={"2026-12-03-a-cat-3.png"}).name == "2026-12-03-a-cat-4.png"
    (tmp_path / "shot-2026.png").write_bytes(b"x")  # a year is part of the name, not a counter
    assert unique_path(tmp_path, "shot-2026.png").name == "shot-2026-2.png"
    (tmp_path / "plain.png").write_bytes(b"x")
    assert unique_path(tmp_path, "plain.png").name == "plain-2.png"
