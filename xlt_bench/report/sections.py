"""The content of report.md / report.html for one run, as blocks (see blocks.py)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd

from xlt_bench.core.schema import ALL_LANGS
from xlt_bench.report import tables
from xlt_bench.report.caveats import report_notes
from xlt_bench.report.blocks import MISSING, Block, bullets, heading, num, num_ci, para, pct, plot, sci, sig, table, times, times_ci

def run_header(doc: dict[str, Any]) -> list[Block]:
    run = doc.get("run", {})
    cfg, env = run.get("config", {}), run.get("env", {})
    dirty = " (uncommitted changes)" if run.get("git_dirty") else ""
    lines = [
        f"Model **{cfg.get('model', '?')}** on **{cfg.get('device', '?')}**, data `{cfg.get('data', '?')}`"
        f"{', tokenizer `' + str(cfg['tokenizer']) + '`' if cfg.get('tokenizer') else ''}; "
        f"tasks {_join(cfg.get('tasks'))}; backends {_join(cfg.get('backends'))}; dtype {_join(cfg.get('dtype'))}; "
        f"batching {_join(cfg.get('batching'))} (static: {cfg.get('batch_size', '?')} rows padded to "
        f"{cfg.get('max_length', '?')} tokens; dynamic: ≤ {cfg.get('max_tokens', '?')} tokens per batch).",
        f"Run `{run.get('id', '?')}`, started {run.get('created', '?')}, took {sig(run.get('duration_s'))} s; "
        f"git `{str(run.get('git_sha') or '?')[:12]}`{dirty}.",
        f"Machine: {env.get('cpu') or env.get('cpu_model') or 'CPU unknown'}, "
        f"{env.get('cores') or env.get('cores_logical') or '?'} cores, {env.get('threads', '?')} threads; "
        f"GPU: {env.get('gpu') or env.get('gpu_name') or 'none'}.",
    ]
    breakdown = run.get("time_breakdown_s") or {}
    if breakdown:
        parts = [f"{name.replace('_', ' ')} {sig(seconds)}" for name, seconds in breakdown.items() if name != "total"]
        lines.append("Where the run's time went (s): " + ", ".join(parts) + ".")
    memory = run.get("peak_rss_mb_by_stage") or {}
    if memory:
        parts = [f"{name.replace('_', ' ')} {num(mb)}" for name, mb in memory.items()]
        tasks = ", ".join(f"{t} {num(mb)}" for t, mb in (run.get("peak_rss_mb_by_task") or {}).items())
        children = run.get("peak_rss_children_mb")
        lines.append(f"Peak RSS (MB): run {num(run.get('peak_rss_mb'))}; per stage " + ", ".join(parts)
                     + (f"; per task {tasks}" if tasks else "")
                     + (f"; largest child process (ONNX export) {num(children)}" if children else "") + ".")
    return [heading(f"xlt-bench report — {run.get('id', 'run')}", 1), *[para(line) for line in lines]]


def _join(values) -> str:
    if not values:
        return MISSING
    return ", ".join(str(v) for v in values) if isinstance(values, (list, tuple)) else str(values)


def summary_line(task: str, backend: str, dtype: str, s: dict[str, Any]) -> str:
    """E.g. 'XNLI, eager fp32: dynamic 2.80× static overall (range 1.90–4.10× across 15 languages); waste 62% → 3%'."""
    spread = (f" (range {s['low']:.2f}–{s['high']:.2f}× across {s['n_langs']} languages)"
              if s["n_langs"] > 1 else "")
    bound = (f", {times(s['bound'])} for perfect packing"
             if not pd.isna(s.get("bound", np.nan)) else "")
    predicted = (f" (the backend's cost model predicts {times(s['predicted'])} for these batches{bound})"
                 if not pd.isna(s.get("predicted", np.nan)) else "")
    overall = times_ci(s["overall"], s.get("overall_lo"), s.get("overall_hi"))
    unsure = s.get("not_significant") or []
    significance = (f" Not significant (95% interval contains 1): {', '.join(unsure)}." if unsure
                    else " Every per-language difference is significant (no 95% interval contains 1)."
                    if s["n_langs"] and not pd.isna(s.get("overall_lo", np.nan)) else "")
    return (f"**{task.upper()}, {backend} {dtype}**: {s['other']} {overall} {s['base']} overall{spread}"
            f"{predicted}; padding waste {pct(s['waste_base'], 0)} → {pct(s['waste_other'], 0)}.{significance}")


def language_table_display(t: pd.DataFrame) -> pd.DataFrame:
    base, batchings = t.attrs["base"], t.attrs["batchings"]
    out = pd.DataFrame({"lang": [f"**{x}**" if x == ALL_LANGS else x for x in t.index]})
    out["tokens/seq"] = [num(v, 1) for v in t["mean_tokens"]]
    for b in batchings:
        out[f"{b} tok/s [95% CI]"] = [num_ci(v, lo, hi) for v, lo, hi in
                                      zip(t[f"tok_s:{b}"], t[f"tok_s_lo:{b}"], t[f"tok_s_hi:{b}"])]
    for b in batchings:
        if b != base:
            out[f"speedup {b}÷{base} [95% CI]"] = [times_ci(v, lo, hi) for v, lo, hi in
                                                  zip(t[f"speedup:{b}"], t[f"speedup_lo:{b}"], t[f"speedup_hi:{b}"])]
            if t[f"predicted:{b}"].notna().any():
                out[f"cost model predicts {b}÷{base}"] = [times(v) for v in t[f"predicted:{b}"]]
    if len(batchings) > 1 and t["bound"].notna().any():
        out[f"cost model predicts perfect packing÷{base}"] = [times(v) for v in t["bound"]]
    for b in batchings:
        out[f"waste {b}"] = [pct(v) for v in t[f"waste:{b}"]]
    for b in batchings:
        out[f"p50/p99 ms {b}"] = [f"{sig(a)} / {sig(z)}" for a, z in zip(t[f"p50_ms:{b}"], t[f"p99_ms:{b}"])]
    return out


def per_language_section(df: pd.DataFrame, charts: list[Block] = ()) -> list[Block]:
    """Summary lines, then the charts given, then one table per task × backend × dtype."""
    legend = ("Useful tok/s counts real (unpadded) tokens per second of the timed region (mean of the timed "
              "passes); speedup divides useful tok/s of the same backend and dtype; waste is the share of executed "
              "tokens that are padding; p50/p99 are per-batch latencies. Brackets hold 95% intervals from the "
              "repeated passes (Student-t on log values; a speedup's from passes paired by round, the batchings' "
              "passes being interleaved); a speedup whose interval contains 1 is not a measured difference.")
    if df["predicted_s"].notna().any():
        legend += " 'Cost model predicts' is the same speedup under the backend's measured batch cost model."
    if df["packing_bound_s"].notna().any():
        legend += (" 'Perfect packing' is that model's prediction for no padding at all in the fewest calls the "
                   "budget allows: the largest speedup the model predicts for any plan, a prediction, not a bound "
                   "(a measured speedup exceeds it wherever the model is off for this run). The measured "
                   "padding-free figure is the packed batching's, where the run has it.")
    blocks = [heading("Throughput per language"), para(legend)]
    summaries = []
    for task in tables.ordered(df["task"]):
        blocks.append(heading(task.upper(), 3))
        for backend, dtype in tables.backend_dtypes(df, task):
            t = tables.language_table(df, task, backend, dtype)
            s = tables.task_summary(t)
            if s is not None:
                summaries.append(summary_line(task, backend, dtype, s))
            blocks.append(table(language_table_display(t), f"{task.upper()} — {backend} {dtype}"))
    return [heading("Summary"), bullets(summaries or ["Only one batching ran: no speedups to report."]),
            *charts, *blocks]


def prediction_summary(points: pd.DataFrame) -> list[Block]:
    """Per series of the predicted-vs-measured chart: how far the measured speedups sit from the cost model's
    prediction across languages, and how often the prediction falls inside the measured 95% interval."""
    langs = points[points["lang"] != ALL_LANGS]
    lines = []
    for (task, backend, dtype, batching, base), sub in langs.groupby(["task", "backend", "dtype", "batching", "base"],
                                                                     sort=False):
        ratio = sub["measured"] / sub["predicted"]
        line = (f"{task.upper()} {backend} {dtype} {batching} ÷ {base}: measured ÷ prediction (cost model) median "
                f"{ratio.median():.2f} (range {ratio.min():.2f}–{ratio.max():.2f}) over {len(sub)} languages")
        with_interval = sub.dropna(subset=["lo", "hi"])
        if len(with_interval):
            inside = ((with_interval["lo"] <= with_interval["predicted"])
                      & (with_interval["predicted"] <= with_interval["hi"])).sum()
            line += f"; the prediction lies inside the measured 95% interval for {inside} of {len(with_interval)}"
        lines.append(line + ".")
    return [bullets(lines)] if lines else []


def _parity_cell(row) -> str:
    if row["parity_ok"] is True or row["parity_ok"] == 1.0:
        return "ok"
    if row["parity_ok"] is False or row["parity_ok"] == 0.0:
        return "✗ FAILED"
    return MISSING


def config_table_display(t: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, r in t.iterrows():
        rows.append({
            "rank": MISSING if np.isnan(r["rank"]) else str(int(r["rank"])),
            "backend": r["backend"], "dtype": r["dtype"], "batching": r["batching"],
            "tok/s [95% CI]": num_ci(r["throughput_tok_s"], *_ends(r["throughput_tok_s_ci95"])),
            f"× {t.attrs['base']} [95% CI]": times_ci(r["speedup_vs_base"], *_ends(r["speedup_ci95"])),
            "× reference": times(r["speedup_vs_reference"]), "MFU": pct(r["mfu"], 2),
            "accuracy": pct(r["accuracy"]), "agreement": pct(r["agreement"]), "max abs Δ": sci(r["max_abs_diff"]),
            "parity": _parity_cell(r), "harness overhead": pct(r["overhead_share"]),
            "tokenize s": sig(r["tokenize_s"]), "memory MB": f"{num(r['memory_mb'])} {r['memory_kind']}"
            if not pd.isna(r["memory_mb"]) else MISSING,
            "J / 1k tok": sig(r["j_per_1k_tokens"]),
        })
    return pd.DataFrame(rows)


def _ends(interval) -> tuple[float | None, float | None]:
    return (interval[0], interval[1]) if isinstance(interval, (list, tuple)) and len(interval) == 2 else (None, None)


def config_section(df: pd.DataFrame, doc: dict[str, Any]) -> list[Block]:
    blocks = [heading("Backends, dtypes and batching"),
              para("All-language rows. Ranked by useful tok/s; a configuration that fails parity with the reference "
                   "(eager, fp32, static) is marked ✗ and not ranked. × reference divides by the reference's tok/s; "
                   "harness overhead is the timed wall time spent outside forward calls; MFU uses the GEMM peak "
                   "measured in the run.")]
    for task in tables.ordered(df["task"]):
        t = tables.config_table(df, task)
        if not t.empty:
            blocks.append(table(config_table_display(t), task.upper()))
    blocks.extend(para(n) for n in measurement_notes(df, doc))
    return blocks


def measurement_notes(df: pd.DataFrame, doc: dict[str, Any]) -> list[str]:
    env = doc.get("run", {}).get("env", {})
    has_gpu = bool(env.get("gpu") or env.get("gpu_name"))
    notes = []
    if df["energy_j"].isna().all():
        reasons = df["energy_note"].dropna().unique().tolist() if "energy_note" in df.columns else []
        default = ("the GPU's NVML energy counter was unavailable" if has_gpu
                   else "no NVIDIA GPU on this machine (energy is read from NVML)")
        notes.append("Energy: not measured — " + ("; ".join(map(str, reasons)) or default) + ".")
    if df["cuda_max_allocated_mb"].isna().all():
        notes.append("Memory: GPU memory not measured (" + ("unavailable" if has_gpu else "no GPU") +
                     "); the peak resident set size (RSS) of the process is shown instead.")
    if (df["parity_ok"] == False).any():  # noqa: E712
        bad = df[(df["parity_ok"] == False) & (df["lang"] != ALL_LANGS)]  # noqa: E712
        names = sorted({f"{r.task} {r.backend} {r.dtype} {r.batching}" for r in bad.itertuples()})
        notes.append("**Parity failed** for: " + "; ".join(names) + ". Their speed is shown but not ranked.")
    return notes


def quality_section(df: pd.DataFrame, doc: dict[str, Any]) -> list[Block]:
    blocks = [heading("Accuracy, agreement and alignment per language")]
    if df["accuracy"].isna().all():
        model = doc.get("run", {}).get("config", {}).get("model", "the model")
        blocks.append(para(f"Accuracy is empty: {model} has no trained head for these tasks (random-weight presets "
                           "are architecture-only) or the data has no gold labels. Agreement with the reference "
                           "configuration (eager, fp32, static) on the same inputs is shown instead."))
    for task in tables.ordered(df["task"]):
        frame = quality_table_display(df, task)
        if frame is not None:
            blocks.append(table(frame, task.upper()))
    return blocks


def quality_table_display(df: pd.DataFrame, task: str) -> pd.DataFrame | None:
    sub = df[df["task"] == task]
    langs = tables.languages(sub) + [ALL_LANGS]
    out = pd.DataFrame({"lang": langs})
    reference = sub[sub["is_reference"] == True]  # noqa: E712
    if sub["accuracy"].notna().any():
        source = reference if len(reference) else sub
        acc = source.drop_duplicates("lang").set_index("lang")["accuracy"].reindex(langs)
        metric = sub["accuracy_metric"].dropna()
        out[f"{metric.iloc[0] if len(metric) else 'accuracy'} (reference)"] = [pct(v) for v in acc]
    others = sub[sub["is_reference"] != True]  # noqa: E712
    for (backend, dtype, batching), group in others.groupby(["backend", "dtype", "batching"], sort=False):
        g = group.set_index("lang").reindex(langs)
        if g["agreement"].notna().any():
            out[f"agree {backend} {dtype} {batching}"] = [
                f"{pct(a)} (Δ {sci(d)})" for a, d in zip(g["agreement"], g["max_abs_diff"])]
    for column, label in (("alignment_cosine", "alignment cos"), ("alignment_top1", "retrieval top-1")):
        values = sub.dropna(subset=[column]).drop_duplicates("lang").set_index("lang")[column].reindex(langs)
        if values.notna().any():
            out[label] = [sig(v) if column == "alignment_cosine" else pct(v) for v in values]
    if out.shape[1] == 1:
        return None
    out["lang"] = [f"**{x}**" if x == ALL_LANGS else x for x in langs]
    return out


def correlation_section(pairs: dict[str, pd.DataFrame], correlate: Callable) -> list[Block]:
    blocks = [heading("Alignment vs accuracy")]
    if not pairs:
        return blocks + [para("Not computed: the run lacks task accuracy and embedding alignment for at least three "
                              "languages of one task.")]
    rows = []
    for task, frame in pairs.items():
        for column, label in (("alignment_cosine", "mean cosine"), ("alignment_top1", "retrieval top-1")):
            f = frame.dropna(subset=[column])
            if len(f) >= 3:
                r = correlate(f[column].tolist(), f["accuracy"].tolist())
                rows.append({"task": task.upper(), "alignment": label, "languages": str(r.get("n", len(f))),
                             "Pearson r": sig(r.get("pearson")), "Spearman ρ": sig(r.get("spearman"))})
    return blocks + [para("Across languages: does a language's embedding alignment with English track its task "
                          "accuracy?"), table(pd.DataFrame(rows))]


def skipped_and_notes(df: pd.DataFrame, doc: dict[str, Any]) -> list[Block]:
    run = doc.get("run", {})
    blocks = [heading("Skipped languages")]
    skipped = run.get("skipped") or []
    if skipped:
        blocks.append(table(pd.DataFrame([{"task": s.get("task", MISSING), "lang": s.get("lang", MISSING),
                                           "reason": s.get("reason", MISSING)} for s in skipped])))
    else:
        blocks.append(para("None."))
    notes = report_notes(df, run.get("notes") or [])
    return blocks + [heading("Notes"), bullets(notes) if notes else para("None.")]


def chart_block(name: str, charts: dict, skipped: dict, title: str) -> Block:
    if name in charts:
        return plot(name, charts[name].title)
    return para(f"_Chart “{title}” not drawn: {skipped.get(name, 'no data')}._")
