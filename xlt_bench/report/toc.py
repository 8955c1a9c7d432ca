"""A table of contents for a report: every section heading gets an anchor, and a toc block listing them goes
right under the title.

Anchors follow the rule GitHub uses for markdown headings (lower case, punctuation dropped, spaces to hyphens, a
repeated heading numbered -1, -2, ...), so the same links work in report.md on GitHub and in report.html, where
the headings carry these anchors as ids."""

from __future__ import annotations

import re

from xlt_bench.report.blocks import Block

TOC_LEVELS = (2, 3)


def slug(text: str) -> str:
    """GitHub's anchor for a heading's text: lower case, characters other than letters, digits, '_', '-' and
    spaces dropped, spaces turned into hyphens."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchor_headings(blocks: list[Block]) -> None:
    """Give every heading its unique anchor; a repeat of an earlier one gets -1, -2, ... as GitHub numbers them."""
    seen: set[str] = set()
    for block in blocks:
        if block.kind != "heading":
            continue
        base = anchor = slug(block.text)
        count = 0
        while anchor in seen:
            count += 1
            anchor = f"{base}-{count}"
        seen.add(anchor)
        block.anchor = anchor


def with_toc(blocks: list[Block]) -> list[Block]:
    """The blocks with anchored headings and a contents block after the first level-1 heading (or first of all)."""
    blocks = list(blocks)
    anchor_headings(blocks)
    entries = [(b.level, b.text, b.anchor) for b in blocks if b.kind == "heading" and b.level in TOC_LEVELS]
    if not entries:
        return blocks
    title = next((i for i, b in enumerate(blocks) if b.kind == "heading" and b.level == 1), -1)
    return blocks[:title + 1] + [Block("toc", text="Contents", entries=entries)] + blocks[title + 1:]


def nested(entries: list[tuple[int, str, str]]) -> list[tuple[int, str, str, list[tuple[int, str, str]]]]:
    """Top-level entries, each with the deeper entries that follow it (before the next top-level one)."""
    top = min(level for level, _, _ in entries)
    out: list[tuple[int, str, str, list[tuple[int, str, str]]]] = []
    for level, text, anchor in entries:
        if level == top or not out:
            out.append((level, text, anchor, []))
        else:
            out[-1][3].append((level, text, anchor))
    return out
