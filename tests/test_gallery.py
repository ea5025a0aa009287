"""`imgen gallery DIR`: which files make the sheet, what each card says and where it got it, escaping,
links relative to the page, thumbnails, the atomic write, and the CLI's streams and exit codes.

Real files throughout (Pillow encodes them; imgen's own writers make the manifests, sidecars and embedded
records), and the installed `imgen` as a subprocess for the CLI. The page in a real browser is
test_gallery_browser.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import os
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit
from urllib.request import url2pathname

import pytest
from PIL import Image, PngImagePlugin

from conftest import IMGEN
from imgen.batch import manifest
from imgen.files import metadata
from imgen.gallery import build, collect, page, write_page
from imgen.gallery.collect import parse_parameters
from imgen.generation.provenance import parameters


def png(path: Path, size: tuple[int, int] = (64, 48), colour: str = "red", fmt: str = "PNG", **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, fmt, **save)
    return path


def embedded(path: Path, fmt: str, record: dict, size: tuple[int, int] = (40, 30)) -> Path:
    plain = png(path.with_name(".plain"), size, "blue", fmt.upper())
    metadata.embed(plain, path, fmt, record, parameters(record))
    plain.unlink()
    return path


def record(key: str, prompt: str, model: str, finished: str, files: list[Path], root: Path, **extra) -> dict:
    """A manifest line shaped as batch.manifest.build_record writes one."""
    return {
        "format": 1, "key": key, "line": 1, "status": "ok", "finished": finished, "elapsed": 1.0, "prompt": prompt, "model": model,
        "dialect": "openai", "base_url": "https://api.example.invalid/v1", "request": {"size": "64x48"},
        "images": [{"index": i + 1, "path": os.path.relpath(f, root), "sha256": manifest.file_sha256(f), "bytes": f.stat().st_size,
                    "format": "png", "size": "64x48"} for i, f in enumerate(files)],
        **extra,
    }


def write_manifest(directory: Path, *records: dict) -> None:
    with open(directory / manifest.MANIFEST_NAME, "ab") as fh:
        for r in records:
            fh.write(manifest.encode(r))


def run(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([IMGEN, "gallery", *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def run_json(*args: str, **kw) -> dict:
    proc = run(*args, "--json", **kw)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def by_name(found) -> dict:
    return {e.name: e for e in found.entries}


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text, as a browser's tokenizer sees them."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag]


# --------------------------------------------------------------------------- what each card says


@pytest.fixture
def stories(tmp_path) -> Path:
    """One folder with an image for each source of a story, and some files that are not images."""
    d = tmp_path / "imgs"
    m1, m2 = png(d / "m1.png", colour="red"), png(d / "m2.png", colour="green")
    both = png(d / "both.png", colour="navy")
    replaced = png(d / "replaced.png", colour="olive")
    write_manifest(
        d,
        record("old", "an old prompt", "dall-e-2", "2026-11-01T09:00:00+00:00", [m1], d),
        record("job", "a lighthouse at dusk", "dall-e-3", "2026-11-20T10:00:00+00:00", [m1, m2], d, cost_usd=0.08, cost_note="billed"),
        {"format": 1, "key": "job", "status": "failed", "finished": "2026-11-21T10:00:00+00:00", "prompt": "a failed retry", "images": []},
        record("both", "the manifest's prompt", "gpt-image-1", "2026-11-19T10:00:00+00:00", [both], d, cost_usd=0.011),
        record("replaced", "the file it used to be", "dall-e-3", "2026-11-18T10:00:00+00:00", [replaced], d),
    )
    png(replaced, size=(65, 48), colour="olive")  # overwritten since: the manifest's record is of another file
    for name in ("both.png", "replaced.png", "s.png"):
        if name == "s.png":
            png(d / name, colour="purple")
        prompt = "the sidecar's prompt" if name != "s.png" else "a fox in snow"
        manifest.write_sidecars({"key": name, "prompt": prompt, "model": "flux-pro", "created": 1763000000, "cost_usd": 0.02,
                                 "images": [{"path": name, "format": "png"}]}, d)
    embedded(d / "e.png", "png", {"imgen": "0.1.0", "format": 1, "created": "2026-11-15T08:30:00+00:00", "model": "gemini-2.5-flash-image",
                                  "prompt": "a stained-glass whale", "fields": {"size": "1024x1024"}, "seed": 7})
    embedded(d / "e.jpg", "jpeg", {"imgen": "0.1.0", "format": 1, "created": "2026-11-14T08:30:00Z", "model": "flux-pro",
                                   "prompt": "a watercolour owl", "fields": {}})
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "an oil painting of a harbour,\nstormy sky\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, Model: sdxl-base")
    Image.new("RGB", (30, 20), "teal").save(d / "p.png", pnginfo=info)
    os.utime(png(d / "n.png", size=(10, 12)), (1_700_000_000, 1_700_000_000))
    png(d / "photo.jpg", size=(11, 13))  # a PNG, whatever its name says
    (d / "fake.png").write_text("not an image")
    (d / "notes.txt").write_text("hello")
    return d


def test_each_card_tells_the_story_from_the_best_source(stories):
    found = collect.collect(stories)
    cards = by_name(found)
    assert sorted(cards) == ["both.png", "e.jpg", "e.png", "m1.png", "m2.png", "n.png", "p.png", "photo.jpg", "replaced.png", "s.png"]

    m1 = cards["m1.png"]  # the latest ok record of the job, not the older one nor the failed retry
    assert (m1.prompt, m1.model, m1.source) == ("a lighthouse at dusk", "dall-e-3", "manifest")
    assert m1.date == dt.datetime(2026, 11, 20, 10, tzinfo=dt.timezone.utc) and m1.dated_by == "manifest"
    assert (m1.cost_usd, m1.cost_shared_by) == (0.08, 2)
    assert (m1.width, m1.height, m1.format) == (64, 48, "png")
    assert cards["m2.png"].prompt == "a lighthouse at dusk"

    assert (cards["both.png"].prompt, cards["both.png"].model, cards["both.png"].cost_usd) == ("the manifest's prompt", "gpt-image-1", 0.011)
    replaced = cards["replaced.png"]  # its size no longer matches the manifest's record: the sidecar speaks
    assert (replaced.prompt, replaced.source, replaced.width) == ("the sidecar's prompt", "sidecar", 65)

    s = cards["s.png"]
    assert (s.prompt, s.model, s.source, s.cost_usd) == ("a fox in snow", "flux-pro", "sidecar", 0.02)
    assert s.date == dt.datetime.fromtimestamp(1763000000, dt.timezone.utc)  # an API's `created`: Unix seconds

    e = cards["e.png"]
    assert (e.prompt, e.model, e.source, e.cost_usd) == ("a stained-glass whale", "gemini-2.5-flash-image", "embedded", None)
    assert e.date == dt.datetime(2026, 11, 15, 8, 30, tzinfo=dt.timezone.utc)
    assert (cards["e.jpg"].prompt, cards["e.jpg"].format, cards["e.jpg"].width) == ("a watercolour owl", "jpeg", 40)

    p = cards["p.png"]
    assert (p.prompt, p.model, p.source, p.dated_by) == ("an oil painting of a harbour,\nstormy sky", "sdxl-base", "parameters", "mtime")

    n = cards["n.png"]
    assert (n.prompt, n.model, n.source, n.cost_usd) == (None, None, None, None)
    assert (n.date, n.dated_by) == (dt.datetime.fromtimestamp(1_700_000_000, dt.timezone.utc), "mtime")
    assert cards["photo.jpg"].format == "png"

    dates = [c.date for c in found.entries]
    assert dates == sorted(dates, reverse=True)  # newest first


def test_the_cards_show_it(stories, tmp_path):
    proc = run(str(stories), "--no-thumbs")
    assert proc.returncode == 0, proc.stderr
    text = (stories / "index.html").read_text(encoding="utf-8")
    card = next(c for c in text.split("<li ")[1:] if 'data-name="m1.png"' in c)
    assert "a lighthouse at dusk" in card and "dall-e-3" in card and "64×48" in card
    assert '<time datetime="2026-11-20T10:00:00+00:00">2026-11-20 10:00</time>' in card
    assert 'title="$0.08 for the job’s 2 images">$0.04</span>' in card  # each image's share of the job's cost
    bare = next(c for c in text.split("<li ")[1:] if 'data-name="n.png"' in c)
    assert "no prompt recorded" in bare and "<dt>Cost</dt><dd>—</dd>" in bare and "<dt>Model</dt><dd>—</dd>" in bare
    assert 'alt="image n.png"' in bare
    options = [a.get("value") for a in Tags(text).all("option")]
    assert options == ["", "dall-e-3", "flux-pro", "gemini-2.5-flash-image", "gpt-image-1", "sdxl-base", "date", "name"]
    assert '<p id="count" role="status" aria-live="polite">10 of 10 images</p>' in text


def test_the_latest_record_of_a_file_wins_whichever_job_wrote_it(tmp_path):
    d = tmp_path / "d"
    a = png(d / "a.png")
    write_manifest(
        d,
        record("first", "run 1", "m", "2026-11-20T10:00:00+00:00", [a], d),
        record("second", "run 2", "m", "2026-11-20T11:00:00+00:00", [a], d),
        record("first", "run 3", "m", "2026-11-20T12:00:00+00:00", [a], d),  # the first job again, later: its key comes first in read()
    )
    assert collect.collect(d).entries[0].prompt == "run 3"


def test_a_damaged_manifest_is_read_around_and_named_without_its_absolute_path(tmp_path):
    d = tmp_path / "d"
    a = png(d / "a.png")
    (d / manifest.MANIFEST_NAME).write_bytes(b"{not json\n")
    write_manifest(d, record("k", "still read", "m", "2026-11-20T10:00:00+00:00", [a], d))
    proc = run(str(d))
    assert proc.returncode == 0 and "gallery: imgen-manifest.jsonl line 1 is not a manifest record; ignored" in proc.stderr
    text = (d / "index.html").read_text(encoding="utf-8")
    assert "still read" in text and "imgen-manifest.jsonl line 1 is not a manifest record" in text and str(tmp_path) not in text


def test_a_long_prompt_is_shortened_with_the_whole_of_it_one_click_away(tmp_path):
    d = tmp_path / "d"
    long = "a very long prompt " * 20 + "THE END"
    manifest.write_sidecars({"key": "k", "prompt": long, "model": "m", "images": [{"path": "a.png"}]}, png(d / "a.png").parent)
    text = (Path(run_json(str(d))["page"])).read_text(encoding="utf-8")
    summary = text.split("<summary", 1)[1].split("</summary>", 1)[0]
    assert "THE END" not in summary.split(">", 1)[1] and summary.endswith("…")
    assert f'<div class="full">{long}</div></details>' in text
    alt = Tags(text).all("img")[0]["alt"]
    assert len(alt) <= page.ALT_SHORT and alt.endswith("…")


def test_parameters_text_gives_a_prompt_and_model():
    assert parse_parameters("a cat\nNegative prompt: dogs\nSteps: 20, Sampler: Euler a, Seed: 1, Model: sd15") == ("a cat", "sd15")
    assert parse_parameters(parameters({"prompt": "two\nlines", "model": "dall-e-3", "fields": {"size": "1x1"}, "seed": 3})) == (
        "two\nlines", "dall-e-3")
    assert parse_parameters("just a prompt") == ("just a prompt", None)
    assert parse_parameters("Steps: 20, Model: x") == (None, "x")


# --------------------------------------------------------------------------- which files


def test_records_naming_files_outside_the_folder_are_ignored(tmp_path):
    outside = tmp_path / "outside"
    evil = png(outside / "evil.png", colour="black")
    d = tmp_path / "d"
    good = png(d / "a.png")
    (d / "link").symlink_to(outside, target_is_directory=True)
    write_manifest(
        d,
        record("x1", "EVIL-1", "m", "2026-11-20T10:00:00+00:00", [evil], d),  # ../outside/evil.png
        {**record("x2", "EVIL-2", "m", "2026-11-20T10:00:00+00:00", [evil], d), "images": [{"path": str(evil), "bytes": 1}]},
        {**record("x3", "EVIL-3", "m", "2026-11-20T10:00:00+00:00", [evil], d), "images": [{"path": "link/evil.png"}]},
        {**record("ok", "a good prompt", "m", "2026-11-20T10:00:00+00:00", [good], d), "images": [{"path": "sub/../a.png"}]},
    )
    found = collect.collect(d, recursive=True)
    assert [(e.name, e.prompt) for e in found.entries] == [("a.png", "a good prompt")]
    assert any("2 record(s) name files outside the folder" in n for n in found.notes)
    doc = run_json(str(d), "-r")
    assert [e["name"] for e in doc["entries"]] == ["a.png"]
    assert "EVIL" not in (d / "index.html").read_text(encoding="utf-8") and "evil.png" not in (d / "index.html").read_text(encoding="utf-8")


def test_links_fifos_and_hidden_files_are_skipped(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    png(elsewhere / "secret.png")
    d = tmp_path / "d"
    png(d / "real.png")
    png(d / "sub" / "deep.png")
    (d / "linked.png").symlink_to(elsewhere / "secret.png")
    (d / "linked-dir").symlink_to(elsewhere, target_is_directory=True)
    (d / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    os.mkfifo(d / "pipe.png")  # opening it for reading would block for ever
    png(d / ".hidden.png")
    png(d / ".imgen-gallery-x.html.part")
    manifest.write_sidecars({"key": "k", "prompt": "p", "images": [{"path": "real.png"}]}, d)
    (d / "real.png.json").rename(elsewhere / "real.png.json")
    (d / "real.png.json").symlink_to(elsewhere / "real.png.json")  # a sidecar through a link is not read either

    proc = run(str(d), "-r", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert sorted(e["name"] for e in doc["entries"]) == ["real.png", "sub/deep.png"]
    assert doc["skipped_links"] == 4 and doc["entries"][0]["prompt"] is None
    assert "gallery: skipped 4 symbolic links: links are never followed" in proc.stderr
    assert "secret" not in (d / "index.html").read_text(encoding="utf-8")


def test_subfolders_only_with_recursive(tmp_path):
    d = tmp_path / "d"
    png(d / "top.png")
    png(d / "a" / "b" / "deep.png")
    assert [e["name"] for e in run_json(str(d))["entries"]] == ["top.png"]
    assert sorted(e["name"] for e in run_json(str(d), "--recursive")["entries"]) == ["a/b/deep.png", "top.png"]


def test_the_walk_is_capped(tmp_path, monkeypatch):
    d = tmp_path / "d"
    for i in range(5):
        png(d / f"{i}.png")
    (d / "x.txt").write_text("x")
    monkeypatch.setattr(collect, "MAX_IMAGES", 3)
    found = collect.collect(d)
    assert sorted(e.name for e in found.entries) == ["0.png", "1.png", "2.png"]  # the first names: the same ones every run
    assert found.notes == ["only the first 3 images are shown"]
    monkeypatch.setattr(collect, "MAX_FILES", 2)
    found = collect.collect(d)
    assert len(found.entries) == 2 and found.notes == ["stopped looking after 2 files; the rest are not shown"]


# --------------------------------------------------------------------------- the HTML


HOSTILE_PROMPTS = ["</script><script>alert(1)</script>", "<img src=x onerror=alert(1)>", "\" onmouseover=\"alert(1)", "' autofocus onfocus='alert(1)"]


def test_hostile_text_stays_text(tmp_path):
    d = tmp_path / "d"
    for i, prompt in enumerate(HOSTILE_PROMPTS):
        name = ['"><img src=x onerror=alert(2)>.png', "javascript:alert(1).png", "a&amp;b.png", "<b>.png"][i]
        manifest.write_sidecars({"key": name, "prompt": prompt, "model": f'"><svg onload=alert({i})>', "images": [{"path": name}]},
                                png(d / name).parent)
    for thumbs in ([], ["--no-thumbs"]):
        text = Path(run_json(str(d), *thumbs)["page"]).read_text(encoding="utf-8")
        for raw in ("<script>alert", "<img src=x", "<svg", "<b>", 'onmouseover="alert', "onfocus='alert"):
            assert raw not in text
        tags = Tags(text)
        assert len(tags.all("script")) == 1
        assert {t for t, _ in tags.tags} <= {"html", "head", "meta", "title", "style", "body", "header", "main", "h1", "p", "div", "label", "input",
                                              "select", "option", "ul", "li", "a", "img", "dl", "dt", "dd", "time", "span", "details",
                                              "summary", "script"}
        assert not [(t, k) for t, attrs in tags.tags for k in attrs if k.startswith("on") or k in ("autofocus", "srcdoc", "formaction")]
        cards = tags.all("li")
        assert sorted(c["data-prompt"] for c in cards) == sorted(HOSTILE_PROMPTS)  # exact, once unescaped: the script gets the real text
        assert {c["data-name"] for c in cards} == {'"><img src=x onerror=alert(2)>.png', "javascript:alert(1).png", "a&amp;b.png", "<b>.png"}
        shown = "".join(tags.text)
        assert all(p in shown for p in HOSTILE_PROMPTS)
        for url in [a["href"] for a in tags.all("a")] + [i["src"] for i in tags.all("img")]:
            scheme = urlsplit(url).scheme
            assert scheme == "" or url.startswith("data:image/"), url  # `javascript:alert(1).png` is a file, not a scheme
        assert "javascript%3Aalert%281%29.png" in [a["href"] for a in tags.all("a")]


def test_the_page_is_self_contained_and_accessible(stories):
    text = Path(run_json(str(stories))["page"]).read_text(encoding="utf-8")
    outside_thumbnails = re.sub(r'src="data:image/webp;base64,[A-Za-z0-9+/=]+"', "", text)
    assert "//" not in outside_thumbnails  # no URL with a host anywhere: nothing to fetch
    tags = Tags(text)
    assert tags.all("html")[0]["lang"] == "en" and {"charset": "utf-8"} in tags.all("meta")
    csp = next(m["content"] for m in tags.all("meta") if m.get("http-equiv") == "Content-Security-Policy")
    script_hash = base64.b64encode(hashlib.sha256(text.split("<script>", 1)[1].split("</script>", 1)[0].encode()).digest()).decode()
    assert csp == (f"default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'; "
                   "base-uri 'none'; form-action 'none'")
    assert not tags.all("link") and all(not i.get("src", "").startswith("//") for i in tags.all("img"))
    assert all(i["alt"] for i in tags.all("img")) and all(a.get("href") for a in tags.all("a"))
    assert tags.all("input")[0]["id"] == "q" and all(t in text for t in ("<label>Filter <input", "<label>Model <select", "<label>Sort <select"))


# --------------------------------------------------------------------------- links and thumbnails


NAMES = ["a b.png", "x#y.png", "100%.png", "ünï ☃.png", "q?.png", "sub dir/z;1.png"]


def test_links_are_relative_to_the_page_and_percent_encoded(tmp_path):
    d = tmp_path / "my imgs"
    for name in NAMES:
        png(d / name)
    site = tmp_path / "site" / "deep"
    doc = run_json(str(d), "-r", "--no-thumbs", "-o", str(site / "page.html"))
    assert doc["page"] == str(site / "page.html")
    text = (site / "page.html").read_text(encoding="utf-8")
    tags = Tags(text)
    hrefs = {a["href"] for a in tags.all("a")}
    assert hrefs == {e["href"] for e in doc["entries"]} == {i["src"] for i in tags.all("img")}
    assert "../../my%20imgs/x%23y.png" in hrefs and "../../my%20imgs/sub%20dir/z%3B1.png" in hrefs
    for entry in doc["entries"]:
        url = urljoin((site / "page.html").as_uri(), entry["href"])  # as a browser resolves it
        assert Path(url2pathname(urlsplit(url).path)) == d / entry["name"]
    inside = run_json(str(d), "-r", "--no-thumbs")
    assert sorted(unquote(e["href"]) for e in inside["entries"]) == sorted(NAMES)  # beside the images: no ../ at all


def test_thumbnails_are_embedded_unless_no_thumbs(tmp_path):
    d = tmp_path / "d"
    png(d / "wide.png", size=(1000, 500))
    png(d / "photo.jpg", size=(300, 600), fmt="JPEG")
    full = io.BytesIO()
    Image.new("RGB", (200, 200), "red").save(full, "PNG")
    (d / "broken.png").write_bytes(full.getvalue()[:60])  # a sound header, cut short: Pillow cannot decode it

    text = Path(run_json(str(d))["page"]).read_text(encoding="utf-8")
    imgs = {i["alt"]: i for i in Tags(text).all("img")}
    wide = imgs["image wide.png"]
    assert wide["src"].startswith("data:image/webp;base64,") and "loading" not in wide
    with Image.open(io.BytesIO(base64.b64decode(wide["src"].split(",", 1)[1]))) as thumb:
        assert thumb.size == (256, 128) == (int(wide["width"]), int(wide["height"]))
    assert (imgs["image photo.jpg"]["width"], imgs["image photo.jpg"]["height"]) == ("128", "256")
    broken = imgs["image broken.png"]  # falls back to the file itself
    assert (broken["src"], broken["width"], broken["height"]) == ("broken.png", "200", "200")

    doc = run_json(str(d), "--no-thumbs")
    assert doc["thumbnails"] == 0
    imgs = {i["alt"]: i for i in Tags(Path(doc["page"]).read_text(encoding="utf-8")).all("img")}
    assert (imgs["image wide.png"]["src"], imgs["image wide.png"]["width"], imgs["image wide.png"]["height"]) == ("wide.png", "1000", "500")
    assert all(not i["src"].startswith("data:") for i in imgs.values())


def test_images_too_large_to_decode_are_referenced(tmp_path, monkeypatch):
    from imgen.gallery import thumbs

    d = tmp_path / "d"
    png(d / "big.png", size=(20, 20))
    png(d / "small.png", size=(5, 5))
    monkeypatch.setattr(thumbs, "MAX_PIXELS", 100)
    built = build(d, thumbs=True)
    srcs = {i["alt"]: i["src"] for i in Tags(built.page.read_text(encoding="utf-8")).all("img")}
    assert srcs["image big.png"] == "big.png" and srcs["image small.png"].startswith("data:") and built.thumbnails == 1


def test_the_first_screenful_loads_at_once_and_the_rest_lazily(tmp_path, monkeypatch):
    d = tmp_path / "d"
    for i in range(page.EAGER + 3):
        png(d / f"{i:03d}.png", size=(4, 4))
    imgs = Tags(Path(run_json(str(d), "--no-thumbs")["page"]).read_text(encoding="utf-8")).all("img")
    assert ["loading" in i for i in imgs] == [False] * page.EAGER + [True] * 3


def test_without_pillow_the_cards_show_the_files(tmp_path):
    blocker = tmp_path / "no-pillow"
    blocker.mkdir()
    (blocker / "PIL.py").write_text("raise ImportError('Pillow is not installed here')\n")
    d = tmp_path / "d"
    png(d / "a.png")
    proc = run(str(d), env={"PYTHONPATH": str(blocker)})
    assert proc.returncode == 0, proc.stderr
    assert "thumbnails need Pillow (pip install 'imgen[preview]')" in proc.stderr
    assert Tags((d / "index.html").read_text(encoding="utf-8")).all("img")[0]["src"] == "a.png"
    assert "Pillow" not in run(str(d), "--no-thumbs", env={"PYTHONPATH": str(blocker)}).stderr  # asked for no thumbnails: nothing missing


# --------------------------------------------------------------------------- writing and the CLI


def test_stdout_has_the_path_and_stderr_the_summary(stories):
    proc = run(str(stories))
    assert proc.returncode == 0
    assert proc.stdout == f"{stories / 'index.html'}\n"
    assert proc.stderr == f"gallery: 10 images, 8 with prompts → {stories / 'index.html'}\n"
    quiet = run(str(stories), "-q")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, f"{stories / 'index.html'}\n", "")
    doc = json.loads(run(str(stories), "--json").stdout)
    assert (doc["page"], doc["images"], doc["with_prompts"], doc["thumbnails"]) == (str(stories / "index.html"), 10, 8, 10)


def test_a_relative_folder_gives_a_relative_path(stories):
    proc = run("imgs", "-q", cwd=stories.parent)
    assert proc.stdout == "imgs/index.html\n" and (stories / "index.html").is_file()


def test_the_page_replaces_the_old_one_atomically(tmp_path):
    d = tmp_path / "d"
    png(d / "a.png")
    (d / "index.html").write_text("old page")
    before = (d / "index.html").stat().st_ino
    assert run(str(d)).returncode == 0
    after = (d / "index.html").stat()
    assert after.st_ino != before  # renamed over, never rewritten in place
    assert after.st_mode & 0o777 == 0o644  # readable by the web server that publishes it
    assert sorted(p.name for p in d.iterdir()) == ["a.png", "index.html"]  # no temporary file left


def test_a_failed_write_leaves_the_old_page(tmp_path, monkeypatch):
    from imgen.files.writer import WriteError

    target = tmp_path / "index.html"
    target.write_text("old page")

    def refuse(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(WriteError, match="No space left on device"):
        write_page(target, ["new ", "page"])
    assert target.read_text() == "old page" and sorted(p.name for p in tmp_path.iterdir()) == ["index.html"]


def test_usage_errors(tmp_path):
    d = tmp_path / "d"
    image = png(d / "a.png")
    cases = [
        ([str(tmp_path / "missing")], "no such directory"),
        ([str(image)], "not a directory"),
        ([str(d), "-o", str(tmp_path)], "is a directory"),
        ([str(d), "-o", str(image)], "is an image; the page would replace it"),
    ]
    (tmp_path / "target.html").write_text("keep me")
    (tmp_path / "link.html").symlink_to(tmp_path / "target.html")
    cases.append(([str(d), "-o", str(tmp_path / "link.html")], "is a symbolic link"))
    for args, message in cases:
        proc = run(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr and proc.stderr.startswith("imgen: error: ") and "  hint: " in proc.stderr
        assert proc.stdout == ""
    assert (tmp_path / "target.html").read_text() == "keep me" and image.stat().st_size > 0 and not (d / "index.html").exists()
    (d / "index.html").symlink_to(tmp_path / "target.html")  # the default page too
    assert run(str(d)).returncode == 2 and (tmp_path / "target.html").read_text() == "keep me"


def test_a_folder_without_images_gets_a_page_saying_so(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    (d / "readme.txt").write_text("no pictures here")
    proc = run(str(d))
    assert proc.returncode == 0 and proc.stdout == f"{d / 'index.html'}\n"
    assert proc.stderr == f"gallery: no images in {d} → {d / 'index.html'}\n"
    text = (d / "index.html").read_text(encoding="utf-8")
    assert "No images found in empty." in text and "<li" not in text


def test_the_page_can_go_elsewhere_and_its_folder_is_made(tmp_path):
    d = tmp_path / "d"
    png(d / "a.png")
    target = tmp_path / "new" / "deeper" / "g.html"
    proc = run(str(d), "-o", str(target))
    assert proc.returncode == 0 and proc.stdout == f"{target}\n" and target.is_file() and not (d / "index.html").exists()


def test_build_in_process(stories, tmp_path):
    built = build(stories, tmp_path / "out.html", thumbs=False)
    assert built.page == tmp_path / "out.html" and built.with_prompts == 8 and built.thumbnails == 0
    assert built.document("x")["entries"][0]["href"].startswith("imgs/")


def test_help_stays_light():
    from test_startup import imports

    for args in (["gallery", "--help"], ["--help"]):
        found, stdout = imports(*args)
        assert "Usage" in stdout
        assert not {name for _, name in found} & {"PIL", "httpx", "rich.progress", "imgen.gallery"}, args
