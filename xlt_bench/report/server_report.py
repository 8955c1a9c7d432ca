"""Report of a server-scenario run: max sustainable QPS per policy with 95% intervals across arrival seeds (and
which policies cannot be told apart), latency vs offered load with the SLO line, p99 per language and batch-size
histograms.

Ratios of max QPS are paired by arrival seed (policy A's seed-s estimate ÷ policy B's, both served the same arrivals
and requests): `xlt_bench.core.stats.paired_ratio_interval`. Rows written before server rows had intervals or their own
`policy` field are read too (the policy then sits in `batching`; figures without an interval show none).
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import pandas as pd

from xlt_bench.core.stats import excludes_one, paired_ratio_interval
from xlt_bench.report.blocks import Block, bullets, heading, num, para, pct, plot, sig, table, times
from xlt_bench.report.plots import Chart, plt, to_png

POLICY_ORDER = ("none", "fixed", "token-budget", "length-bucketed")
RATIO_TO = ("token-budget", "none")


def server_frame(doc: dict[str, Any]) -> pd.DataFrame:
    df = pd.DataFrame([r for r in doc.get("rows", []) if r.get("scenario") == "server"])
    if df.empty:
        return df
    policy = df["policy"] if "policy" in df.columns else pd.Series([None] * len(df), index=df.index)
    df["policy"] = policy.where(policy.notna(), df.get("batching"))
    for column in ("max_sustainable_qps_ci95", "max_sustainable_qps_by_seed", "achieved_qps_ci95",
                   "latency_ms_p99_ci95"):
        if column not in df.columns:
            df[column] = None
    return df


def policy_estimates(df: pd.DataFrame) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    """Per (backend, dtype): per policy its max QPS, interval and per-seed values (first row of the policy)."""
    out: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for (backend, dtype), group in df.groupby(["backend", "dtype"], sort=False):
        firsts = group.groupby("policy", sort=False).first()
        out[(backend, dtype)] = {p: {"qps": firsts.at[p, "max_sustainable_qps"],
                                     "ci": as_list(firsts.at[p, "max_sustainable_qps_ci95"]),
                                     "by_seed": as_list(firsts.at[p, "max_sustainable_qps_by_seed"])}
                                 for p in _ordered(firsts.index)}
    return out


def max_qps_table(df: pd.DataFrame) -> pd.DataFrame:
    """One line per (backend, dtype, policy): its max sustainable QPS with its interval and the seed-paired ratios
    to the length-blind policies measured in the same run."""
    out = []
    for (backend, dtype), by_policy in policy_estimates(df).items():
        for policy, est in by_policy.items():
            line = {"backend": backend, "dtype": dtype, "policy": policy,
                    "max sustainable QPS": with_interval(est["qps"], est["ci"], sig)}
            for other in RATIO_TO:
                ratio, ci = qps_ratio(est, by_policy.get(other)) if other != policy else (None, None)
                line[f"÷ {other}"] = with_interval(ratio, ci, times)
            out.append(line)
    return pd.DataFrame(out)


def qps_ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> tuple[float | None, list[float] | None]:
    """a's max QPS ÷ b's and its seed-paired interval (None without both per-seed lists)."""
    if not a or not b:
        return None, None
    ratio = _ratio(a["qps"], b["qps"])
    pairs = [(x, y) for x, y in zip(a["by_seed"] or [], b["by_seed"] or []) if x and y]
    found = paired_ratio_interval([x for x, _ in pairs], [y for _, y in pairs]) if pairs else None
    return ratio, list(found) if found else None


def indistinguishable(df: pd.DataFrame) -> list[str]:
    """Pairs of policies whose max QPS intervals overlap: the run cannot tell them apart."""
    found = []
    for (backend, dtype), by_policy in policy_estimates(df).items():
        for (p, a), (q, b) in combinations(by_policy.items(), 2):
            if a["ci"] and b["ci"] and a["ci"][0] <= b["ci"][1] and b["ci"][0] <= a["ci"][1]:
                ratio, ci = qps_ratio(b, a)
                paired = (f"; the seed-paired ratio {q} ÷ {p} {with_interval(ratio, ci, times)} "
                          f"{'excludes' if excludes_one(ci) else 'includes'} 1" if ci else "")
                found.append(f"{backend}/{dtype}: {p} ({with_interval(a['qps'], a['ci'], sig)}) and {q} "
                             f"({with_interval(b['qps'], b['ci'], sig)}): max QPS intervals overlap, "
                             f"cannot be told apart{paired}")
    return found


def search_notes(df: pd.DataFrame) -> list[str]:
    """Why a policy has no max QPS or a bracket wider than the target: per seed, what the search could establish."""
    notes = []
    for (backend, dtype, policy), group in df.groupby(["backend", "dtype", "policy"], sort=False):
        first, before = group.iloc[0], len(notes)
        brackets = as_list(first.get("max_qps_bracket_by_seed")) or []
        for seed, (passed, failed) in enumerate(brackets):
            if not passed:
                notes.append(f"{backend}/{dtype} {policy}: seed {seed} sustained no load served (lowest failed: "
                             f"{sig(failed)} QPS), so the policy has no max QPS estimate")
            elif failed is None:
                notes.append(f"{backend}/{dtype} {policy}: seed {seed} sustained every load served, up to "
                             f"{sig(passed)} QPS (a lower bound)")
        resolved = first.get("max_qps_resolved")
        if resolved is not None and not pd.isna(resolved) and not bool(resolved) and len(notes) == before:
            notes.append(f"{backend}/{dtype} {policy}: some seed's bracket is wider than the 5% target")
    return notes


def as_list(cell) -> list | None:
    """A list cell of the frame (an interval or per-seed values), None when absent."""
    return list(cell) if isinstance(cell, (list, tuple)) else None


def with_interval(value, interval, fmt) -> str:
    """'12.3 [11.0, 13.5]' (the value alone without an interval)."""
    text = fmt(value)
    if interval and value is not None and not pd.isna(value):
        text += f" [{fmt(interval[0])}, {fmt(interval[1])}]"
    return text


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
        "offered QPS": rows["offered_qps"].map(sig),
        "achieved QPS": [with_interval(v, as_list(ci), sig) for v, ci in zip(rows["achieved_qps"],
                                                                            rows["achieved_qps_ci95"])],
        "p50 ms": rows["latency_ms_p50"].map(num),
        "p99 ms": [with_interval(v, as_list(ci), num) for v, ci in zip(rows["latency_ms_p99"],
                                                                      rows["latency_ms_p99_ci95"])],
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
        lows, highs = zip(*[(v - ci[0], ci[1] - v) if as_list(ci) else (0.0, 0.0)
                            for v, ci in zip(sub["latency_ms_p99"], sub["latency_ms_p99_ci95"])])
        ax.errorbar(sub["offered_qps"], sub["latency_ms_p99"], yerr=[lows, highs], marker="o", capsize=3,
                    label=policy)
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
             "unserved. Each load is served once per arrival seed: figures are geometric means over seeds with "
             "95% intervals [low, high] (Student-t on log per-seed values); a trace replays the same arrivals, so "
             "its interval covers service noise only. Max QPS is bisected per seed; ratios between policies are "
             "paired by seed, both measured in this run."),
        table(max_qps_table(df), "Max sustainable QPS per policy, 95% interval across arrival seeds"),
        para(_separation_sentence(df)),
        plot("server_latency_vs_load", "p99 latency vs offered load per policy (SLO dashed)"),
        table(loads_table(df), "Every offered load"),
        table(p99_by_language(df), "p99 latency (ms) per language at each policy's highest sustained load"),
        plot("server_batch_rows", "Rows per batch at each policy's highest sustained load"),
    ]
    notes = search_notes(df) if "max_qps_bracket_by_seed" in df.columns else []
    if notes:
        blocks.append(bullets(notes))
    if len(overloaded):
        blocks.append(bullets([f"{r['policy']} @ {sig(r['offered_qps'])} QPS: {n}" for _, r in overloaded.iterrows()
                               for n in r["notes"]]))
    return blocks, charts


def _separation_sentence(df: pd.DataFrame) -> str:
    overlapping = indistinguishable(df)
    if overlapping:
        return "Not significant: " + "; ".join(overlapping) + "."
    with_ci = [p for by_policy in policy_estimates(df).values() for p, est in by_policy.items() if est["ci"]]
    if len(with_ci) < 2:
        return ("Fewer than two policies have a max QPS interval (one arrival seed, or a seed that sustained no "
                "load): whether they differ is not established.")
    return "The max QPS intervals of the policies that have one do not overlap."


def server_console(doc: dict[str, Any]) -> str:
    df = server_frame(doc)
    frame = max_qps_table(df)
    return (frame.to_string(index=False) + f"\n(SLO {float(df['slo_ms'].iloc[0]):g} ms on p99; 95% intervals "
            f"across arrival seeds)\n" + _separation_sentence(df))


def is_server_run(doc: dict[str, Any]) -> bool:
    rows = doc.get("rows", [])
    return bool(rows) and all(r.get("scenario") == "server" for r in rows)
