"""Charts for report.html and plots/*.png (matplotlib, Agg). Each says with a reason when its data is missing."""

from __future__ import annotations

import io
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from xlt_bench.core.schema import ALL_LANGS  # noqa: E402
from xlt_bench.batching.strategies import colour_of  # noqa: E402
from xlt_bench.report import tables  # noqa: E402

TASK_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
GROUPINGS = ("resource_class", "family", "script")


@dataclass
class Chart:
    name: str
    title: str
    png: bytes


class NoData(Exception):
    """Raised by a chart function when the run's data cannot support the chart; the message says why."""


def to_png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _tasks_with_primary(df: pd.DataFrame) -> tuple[list[str], str, str]:
    backend, dtype = tables.primary_config(df)
    tasks = [t for t in tables.ordered(df["task"]) if (backend, dtype) in tables.backend_dtypes(df, t)
             and tables.languages(df[df["task"] == t])]
    if not tasks:
        raise NoData("no per-language rows")
    return tasks, backend, dtype


def _per_language_bars(df: pd.DataFrame, column: str, ylabel: str, title: str, scale: float = 1.0):
    tasks, backend, dtype = _tasks_with_primary(df)
    fig, axes = plt.subplots(len(tasks), 1, figsize=(11, 3.2 * len(tasks)), squeeze=False)
    for ax, task in zip(axes[:, 0], tasks):
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
        ax.set_title(f"{task.upper()} — {backend} {dtype}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, title="batching", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
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
    return _per_language_bars(df, "tok_s", "useful tokens / s", "Useful throughput per language, static vs dynamic")


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


def speedup_chart(per_lang: pd.DataFrame):
    data = per_lang.dropna(subset=["speedup", "mean_tokens"]) if not per_lang.empty else per_lang
    if len(data) < 2:
        raise NoData("needs two batchings and at least two languages")
    fig, ax = plt.subplots(figsize=(11, 5.5))
    for i, (task, sub) in enumerate(data.groupby("task", sort=False)):
        ax.scatter(sub["mean_tokens"], sub["speedup"], marker=TASK_MARKERS[i % len(TASK_MARKERS)], s=40,
                   label=task.upper())
        if "speedup_lo" in sub and sub["speedup_lo"].notna().any():   # 95% intervals of the paired passes
            below = (sub["speedup"] - sub["speedup_lo"]).fillna(0).clip(lower=0)
            above = (sub["speedup_hi"] - sub["speedup"]).fillna(0).clip(lower=0)
            ax.errorbar(sub["mean_tokens"], sub["speedup"], yerr=np.vstack([below, above]), fmt="none",
                        ecolor="grey", elinewidth=0.8, capsize=2)
        for _, row in sub.iterrows():
            ax.annotate(row["lang"], (row["mean_tokens"], row["speedup"]), textcoords="offset points",
                        xytext=(4, 3), fontsize=8)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("mean tokens per sequence")
    ax.set_ylabel("speedup (dynamic ÷ static useful tok/s, ×; bars: 95% CI)")
    ax.set_title(f"Dynamic-batching speedup vs sequence length — {per_lang.attrs['backend']} "
                 f"{per_lang.attrs['dtype']} (labels: language codes)")
    ax.grid(alpha=0.3)
    ax.legend(title="task")
    return fig


def _quality_points(df: pd.DataFrame, task: str) -> tuple[pd.DataFrame, str]:
    sub = df[(df["task"] == task) & (df["lang"] == ALL_LANGS)]
    metric = "accuracy" if sub["accuracy"].notna().any() else "agreement"
    return sub.dropna(subset=[metric, "throughput_tok_s"]), metric


def quality_chart(df: pd.DataFrame):
    panels = [(t, *_quality_points(df, t)) for t in tables.ordered(df["task"])]
    panels = [p for p in panels if len(p[1]) >= 2]
    if not panels:
        raise NoData("needs accuracy or agreement for at least two configurations of a task")
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


def groupings_chart(per_lang: pd.DataFrame, group_of):
    if group_of is None:
        raise NoData("language metadata (xlt_bench.core.languages) is not available")
    frames = {by: tables.grouping_table(per_lang, by, group_of) for by in GROUPINGS}
    frames = {by: f for by, f in frames.items() if len(f) >= 2}
    if not frames:
        raise NoData("the run's languages fall in fewer than two groups")
    fig, axes = plt.subplots(2, len(frames), figsize=(5 * len(frames), 7), squeeze=False)
    for col, (by, frame) in enumerate(frames.items()):
        top, bottom = axes[0, col], axes[1, col]
        top.bar(frame.index, frame["mean_tokens"], color="#4c72b0")
        top.set_ylabel("mean tokens per sequence")
        top.set_title(by.replace("_", " "), fontsize=10)
        bottom.bar(frame.index, frame["speedup"], color="#2e8b57")
        bottom.axhline(1.0, color="grey", lw=0.8, ls="--")
        bottom.set_ylabel("speedup (dynamic ÷ static, ×)")
        for ax in (top, bottom):
            ax.tick_params(axis="x", labelsize=8)
            plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
            ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"Language groups: tokens per sequence and speedup ({per_lang.attrs['backend']} "
                 f"{per_lang.attrs['dtype']}, mean over languages)")
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
    "throughput_per_language": ("Useful tok/s per language, static vs dynamic", lambda c: throughput_chart(c["df"])),
    "padding_waste_per_language": ("Padding waste per language", lambda c: waste_chart(c["df"])),
    "speedup_vs_length": ("Speedup vs mean token length", lambda c: speedup_chart(c["per_lang"])),
    "latency_distribution": ("Latency distribution per configuration", lambda c: latency_chart(c["df"])),
    "quality_vs_throughput": ("Accuracy/agreement vs throughput, Pareto frontier",
                              lambda c: quality_chart(c["df"])),
    "groupings": ("Language groups", lambda c: groupings_chart(c["per_lang"], c["group_of"])),
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
