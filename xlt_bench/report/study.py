"""Renders a study's answer: study.md, study.html (self-contained, charts embedded), plots/ and study.json.

The first paragraph under the title is the answer (or the refusal); the supporting tables and charts follow, then
how the figures were computed and what the study could not establish.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xlt_bench.core.schema import atomic_write_bytes, atomic_write_text
from xlt_bench.report.blocks import Block, bullets, heading, para
from xlt_bench.report.html import render_html
from xlt_bench.report.markdown import render_markdown
from xlt_bench.report.plots import Chart, plt, to_png


def bar_chart(name: str, title: str, labels: list[str], values: list[float], *, ylabel: str,
              intervals: list[Any] | None = None, reference: float | None = 1.0) -> Chart:
    """One bar per label, with 95% intervals as error bars where given ([lo, hi] or None), and a reference line."""
    import numpy as np
    fig, ax = plt.subplots(figsize=(max(6.0, 0.42 * len(labels) + 2), 3.6))
    x = np.arange(len(labels))
    ax.bar(x, values, color="#2e8b57")
    if intervals:
        have = [i for i, ci in enumerate(intervals) if isinstance(ci, (list, tuple)) and len(ci) == 2]
        if have:
            lo = [max(0.0, values[i] - intervals[i][0]) for i in have]
            hi = [max(0.0, intervals[i][1] - values[i]) for i in have]
            ax.errorbar(x[have], [values[i] for i in have], yerr=[lo, hi], fmt="none", ecolor="#222", capsize=3)
    if reference is not None:
        ax.axhline(reference, color="#7f8fa6", linewidth=1, linestyle="--")
    ax.set_xticks(x, labels, rotation=60 if len(labels) > 12 else 0, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    return Chart(name, title, to_png(fig))


def scatter_chart(name: str, title: str, x: list[float], y: list[float], labels: list[str], *, xlabel: str,
                  ylabel: str, jitter: float = 0.0) -> Chart:
    """Labelled points (one per language); `jitter` spreads points that share an x (a class) apart, seeded."""
    import numpy as np
    offsets = np.random.default_rng(0).uniform(-jitter, jitter, len(x)) if jitter else np.zeros(len(x))
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    xs = np.asarray(x, dtype=float) + offsets
    ax.scatter(xs, y, color="#2e8b57", s=22)
    for xi, yi, label in zip(xs, y, labels):
        ax.annotate(label, (xi, yi), fontsize=7, xytext=(3, 2), textcoords="offset points")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    return Chart(name, title, to_png(fig))


def study_blocks(answer: Any, command: str, sources: dict[str, dict]) -> list[Block]:
    blocks = [heading(answer.title, 1), para(answer.answer),
              para(f"Command: `{command}`" + (" (quick mode: tiny models, few examples; the figures check the "
                                               "route and are not the answer)" if "--quick" in command else ""))]
    blocks += answer.blocks
    if answer.method:
        blocks += [heading("How the figures were computed"), bullets(answer.method)]
    blocks += [heading("What this study could not establish"),
               bullets(answer.limits) if answer.limits else para("Nothing beyond the intervals stated above.")]
    if sources:
        blocks += [heading("Runs analysed"), bullets([_source_line(name, cfg) for name, cfg in sources.items()])]
    return blocks


def _source_line(name: str, cfg: dict) -> str:
    keys = ("model", "tokenizer", "data", "tasks", "langs", "limit", "backends", "batching", "max_length")
    shown = ", ".join(f"{k}={_short(cfg.get(k))}" for k in keys if cfg.get(k) not in (None, [], ""))
    return f"`{name}`: {shown}"


def _short(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value)) if len(value) <= 6 else f"{','.join(map(str, value[:6]))},… ({len(value)})"
    return str(value)


def write_study(answer: Any, out_dir: Path, *, study: str, command: str, sources: dict[str, dict]) -> list[Path]:
    """Write every file of the study into out_dir, each atomically; returns their paths."""
    out_dir = Path(out_dir)
    blocks = study_blocks(answer, command, sources)
    written = []
    for name, chart in answer.charts.items():
        path = out_dir / "plots" / f"{name}.png"
        atomic_write_bytes(path, chart.png)
        written.append(path)
    doc = {"study": study, "command": command, "answer": answer.answer, "refused": answer.refused,
           "limits": answer.limits, "data": answer.data}
    atomic_write_text(out_dir / "study.json", json.dumps(doc, indent=1, default=_plain) + "\n")
    atomic_write_text(out_dir / "study.md", render_markdown(blocks))
    atomic_write_text(out_dir / "study.html", render_html(blocks, answer.charts, answer.title))
    return written + [out_dir / "study.json", out_dir / "study.md", out_dir / "study.html"]


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "__dict__"):
        return value.__dict__
    return str(value)
