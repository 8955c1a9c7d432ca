"""Charts with one series per backend/dtype: speedup vs length, measured vs predicted speedup, language groups."""

from __future__ import annotations

import numpy as np
import pandas as pd

from xlt_bench.core.schema import ALL_LANGS
from xlt_bench.report import tables
from xlt_bench.report.figure import TASK_MARKERS, NoData, config_label, plt, series_colour

GROUPINGS = ("resource_class", "family", "script")


def _interval_errors(values: pd.Series, lo: pd.Series, hi: pd.Series) -> np.ndarray | None:
    """matplotlib's (below, above) distances of [lo, hi] around values; None where there is no interval at all."""
    if lo.isna().all():
        return None
    return np.vstack([(values - lo).fillna(0).clip(lower=0).to_numpy(),
                      (hi - values).fillna(0).clip(lower=0).to_numpy()])


def _ratio_names(frames) -> str:
    """'dynamic ÷ static' (or several, joined) from the frames' headline and base batchings."""
    names = dict.fromkeys(f"{o} ÷ {b}" for f in frames for o, b in zip(f["other"], f["base"]) if isinstance(o, str))
    return ", ".join(names) or "speedup"


def speedup_chart(frames: dict[tuple[str, str], pd.DataFrame]):
    """Headline speedup per language against its mean length, one colour per backend/dtype, one marker per task."""
    data = {c: f.dropna(subset=["speedup", "mean_tokens"]) for c, f in frames.items()}
    data = {c: f for c, f in data.items() if len(f)}
    if sum(len(f) for f in data.values()) < 2:
        raise NoData("needs two batchings and at least two languages")
    tasks = list(dict.fromkeys(t for f in data.values() for t in f["task"]))
    fig, ax = plt.subplots(figsize=(11, 5.5))
    for index, ((backend, dtype), frame) in enumerate(data.items()):
        colour = series_colour(index)
        shift = (index - (len(data) - 1) / 2) * 0.25  # a nudge along x so the intervals of two series stay apart
        for task, sub in frame.groupby("task", sort=False):
            x = sub["mean_tokens"] + shift
            ax.scatter(x, sub["speedup"], marker=TASK_MARKERS[tasks.index(task) % len(TASK_MARKERS)], s=40,
                       color=colour, label=f"{task.upper()} — {config_label(backend, dtype)}")
            errors = _interval_errors(sub["speedup"], sub["speedup_lo"], sub["speedup_hi"])
            if errors is not None:
                ax.errorbar(x, sub["speedup"], yerr=errors, fmt="none", ecolor=colour, alpha=0.6, elinewidth=0.8,
                            capsize=2)
            for _, row in sub.iterrows():
                ax.annotate(row["lang"], (row["mean_tokens"] + shift, row["speedup"]), textcoords="offset points",
                            xytext=(4, 3), fontsize=7, color=colour)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("mean tokens per sequence")
    ax.set_ylabel(f"speedup ({_ratio_names(data.values())} useful tok/s, ×; bars: 95% CI)")
    ax.set_title("Speedup vs sequence length, one colour per backend/dtype (labels: language codes)")
    ax.grid(alpha=0.3)
    ax.legend(title="task — backend dtype", fontsize=8)
    return fig


def prediction_chart(points: pd.DataFrame):
    """Measured speedup (y, with its 95% interval) against the cost model's prediction (x) for the same batches;
    points on the y = x line are predicted exactly."""
    if points.empty:
        raise NoData("needs both a cost-model prediction (predicted_s) and a measured speedup for the same rows")
    fig, ax = plt.subplots(figsize=(8.5, 6.5))
    tasks = list(dict.fromkeys(points["task"]))
    series = points.groupby(["backend", "dtype", "batching", "base", "task"], sort=False)
    configs = list(dict.fromkeys(key[:4] for key, _ in series))
    for (backend, dtype, batching, base, task), sub in series:
        colour = series_colour(configs.index((backend, dtype, batching, base)))
        marker = TASK_MARKERS[tasks.index(task) % len(TASK_MARKERS)]
        languages, overall = sub[sub["lang"] != ALL_LANGS], sub[sub["lang"] == ALL_LANGS]
        for part, size, edge in ((languages, 5, colour), (overall, 10, "black")):
            if part.empty:
                continue
            ax.errorbar(part["predicted"], part["measured"], yerr=_interval_errors(part["measured"], part["lo"],
                        part["hi"]), fmt=marker, color=colour, markersize=size, markeredgecolor=edge,
                        elinewidth=0.8, capsize=2, alpha=0.85,
                        label=(f"measured: {task.upper()} {config_label(backend, dtype)} {batching} ÷ {base}"
                               if part is languages or languages.empty else None))
    ends = pd.concat([points["predicted"], points["measured"], points["lo"], points["hi"]]).dropna()
    low, high = float(ends.min()), float(ends.max())
    pad = 0.05 * (high - low or 1.0)
    ax.plot([low - pad, high + pad], [low - pad, high + pad], color="grey", ls="--", lw=1,
            label="measured = prediction (y = x)")
    ax.set_xlabel("prediction (cost model): speedup over the base batching, ×")
    ax.set_ylabel("measured: speedup over the base batching, × (bars: 95% CI)")
    ax.set_title("Measured vs predicted speedup per language (large marker: all languages)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def groupings_chart(frames: dict[tuple[str, str], pd.DataFrame], group_of):
    """Per grouping: tokens/seq per group (with n), and the mean speedup per group for each backend/dtype, the
    bars spanning the group's min–max."""
    if group_of is None:
        raise NoData("language metadata (xlt_bench.core.languages) is not available")
    if not frames:
        raise NoData("no per-language rows")
    tables_by = {by: {c: tables.grouping_table(f, by, group_of) for c, f in frames.items()} for by in GROUPINGS}
    tables_by = {by: t for by, t in tables_by.items() if len(next(iter(t.values()))) >= 2}
    if not tables_by:
        raise NoData("the run's languages fall in fewer than two groups")
    fig, axes = plt.subplots(2, len(tables_by), figsize=(5.5 * len(tables_by), 7.5), squeeze=False)
    for col, (by, by_config) in enumerate(tables_by.items()):
        _group_tokens(axes[0, col], next(iter(by_config.values())), by)
        _group_speedups(axes[1, col], by_config)
    fig.suptitle(f"Language groups: tokens per sequence and speedup ({_ratio_names(frames.values())}), mean over "
                 "the group's languages; bars span its min–max")
    fig.tight_layout()
    return fig


def _group_tokens(ax, frame: pd.DataFrame, by: str) -> None:
    x = np.arange(len(frame))
    ax.bar(x, frame["mean_tokens"], color="#4c72b0",
           yerr=_interval_errors(frame["mean_tokens"], frame["mean_tokens_min"], frame["mean_tokens_max"]),
           capsize=2)
    for xi, (n, top) in enumerate(zip(frame["n"], frame["mean_tokens_max"])):
        ax.annotate(f"n={n}", (xi, top), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=7)
    ax.set_ylabel("mean tokens per sequence")
    ax.set_title(by.replace("_", " "), fontsize=10)
    _group_axis(ax, frame.index)


def _group_speedups(ax, by_config: dict[tuple[str, str], pd.DataFrame]) -> None:
    groups = list(next(iter(by_config.values())).index)
    x = np.arange(len(groups))
    width = 0.8 / len(by_config)
    for index, ((backend, dtype), frame) in enumerate(by_config.items()):
        frame = frame.reindex(groups)
        ax.bar(x + (index - (len(by_config) - 1) / 2) * width, frame["speedup"], width, color=series_colour(index),
               label=config_label(backend, dtype), capsize=2,
               yerr=_interval_errors(frame["speedup"], frame["speedup_min"], frame["speedup_max"]))
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_ylabel("speedup (×)")
    ax.legend(fontsize=7, title="backend dtype", title_fontsize=7)
    _group_axis(ax, groups)


def _group_axis(ax, labels) -> None:
    ax.set_xticks(np.arange(len(labels)), list(labels))
    ax.tick_params(axis="x", labelsize=8)
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    ax.grid(axis="y", alpha=0.3)
