"""The contact sheet as one self-contained HTML document.

Every prompt, model and file name is someone else's text (a user's prompt, a server's model id, a
name on disk), so each one goes through html.escape in text and attributes alike, and the script
gets its data only from data-* attributes, never from a <script> block. The Content-Security-Policy
backs that up: the one inline script runs by its hash, so an injected <script> or on* handler would
not run even if escaping failed; images come only from the page's own origin (Chromium counts every
file: URL as 'self' for a file:// page) or data: URIs; nothing else loads at all.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from html import escape
from pathlib import Path
from urllib.parse import quote

from .. import __version__
from .assets import CSS, SCRIPT
from .collect import Entry
from .thumbs import Thumb

PROMPT_SHORT = 140  # characters of a prompt on the card; the whole of it is one click away
ALT_SHORT = 125  # screen readers read alt text in one breath: keep it to a sentence
EAGER = 20  # cards whose file loads at once, about a screenful; the rest load as they scroll into view

SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
CSP = (f"default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'sha256-{SCRIPT_HASH}'; "
       "base-uri 'none'; form-action 'none'")


def e(text: object) -> str:
    return escape(str(text), quote=True)


def href(path: Path, page_dir: Path) -> str:
    """`path` relative to the page's folder, each segment percent-encoded: a name holding `#`, `%`, `?`
    or a `:` (which would read as a URL scheme, `javascript:` included) stays a file name."""
    try:
        rel = Path(os.path.relpath(path, page_dir))
    except ValueError:  # another drive (Windows): no relative path exists
        return path.as_uri()
    return "/".join(quote(part, safe="") for part in rel.parts)


def shorten(text: str, width: int) -> str:
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    cut = flat[: width - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > width // 2 else cut).rstrip() + "…"


def money(usd: float) -> str:
    text = f"{usd:.4f}".rstrip("0")
    return "$" + (text + "0" * max(0, 2 - len(text.split(".")[1])))


def render(entries: Sequence[Entry], thumbs: Iterable[Thumb | None], page: Path, title: str, notes: Sequence[str] = ()) -> Iterator[str]:
    """The page at `page` (absolute) in pieces, one card at a time: with 20,000 cards and their thumbnails
    the whole of it in one string would cost hundreds of MiB. Links are relative to the page's folder."""
    page_dir = page.parent
    total = len(entries)
    made = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    yield "\n".join([
        "<!doctype html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{e(CSP)}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="imgen gallery">',
        f"<title>{e(title)} · imgen gallery</title>",
        f"<style>\n{CSS}</style>",
        "</head>",
        "<body>",
        f'<header><h1>{e(title)}</h1><p class="sub">{total} image{"" if total == 1 else "s"} · made {made} by imgen {e(__version__)}</p></header>',
        "<main>\n",
    ])
    if entries:
        models = sorted({en.model for en in entries if en.model}, key=str.lower)
        options = "".join(f'<option value="{e(m)}">{e(m)}</option>' for m in models)
        yield "\n".join([
            '<div class="controls" id="controls" hidden>',
            '<label>Filter <input id="q" type="search" placeholder="prompt, model or file name" autocomplete="off" spellcheck="false"></label>',
            f'<label>Model <select id="model"><option value="">All models</option>{options}</select></label>',
            '<label>Sort <select id="sort"><option value="date">Newest first</option><option value="name">Name</option></select></label>',
            "</div>",
            f'<p id="count" role="status" aria-live="polite">{total} of {total} images</p>',
            '<ul class="cards" id="cards">\n',
        ])
        for i, (en, th) in enumerate(zip(entries, thumbs)):
            yield _card(en, th, page_dir, lazy=i >= EAGER) + "\n"
        yield "</ul>\n"
    else:
        yield f'<p class="empty">No images found in {e(title)}.</p>\n'
    if notes:
        yield '<ul class="notes">' + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>\n"
    yield f"</main>\n<script>{SCRIPT}</script>\n</body>\n</html>\n"


def _card(en: Entry, thumb: Thumb | None, page_dir: Path, lazy: bool) -> str:
    link = href(en.path, page_dir)
    alt = shorten(en.prompt, ALT_SHORT) if en.prompt else f"image {en.name}"
    if thumb is not None:
        img = f'<img src="{e(thumb.uri)}" alt="{e(alt)}" width="{thumb.width}" height="{thumb.height}">'
    else:
        size = f' width="{en.width}" height="{en.height}"' if en.width and en.height else ""
        defer = ' loading="lazy"' if lazy else ""
        img = f'<img src="{e(link)}" alt="{e(alt)}"{size}{defer} decoding="async">'
    date = en.date or dt.datetime.fromtimestamp(en.mtime, dt.timezone.utc)
    data = {"prompt": en.prompt or "", "model": en.model or "", "name": en.name, "date": int(date.timestamp())}
    attrs = " ".join(f'data-{k}="{e(v)}"' for k, v in data.items())
    return (
        f'<li class="card" {attrs}>'
        f'<a class="thumb" href="{e(link)}">{img}</a>'
        f'<div class="meta">{_prompt(en.prompt)}<dl>'
        f"<dt>Model</dt><dd>{e(en.model) if en.model else '—'}</dd>"
        f"<dt>Size</dt><dd>{f'{en.width}×{en.height}' if en.width and en.height else '—'}</dd>"
        f'<dt>Date</dt><dd><time datetime="{e(date.isoformat())}">{e(date.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"))}</time></dd>'
        f"<dt>Cost</dt><dd>{_cost(en)}</dd>"
        f'</dl><p class="name" title="{e(en.name)}">{e(en.name)}</p></div></li>'
    )


def _prompt(prompt: str | None) -> str:
    if not prompt:
        return '<p class="prompt none">no prompt recorded</p>'
    if len(" ".join(prompt.split())) <= PROMPT_SHORT:
        return f'<p class="prompt">{e(prompt)}</p>'
    short = shorten(prompt, PROMPT_SHORT)
    return f'<details class="prompt"><summary title="{e(prompt)}">{e(short)}</summary><div class="full">{e(prompt)}</div></details>'


def _cost(en: Entry) -> str:
    if en.cost_usd is None:
        return "—"
    if en.cost_shared_by > 1:
        share = en.cost_usd / en.cost_shared_by
        return f'<span title="{e(f"{money(en.cost_usd)} for the job’s {en.cost_shared_by} images")}">{e(money(share))}</span>'
    return e(money(en.cost_usd))
