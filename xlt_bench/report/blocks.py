"""Report content as a flat list of blocks, rendered to markdown or HTML; number formatting shared by both."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

MISSING = "—"


@dataclass
class Block:
    kind: str  # heading | para | bullets | table | plot | toc
    text: str = ""
    level: int = 2
    items: list[str] = field(default_factory=list)
    table: pd.DataFrame | None = None  # already formatted: every cell a string
    plot: str = ""  # plot name; the plot's file is plots/<name>.png
    anchor: str = ""  # a heading's link target (toc.py sets it, the same one GitHub derives from the text)
    entries: list[tuple[int, str, str]] = field(default_factory=list)  # toc: (level, text, anchor) per heading


def heading(text: str, level: int = 2) -> Block:
    return Block("heading", text=text, level=level)


def para(text: str) -> Block:
    return Block("para", text=text)


def bullets(items: list[str]) -> Block:
    return Block("bullets", items=list(items))


def table(frame: pd.DataFrame, caption: str = "") -> Block:
    return Block("table", table=frame, text=caption)


def plot(name: str, title: str) -> Block:
    return Block("plot", plot=name, text=title)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def num(value, digits: int = 0) -> str:
    """Grouped thousands: 12,345 (or 12,345.6 with digits=1)."""
    return MISSING if _missing(value) else f"{value:,.{digits}f}"


def sig(value, digits: int = 3) -> str:
    """A few significant figures, for latencies and seconds that range over orders of magnitude."""
    if _missing(value):
        return MISSING
    if value == 0:
        return "0"
    if abs(value) >= 10 ** digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def pct(value, digits: int = 1) -> str:
    return MISSING if _missing(value) else f"{100 * value:.{digits}f}%"


def times(value, digits: int = 2) -> str:
    return MISSING if _missing(value) else f"{value:.{digits}f}×"


def times_ci(value, lo, hi, digits: int = 2) -> str:
    """A ratio with its 95% interval: '1.92× [1.85, 2.01]' (the ratio alone where there is no interval)."""
    if _missing(value):
        return MISSING
    return times(value, digits) + ("" if _missing(lo) or _missing(hi) else f" [{lo:.{digits}f}, {hi:.{digits}f}]")


def num_ci(value, lo, hi, digits: int = 0) -> str:
    """A rate with its 95% interval: '12,345 [12,001, 12,702]'."""
    if _missing(value):
        return MISSING
    return num(value, digits) + ("" if _missing(lo) or _missing(hi) else f" [{num(lo, digits)}, {num(hi, digits)}]")


def sci(value) -> str:
    return MISSING if _missing(value) else f"{value:.1e}"


def markdown_table(frame: pd.DataFrame) -> str:
    """GitHub markdown from a frame of strings (no tabulate dependency); numbers right-aligned."""
    headers = [str(c) for c in frame.columns]
    body = [[_cell(v) for v in row] for row in frame.itertuples(index=False)]
    numeric = [all(_looks_numeric(r[i]) for r in body) and body for i in range(len(headers))]
    align = ["---:" if n else ":---" for n in numeric]
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _looks_numeric(text: str) -> bool:
    stripped = text.replace(",", "").replace("%", "").replace("×", "").replace("**", "").strip()
    if stripped == MISSING:
        return True
    try:
        float(stripped)
    except ValueError:
        return False
    return True
