"""The report as one self-contained HTML page: sections (recipes.report_section) as escaped
HTML, their charts as Plotly figures drawn by plotly.js inlined once, a table of contents,
and a filter box over each section's examples. Nothing is fetched when the page is viewed."""

from __future__ import annotations

import html
from collections.abc import Sequence

import orjson

from benchsmith.recipes.report_section import Block, Section, Table
from benchsmith.report.charts import CONFIG, figure

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#222}
header{background:#1f3a5f;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;opacity:.85}
nav{padding:8px 24px;background:#eef2f7;border-bottom:1px solid #d5dde8}
nav a{margin-right:14px;color:#1f3a5f;text-decoration:none}
main{padding:0 24px 40px;max-width:1300px}
section{margin-top:28px}h2{border-bottom:2px solid #1f3a5f;padding-bottom:4px}
table{border-collapse:collapse;margin:10px 0 16px;font-size:13px}
caption{text-align:left;font-weight:600;padding:4px 0}
th,td{border:1px solid #d5dde8;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eef2f7}td.n{text-align:right;font-variant-numeric:tabular-nums}
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{flex:1 1 560px;min-width:420px}
details{border:1px solid #d5dde8;border-radius:4px;margin:4px 0;padding:2px 8px}
summary{cursor:pointer}pre{white-space:pre-wrap;word-break:break-word;font-size:12px;
background:#f7f9fb;padding:8px;max-height:420px;overflow:auto}
input.filter{margin:6px 0;padding:4px 8px;width:320px}
"""

# Draws every figure, and filters each section's examples by the text typed.
SCRIPT = """
(function(){
  var figs = JSON.parse(document.getElementById('figures').textContent);
  figs.forEach(function(f){ Plotly.newPlot(f.id, f.data, f.layout, f.config); });
  document.querySelectorAll('input.filter').forEach(function(box){
    box.addEventListener('input', function(){
      var want = box.value.toLowerCase();
      box.parentNode.querySelectorAll('details').forEach(function(d){
        d.style.display = d.textContent.toLowerCase().indexOf(want) >= 0 ? '' : 'none';
      });
    });
  });
})();
"""


def _e(v: object) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def _table(t: Table) -> str:
    out = ["<table>"]
    if t.caption:
        out.append(f"<caption>{_e(t.caption)}</caption>")
    out.append("<tr>" + "".join(f"<th>{_e(c)}</th>" for c in t.columns) + "</tr>")
    for row in t.rows:
        cells = []
        for v in row:
            num = isinstance(v, (int, float)) and not isinstance(v, bool)
            shown = f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else v
            cells.append(f"<td class=\"n\">{_e(shown)}</td>" if num else f"<td>{_e(shown)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    if not t.rows:
        out.append(f"<tr><td colspan=\"{len(t.columns)}\">(none)</td></tr>")
    out.append("</table>")
    return "".join(out)


def _block(b: Block) -> str:
    return f"<details><summary>{_e(b.summary)}</summary><pre>{_e(b.body)}</pre></details>"


def _json_for_script(obj: object) -> str:
    """JSON safe inside a <script> element: no `<`, `>` or `&` that could end it."""
    text = orjson.dumps(obj).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(title: str, subtitle: str, sections: Sequence[Section], plotly_js: str) -> str:
    """The whole page."""
    figs, body, nav = [], [], []
    for i, s in enumerate(sections):
        sid = f"s{i}"
        nav.append(f"<a href=\"#{sid}\">{_e(s.title)}</a>")
        part = [f"<section id=\"{sid}\"><h2>{_e(s.title)}</h2>"]
        if s.text:
            part.append(f"<p>{_e(s.text)}</p>")
        if s.charts:
            part.append("<div class=\"charts\">")
            for chart in s.charts:
                cid = f"chart{len(figs)}"
                part.append(f"<div class=\"chart\" id=\"{cid}\"></div>")
                figs.append({"id": cid, **figure(chart), "config": CONFIG})
            part.append("</div>")
        part.extend(_table(t) for t in s.tables)
        if s.blocks:
            part.append("<div class=\"blocks\"><input class=\"filter\" type=\"search\" "
                        "placeholder=\"filter these examples\" aria-label=\"filter\">")
            part.extend(_block(b) for b in s.blocks)
            part.append("</div>")
        part.append("</section>")
        body.append("".join(part))
    return "".join([
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        f"<title>{_e(title)}</title><style>{CSS}</style>",
        f"<script>{plotly_js}</script></head><body>",
        f"<header><h1>{_e(title)}</h1><p>{_e(subtitle)}</p></header>",
        f"<nav>{''.join(nav)}</nav><main>{''.join(body)}</main>",
        f"<script type=\"application/json\" id=\"figures\">{_json_for_script(figs)}</script>",
        f"<script>{SCRIPT}</script></body></html>",
    ])
