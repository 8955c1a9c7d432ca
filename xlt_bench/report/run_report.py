"""Assemble one run's report: compute frames, draw charts, lay out blocks, render md and html in memory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from xlt_bench.report import plots, sections, tables
from xlt_bench.report.blocks import Block
from xlt_bench.report.group_report import grouping_section
from xlt_bench.report.html import render_html
from xlt_bench.report.markdown import render_markdown
from xlt_bench.report.shared_partition import shared_partition_section
from xlt_bench.report.toc import with_toc


@dataclass
class RenderedReport:
    markdown: str
    html: str
    charts: dict[str, plots.Chart]
    skipped_charts: dict[str, str]


def load_group_of() -> Callable[[str, str], str | None]:
    """The grouping function reports use (xlt_bench.core.languages.group_of)."""
    from xlt_bench.core.languages import group_of
    return group_of


def correlate(x: list[float], y: list[float]) -> dict[str, Any]:
    """Pearson and Spearman across languages (xlt_bench.results.task_scores.correlation)."""
    from xlt_bench.results.task_scores import correlation
    return correlation(x, y)


def has_random_weights(doc: dict[str, Any]) -> bool:
    """Whether the run's model is a preset: a published architecture with seeded random weights, no accuracy."""
    from xlt_bench.backends.model_source import PRESETS
    return str(doc.get("run", {}).get("config", {}).get("model")) in PRESETS


def build_context(doc: dict[str, Any]) -> dict[str, Any]:
    df = tables.rows_frame(doc)
    if df.empty:
        raise ValueError("the results document has no rows to report")
    per_lang = tables.per_language_frame(df)
    return {"df": df, "per_lang": per_lang, "per_lang_by_config": tables.per_language_frames(df),
            "predictions": tables.prediction_points(df), "pairs": tables.alignment_pairs(per_lang),
            "group_of": load_group_of(), "random_weights": has_random_weights(doc)}


def layout(doc: dict[str, Any], ctx: dict[str, Any], charts: dict, skipped: dict) -> list[Block]:
    df = ctx["df"]

    def chart(name: str) -> Block:
        return sections.chart_block(name, charts, skipped, plots.CHARTS[name][0])

    return [
        *sections.run_header(doc),
        *sections.per_language_section(df, [chart("throughput_per_language"), chart("padding_waste_per_language"),
                                            chart("speedup_vs_length"), chart("predicted_vs_measured"),
                                            *sections.prediction_summary(ctx["predictions"])]),
        *sections.config_section(df, doc),
        *shared_partition_section(df),
        chart("latency_distribution"), chart("quality_vs_throughput"),
        *sections.quality_section(df, doc),
        *grouping_section(ctx["per_lang_by_config"], ctx["group_of"]), chart("groupings"),
        *sections.correlation_section(ctx["pairs"], correlate), chart("alignment_vs_accuracy"),
        *sections.skipped_and_notes(df, doc),
    ]


def build_run_report(doc: dict[str, Any]) -> RenderedReport:
    from xlt_bench.report.server_report import is_server_run, server_blocks
    title = f"xlt-bench report — {doc.get('run', {}).get('id', 'run')}"
    if is_server_run(doc):
        blocks, charts = server_blocks(doc)
        blocks = with_toc([*sections.run_header(doc), *blocks])
        return RenderedReport(render_markdown(blocks), render_html(blocks, charts, title), charts, {})
    ctx = build_context(doc)
    charts, skipped = plots.draw_all(ctx)
    blocks = with_toc(layout(doc, ctx, charts, skipped))
    return RenderedReport(render_markdown(blocks), render_html(blocks, charts, title), charts, skipped)
