"""The gate's verdict as text (`xlt-bench gate`): a markdown table of every check, failures first, then the summary,
each failure by name and the warnings; the same checks as JSON for `--json`. Plain data in (the check rows the gate
judged), so this module needs nothing from the ci stage; the gate's own messages format numbers with the two
helpers below, so a value reads the same in a message and in the table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

HEADER = ("key (task/lang/backend/dtype/batching)", "metric", "baseline", "current", "change", "threshold", "status")
# Failures first: the lines a reader of a failed CI job is looking for.
STATUS_ORDER = {"regression": 0, "missing": 1, "ok": 2}


def format_value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def format_change(change: float | None, relative: bool) -> str:
    if change is None:
        return "-"
    return f"{change:+.1%}" if relative else f"{change:+.4f}"


def gate_table(rows: Sequence[dict[str, Any]], summary: str, failures: Sequence[str],
               warnings: Sequence[str]) -> str:
    """Every check row (as the gate judged it) in a markdown table, then the summary, failures and warnings."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    for r in sorted(rows, key=lambda r: STATUS_ORDER[r["status"]]):
        cells = [r["key"], r["metric"], format_value(r["baseline"]), format_value(r["current"]),
                 format_change(r["change"], r["relative"]), r["threshold"],
                 r["status"].upper() if r["status"] != "ok" else "ok"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", summary]
    lines += [f"FAIL {m}" for m in failures]
    lines += [f"warning: {w}" for w in warnings]
    return "\n".join(lines)


def gate_json(rows: Sequence[dict[str, Any]], summary: str, passed: bool, warnings: Sequence[str]) -> str:
    """The verdict, its summary, every check row and the warnings as one JSON document."""
    return json.dumps({"passed": passed, "summary": summary, "checks": list(rows), "warnings": list(warnings)},
                      indent=1)
