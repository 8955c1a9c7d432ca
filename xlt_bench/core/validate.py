"""Consistency of a results document's rows, checked whenever one is read (`report`, `compare`, `gate`, `export`).

A results file may have been edited, merged by another tool or written by a buggy version; a figure that cannot be
true (a padding share above 1, a negative count, NaN) or an ALL row that disagrees with its languages must stop the
reader with the file, the row and the field, not be rendered or gated.
"""

from __future__ import annotations

import math
from typing import Any

from xlt_bench.core.errors import InputError

# Counts and amounts that are never negative.
NON_NEGATIVE = ("n_examples", "n_sequences", "n_batches", "real_tokens", "padded_tokens", "wall_s",
                "throughput_seq_s", "throughput_tok_s", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99",
                "flops_useful", "flops_executed", "mfu", "forward_s", "energy_j")
# Shares: between 0 and 1.
FRACTIONS = ("padding_waste", "agreement")
# Figures that must be finite when present. max_abs_diff is not among them: NaN outputs of a backend are a finding
# (parity fails), recorded as they were measured.
FINITE = NON_NEGATIVE + FRACTIONS + ("speedup", "j_per_1k_tokens", "mean_tokens_per_seq", "predicted_s",
                                     "packing_bound_s", "accuracy")
# An ALL row's totals are its languages' sums.
SUMMED_OVER_LANGS = ("n_examples", "real_tokens", "padded_tokens")
# What tells one ALL row's group from another (as the aggregation groups them).
_GROUP = ("scenario", "task", "model", "backend", "device", "dtype", "batching", "offered_qps", "shard")


def check_rows(rows: list[dict[str, Any]], file: str) -> None:
    """InputError naming the file, the row (index, task/lang/backend/batching) and the field of the first value
    that cannot be true."""
    for i, row in enumerate(rows):
        for key in FINITE:
            if isinstance(row.get(key), float) and not math.isfinite(row[key]):
                _fail(file, i, row, key, f"{row[key]} is not a finite number")
        for key in NON_NEGATIVE:
            if _number(row.get(key)) and row[key] < 0:
                _fail(file, i, row, key, f"{row[key]} is negative")
        for key in FRACTIONS:
            if _number(row.get(key)) and not 0.0 <= row[key] <= 1.0:
                _fail(file, i, row, key, f"{row[key]} is outside [0, 1]")
    _check_all_rows(rows, file)


def check_has_rows(doc: dict[str, Any], file: str) -> None:
    """A reader that reports or gates needs at least one row."""
    if not doc["rows"]:
        raise InputError("holds no rows: nothing was measured in this run", file=file, field="rows")


def _check_all_rows(rows: list[dict[str, Any]], file: str) -> None:
    groups: dict[tuple, dict[str, dict[str, Any]]] = {}
    for row in rows:
        if row.get("lang") != "ALL":
            groups.setdefault(_group(row), {})[row.get("lang")] = row
    for i, row in enumerate(rows):
        langs = row.get("langs")
        if row.get("lang") != "ALL" or not isinstance(langs, list) or not langs:
            continue
        members = groups.get(_group(row), {})
        if not all(lang in members for lang in langs):
            continue  # its languages are not in this file (a filtered export): nothing to compare with
        for key in SUMMED_OVER_LANGS:
            values = [members[lang].get(key) for lang in langs]
            if _number(row.get(key)) and all(_number(v) for v in values) and sum(values) != row[key]:
                _fail(file, i, row, key, f"{row[key]} is not the sum over its languages {', '.join(langs)} "
                                         f"({sum(values)})")


def _group(row: dict[str, Any]) -> tuple:
    return tuple(row.get(k, "offline" if k == "scenario" else None) for k in _GROUP)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fail(file: str, index: int, row: dict[str, Any], key: str, reason: str) -> None:
    which = "/".join(str(row.get(k)) for k in ("task", "lang", "backend", "dtype", "batching"))
    raise InputError(f"row {index} ({which}): {reason}", file=file, field=key)
