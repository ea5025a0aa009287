"""The page's inline style and script. The script reads only `data-*` attributes and sets only
`hidden`, `textContent` and the order of the cards: no text it handles is ever parsed as HTML."""

from __future__ import annotations

CSS = """\
:root{color-scheme:light dark;--bg:#f4f4f6;--card:#fff;--ink:#1d1d22;--muted:#60606c;--line:#d9d9e0;--well:#e6e6ec;--focus:#1a5fd0}
@media (prefers-color-scheme:dark){:root{--bg:#141418;--card:#202027;--ink:#ececf1;--muted:#a4a4b0;--line:#34343e;--well:#2a2a32;--focus:#7fb0ff}}
*{box-sizing:border-box}
body{margin:0;padding:1.25rem;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--ink)}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:.4rem 1.5rem;margin-bottom:1rem}
h1{font-size:1.35rem;margin:0}
.sub{color:var(--muted);margin:0}
.controls{display:flex;flex-wrap:wrap;gap:.6rem 1.2rem;align-items:center;margin:0 0 .6rem}
.controls label{display:flex;gap:.4rem;align-items:center}
input,select{font:inherit;color:inherit;background:var(--card);border:1px solid var(--line);border-radius:6px;padding:.3rem .5rem}
input[type=search]{min-width:18rem}
select{max-width:16rem}
#count{color:var(--muted);margin:0 0 1rem}
[hidden]{display:none!important}
.cards{list-style:none;margin:0;padding:0;display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:1rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;overflow:hidden;display:flex;flex-direction:column}
.thumb{display:block;position:relative;aspect-ratio:1;background:var(--well)}
.thumb img{position:absolute;inset:0;width:100%;height:100%;object-fit:contain}
a:focus-visible,summary:focus-visible,input:focus-visible,select:focus-visible{outline:3px solid var(--focus);outline-offset:2px}
.meta{padding:.6rem .75rem .75rem;display:flex;flex-direction:column;gap:.35rem;min-width:0}
.prompt{margin:0;overflow-wrap:anywhere}
.prompt summary{cursor:pointer}
.prompt .full{white-space:pre-wrap;margin-top:.3rem}
.prompt[open] summary{color:var(--muted)}
.none{color:var(--muted);font-style:italic}
dl{display:grid;grid-template-columns:auto 1fr;gap:.1rem .6rem;margin:0;font-size:.86em}
dt{color:var(--muted)}
dd{margin:0;overflow-wrap:anywhere}
.name{margin:0;font-size:.86em;color:var(--muted);overflow-wrap:anywhere;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.empty,.notes{color:var(--muted)}
"""

SCRIPT = """\
(() => {
  const list = document.getElementById("cards");
  if (!list) return;
  const cards = Array.from(list.children);
  const q = document.getElementById("q"), model = document.getElementById("model"), sort = document.getElementById("sort");
  const count = document.getElementById("count");
  const text = new Map(cards.map(c => [c, [c.dataset.prompt, c.dataset.model, c.dataset.name].join("\\n").toLowerCase()]));
  const byName = (a, b) => a.dataset.name.localeCompare(b.dataset.name);
  const byDate = (a, b) => Number(b.dataset.date) - Number(a.dataset.date) || byName(a, b);
  let order = "date";
  function update() {
    if (sort.value !== order) {
      order = sort.value;
      for (const c of cards.slice().sort(order === "name" ? byName : byDate)) list.appendChild(c);
    }
    const words = q.value.toLowerCase().split(/\\s+/).filter(Boolean), wanted = model.value;
    let shown = 0;
    for (const c of cards) {
      const hay = text.get(c);
      const ok = words.every(w => hay.includes(w)) && (!wanted || c.dataset.model === wanted);
      c.hidden = !ok;
      shown += ok;
    }
    count.textContent = shown + " of " + cards.length + " images";
  }
  q.addEventListener("input", update);
  model.addEventListener("change", update);
  sort.addEventListener("change", update);
  document.getElementById("controls").hidden = false;
  update();
})();
"""
