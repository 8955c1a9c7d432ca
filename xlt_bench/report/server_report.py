"""Report of a server-scenario run: max sustainable QPS per policy, latency vs offered load with the SLO line, p99
per language and batch-size histograms."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .blocks import Block, bullets, heading, num, para, pct, plot, sig, table, times
from .plots import Chart, plt, to_png

POLICY_ORDER = ("none", "fixed", "token-budget", "length-bucketed")


def server_frame(doc: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame([r for r in doc.get("rows", []) if r.get("scenario") == "server"])


def max_qps_table(df: pd.DataFrame) -> pd.DataFrame:
    """One line per (backend, dtype, policy): its max sustainable QPS and the ratios to the length-blind policies
    measured in the same run."""
    out = []
    for (backend, dtype), group in df.groupby(["backend", "dtype"], sort=False):
        best = group.groupby("policy")["max_sustainable_qps"].first()
        for policy in _ordered(best.index):
            q = best[policy]
            out.append({"backend": backend, "dtype": dtype, "policy": policy, "max sustainable QPS": sig(q),
                        "÷ token-budget": times(_ratio(q, best.get("token-budget"))),
                        "÷ none": times(_ratio(q, best.get("none")))})
    return pd.DataFrame(out)


def _ratio(a, b):
    if a is None or b is None or pd.isna(a) or pd.isna(b) or not b:
        return None
    return a / b


def _ordered(policies) -> list[str]:
    known = [p for p in POLICY_ORDER if p in policies]
    return known + [p for p in policies if p not in known]


def loads_table(df: pd.DataFrame) -> pd.DataFrame:
    rows = df.sort_values(["backend", "dtype", "policy", "offered_qps"], kind="stable")
    return pd.DataFrame({
        "backend/dtype": rows["backend"] + "/" + rows["dtype"], "policy": rows["policy"],
        "offered QPS": rows["offered_qps"].map(sig), "achieved QPS": rows["achieved_qps"].map(sig),
        "p50 ms": rows["latency_ms_p50"].map(num), "p99 ms": rows["latency_ms_p99"].map(num),
        "within SLO": rows["within_slo"].map(pct), "padding waste": rows["padding_waste"].map(pct),
        "mean rows": rows["mean_batch_rows"].map(lambda v: sig(v, 2)),
        "overloaded": rows["overloaded"].map(lambda v: "yes" if v else ""),
    })


def p99_by_language(df: pd.DataFrame) -> pd.DataFrame:
    """p99 latency per language at each policy's highest sustained load."""
    out = {}
    for (backend, dtype, policy), group in df.groupby(["backend", "dtype", "policy"], sort=False):
        sustained = group[~group["overloaded"].astype(bool)]
        if sustained.empty:
            continue
        row = sustained.sort_values("offered_qps").iloc[-1]
        out[f"{policy} @ {sig(row['offered_qps'])} QPS"] = {k: num(v) for k, v in row["latency_ms_p99_by_lang"].items()}
    return pd.DataFrame(out).rename_axis("lang").reset_index() if out else pd.DataFrame()


def latency_chart(df: pd.DataFrame, slo_ms: float) -> bytes:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for policy in _ordered(df["policy"].unique()):
        sub = df[df["policy"] == policy].sort_values("offered_qps")
        ax.plot(sub["offered_qps"], sub["latency_ms_p99"], marker="o", label=policy)
    ax.axhline(slo_ms, color="#b00020", linestyle="--", linewidth=1, label=f"SLO {slo_ms:g} ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered load (requests/s)")
    ax.set_ylabel("p99 latency (ms)")
    ax.set_title("p99 latency vs offered load per policy")
    ax.legend(fontsize=8)
    return to_png(fig)


def batch_histogram_chart(df: pd.DataFrame) -> bytes:
    policies = _ordered(df["policy"].unique())
    fig, axes = plt.subplots(1, len(policies), figsize=(3.2 * len(policies), 3), squeeze=False)
    for ax, policy in zip(axes[0], policies):
        sub = df[df["policy"] == policy].sort_values("offered_qps")
        sustained = sub[~sub["overloaded"].astype(bool)]
        row = (sustained if not sustained.empty else sub).iloc[-1]
        hist = {int(k): v for k, v in row["batch_rows_histogram"].items()}
        ax.bar(list(hist), list(hist.values()), color="#2e8b57")
        ax.set_title(f"{policy} @ {sig(row['offered_qps'])} QPS", fontsize=9)
        ax.set_xlabel("rows per batch", fontsize=8)
    axes[0][0].set_ylabel("batches")
    return to_png(fig)


def server_blocks(doc: dict[str, Any]) -> tuple[list[Block], dict[str, Chart]]:
    df = server_frame(doc)
    slo = float(df["slo_ms"].iloc[0])
    charts = {"server_latency_vs_load": Chart("server_latency_vs_load", "p99 vs load", latency_chart(df, slo)),
              "server_batch_rows": Chart("server_batch_rows", "rows per batch", batch_histogram_chart(df))}
    overloaded = df[df["overloaded"].astype(bool)]
    blocks = [
        heading("Server scenario"),
        para(f"Open-loop arrivals (seeded Poisson, or a trace); latency = completion − arrival on one clock; SLO "
             f"{slo:g} ms on p99. Max sustainable QPS = the highest offered load with p99 ≤ SLO and nothing left "
             "unserved. Ratios are between policies measured in this run."),
        table(max_qps_table(df), "Max sustainable QPS per policy"),
        plot("server_latency_vs_load", "p99 latency vs offered load per policy (SLO dashed)"),
        table(loads_table(df), "Every offered load"),
        table(p99_by_language(df), "p99 latency (ms) per language at each policy's highest sustained load"),
        plot("server_batch_rows", "Rows per batch at each policy's highest sustained load"),
    ]
    if len(overloaded):
        blocks.append(bullets([f"{r['policy']} @ {sig(r['offered_qps'])} QPS: {n}" for _, r in overloaded.iterrows()
                               for n in r["notes"]]))
    return blocks, charts


def server_console(doc: dict[str, Any]) -> str:
    df = server_frame(doc)
    frame = max_qps_table(df)
    return frame.to_string(index=False) + f"\n(SLO {float(df['slo_ms'].iloc[0]):g} ms on p99)"


def is_server_run(doc: dict[str, Any]) -> bool:
    rows = doc.get("rows", [])
    return bool(rows) and all(r.get("scenario") == "server" for r in rows)
