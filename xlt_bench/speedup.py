"""Speedup, defined once for the gate, the export and the report.

The speedup of a batching is its useful tok/s ÷ that of the reference batching measured in the same run, with every
other part of the row key equal (scenario, task, language, backend, dtype): the machine's speed cancels out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .schema import row_key

# The batching every other strategy is measured against, in order of preference (DESIGN: static is the baseline).
REFERENCE_BATCHINGS = ("static", "static-longest")


def reference_batching(batchings: Iterable[str]) -> str | None:
    """The most preferred reference among the batchings that ran; None when none of them did."""
    ran = set(batchings)
    return next((b for b in REFERENCE_BATCHINGS if b in ran), None)


def speedup(tok_s: Any, reference_tok_s: Any) -> Any:
    """The ratio itself; takes numbers or aligned columns (pandas, numpy) alike."""
    return tok_s / reference_tok_s


def speedups(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, ...], float]:
    """Speedup of every row with a positive tok/s that has a reference partner. The key is the row key whose
    batching part reads e.g. "dynamic/static"."""
    groups: dict[tuple[str, ...], dict[str, float]] = {}
    for row in rows:
        tput = row.get("throughput_tok_s")
        if isinstance(tput, (int, float)) and tput > 0:
            key = row_key(row)
            group = key[:-1] if key[-1] == str(row["batching"]) else key  # every key part but the batching
            groups.setdefault(group, {})[str(row["batching"])] = float(tput)
    out: dict[tuple[str, ...], float] = {}
    for group, by_batching in groups.items():
        reference = reference_batching(by_batching)
        if reference is None:
            continue
        for batching, tput in by_batching.items():
            if batching != reference:
                out[group + (f"{batching}/{reference}",)] = speedup(tput, by_batching[reference])
    return out
