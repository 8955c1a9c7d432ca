"""Side-by-side report of two runs (XLM-R vs mBERT, baseline vs candidate, CPU vs CUDA): per-language ratios over
the rows both runs have, and a list of the rows left out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from xlt_bench.core.schema import ALL_LANGS, ROW_KEY
from xlt_bench.batching.strategies import headline
from xlt_bench.report import plots, tables
from xlt_bench.report.blocks import MISSING, Block, bullets, heading, num, para, pct, plot, sig, table, times
from xlt_bench.report.html import render_html
from xlt_bench.report.markdown import render_markdown
from xlt_bench.report.run_report import load_group_of

# Config keys that name what a run *is*; list-valued ones (tasks, backends, ...) only change the intersection.
LABEL_KEYS = ("model", "device", "tokenizer", "data", "max_tokens", "batch_size", "max_length", "threads", "limit")
VALUES = ("mean_tokens_per_seq", "throughput_tok_s", "padding_waste", "latency_ms_p50", "latency_ms_p99",
          "accuracy", "agreement", "parity_ok")


@dataclass
class RenderedCompare:
    markdown: str
    html: str
    charts: dict[str, plots.Chart]
    left_out: pd.DataFrame


def config_differences(doc_a: dict[str, Any], doc_b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    cfg_a = doc_a.get("run", {}).get("config", {})
    cfg_b = doc_b.get("run", {}).get("config", {})
    keys = list(dict.fromkeys([*cfg_a, *cfg_b]))
    diffs = [(k, cfg_a.get(k), cfg_b.get(k)) for k in keys if cfg_a.get(k) != cfg_b.get(k) and k != "out"]
    sha_a, sha_b = doc_a.get("run", {}).get("git_sha"), doc_b.get("run", {}).get("git_sha")
    if sha_a != sha_b:
        diffs.append(("git_sha", sha_a, sha_b))
    return diffs


def run_labels(doc_a: dict[str, Any], doc_b: dict[str, Any]) -> tuple[str, str]:
    """Short names for the two runs from what differs: 'xlmr-base' vs 'mbert-base', 'cpu' vs 'cuda', else
    'baseline' vs 'candidate'."""
    diffs = {k: (a, b) for k, a, b in config_differences(doc_a, doc_b) if k in LABEL_KEYS}
    parts_a, parts_b = [], []
    for key in LABEL_KEYS:
        if key in diffs:
            a, b = diffs[key]
            plain = key in ("model", "device", "tokenizer", "data")
            parts_a.append(str(a) if plain else f"{key}={a}")
            parts_b.append(str(b) if plain else f"{key}={b}")
    label_a, label_b = " ".join(parts_a), " ".join(parts_b)
    if not label_a or label_a == label_b:
        return "baseline", "candidate"
    return label_a, label_b


def match_rows(doc_a: dict[str, Any], doc_b: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(matched rows with _a/_b columns and ratios, rows only one run has with the side that has them)."""
    df_a, df_b = tables.rows_frame(doc_a), tables.rows_frame(doc_b)
    for frame in (df_a, df_b):   # documents from before scenarios existed hold offline rows
        if len(frame):
            frame["scenario"] = frame["scenario"].fillna("offline") if "scenario" in frame else "offline"
    keys = list(ROW_KEY)
    if "shard" in df_a.columns and "shard" in df_b.columns:   # merged sweeps: rows of several models and devices
        keys.append("shard")
    a = df_a[keys + list(VALUES)] if len(df_a) else pd.DataFrame(columns=keys + list(VALUES))
    b = df_b[keys + list(VALUES)] if len(df_b) else pd.DataFrame(columns=keys + list(VALUES))
    a = a.assign(_order_a=np.arange(len(a)))
    b = b.assign(_order_b=np.arange(len(b)))
    merged = a.merge(b, on=keys, how="outer", suffixes=("_a", "_b"), indicator=True)
    # outer merges sort their keys; keep run A's order (then B's) so languages read as the runs list them
    merged = merged.sort_values(["_order_a", "_order_b"], na_position="last").drop(columns=["_order_a", "_order_b"])
    matched = merged[merged["_merge"] == "both"].drop(columns="_merge").reset_index(drop=True)
    matched["tok_s_ratio"] = matched["throughput_tok_s_b"] / matched["throughput_tok_s_a"]
    matched["p50_ratio"] = matched["latency_ms_p50_b"] / matched["latency_ms_p50_a"]
    left = merged[merged["_merge"] != "both"]
    left_out = pd.DataFrame({k: left[k] for k in keys})
    left_out["only_in"] = np.where(left["_merge"] == "left_only", "A", "B")
    partial = {tuple(k) for k in left_out[left_out["lang"] != ALL_LANGS][["task", "backend", "dtype", "batching"]]
               .itertuples(index=False)}
    matched["all_differs"] = [r.lang == ALL_LANGS and (r.task, r.backend, r.dtype, r.batching) in partial
                              for r in matched.itertuples()]
    return matched, left_out.reset_index(drop=True)


def left_out_summary(left_out: pd.DataFrame, labels: tuple[str, str]) -> pd.DataFrame:
    """One line per (side, task, backend, dtype, batching) naming the languages only that run has."""
    if left_out.empty:
        return pd.DataFrame()
    groups = left_out.groupby(["only_in", "task", "backend", "dtype", "batching"], sort=False)["lang"]
    out = groups.agg(lambda s: ", ".join(s)).reset_index()
    out["only_in"] = [f"{side} ({labels[0] if side == 'A' else labels[1]})" for side in out["only_in"]]
    return out.rename(columns={"only_in": "only in", "lang": "languages"})


def _quality(matched: pd.DataFrame) -> str:
    both = matched["accuracy_a"].notna().any() and matched["accuracy_b"].notna().any()
    return "accuracy" if both else "agreement"


def language_ratio_display(sub: pd.DataFrame, labels: tuple[str, str], metric: str) -> pd.DataFrame:
    la, lb = labels
    langs = [x for x in sub["lang"] if x != ALL_LANGS] + [x for x in sub["lang"] if x == ALL_LANGS]
    s = sub.set_index("lang").reindex(langs)
    names = [x if x != ALL_LANGS else ("**ALL** (different languages)" if s.loc[x, "all_differs"] else "**ALL**")
             for x in langs]
    return pd.DataFrame({
        "lang": names,
        f"tokens/seq {la}": [num(v, 1) for v in s["mean_tokens_per_seq_a"]],
        f"tokens/seq {lb}": [num(v, 1) for v in s["mean_tokens_per_seq_b"]],
        f"tok/s {la}": [num(v) for v in s["throughput_tok_s_a"]],
        f"tok/s {lb}": [num(v) for v in s["throughput_tok_s_b"]],
        f"{lb} ÷ {la}": [times(v) for v in s["tok_s_ratio"]],
        f"waste {la}": [pct(v) for v in s["padding_waste_a"]], f"waste {lb}": [pct(v) for v in s["padding_waste_b"]],
        f"p50 ms {la}": [sig(v) for v in s["latency_ms_p50_a"]],
        f"p50 ms {lb}": [sig(v) for v in s["latency_ms_p50_b"]],
        f"{metric} {la}": [pct(v) for v in s[f"{metric}_a"]], f"{metric} {lb}": [pct(v) for v in s[f"{metric}_b"]],
    })


def summary_lines(matched: pd.DataFrame, labels: tuple[str, str]) -> list[str]:
    lines = []
    for (task, backend, dtype, batching), sub in matched.groupby(["task", "backend", "dtype", "batching"], sort=False):
        overall = sub.loc[sub["lang"] == ALL_LANGS, "tok_s_ratio"]
        per_lang = sub.loc[sub["lang"] != ALL_LANGS, "tok_s_ratio"].dropna()
        differs = bool(sub.loc[sub["lang"] == ALL_LANGS, "all_differs"].any())
        head = times(overall.iloc[0]) if len(overall) else MISSING
        head += " (all-language rows over different language sets)" if differs else ""
        spread = (f" (range {per_lang.min():.2f}–{per_lang.max():.2f}× across {len(per_lang)} common languages)"
                  if len(per_lang) > 1 else "")
        lines.append(f"**{task.upper()}, {backend} {dtype} {batching}**: {labels[1]} runs at {head} the useful "
                     f"tok/s of {labels[0]}{spread}.")
    return lines


def primary_rows(matched: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Per-language rows of one configuration (reference backend/dtype, dynamic batching when both ran it)."""
    sub = matched[matched["lang"] != ALL_LANGS]
    if sub.empty:
        return sub, ""
    backend, dtype = tables.primary_config(sub)
    sub = sub[(sub["backend"] == backend) & (sub["dtype"] == dtype)]
    batchings = tables.ordered(sub["batching"], tables.report_order())
    batching = headline(batchings)
    return sub[sub["batching"] == batching].copy(), f"{backend} {dtype} {batching}"


def family_ratio_table(matched: pd.DataFrame, labels: tuple[str, str], metric: str) -> pd.DataFrame | None:
    """Mean per language family of one configuration: tokens/seq, tok/s ratio, quality, per run."""
    group_of = load_group_of()
    sub, config = primary_rows(matched)
    if group_of is None or sub.empty:
        return None
    sub["family"] = [group_of(code, "family") for code in sub["lang"]]
    g = sub.groupby("family")
    la, lb = labels
    frame = pd.DataFrame({
        "languages": g["lang"].agg(lambda s: ", ".join(dict.fromkeys(s))),
        f"tokens/seq {la}": g["mean_tokens_per_seq_a"].mean().map(lambda v: num(v, 1)),
        f"tokens/seq {lb}": g["mean_tokens_per_seq_b"].mean().map(lambda v: num(v, 1)),
        f"tok/s {lb} ÷ {la}": g["tok_s_ratio"].mean().map(times),
        f"{metric} {la}": g[f"{metric}_a"].mean().map(pct), f"{metric} {lb}": g[f"{metric}_b"].mean().map(pct),
    })
    frame = frame.reset_index()
    frame.attrs["config"] = config
    return frame


def ratio_chart(matched: pd.DataFrame, labels: tuple[str, str]):
    sub = matched[matched["lang"] != ALL_LANGS]
    if sub.empty:
        raise plots.NoData("no languages in common")
    backend, dtype = tables.primary_config(sub)
    sub = sub[(sub["backend"] == backend) & (sub["dtype"] == dtype)]
    if "shard" in sub.columns:   # a merged sweep: chart its first shard (the tables below show every shard)
        sub = sub[sub["shard"] == sub["shard"].iloc[0]]
    panels = list(sub.groupby("task", sort=False))
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3.2 * len(panels)), squeeze=False)
    for ax, (task, frame) in zip(axes[:, 0], panels):
        batchings = tables.ordered(frame["batching"], tables.report_order())
        langs = tables.ordered(frame["lang"])
        x, width = np.arange(len(langs)), 0.8 / len(batchings)
        for i, b in enumerate(batchings):
            ratio = frame[frame["batching"] == b].set_index("lang")["tok_s_ratio"].reindex(langs)
            ax.bar(x + (i - (len(batchings) - 1) / 2) * width, ratio, width, label=b,
                   color=plots.colour_of(b))
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xticks(x, langs)
        ax.set_ylabel(f"tok/s ratio ({labels[1]} ÷ {labels[0]}, ×)")
        ax.set_title(f"{task.upper()} — {backend} {dtype}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, title="batching", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes[-1, 0].set_xlabel("language (ISO code)")
    fig.suptitle(f"Useful throughput per language: {labels[1]} relative to {labels[0]} (above 1 = {labels[1]} faster)")
    fig.tight_layout()
    return fig


def _header(doc_a: dict[str, Any], doc_b: dict[str, Any], labels: tuple[str, str]) -> list[Block]:
    lines = []
    for side, doc, label in (("A", doc_a, labels[0]), ("B", doc_b, labels[1])):
        run = doc.get("run", {})
        cfg = run.get("config", {})
        role = " (baseline: ratios are B ÷ A)" if side == "A" else ""
        lines.append(f"**{side} = {label}**{role}: run `{run.get('id', '?')}`, model {cfg.get('model', '?')} on "
                     f"{cfg.get('device', '?')}, data `{cfg.get('data', '?')}`, "
                     f"git `{str(run.get('git_sha') or '?')[:12]}`.")
    diffs = [f"`{k}`: {a} → {b}" for k, a, b in config_differences(doc_a, doc_b)]
    return [heading(f"xlt-bench compare — {labels[0]} vs {labels[1]}", 1), bullets(lines),
            para("Configuration differences (A → B):"), bullets(diffs or ["none (same configuration)"])]


def layout(doc_a, doc_b, matched, left_out, labels, charts, no_chart_reason) -> list[Block]:
    metric = _quality(matched)
    blocks = _header(doc_a, doc_b, labels)
    blocks += [heading("Summary"), bullets(summary_lines(matched, labels) or ["No rows in common."])]
    blocks.append(plot("compare_throughput_ratio", charts["compare_throughput_ratio"].title)
                  if "compare_throughput_ratio" in charts else para(f"_Ratio chart not drawn: {no_chart_reason}._"))
    families = family_ratio_table(matched, labels, metric)
    if families is not None and len(families):
        blocks += [heading("By language family"),
                   para(f"Means over each family's common languages and tasks, for {families.attrs['config']}."),
                   table(families)]
    blocks.append(heading("Per language"))
    blocks.append(para(f"Rows matched on task, language, backend, dtype and batching. Ratios are {labels[1]} ÷ "
                       f"{labels[0]}; quality is {metric}" + (" (accuracy is null in at least one run)."
                                                               if metric == "agreement" else ".")))
    by = ["task", "backend", "dtype", "batching"] + (["shard"] if "shard" in matched.columns else [])
    for group, sub in matched.groupby(by, sort=False):
        task, backend, dtype, batching = group[:4]
        shard = f" (shard {group[4]})" if len(group) > 4 else ""
        blocks.append(table(language_ratio_display(sub, labels, metric),
                            f"{task.upper()} — {backend} {dtype} {batching}{shard}"))
    blocks.append(heading("Left out"))
    summary = left_out_summary(left_out, labels)
    blocks.append(table(summary) if len(summary) else para("Nothing: both runs have the same rows."))
    return blocks


def build_compare(doc_a: dict[str, Any], doc_b: dict[str, Any]) -> RenderedCompare:
    labels = run_labels(doc_a, doc_b)
    matched, left_out = match_rows(doc_a, doc_b)
    charts, no_chart_reason = {}, ""
    try:
        png = plots.to_png(ratio_chart(matched, labels))
        title = f"Throughput ratio per language, {labels[1]} ÷ {labels[0]}"
        charts["compare_throughput_ratio"] = plots.Chart("compare_throughput_ratio", title, png)
    except plots.NoData as why:
        no_chart_reason = str(why)
    finally:
        plt.close("all")
    blocks = layout(doc_a, doc_b, matched, left_out, labels, charts, no_chart_reason)
    title = f"xlt-bench compare — {labels[0]} vs {labels[1]}"
    return RenderedCompare(render_markdown(blocks), render_html(blocks, charts, title), charts, left_out)
