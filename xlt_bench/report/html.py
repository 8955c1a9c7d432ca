"""Blocks -> one self-contained HTML page: inline CSS, plots embedded as base64 PNG, no network needed."""

from __future__ import annotations

import base64
import html
import re

from xlt_bench.report.blocks import Block
from xlt_bench.report.figure import Chart
from xlt_bench.report.toc import nested

STYLE = """
body { font-family: -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 2em auto;
       max-width: 1280px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 1px solid #eee; padding-bottom: .2em; }
h3 { font-size: 1.1em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: .4em 0 1.4em; font-size: .85em; }
caption { text-align: left; font-weight: 600; padding: .3em 0; }
th, td { border: 1px solid #ddd; padding: .25em .55em; white-space: nowrap; }
th { background: #f4f6f8; white-space: normal; vertical-align: bottom; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafbfc; }
.failed { color: #b00020; font-weight: 600; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #555; }
code { background: #f3f3f3; padding: 0 .25em; border-radius: 3px; }
.scroll { overflow-x: auto; }
nav.toc { background: #f8f9fa; border: 1px solid #e3e6e8; padding: .5em 1.2em; display: inline-block; }
nav.toc ul { margin: .2em 0; padding-left: 1.2em; }
"""


def inline(text: str) -> str:
    """Escape, then the little markdown our blocks use: **bold**, `code`, _italic_."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"`(.+?)`", r"<code>\1</code>", out)
    return re.sub(r"(?<!\w)_(.+?)_(?!\w)", r"<em>\1</em>", out)


def _table(block: Block) -> str:
    frame = block.table
    head = "".join(f"<th>{inline(str(c))}</th>" for c in frame.columns)
    rows = []
    for row in frame.itertuples(index=False):
        cells = []
        for value in row:
            text = str(value)
            cls = "failed" if "FAILED" in text else ("num" if _numeric(text) else "")
            cells.append(f'<td class="{cls}">{inline(text)}</td>' if cls else f"<td>{inline(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    caption = f"<caption>{inline(block.text)}</caption>" if block.text else ""
    return (f'<div class="scroll"><table>{caption}<thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def _numeric(text: str) -> bool:
    return bool(re.fullmatch(r"[\d,.\-+e×%—–/ Δ()†]+", text.replace("**", ""))) and any(c.isdigit() for c in text)


def _figure(block: Block, charts: dict[str, Chart]) -> str:
    chart = charts[block.plot]
    data = base64.b64encode(chart.png).decode("ascii")
    return (f'<figure id="plot-{block.plot}" data-plot="{block.plot}"><img alt="{html.escape(chart.title)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{html.escape(chart.title)}</figcaption></figure>')


def _toc(block: Block) -> str:
    def link(text: str, anchor: str) -> str:
        return f'<a href="#{html.escape(anchor)}">{inline(text)}</a>'

    items = []
    for _, text, anchor, children in nested(block.entries):
        inner = "".join(f"<li>{link(t, a)}</li>" for _, t, a in children)
        items.append(f"<li>{link(text, anchor)}" + (f"<ul>{inner}</ul>" if inner else "") + "</li>")
    return f'<nav class="toc"><strong>{inline(block.text)}</strong><ul>{"".join(items)}</ul></nav>'


def render_html(blocks: list[Block], charts: dict[str, Chart], title: str) -> str:
    body: list[str] = []
    for block in blocks:
        if block.kind == "heading":
            anchor = f' id="{html.escape(block.anchor)}"' if block.anchor else ""
            body.append(f"<h{block.level}{anchor}>{inline(block.text)}</h{block.level}>")
        elif block.kind == "para":
            body.append(f"<p>{inline(block.text)}</p>")
        elif block.kind == "bullets":
            body.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in block.items) + "</ul>")
        elif block.kind == "table":
            body.append(_table(block))
        elif block.kind == "plot":
            body.append(_figure(block, charts))
        elif block.kind == "toc":
            body.append(_toc(block))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
