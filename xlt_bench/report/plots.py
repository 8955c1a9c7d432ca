"""Charts for report.html and plots/*.png (matplotlib, Agg). Each says with a reason when its data is missing."""

from __future__ import annotations

import matplotlib.ticker
import numpy as np
import pandas as pd

from xlt_bench.core.schema import ALL_LANGS
from xlt_bench.batching.strategies import colour_of
from xlt_bench.report import tables
# Chart, NoData, plt and to_png are imported from here by other modules (study charts): keep them importable.
from xlt_bench.report.figure import TASK_MARKERS, Chart, NoData, config_label, plt, to_png  # noqa: F401
from xlt_bench.report.plots_configs import groupings_chart, prediction_chart, speedup_chart


def _language_panels(df: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(task, backend, dtype) of every per-language table of the run, in report order."""
    panels = [(task, backend, dtype) for task in tables.ordered(df["task"])
              for backend, dtype in tables.backend_dtypes(df, task)
              if tables.languages(df[(df["task"] == task) & (df["backend"] == backend) & (df["dtype"] == dtype)])]
    if not panels:
        raise NoData("no per-language rows")
    return panels


def _per_language_bars(df: pd.DataFrame, column: str, ylabel: str, title: str, scale: float = 1.0):
    """One panel per task × backend/dtype (sharing the value axis so backends compare by eye), a bar per batching."""
    panels = _language_panels(df)
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3.2 * len(panels)), squeeze=False, sharey=True)
    for ax, (task, backend, dtype) in zip(axes[:, 0], panels):
        table = tables.language_table(df, task, backend, dtype).drop(index=ALL_LANGS, errors="ignore")
        batchings = table.attrs["batchings"]
        x = np.arange(len(table))
        width = 0.8 / len(batchings)
        for i, b in enumerate(batchings):
            values = table[f"{column}:{b}"] * scale
            ax.bar(x + (i - (len(batchings) - 1) / 2) * width, values, width, label=b, color=colour_of(b),
                   yerr=_error_bars(table, column, b, values, scale), capsize=2)
        ax.set_xticks(x, table.index)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{task.upper()} — {config_label(backend, dtype)}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, title="batching", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.yaxis.set_tick_params(labelleft=True)
    axes[-1, 0].set_xlabel("language (ISO code)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _error_bars(table: pd.DataFrame, column: str, batching: str, values: pd.Series, scale: float):
    """95% interval as matplotlib's (below, above) distances, where the table has one for this column."""
    if f"{column}_lo:{batching}" not in table:
        return None
    lo, hi = table[f"{column}_lo:{batching}"] * scale, table[f"{column}_hi:{batching}"] * scale
    if lo.isna().all():
        return None
    return np.vstack([(values - lo).fillna(0).clip(lower=0), (hi - values).fillna(0).clip(lower=0)])


def throughput_chart(df: pd.DataFrame):
    return _per_language_bars(df, "tok_s", "useful tokens / s", "Useful throughput per language and batching, one "
                              "panel per task × backend/dtype")


def waste_chart(df: pd.DataFrame):
    fig = _per_language_bars(df, "waste", "padding waste (%)", "Padding waste per language (share of executed "
                             "tokens that are padding)", scale=100.0)
    for ax in fig.axes:
        ax.set_ylim(0, 100)
    return fig


def latency_chart(df: pd.DataFrame):
    samples = {task: tables.latency_samples(df, task) for task in tables.ordered(df["task"])}
    samples = {t: s for t, s in samples.items() if s}
    if not samples:
        raise NoData("no per-batch latencies (latencies_ms) in the rows")
    height = 0.5 * sum(len(s) for s in samples.values()) + 1.6 * len(samples)
    fig, axes = plt.subplots(len(samples), 1, figsize=(11, height), squeeze=False)
    for ax, (task, by_config) in zip(axes[:, 0], samples.items()):
        labels = list(by_config)
        box = ax.boxplot([by_config[k] for k in labels], vert=False, patch_artist=True, widths=0.6)
        for patch, label in zip(box["boxes"], labels):
            patch.set_facecolor(colour_of(label.split()[-1]) or "#cccccc")
        ax.set_yticks(range(1, len(labels) + 1), labels)
        values = np.concatenate([by_config[k] for k in labels])
        wide = values.min() > 0 and values.max() / values.min() > 20
        if wide:  # batches of very different sizes: a log axis keeps the short ones visible
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel("per-batch latency (ms" + (", log scale)" if wide else ")"))
        ax.set_title(f"{task.upper()} (one box per backend, dtype, batching)", fontsize=10)
        ax.grid(axis="x", alpha=0.3, which="both")
    fig.suptitle("Latency distribution per configuration (all timed batches)")
    fig.tight_layout()
    return fig


def _quality_points(df: pd.DataFrame, task: str) -> tuple[pd.DataFrame, str]:
    sub = df[(df["task"] == task) & (df["lang"] == ALL_LANGS)]
    metric = "accuracy" if sub["accuracy"].notna().any() else "agreement"
    return sub.dropna(subset=[metric, "throughput_tok_s"]), metric


def flat_agreement_reason(panels: list[tuple[str, pd.DataFrame, str]], random_weights: bool) -> str | None:
    """Why the quality chart says nothing, when it would plot agreement only and every point is 100%: all points
    on one horizontal line, no trade-off to see. None when the chart has something to show."""
    if any(metric != "agreement" for _, _, metric in panels):
        return None
    agreement = pd.concat([points["agreement"] for _, points, _ in panels])
    if not (agreement >= 1.0).all():
        return None
    cause = "the model has random weights (no accuracy)" if random_weights else "the run has no accuracy"
    return (f"{cause} and every configuration agrees 100% with the reference, so every point would sit on one "
            "line; the configuration table above has the throughputs")


def quality_chart(df: pd.DataFrame, random_weights: bool = False):
    panels = [(t, *_quality_points(df, t)) for t in tables.ordered(df["task"])]
    panels = [p for p in panels if len(p[1]) >= 2]
    if not panels:
        raise NoData("needs accuracy or agreement for at least two configurations of a task")
    flat = flat_agreement_reason(panels, random_weights)
    if flat:
        raise NoData(flat)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.8), squeeze=False)
    for ax, (task, points, metric) in zip(axes[0], panels):
        failed = (points["parity_ok"] == False).to_numpy()  # noqa: E712
        x, y = points["throughput_tok_s"].to_numpy(), 100 * points[metric].to_numpy()
        frontier = np.zeros(len(x), dtype=bool)
        frontier[~failed] = tables.pareto_mask(x[~failed], y[~failed])
        ax.scatter(x[~failed], y[~failed], c="#1f77b4", s=40, label="configuration")
        ax.scatter(x[frontier], y[frontier], s=140, facecolors="none", edgecolors="#ff7f0e", linewidths=1.5,
                   label="Pareto frontier")
        if failed.any():
            ax.scatter(x[failed], y[failed], c="#d62728", marker="x", s=60, label="parity failed (not ranked)")
        order = np.argsort(x[frontier])
        ax.plot(x[frontier][order], y[frontier][order], color="#ff7f0e", lw=1.5)
        labels = (points["backend"] + " " + points["dtype"] + " " + points["batching"]).tolist()
        for rank, i in enumerate(np.argsort(x)):  # alternate above/below along x so neighbours' labels overlap less
            ax.annotate(labels[i], (x[i], y[i]), textcoords="offset points", xytext=(4, 7 if rank % 2 == 0 else -12),
                        fontsize=7)
        ax.margins(x=0.15, y=0.15)
        ax.set_xlabel("useful tokens / s (all languages)")
        ax.set_ylabel(f"{metric} (%)")
        ax.set_title(f"{task.upper()}: {metric} vs throughput", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Quality vs throughput over backend × dtype × batching")
    fig.tight_layout()
    return fig


def alignment_chart(pairs: dict[str, pd.DataFrame]):
    if not pairs:
        raise NoData("needs accuracy and embedding alignment for at least three languages")
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, (task, frame) in enumerate(pairs.items()):
        ax.scatter(frame["alignment_cosine"], 100 * frame["accuracy"], marker=TASK_MARKERS[i % len(TASK_MARKERS)],
                   label=task.upper())
        for _, row in frame.iterrows():
            ax.annotate(row["lang"], (row["alignment_cosine"], 100 * row["accuracy"]), textcoords="offset points",
                        xytext=(4, 3), fontsize=8)
    ax.set_xlabel("alignment with English (mean cosine of sentence embeddings)")
    ax.set_ylabel("task accuracy (%)")
    ax.set_title("Cross-lingual alignment vs accuracy per language")
    ax.grid(alpha=0.3)
    ax.legend(title="task")
    return fig


# name -> (title, drawing function taking a context dict)
CHARTS = {
    "throughput_per_language": ("Useful tok/s per language and batching, per backend/dtype",
                                lambda c: throughput_chart(c["df"])),
    "padding_waste_per_language": ("Padding waste per language, per backend/dtype", lambda c: waste_chart(c["df"])),
    "speedup_vs_length": ("Speedup vs mean token length, per backend/dtype",
                          lambda c: speedup_chart(c["per_lang_by_config"])),
    "predicted_vs_measured": ("Measured speedup vs prediction (cost model)",
                              lambda c: prediction_chart(c["predictions"])),
    "latency_distribution": ("Latency distribution per configuration", lambda c: latency_chart(c["df"])),
    "quality_vs_throughput": ("Accuracy/agreement vs throughput, Pareto frontier",
                              lambda c: quality_chart(c["df"], c.get("random_weights", False))),
    "groupings": ("Language groups", lambda c: groupings_chart(c["per_lang_by_config"], c["group_of"])),
    "alignment_vs_accuracy": ("Alignment vs accuracy", lambda c: alignment_chart(c["pairs"])),
}


def draw_all(context: dict) -> tuple[dict[str, Chart], dict[str, str]]:
    """Every chart the data supports, and for the others the reason they were skipped."""
    charts: dict[str, Chart] = {}
    skipped: dict[str, str] = {}
    for name, (title, draw) in CHARTS.items():
        try:
            charts[name] = Chart(name, title, to_png(draw(context)))
        except NoData as why:
            skipped[name] = str(why)
        finally:
            plt.close("all")
    return charts, skipped
