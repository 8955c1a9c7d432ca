"""Result rows (DESIGN §4): one per (task, lang, backend, dtype, batching), and the lang = "ALL" aggregates.

Every timed row keeps its passes' wall seconds (`pass_wall_s`) and carries a 95% interval of its useful tok/s
(`throughput_tok_s_ci95`, stats.log_t_interval over the per-pass rates). The point `throughput_tok_s` stays useful
tokens ÷ the mean pass time. An ALL row's pass r is the sum of its languages' pass r (their tokens ÷ the sum of their
pass-r wall times), so its interval comes from its own passes, not from the languages' intervals. Each non-reference
row gets `speedup` (its tok/s ÷ the same backend/dtype's static row, speedup.py) and `speedup_ci95` from the paired
passes (pass r with the reference's pass r, timed in the same round).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from xlt_bench.batching.planners import batch_stats
from xlt_bench.core.flops import EncoderShape, executed_flops, useful_flops
from xlt_bench.core.catalogue import METRICS
from xlt_bench.measure.passes import Measurement
from xlt_bench.core.schema import ALL_LANGS, ROW_FIELDS, RowKey
from xlt_bench.results.speedup import reference_batching, speedup
from xlt_bench.core.stats import INTERVAL_METHOD, log_t_interval, paired_ratio_interval, padding_waste, per_pass_rates, percentile, \
    safe_ratio


def measurement_row(*, key: RowKey, lengths: np.ndarray, n_examples: int, measurement: Measurement,
                    flops_shape: EncoderShape, peak_flops: float | None = None, attn: str | None = None
                    ) -> dict[str, Any]:
    """The efficiency part of a row; accuracy/agreement/parity are filled in by evaluation."""
    m = measurement
    stats = batch_stats(lengths, m.batches)
    useful = useful_flops(flops_shape, lengths.tolist())
    executed = executed_flops(flops_shape, [getattr(b, "flops_dims", b.shape) for b in m.batches])
    wall = m.wall_s
    row: dict[str, Any] = key.fields()
    row.update(
        attn=attn,
        n_examples=n_examples, n_sequences=int(len(lengths)), n_batches=stats["n_batches"],
        real_tokens=stats["real_tokens"], padded_tokens=stats["padded_tokens"],
        padding_waste=padding_waste(stats["real_tokens"], stats["padded_tokens"]),
        wall_s=wall, throughput_seq_s=safe_ratio(len(lengths), wall),
        throughput_tok_s=safe_ratio(stats["real_tokens"], wall),
        latency_ms_p50=percentile(m.latencies_ms, 50), latency_ms_p90=percentile(m.latencies_ms, 90),
        latency_ms_p99=percentile(m.latencies_ms, 99),
        flops_useful=useful, flops_executed=executed,
        mfu=_mfu(useful, wall, peak_flops), gemm_peak_flops=peak_flops,
        accuracy=None, accuracy_metric=None, agreement=None, max_abs_diff=None, parity_ok=None, is_reference=False,
        mean_tokens_per_seq=safe_ratio(stats["real_tokens"], len(lengths)),
        n_repeats=m.n_repeats, latencies_ms=[round(x, 4) for x in m.latencies_ms],
        pass_wall_s=[round(x, 6) for x in m.pass_wall_s],
        throughput_tok_s_ci95=_interval(per_pass_rates(stats["real_tokens"], m.pass_wall_s)),
        forward_s=m.forward_s, harness_overhead_s=wall - m.forward_s, warmup_shapes=m.warmup_shapes,
        warmup_s=m.warmup_s,
        notes=[],
    )
    return row


def apply_peak(row: dict[str, Any], peak_flops: float | None) -> None:
    """Set the GEMM peak a row's MFU is measured against, and the MFU itself."""
    row["gemm_peak_flops"] = peak_flops
    row["mfu"] = _mfu(row["flops_useful"], row["wall_s"], peak_flops)


def _mfu(flops: int, wall: float, peak: float | None) -> float | None:
    if not peak or wall <= 0:
        return None
    return flops / wall / peak


def all_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Aggregate per-language rows into lang = "ALL" rows, one per configuration (the row key less its language)."""
    groups: dict[RowKey, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["lang"] != ALL_LANGS:
            groups[replace(RowKey.of(row), lang=ALL_LANGS)].append(row)
    return [_aggregate(key, group) for key, group in groups.items()]


def _aggregate(key: RowKey, group: list[dict[str, Any]]) -> dict[str, Any]:
    """Each catalogued metric combined as core/catalogue.py declares; recomputed ones from the ALL row's own totals."""
    out = key.fields()
    for metric in METRICS.values():
        if metric.aggregation in _COMBINE:
            out[metric.name] = _COMBINE[metric.aggregation](group, metric.name)
    for metric in METRICS.values():
        if metric.aggregation == "recompute":
            out[metric.name] = _recipe(metric.name)(out, group)
    out.update(_descriptive(group))
    missing = [f for f in ROW_FIELDS if f not in out]
    assert not missing, missing
    return out


def _sum(group: list[dict[str, Any]], name: str) -> Any:
    values = [r.get(name) for r in group]
    return sum(values) if all(v is not None for v in values) else None


def _known(group: list[dict[str, Any]], name: str) -> list[Any]:
    return [r[name] for r in group if r.get(name) is not None]


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _weighted(pairs: Sequence[tuple[float | None, int]]) -> float | None:
    pairs = [(v, w) for v, w in pairs if v is not None]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total else None


_COMBINE: dict[str, Callable[[list[dict[str, Any]], str], Any]] = {
    "sum": _sum,
    "max": lambda group, name: max(_known(group, name), default=None),
    "min": lambda group, name: min(_known(group, name), default=None),
    # XTREME convention: a task's score is the mean over its languages.
    "mean": lambda group, name: _mean([r.get(name) for r in group]),
    "weighted": lambda group, name: _weighted([(r.get(name), r["n_examples"]) for r in group]),
    "same": lambda group, name: group[0].get(name),
}


def _latency(q: int) -> Callable[[dict[str, Any], list[dict[str, Any]]], float | None]:
    return lambda out, group: percentile([x for r in group for x in r["latencies_ms"]], q)


# Metrics aggregated as "recompute": from the ALL row's summed fields (`out`) or its languages' samples (`group`).
_RECOMPUTE: dict[str, Callable[[dict[str, Any], list[dict[str, Any]]], Any]] = {
    "padding_waste": lambda out, group: padding_waste(out["real_tokens"], out["padded_tokens"]),
    "throughput_seq_s": lambda out, group: safe_ratio(out["n_sequences"], out["wall_s"]),
    "throughput_tok_s": lambda out, group: safe_ratio(out["real_tokens"], out["wall_s"]),
    "latency_ms_p50": _latency(50),
    "latency_ms_p90": _latency(90),
    "latency_ms_p99": _latency(99),
    "latencies_ms": lambda out, group: [],   # the percentiles above pool them; the pooled list is not kept
    "mfu": lambda out, group: _mfu(out["flops_useful"], out["wall_s"], out["gemm_peak_flops"]),
    "mean_tokens_per_seq": lambda out, group: safe_ratio(out["real_tokens"], out["n_sequences"]),
    "j_per_1k_tokens": lambda out, group: (safe_ratio(out["energy_j"], (out["real_tokens"] or 0) / 1000)
                                           if out["energy_j"] else None),
    "pass_wall_s": lambda out, group: _summed_passes(group),
    "throughput_tok_s_ci95": lambda out, group: _interval(per_pass_rates(out["real_tokens"] or 0,
                                                                         _summed_passes(group))),
}


def _recipe(name: str) -> Callable[[dict[str, Any], list[dict[str, Any]]], Any]:
    if name not in _RECOMPUTE:
        raise ValueError(f"metric '{name}' is declared 'recompute' but rows.py has no recipe for its ALL value")
    return _RECOMPUTE[name]


def _descriptive(group: list[dict[str, Any]]) -> dict[str, Any]:
    """The ALL row's fields that are not figures: how the figures were obtained, and which languages it covers."""
    first = group[0]
    out = dict(accuracy_metric=first.get("accuracy_metric"), parity_ok=_all_ok([r.get("parity_ok") for r in group]),
               is_reference=first.get("is_reference", False), langs=[r["lang"] for r in group], notes=[])
    if first.get("partition_of"):   # dynamic-shared: whose plan these batches are
        out["partition_of"] = first["partition_of"]
    return out


def _all_ok(values: Sequence[bool | None]) -> bool | None:
    vals = [v for v in values if v is not None]
    return all(vals) if vals else None


def _summed_passes(group: list[dict[str, Any]]) -> list[float]:
    """Pass r of an ALL row: the sum of its languages' pass r, over the passes every language has (languages keep
    equal counts unless --min-seconds gave a short one extra rounds)."""
    per_language = [r.get("pass_wall_s") or [] for r in group]
    if not per_language or any(not p for p in per_language):
        return []
    n = min(len(p) for p in per_language)
    return [round(sum(p[r] for p in per_language), 6) for r in range(n)]


def _interval(values: list[float]) -> list[float] | None:
    found = log_t_interval(values)
    return [found[0], found[1]] if found else None



def add_intervals(rows: Sequence[dict[str, Any]]) -> None:
    """Set `speedup` and `speedup_ci95` on every row that has a reference partner (static, else static-longest:
    speedup.py), in place. The reference row itself and rows without a partner get neither. Every row with passes
    records the interval method in `interval_method`."""
    groups: dict[tuple, dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        # A speedup pairs rows that differ only in their batching.
        partners = (replace(RowKey.of(row), batching=None), row.get("offered_qps"), row.get("shard"))
        groups[partners][str(row.get("batching"))] = row
        if row.get("pass_wall_s"):
            row["interval_method"] = INTERVAL_METHOD
    for by_batching in groups.values():
        reference = reference_batching(by_batching)
        if reference is None:
            continue
        base = by_batching[reference]
        for batching, row in by_batching.items():
            if batching != reference:
                _set_speedup(row, base)


def _set_speedup(row: dict[str, Any], base: dict[str, Any]) -> None:
    tput, base_tput = row.get("throughput_tok_s"), base.get("throughput_tok_s")
    if not (tput and base_tput):
        return
    row["speedup"] = speedup(tput, base_tput)
    # Same useful tokens on both sides (same language set), so the ratio of tok/s in pass r is that of the walls.
    rates = per_pass_rates(row["real_tokens"], row.get("pass_wall_s") or [])
    base_rates = per_pass_rates(base["real_tokens"], base.get("pass_wall_s") or [])
    found = paired_ratio_interval(rates, base_rates)
    row["speedup_ci95"] = [found[0], found[1]] if found else None
