"""`imgen gallery` pages in a real browser: headless Chromium (Debian package `chromium`) opens them from
file://, as a user or a CI artifact viewer would, under the page's own Content-Security-Policy.

No browser driver: the test copies the page, injects a script (allowed by adding its hash to the CSP, the
way any page with a hash policy is extended) that runs the checks after `load` and writes a JSON result
into the DOM, and reads it back from `chromium --dump-dom`. A second injected script without a hash must
not run: that shows the policy is really enforced on file://.

Run as a script to remake the screenshot in the docs:  python tests/test_gallery_browser.py docs/gallery.png
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from conftest import require_tool  # noqa: E402

pytestmark = pytest.mark.slow

HOSTILE = '</script><script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"> a hostile prompt'
HOSTILE_MODEL = '<b onmouseover="window.__pwned=3">m</b>'
HOSTILE_NAME = '<img src=x onerror=window.__pwned=4> #1 100%.png'

# Twelve cards that look like a real gallery: varied shapes, formats, models, and every source of a story.
SHOWCASE = [
    # name, size, format, source, model, prompt
    ("paper-boat-1.png", (1024, 1024), "png", "manifest", "dall-e-3", "A paper boat floating on calm water at sunrise, soft pastel light"),
    ("paper-boat-2.png", (1024, 1024), "png", "manifest", "dall-e-3", "A paper boat floating on calm water at sunrise, soft pastel light"),
    ("neon-city.png", (1536, 1024), "png", "manifest", "gpt-image-1", "Isometric neon city block at night, rain-slick streets, glowing signage"),
    ("fox-watercolour.png", (1024, 1024), "png", "embedded", "flux-pro", "Watercolour fox curled up asleep in a snowy birch forest"),
    ("hummingbird-logo.webp", (1024, 1024), "webp", "sidecar", "gpt-image-1", "Minimalist flat logo of a hummingbird, teal and coral"),
    ("dew-drop.jpg", (1024, 1536), "jpeg", "sidecar", "doubao-seedream-4-0", "Macro photograph of a dew drop on a leaf reflecting a tiny sunrise"),
    ("synthwave.png", (1792, 1024), "png", "manifest", "dall-e-3", "Retro synthwave sunset over a grid horizon with palm silhouettes"),
    ("whale-glass.webp", (1024, 1024), "webp", "embedded", "gemini-2.5-flash-image", "Stained-glass window of a whale swimming through the stars"),
    ("mountains.jpg", (1536, 1024), "jpeg", "embedded", "flux-pro",
     "Low-poly mountain landscape with a winding river in morning fog, warm light breaking over the ridges, long shadows across "
     "the valley floor, a single red cabin by the water, drawn in the style of a mid-century travel poster"),
    ("bauhaus.gif", (768, 1024), "gif", "sidecar", "qwen-image", "Abstract bauhaus poster, circles and triangles in primary colours"),
    ("lighthouse.png", (1024, 1024), "png", "parameters", "sdxl-base-1.0", "Oil painting of a lighthouse in a storm, crashing waves"),
    ("IMG_0042.png", (1024, 768), "png", "none", None, None),
]
PALETTES = [
    ("#ff9a8b", "#ff6a88", "#fbd786"), ("#0f2027", "#ff00cc", "#00e5ff"), ("#e0eafc", "#cfdef3", "#d35400"), ("#43cea2", "#185a9d", "#f7797d"),
    ("#134e5e", "#71b280", "#ffe29f"), ("#2b1055", "#d53369", "#ffcc70"), ("#ffafbd", "#ffc3a0", "#2193b0"), ("#3a1c71", "#d76d77", "#ffaf7b"),
    ("#f7971e", "#ffd200", "#1d2b64"), ("#c9d6ff", "#e2e2e2", "#e52d27"), ("#232526", "#414345", "#f2c94c"), ("#8e9eab", "#eef2f3", "#56ab2f"),
]


def art(index: int, size: tuple[int, int]):  # noqa: ANN201 - a PIL image
    """A colourful synthetic picture: a gradient and a few translucent shapes, different for each index."""
    from PIL import Image, ImageDraw

    rnd = random.Random(index)
    top, bottom, accent = PALETTES[index % len(PALETTES)]
    w, h = size
    if index % 3 == 2:
        mask = Image.radial_gradient("L").resize((w, h))
    else:
        mask = Image.linear_gradient("L").rotate(rnd.choice([0, 90, 180, 270])).resize((w, h))
    image = Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), mask)
    draw = ImageDraw.Draw(image, "RGBA")
    r, g, b = (int(accent[i:i + 2], 16) for i in (1, 3, 5))
    for _ in range(rnd.randint(4, 8)):
        x, y, s = rnd.randint(0, w), rnd.randint(0, h), rnd.randint(min(w, h) // 10, min(w, h) // 3)
        colour = (r, g, b, rnd.randint(90, 200)) if rnd.random() < 0.6 else (255, 255, 255, rnd.randint(40, 120))
        shape = rnd.choice(["ellipse", "rectangle", "polygon"])
        if shape == "polygon":
            draw.polygon([(x + rnd.randint(-s, s), y + rnd.randint(-s, s)) for _ in range(3)], fill=colour)
        else:
            getattr(draw, shape)([x - s, y - s, x + s, y + s], fill=colour)
    return image


def showcase(directory: Path, hostile: bool = True) -> dict[str, str | None]:
    """The SHOWCASE images in `directory` with their stories; name -> prompt. With `hostile`, one card's prompt,
    model and name are HTML payloads that would set window.__pwned if anything parsed them."""
    from PIL import Image, PngImagePlugin

    from imgen.batch import manifest
    from imgen.files import metadata
    from imgen.generation.provenance import parameters

    directory.mkdir(parents=True, exist_ok=True)
    records: dict[str, dict] = {}
    prompts: dict[str, str | None] = {}
    entries = list(SHOWCASE)
    if hostile:
        entries.append((HOSTILE_NAME, (512, 512), "png", "sidecar", HOSTILE_MODEL, HOSTILE))
    for index, (name, size, fmt, source, model, prompt) in enumerate(entries):
        path = directory / name
        image = art(index, size)
        created = f"2026-11-{10 + index:02d}T{8 + index % 10:02d}:{(index * 7) % 60:02d}:00+00:00"
        doc = {"imgen": "0.1.0", "format": 1, "created": created, "model": model, "prompt": prompt, "fields": {"size": f"{size[0]}x{size[1]}"}}
        if source == "parameters":
            info = PngImagePlugin.PngInfo()
            info.add_text("parameters", f"{prompt}\nNegative prompt: blurry\nSteps: 30, Sampler: Euler a, Seed: 7, Model: {model}")
            image.save(path, "PNG", pnginfo=info)
        elif source == "embedded":
            plain = directory / f".plain-{index}"
            image.save(plain, fmt.upper(), **({"quality": 88} if fmt != "png" else {}))
            metadata.embed(plain, path, fmt, doc, parameters(doc))
            plain.unlink()
        else:
            image = image.convert("P", palette=Image.Palette.ADAPTIVE) if fmt == "gif" else image
            image.save(path, fmt.upper(), **({"quality": 88} if fmt in ("jpeg", "webp") else {}))
        if source == "manifest":
            key = model + (prompt or "")
            record = records.setdefault(key, {
                "format": 1, "key": hashlib.sha256(key.encode()).hexdigest()[:16], "line": index + 1, "status": "ok",
                "finished": created, "prompt": prompt, "model": model, "request": {"size": f"{size[0]}x{size[1]}"}, "images": [],
                "cost_usd": 0.08 if model == "dall-e-3" else 0.042,
            })
            record["images"].append({"index": len(record["images"]) + 1, "path": name, "sha256": manifest.file_sha256(path),
                                     "bytes": path.stat().st_size, "format": fmt, "size": f"{size[0]}x{size[1]}"})
        elif source == "sidecar":
            manifest.write_sidecars({"key": name, "prompt": prompt, "model": model, "created": created, "cost_usd": 0.011,
                                     "images": [{"path": name, "format": fmt}]}, directory)
        # As if saved when made; the card with no story is dated by its mtime alone, the oldest of all.
        stamp = 1_700_000_000 if source == "none" else dt.datetime.fromisoformat(created).timestamp()
        os.utime(path, (stamp, stamp))
        prompts[name] = prompt
    with open(directory / manifest.MANIFEST_NAME, "wb") as fh:
        for record in records.values():
            fh.write(manifest.encode(record))
    return prompts


# --------------------------------------------------------------------------- driving Chromium


def chromium() -> str:
    return require_tool("chromium", "chromium", alternatives=("chromium-browser", "google-chrome"))


def run_chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One headless run with its own profile and HOME, so nothing of the machine's own browser is used.
    No --allow-file-access-from-files: a user's browser does not have it, and images must load without it."""
    profile, home = tmp / "chromium-profile", tmp / "chromium-home"
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / ".cache")}
    command = [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
               "--disable-background-networking", "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)


CHECKS = """
window.addEventListener("load", () => {
  const out = {};
  try {
    const imgs = Array.from(document.images);
    out.images = imgs.length;
    out.broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute("src").slice(0, 80));
    out.dataUris = imgs.filter(i => i.getAttribute("src").startsWith("data:")).length;
    out.links = Array.from(document.querySelectorAll("a.thumb")).map(a => a.href);
    out.controlsShown = !document.getElementById("controls").hidden;
    const cards = () => Array.from(document.querySelectorAll("#cards > li"));
    const visible = () => cards().filter(c => !c.hidden && c.getClientRects().length > 0).length;
    const count = () => document.getElementById("count").textContent;
    const q = document.getElementById("q"), model = document.getElementById("model"), sort = document.getElementById("sort");
    out.total = visible(); out.totalText = count();
    q.value = FILTER_WORD; q.dispatchEvent(new Event("input", {bubbles: true}));
    out.filtered = visible(); out.filteredText = count();
    q.value = ""; q.dispatchEvent(new Event("input", {bubbles: true}));
    model.value = FILTER_MODEL; model.dispatchEvent(new Event("change", {bubbles: true}));
    out.byModel = visible(); out.byModelText = count();
    out.models = Array.from(model.options).map(o => o.value);
    model.value = ""; model.dispatchEvent(new Event("change", {bubbles: true}));
    out.newestFirst = cards().map(c => c.dataset.name);
    sort.value = "name"; sort.dispatchEvent(new Event("change", {bubbles: true}));
    out.byName = cards().map(c => c.dataset.name);
    out.promptTexts = Array.from(document.querySelectorAll(".prompt")).map(p => p.textContent);
    out.modelTexts = Array.from(document.querySelectorAll("dd")).map(d => d.textContent);
    out.pwned = window.__pwned || null;
    out.unhashedRan = window.__unhashed || null;
    out.scripts = document.scripts.length;
    out.strayElements = document.querySelectorAll("#cards b, .meta img, img[src='x'], #cards script").length;
  } catch (err) { out.error = String(err && err.stack || err); }
  const pre = document.createElement("pre");
  pre.id = "imgen-test-result";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
"""


CSP_META = re.compile(r'<meta http-equiv="Content-Security-Policy" content="[^"]*script-src [^"]*">')


def check_in_browser(page: Path, tmp: Path, word: str, model: str) -> dict:
    """Copy `page` beside itself (relative links stay valid), inject CHECKS, load it, return what they found."""
    script = CHECKS.replace("FILTER_WORD", json.dumps(word)).replace("FILTER_MODEL", json.dumps(model))
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    text, policies = CSP_META.subn(lambda m: m[0].replace("script-src ", f"script-src &#x27;sha256-{digest}&#x27; "), page.read_text(encoding="utf-8"))
    assert policies == 1, "the page has no Content-Security-Policy meta where the test expects one"
    # Every image eager, so `load` waits for all of them and the checks can run at once: anything awaited
    # after `load` races the end of the virtual time budget, and the DOM may be dumped before it finishes.
    text = text.replace(' loading="lazy"', "")
    text = text.replace("</body>", f"<script>window.__unhashed = 1</script><script>{script}</script></body>")
    probe = page.with_name("browser-check.html")
    probe.write_text(text, encoding="utf-8")
    proc = run_chromium(tmp, "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="imgen-test-result">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"no result in the dumped DOM (exit {proc.returncode}); stdout: {proc.stdout[-3000:]!r}"
    result = json.loads(html.unescape(found.group(1)))
    assert "error" not in result, result["error"]
    return result


# Read at import: conftest's isolated_env removes every IMGEN_ variable before a test runs.
ARTIFACTS = os.environ.get("IMGEN_TEST_ARTIFACTS")


def artifacts(tmp_path: Path) -> Path:
    directory = Path(ARTIFACTS or tmp_path / "artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def screenshot(page: Path, target: Path, tmp: Path) -> None:
    target.unlink(missing_ok=True)
    proc = run_chromium(tmp, "--hide-scrollbars", f"--screenshot={target}", "--window-size=1280,900", page.as_uri())
    assert target.exists(), f"no screenshot (exit {proc.returncode}); stderr: {proc.stderr[-2000:]}"


def gallery(*args: str) -> subprocess.CompletedProcess[str]:
    from conftest import IMGEN

    proc = subprocess.run([IMGEN, "gallery", *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return proc


# --------------------------------------------------------------------------- the tests


def test_the_page_works_in_chromium_with_thumbnails(tmp_path):
    images = tmp_path / "images"
    prompts = showcase(images)
    gallery(str(images))
    result = check_in_browser(images / "index.html", tmp_path, "paper boat", "gpt-image-1")

    assert result["images"] == len(prompts) and result["broken"] == []
    assert result["dataUris"] == len(prompts)  # Pillow is installed: every card embeds its thumbnail
    assert result["controlsShown"]
    assert (result["total"], result["totalText"]) == (13, "13 of 13 images")
    assert (result["filtered"], result["filteredText"]) == (2, "2 of 13 images")
    assert (result["byModel"], result["byModelText"]) == (2, "2 of 13 images")
    assert result["models"][0] == "" and "dall-e-3" in result["models"] and HOSTILE_MODEL in result["models"]
    assert result["byName"] == sorted(result["newestFirst"], key=str.lower) != result["newestFirst"]
    assert result["newestFirst"][0] == HOSTILE_NAME  # the hostile card is dated last of all: newest first
    # The payloads are text: shown as written, nothing parsed, nothing run, even the unhashed script stopped.
    assert HOSTILE in result["promptTexts"] and HOSTILE_MODEL in result["modelTexts"]
    assert result["pwned"] is None and result["strayElements"] == 0
    assert result["unhashedRan"] is None, "the Content-Security-Policy is not enforced"
    assert result["scripts"] == 3  # the page's, the unhashed one, the checks
    for link in result["links"]:
        assert Path(unquote(urlsplit(link).path)).is_file(), link

    shot = artifacts(tmp_path) / "gallery-thumbnails.png"
    screenshot(images / "index.html", shot, tmp_path)
    _looks_like_a_page(shot)


def test_the_page_works_from_elsewhere_with_file_references(tmp_path):
    """--no-thumbs: the cards load the files themselves through relative file:// links, from a page in
    another folder, with names that need percent-encoding; 'self' in img-src must cover them."""
    images = tmp_path / "my images"
    showcase(images)
    sub = images / "sub dir ü"
    sub.mkdir()
    shutil.copy(images / "neon-city.png", sub / "a #b %41 ☃.png")
    page = tmp_path / "site" / "deep" / "gallery.html"
    gallery(str(images), "-r", "--no-thumbs", "-o", str(page))
    result = check_in_browser(page, tmp_path, "a #b", "dall-e-3")

    assert result["images"] == 14 and result["broken"] == [] and result["dataUris"] == 0
    assert result["filtered"] == 1
    assert result["byModel"] == 3
    assert result["pwned"] is None and result["unhashedRan"] is None and result["strayElements"] == 0
    assert sorted(Path(unquote(urlsplit(link).path)) for link in result["links"]) == sorted(
        p for p in images.rglob("*") if p.suffix in (".png", ".jpg", ".webp", ".gif"))

    shot = artifacts(tmp_path) / "gallery-references.png"
    screenshot(page, shot, tmp_path)
    _looks_like_a_page(shot)


def _looks_like_a_page(shot: Path) -> None:
    from PIL import Image

    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 30_000
    with Image.open(shot) as image:
        assert image.size == (1280, 900)
        colours = image.convert("RGB").resize((320, 225)).getcolors(1 << 16)
        assert colours is None or len(colours) > 500  # thumbnails drawn, not a blank or an error page


def main(target: str) -> None:
    """Remake the docs screenshot: the showcase without the hostile card, at 1280x900."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "renders"
        showcase(images, hostile=False)
        gallery(str(images))
        screenshot(images / "index.html", Path(target).absolute(), Path(tmp))
    print(target)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/gallery.png")
