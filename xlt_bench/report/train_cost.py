"""Rendering of `xlt-bench train-cost`: a table and bar charts per regime (FLOPs, hours, share spent on padding)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from xlt_bench.core.schema import atomic_write_bytes, atomic_write_text
from xlt_bench.report.blocks import bullets, heading, para, pct, plot, sci, sig, table
from xlt_bench.report.html import render_html
from xlt_bench.report.markdown import render_markdown
from xlt_bench.report.plots import Chart, colour_of, plt, to_png


def train_cost_notes(plan, accelerator: dict[str, Any], measured_path: str | None, measured: bool) -> list[str]:
    """How the projection's hours and energy were obtained (the plan's accelerator, MFU and measured run)."""
    return [f"{plan.accelerator}: {accelerator['source']}; hours = executed FLOPs / (peak x MFU {plan.mfu:.0%}), "
            f"energy = hours x {accelerator['watts']} W board power: projections, not measurements",
            f"hours here: useful training FLOPs / the useful FLOP/s measured in `{measured_path}` ({plan.dtype})"
            if measured else "hours here: none (give --measured RUN_DIR of an `xlt-bench run --scenario train`)",
            "dynamic padding share: simulated greedy fill of length-sorted sequences up to batch_size x max_length "
            "tokens; static pads every sequence to max_length"]


def render_train_cost(rows: list[dict[str, Any]], meta: dict[str, Any], out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    frame = pd.DataFrame(rows)
    charts = {"train_cost": Chart("train_cost", "Training cost per regime", _chart(frame, meta))}
    blocks = [heading("Training cost", 1),
              para(f"Plan `{meta['plan']}`. FLOPs are analytic: forward + backward = 3x forward per pass, the "
                   "optimizer step apart; token counts from per-language length profiles."),
              bullets(meta["notes"]),
              table(_formatted(frame, meta), "Per regime and batching"),
              plot("train_cost", "Training FLOPs, projected hours and padding share per regime")]
    atomic_write_bytes(out_dir / "plots" / "train_cost.png", charts["train_cost"].png)
    atomic_write_text(out_dir / "train_cost.md", render_markdown(blocks))
    atomic_write_text(out_dir / "train_cost.html", render_html(blocks, charts, "xlt-bench training cost"))
    atomic_write_text(out_dir / "train_cost.json", json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    return [out_dir / name for name in ("train_cost.md", "train_cost.html", "train_cost.json")]


def _formatted(frame: pd.DataFrame, meta: dict[str, Any]) -> pd.DataFrame:
    accel = meta["accelerator"]
    return pd.DataFrame({
        "regime": frame["regime"], "kind": frame["kind"], "batching": frame["batching"],
        "langs": frame["langs"].map(len), "passes/update": frame["passes_per_update"],
        "sequences": frame["sequences"].map(sig), "FLOPs useful": frame["flops_useful"].map(sci),
        "FLOPs executed": frame["flops_executed"].map(sci), "on padding": frame["padding_share"].map(pct),
        "optimizer FLOPs": frame["optimizer_flops"].map(sci),
        "hours here (measured rate)": frame["hours_here"].map(sig),
        f"{accel} hours (projection)": frame["accelerator_hours"].map(sig),
        f"{accel} kWh (projection)": frame["accelerator_energy_kwh"].map(sig),
    })


def _chart(frame: pd.DataFrame, meta: dict[str, Any]) -> bytes:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    regimes = list(dict.fromkeys(frame["regime"]))
    batchings = list(dict.fromkeys(frame["batching"]))
    width = 0.8 / max(len(batchings), 1)
    panels = (("flops_executed", "training FLOPs executed"),
              ("accelerator_hours", f"{meta['accelerator']} hours at MFU {meta['mfu']:.0%} (projection)"),
              ("padding_share", "share of FLOPs spent on padding"))
    for ax, (column, title) in zip(axes, panels):
        for i, batching in enumerate(batchings):
            sub = frame[frame["batching"] == batching].set_index("regime").reindex(regimes)
            ax.bar([x + i * width for x in range(len(regimes))], sub[column].astype(float), width,
                   label=batching, color=colour_of(batching))
        ax.set_xticks([x + width * (len(batchings) - 1) / 2 for x in range(len(regimes))])
        ax.set_xticklabels(regimes, rotation=20, ha="right", fontsize=8)
        ax.set_title(title, fontsize=9)
        if column == "flops_executed":
            ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    return to_png(fig)
