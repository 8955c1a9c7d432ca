"""Numeric pandas frames built from result rows; the markdown, HTML and plots all read these.

Every frame here holds plain numbers (NaN where a value is unknown); formatting for display lives in sections.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from xlt_bench.core.catalogue import declared
from xlt_bench.core.schema import ALL_LANGS, REFERENCE
from xlt_bench.results.speedup import reference_batching, speedup
from xlt_bench.batching.strategies import headline, report_order

RESOURCE_CLASS_NAMES = {"0": "0 left-behind", "1": "1 scraping-by", "2": "2 hopeful", "3": "3 rising star",
                        "4": "4 underdog", "5": "5 winner"}
# Row fields the report reads that are not metrics: how a figure was obtained.
DESCRIPTIVE_FIELDS = ("accuracy_metric", "parity_ok", "is_reference", "notes")


def rows_frame(doc: dict[str, Any]) -> pd.DataFrame:
    """All rows as a frame, every catalogued number as a float column; fields a row lacks become NaN/None so older
    documents still render."""
    df = pd.DataFrame(doc.get("rows", []))
    for name in [m.name for m in declared(required=False)] + list(DESCRIPTIVE_FIELDS):
        if name not in df.columns:
            df[name] = None
    for metric in declared(kind="number"):
        if metric.name in df.columns:
            df[metric.name] = pd.to_numeric(df[metric.name], errors="coerce").astype(float)
    if len(df):
        sequences = df["n_sequences"].fillna(df["n_examples"])
        df["mean_tokens_per_seq"] = df["mean_tokens_per_seq"].fillna(df["real_tokens"] / sequences)
    return df


def ordered(values: pd.Series, order: tuple[str, ...] = ()) -> list[str]:
    """Unique values in a known order first, then in order of appearance."""
    seen = list(dict.fromkeys(values.tolist()))
    return [v for v in order if v in seen] + [v for v in seen if v not in order]


def languages(df: pd.DataFrame) -> list[str]:
    return [lang for lang in ordered(df["lang"]) if lang != ALL_LANGS]


def base_batching(batchings: list[str]) -> str:
    """The speedup reference (speedup.py) when one ran; else the first of `batchings` (given in report order),
    so a table still shows ratios between the strategies that did run."""
    return reference_batching(batchings) or batchings[0]


def backend_dtypes(df: pd.DataFrame, task: str) -> list[tuple[str, str]]:
    sub = df[df["task"] == task]
    return list(dict.fromkeys(zip(sub["backend"], sub["dtype"])))


def primary_config(df: pd.DataFrame) -> tuple[str, str]:
    """The backend/dtype the per-language charts and groupings use: the reference one when it ran."""
    pairs = list(dict.fromkeys(zip(df["backend"], df["dtype"])))
    return REFERENCE[:2] if REFERENCE[:2] in pairs else pairs[0]


def language_table(df: pd.DataFrame, task: str, backend: str, dtype: str) -> pd.DataFrame:
    """One row per language (ALL last): tokens/seq, then per batching tok/s, waste, p50, p99, and speedups."""
    sub = df[(df["task"] == task) & (df["backend"] == backend) & (df["dtype"] == dtype)]
    batchings = ordered(sub["batching"], report_order())
    base = base_batching(batchings)
    by_batching = {b: sub[sub["batching"] == b].set_index("lang") for b in batchings}
    langs = languages(sub) + ([ALL_LANGS] if (sub["lang"] == ALL_LANGS).any() else [])
    out = pd.DataFrame(index=pd.Index(langs, name="lang"))
    base_rows = by_batching[base].reindex(langs)
    out["mean_tokens"] = base_rows["mean_tokens_per_seq"]
    for b in batchings:
        rows = by_batching[b].reindex(langs)
        out[f"tok_s:{b}"] = rows["throughput_tok_s"]
        out[f"tok_s_lo:{b}"], out[f"tok_s_hi:{b}"] = interval_bounds(rows["throughput_tok_s_ci95"])
        if b != base:
            out[f"speedup:{b}"] = speedup(rows["throughput_tok_s"], base_rows["throughput_tok_s"])
            out[f"speedup_lo:{b}"], out[f"speedup_hi:{b}"] = interval_bounds(rows["speedup_ci95"])
            # The same ratio predicted by the backend's cost model (tok/s ∝ 1 / seconds for the same tokens).
            out[f"predicted:{b}"] = base_rows["predicted_s"] / rows["predicted_s"]
    # The most any plan within the budget could give under that model (no padding, fewest calls).
    out["bound"] = base_rows["predicted_s"] / base_rows["packing_bound_s"]
    for b in batchings:
        out[f"waste:{b}"] = by_batching[b].reindex(langs)["padding_waste"]
    for b in batchings:
        rows = by_batching[b].reindex(langs)
        out[f"p50_ms:{b}"] = rows["latency_ms_p50"]
        out[f"p99_ms:{b}"] = rows["latency_ms_p99"]
    out.attrs.update(base=base, batchings=batchings, task=task, backend=backend, dtype=dtype)
    return out


def interval_bounds(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper ends of a column of [lo, hi] intervals (NaN where a row has none)."""
    pairs = [v if isinstance(v, (list, tuple)) and len(v) == 2 else (np.nan, np.nan) for v in column]
    return (np.array([float(p[0]) for p in pairs], dtype=float), np.array([float(p[1]) for p in pairs], dtype=float))


def task_summary(table: pd.DataFrame) -> dict[str, Any] | None:
    """Overall speedup (ALL row), its range across languages and the waste change, for the one-line summary."""
    batchings = table.attrs["batchings"]
    base = table.attrs["base"]
    others = [b for b in batchings if b != base]
    if not others:
        return None
    other = headline(others)
    per_lang = table.drop(index=ALL_LANGS, errors="ignore")[f"speedup:{other}"].dropna()
    overall = table[f"speedup:{other}"].get(ALL_LANGS, np.nan)
    lo, hi = table[f"speedup_lo:{other}"], table[f"speedup_hi:{other}"]
    langs = table.drop(index=ALL_LANGS, errors="ignore").index
    return {
        "base": base, "other": other, "overall": overall,
        "overall_lo": lo.get(ALL_LANGS, np.nan), "overall_hi": hi.get(ALL_LANGS, np.nan),
        # Languages whose interval contains 1: the passes cannot tell the two batchings apart there.
        "not_significant": [x for x in langs if lo[x] <= 1.0 <= hi[x]],
        "low": per_lang.min() if len(per_lang) else np.nan, "high": per_lang.max() if len(per_lang) else np.nan,
        "n_langs": len(per_lang),
        "predicted": table[f"predicted:{other}"].get(ALL_LANGS, np.nan),
        "bound": table["bound"].get(ALL_LANGS, np.nan),
        "waste_base": table[f"waste:{base}"].get(ALL_LANGS, np.nan),
        "waste_other": table[f"waste:{other}"].get(ALL_LANGS, np.nan),
    }


def config_table(df: pd.DataFrame, task: str) -> pd.DataFrame:
    """ALL rows of a task, one per backend × dtype × batching, with speedups, parity and costs; ranked by tok/s.

    A configuration whose parity failed is kept but not ranked (rank NaN), so it never looks like a winner.
    """
    sub = df[(df["task"] == task) & (df["lang"] == ALL_LANGS)].copy()
    if sub.empty:
        return sub
    ref = sub[sub["is_reference"] == True]  # noqa: E712 - column holds bool/None
    if ref.empty:
        ref = sub[(sub["backend"] == REFERENCE[0]) & (sub["dtype"] == REFERENCE[1]) & (sub["batching"] == REFERENCE[2])]
    ref_tok_s = ref["throughput_tok_s"].iloc[0] if len(ref) else np.nan
    base = base_batching(ordered(sub["batching"], report_order()))
    base_tok_s = sub[sub["batching"] == base].set_index(["backend", "dtype"])["throughput_tok_s"]
    keys = list(zip(sub["backend"], sub["dtype"]))
    sub["speedup_vs_base"] = speedup(sub["throughput_tok_s"].to_numpy(), base_tok_s.reindex(keys).to_numpy())
    sub["speedup_vs_reference"] = sub["throughput_tok_s"] / ref_tok_s
    sub["overhead_share"] = sub["harness_overhead_s"] / sub["wall_s"]
    sub["memory_mb"] = sub["cuda_max_allocated_mb"].fillna(sub["peak_rss_mb"])
    sub["memory_kind"] = np.where(sub["cuda_max_allocated_mb"].notna(), "GPU", "RSS")
    failed = sub["parity_ok"] == False  # noqa: E712
    sub["rank"] = sub["throughput_tok_s"].where(~failed).rank(ascending=False, method="min")
    sub = sub.sort_values(["rank", "throughput_tok_s"], ascending=[True, False], na_position="last")
    sub.attrs.update(base=base, task=task)
    return sub.reset_index(drop=True)


def per_language_frame(df: pd.DataFrame, config: tuple[str, str] | None = None) -> pd.DataFrame:
    """Per (task, lang) of one backend/dtype (the primary one unless `config` names another): tokens/seq, waste
    per batching, the headline speedup with its interval, accuracy, alignment."""
    if df.empty:
        return pd.DataFrame()
    backend, dtype = config or primary_config(df)
    frames = []
    for task in ordered(df["task"]):
        if (backend, dtype) not in backend_dtypes(df, task):
            continue
        table = language_table(df, task, backend, dtype).drop(index=ALL_LANGS, errors="ignore")
        summary = task_summary(table)
        sub = df[(df["task"] == task) & (df["backend"] == backend) & (df["dtype"] == dtype)
                 & (df["batching"] == table.attrs["base"])].set_index("lang").reindex(table.index)
        other = summary["other"] if summary else None

        def column(name: str):
            return table[f"{name}:{other}"].to_numpy() if other else np.nan

        frames.append(pd.DataFrame({
            "task": task, "lang": table.index, "backend": backend, "dtype": dtype, "base": table.attrs["base"],
            "other": other, "mean_tokens": table["mean_tokens"].to_numpy(),
            "waste_base": table[f"waste:{table.attrs['base']}"].to_numpy(), "waste_other": column("waste"),
            "speedup": column("speedup"), "speedup_lo": column("speedup_lo"), "speedup_hi": column("speedup_hi"),
            "accuracy": sub["accuracy"].to_numpy(), "alignment_cosine": sub["alignment_cosine"].to_numpy(),
            "alignment_top1": sub["alignment_top1"].to_numpy(),
        }))
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    out.attrs.update(backend=backend, dtype=dtype)
    return out


def per_language_frames(df: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """per_language_frame of every backend/dtype of the run, the primary one first; those without languages left
    out."""
    if df.empty:
        return {}
    primary = primary_config(df)
    configs = [primary] + [c for c in dict.fromkeys(zip(df["backend"], df["dtype"])) if c != primary]
    frames = {config: per_language_frame(df, config) for config in configs}
    return {config: frame for config, frame in frames.items() if not frame.empty}


def grouping_table(per_lang: pd.DataFrame, by: str, group_of) -> pd.DataFrame:
    """Means per language group (resource class, family, script) over every (task, language) of per_lang, with the
    number of languages (n) and the min and max of tokens/seq and speedup over the same values."""
    if per_lang.empty:
        return pd.DataFrame()
    frame = per_lang.copy()
    frame["group"] = [group_of(code, by) or "unknown" for code in frame["lang"]]
    grouped = frame.groupby("group", sort=True)
    out = pd.DataFrame({
        "languages": grouped["lang"].agg(lambda s: ", ".join(dict.fromkeys(s))),
        "n": grouped["lang"].nunique(),
        "mean_tokens": grouped["mean_tokens"].mean(),
        "mean_tokens_min": grouped["mean_tokens"].min(), "mean_tokens_max": grouped["mean_tokens"].max(),
        "waste_base": grouped["waste_base"].mean(), "waste_other": grouped["waste_other"].mean(),
        "speedup": grouped["speedup"].mean(),
        "speedup_min": grouped["speedup"].min(), "speedup_max": grouped["speedup"].max(),
        "accuracy": grouped["accuracy"].mean(),
    })
    if by == "resource_class":  # best-resourced class first, named as Joshi et al. (2020) do
        out = out.sort_index(ascending=False, key=lambda idx: idx.map(lambda g: int(g) if g.isdigit() else -1))
        out.index = [RESOURCE_CLASS_NAMES.get(g, g) for g in out.index]
        return out
    return out.sort_values("mean_tokens")


def prediction_points(df: pd.DataFrame) -> pd.DataFrame:
    """Every speedup that has both a cost-model prediction and a measurement: one row per task, backend, dtype,
    batching (other than the base) and language (ALL included), with the measured 95% interval."""
    records = []
    for task in ordered(df["task"]):
        for backend, dtype in backend_dtypes(df, task):
            t = language_table(df, task, backend, dtype)
            for batching in t.attrs["batchings"]:
                if batching == t.attrs["base"]:
                    continue
                for lang in t.index:
                    records.append({
                        "task": task, "backend": backend, "dtype": dtype, "batching": batching,
                        "base": t.attrs["base"], "lang": lang, "predicted": t.loc[lang, f"predicted:{batching}"],
                        "measured": t.loc[lang, f"speedup:{batching}"],
                        "lo": t.loc[lang, f"speedup_lo:{batching}"], "hi": t.loc[lang, f"speedup_hi:{batching}"]})
    columns = ["task", "backend", "dtype", "batching", "base", "lang", "predicted", "measured", "lo", "hi"]
    out = pd.DataFrame(records, columns=columns)
    return out.dropna(subset=["predicted", "measured"]).reset_index(drop=True)


def alignment_pairs(per_lang: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per task: languages with both accuracy and an alignment score (alignment averaged over tasks per language)."""
    if per_lang.empty:
        return {}
    alignment = per_lang.groupby("lang")[["alignment_cosine", "alignment_top1"]].mean()
    out = {}
    for task, sub in per_lang.groupby("task", sort=False):
        frame = sub[["lang", "accuracy"]].join(alignment, on="lang").dropna(subset=["accuracy", "alignment_cosine"])
        if len(frame) >= 3:
            out[task] = frame.reset_index(drop=True)
    return out


def latency_samples(df: pd.DataFrame, task: str) -> dict[str, list[float]]:
    """Raw per-batch latencies per configuration: the ALL row's list, else the languages' lists joined."""
    out: dict[str, list[float]] = {}
    sub = df[df["task"] == task]
    for (backend, dtype, batching), group in sub.groupby(["backend", "dtype", "batching"], sort=False):
        all_rows = group[group["lang"] == ALL_LANGS]
        lists = all_rows["latencies_ms"].tolist() if len(all_rows) else []
        if not any(isinstance(x, list) and x for x in lists):
            lists = group[group["lang"] != ALL_LANGS]["latencies_ms"].tolist()
        values = [float(v) for x in lists if isinstance(x, list) for v in x if v is not None]
        if values:
            out[f"{backend} {dtype} {batching}"] = values
    return out


def pareto_mask(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """True for points no other point beats on both axes (higher is better on both)."""
    mask = np.ones(len(x), dtype=bool)
    for i in range(len(x)):
        better_or_equal = (x >= x[i]) & (y >= y[i])
        strictly = (x > x[i]) | (y > y[i])
        mask[i] = not np.any(better_or_equal & strictly)
    return mask
