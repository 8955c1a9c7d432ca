"""What the run command prints: the short table when a run finishes (one line per all-language configuration), and
the notes beside a dry run's plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xlt_bench.report import tables
from xlt_bench.report.blocks import MISSING, num, pct, times

COLUMNS = ("task", "backend", "dtype", "batching", "ALL tok/s", "speedup", "waste", "mfu", "parity")


def console_summary(doc: dict[str, Any]) -> str:
    from xlt_bench.report.server_report import is_server_run, server_console
    if is_server_run(doc):
        return server_console(doc)
    df = tables.rows_frame(doc)
    if df.empty:
        return "no result rows"
    lines = []
    for task in tables.ordered(df["task"]):
        t = tables.config_table(df, task)
        for _, r in t.sort_values(["backend", "dtype", "batching"], kind="stable").iterrows():
            parity = {True: "ok", False: "FAILED"}.get(r["parity_ok"], MISSING)
            lines.append((task, r["backend"], r["dtype"], r["batching"], num(r["throughput_tok_s"]),
                          times(r["speedup_vs_base"]), pct(r["padding_waste"]), pct(r["mfu"], 2), parity))
    widths = [max(len(str(x)) for x in col) for col in zip(COLUMNS, *lines)]
    numeric = {4, 5, 6, 7}

    def fmt(cells) -> str:
        return "  ".join(str(c).rjust(w) if i in numeric else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    base = "speedup = useful tok/s ÷ the same backend/dtype's static run"
    return "\n".join([fmt(COLUMNS), fmt(["-" * w for w in widths]), *map(fmt, lines), base])


def finished_run(doc: dict[str, Any], out: Path) -> str:
    """The summary table and where the results are."""
    return f"{console_summary(doc)}\nresults: {Path(out) / 'results.json'}"


def dry_run_notes(cfg) -> list[str]:
    """What a dry run's estimate leaves out."""
    if cfg.scenario == "server":
        return [f"server: each policy runs {cfg.duration:g} s of arrivals per offered load on top of this"]
    return []
