"""Backends compared on one partition (batching 'dynamic-shared'), beside each backend's own dynamic optimum.

A backend ratio taken between two `dynamic` rows mixes two things: how fast each runtime is, and which batches each
backend's own cost model chose. On the shared partition every backend runs the same batches (planned with the run's
first backend's cost model), so the ratio is the runtime alone; own ÷ shared is what a backend's own plan adds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from xlt_bench.core.schema import ALL_LANGS
from xlt_bench.report.blocks import MISSING, Block, heading, num, para, pct, table, times
from xlt_bench.report.tables import ordered


def shared_partition_frame(df: pd.DataFrame, task: str) -> pd.DataFrame:
    """ALL rows of `task` on the shared partition, one per backend × dtype, with the own-plan figures beside."""
    sub = df[(df["task"] == task) & (df["lang"] == ALL_LANGS)]
    shared = sub[sub["batching"] == "dynamic-shared"].set_index(["backend", "dtype"])
    if shared.empty:
        return pd.DataFrame()
    own = sub[sub["batching"] == "dynamic"].set_index(["backend", "dtype"]).reindex(shared.index)
    first = str(shared["partition_of"].dropna().iloc[0]) if "partition_of" in shared else ""
    first_key = tuple(first.split("/", 1)) if "/" in first else None
    first_tok_s = shared["throughput_tok_s"].get(first_key, np.nan) if first_key else np.nan
    out = pd.DataFrame({
        "tok_s_shared": shared["throughput_tok_s"],
        "vs_first": shared["throughput_tok_s"] / first_tok_s,
        "waste_shared": shared["padding_waste"], "batches_shared": shared["n_batches"],
        "tok_s_own": own["throughput_tok_s"], "own_vs_shared": own["throughput_tok_s"] / shared["throughput_tok_s"],
        "waste_own": own["padding_waste"], "batches_own": own["n_batches"],
    }).reset_index()
    out.attrs.update(partition_of=first, task=task)
    return out


def shared_partition_section(df: pd.DataFrame) -> list[Block]:
    """The report section; empty when the run has no dynamic-shared rows."""
    if "dynamic-shared" not in set(df["batching"]):
        return []
    blocks = [heading("Backends on one partition"),
              para("Every backend runs the same length-sorted batches (batching dynamic-shared, planned with the cost "
                   "model of the run's first backend), so the × column, tok/s ÷ the first backend's on the same batches, is the "
                   "runtime's speed alone. Own ÷ shared is what each backend's own dynamic plan (its own cost model "
                   "and budget) adds on top.")]
    for task in ordered(df["task"]):
        t = shared_partition_frame(df, task)
        if t.empty:
            continue
        display = pd.DataFrame([{
            "backend": r.backend, "dtype": r.dtype, "tok/s (shared)": num(r.tok_s_shared),
            f"× {t.attrs['partition_of']}": times(r.vs_first), "waste (shared)": pct(r.waste_shared),
            "batches (shared)": _count(r.batches_shared), "tok/s (own plan)": num(r.tok_s_own),
            "own ÷ shared": times(r.own_vs_shared), "waste (own)": pct(r.waste_own),
            "batches (own)": _count(r.batches_own)} for r in t.itertuples()])
        blocks.append(table(display, f"{task.upper()} — partition of {t.attrs['partition_of']}"))
    return blocks


def _count(value) -> str:
    return MISSING if pd.isna(value) else str(int(value))
