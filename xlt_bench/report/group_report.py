"""The language-group tables of a run report: per resource class, family and script, for every backend/dtype, with
the number of languages in each group and the spread of the per-language values behind each mean."""

from __future__ import annotations

from typing import Callable

import pandas as pd

from xlt_bench.report import tables
from xlt_bench.report.blocks import Block, heading, num, para, pct, table, times
from xlt_bench.report.figure import config_label

GROUP_TITLES = {"resource_class": "resource class", "family": "language family", "script": "script"}
SINGLE_MARK = "†"  # flags a group of one language: its "mean" is that language's figure


def with_range(mean: float, low: float, high: float, fmt: Callable[[float], str], digits: int) -> str:
    """'2.31× (2.03–2.49)': the mean, then the min–max of the values behind it when they differ."""
    if pd.isna(mean) or pd.isna(low) or pd.isna(high) or low == high:
        return fmt(mean)
    return f"{fmt(mean)} ({low:.{digits}f}–{high:.{digits}f})"


def count_cell(n: int) -> str:
    return f"{n} {SINGLE_MARK}" if n == 1 else str(n)


def group_display(frames: dict[tuple[str, str], pd.DataFrame], by: str, group_of: Callable) -> pd.DataFrame:
    """One row per group: n, languages, tokens/seq, base waste (the same plan on every backend), then per
    backend/dtype the headline batching's waste and speedup with their spread, then accuracy."""
    by_config = {config: tables.grouping_table(frame, by, group_of) for config, frame in frames.items()}
    first_config = next(iter(by_config))
    first, first_frame = by_config[first_config], frames[first_config]
    several = len(by_config) > 1
    out = pd.DataFrame({
        GROUP_TITLES[by]: first.index, "n": [count_cell(n) for n in first["n"]], "languages": first["languages"],
        "tokens/seq (min–max)": [with_range(m, lo, hi, lambda v: num(v, 1), 1) for m, lo, hi in
                                 zip(first["mean_tokens"], first["mean_tokens_min"], first["mean_tokens_max"])],
        f"waste {first_frame['base'].iloc[0]}": [pct(v) for v in first["waste_base"]],
    })
    for config, frame in by_config.items():
        frame = frame.reindex(first.index)
        other, base = _ratio_of(frames[config])
        suffix = f", {config_label(*config)}" if several else ""
        out[f"waste {other}{suffix}"] = [pct(v) for v in frame["waste_other"]]
        out[f"speedup {other}÷{base}{suffix} (min–max)"] = [
            with_range(m, lo, hi, times, 2) for m, lo, hi in zip(frame["speedup"], frame["speedup_min"],
                                                            frame["speedup_max"])]
    if first["accuracy"].notna().any():
        out["accuracy"] = [pct(v) for v in first["accuracy"]]
    return out.reset_index(drop=True)


def _ratio_of(frame: pd.DataFrame) -> tuple[str, str]:
    others = frame["other"].dropna()
    return (str(others.iloc[0]) if len(others) else "other"), str(frame["base"].iloc[0])


def grouping_section(frames: dict[tuple[str, str], pd.DataFrame], group_of: Callable | None) -> list[Block]:
    blocks = [heading("Language groups")]
    if group_of is None:
        return blocks + [para("Skipped: language metadata (xlt_bench.core.languages) is not available.")]
    if not frames:
        return blocks + [para("Skipped: no per-language rows.")]
    configs = ", ".join(config_label(*c) for c in frames)
    blocks.append(para(f"Means over the languages of each group, one table per task (tasks differ in length, so "
                       f"they are never averaged together), for each backend/dtype ({configs}); speedup divides the "
                       "headline batching's useful tok/s by the base batching's. n counts the group's languages; "
                       "brackets give the min–max of the per-language values behind the mean."))
    tasks = list(dict.fromkeys(t for frame in frames.values() for t in frame["task"]))
    singles = False
    for task in tasks:
        of_task = {c: f[f["task"] == task] for c, f in frames.items() if (f["task"] == task).any()}
        for by, title in GROUP_TITLES.items():
            display = group_display(of_task, by, group_of)
            singles = singles or any(cell.endswith(SINGLE_MARK) for cell in display["n"])
            blocks.append(table(display, f"{task.upper()}: by {title}" if len(tasks) > 1 else f"By {title}"))
    if singles:
        blocks.append(para(f"{SINGLE_MARK} A group of one language: its figures are that language's own, not a "
                           "mean over a group, and say little about the group."))
    return blocks
