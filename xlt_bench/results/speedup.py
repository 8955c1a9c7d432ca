"""Speedup, defined once for the gate, the export and the report.

The speedup of a batching is its useful tok/s ÷ that of the reference batching measured in the same run, with every
other part of the row key equal (scenario, task, language, backend, dtype): the machine's speed cancels out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from xlt_bench.core.schema import ROW_KEY, row_key


def reference_batchings() -> tuple[str, ...]:
    """The batchings every other strategy is measured against, in order of preference (DESIGN: static is the
    baseline): the strategies that declare a reference rank (xlt_bench/strategies)."""
    from xlt_bench.batching.strategies import reference_order
    return reference_order()


def reference_batching(batchings: Iterable[str]) -> str | None:
    """The most preferred reference among the batchings that ran; None when none of them did."""
    ran = set(batchings)
    return next((b for b in reference_batchings() if b in ran), None)


def speedup(tok_s: Any, reference_tok_s: Any) -> Any:
    """The ratio itself; takes numbers or aligned columns (pandas, numpy) alike."""
    return tok_s / reference_tok_s


_BATCHING_AT = ROW_KEY.index("batching")


def speedups(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, ...], float]:
    """Speedup of every row with a positive tok/s that has a reference partner. The key is the row key whose
    batching part reads e.g. "dynamic/static" (a sweep's shard or a server load stays where row_key puts it)."""
    groups: dict[tuple[str, ...], dict[str, float]] = {}
    for row in rows:
        tput = row.get("throughput_tok_s")
        if isinstance(tput, (int, float)) and tput > 0:
            groups.setdefault(_without_batching(row_key(row)), {})[str(row["batching"])] = float(tput)
    out: dict[tuple[str, ...], float] = {}
    for group, by_batching in groups.items():
        reference = reference_batching(by_batching)
        if reference is None:
            continue
        for batching, tput in by_batching.items():
            if batching != reference:
                key = group[:_BATCHING_AT] + (f"{batching}/{reference}",) + group[_BATCHING_AT:]
                out[key] = speedup(tput, by_batching[reference])
    return out


def speedup_of(row: dict[str, Any], table: dict[tuple[str, ...], float]) -> float | None:
    """This row's entry in a `speedups` table (None for the reference row itself or a row without a partner)."""
    key = row_key(row)
    for reference in reference_batchings():
        found = table.get(key[:_BATCHING_AT] + (f"{key[_BATCHING_AT]}/{reference}",) + key[_BATCHING_AT + 1:])
        if found is not None:
            return found
    return None


def _without_batching(key: tuple[str, ...]) -> tuple[str, ...]:
    return key[:_BATCHING_AT] + key[_BATCHING_AT + 1:]
