"""Blocks -> GitHub markdown. Plots are referenced as files under plots/ next to the .md file."""

from __future__ import annotations

from xlt_bench.report.blocks import Block, markdown_table
from xlt_bench.report.toc import nested


def render_markdown(blocks: list[Block]) -> str:
    parts: list[str] = []
    for block in blocks:
        if block.kind == "heading":
            parts.append("#" * block.level + " " + block.text)
        elif block.kind == "para":
            parts.append(block.text)
        elif block.kind == "bullets":
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif block.kind == "table":
            caption = f"**{block.text}**\n\n" if block.text else ""
            parts.append(caption + markdown_table(block.table))
        elif block.kind == "plot":
            parts.append(f"![{block.text}](plots/{block.plot}.png)")
        elif block.kind == "toc":
            parts.append(_toc(block))
    return "\n\n".join(parts) + "\n"


def _toc(block: Block) -> str:
    lines = [f"**{block.text}**", ""]
    for _, text, anchor, children in nested(block.entries):
        lines.append(f"- {_link(text, anchor)}")
        lines.extend(f"  - {_link(child, child_anchor)}" for _, child, child_anchor in children)
    return "\n".join(lines)


def _link(text: str, anchor: str) -> str:
    return "[" + text.replace("[", "\\[").replace("]", "\\]") + f"](#{anchor})"
