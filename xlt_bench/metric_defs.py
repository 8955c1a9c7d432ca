"""Every number a row can carry, declared once: unit, direction and how per-language rows combine into ALL.

Rows, the gate, the report and export iterate these declarations instead of naming fields each on their own
(DESIGN §5). A scenario that adds a metric adds one `Metric` here (or registers its own with `register`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["higher", "lower", "none"]
# sum: add per-language values; max: the worst; mean: unweighted mean over languages (XTREME's task score);
# weighted: mean weighted by n_examples; recompute: derived from other aggregated fields (a ratio of sums, a
# percentile of pooled samples); none: not aggregated.
Aggregation = Literal["sum", "max", "mean", "weighted", "recompute", "none"]


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    direction: Direction
    aggregation: Aggregation
    description: str
    scenarios: tuple[str, ...] = ("offline",)   # scenarios whose rows carry it

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"


_ALL_SCENARIOS = ("offline", "server", "train")

METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    if metric.name in METRICS and METRICS[metric.name] != metric:
        raise ValueError(f"metric '{metric.name}' is declared twice with different definitions")
    METRICS[metric.name] = metric
    return metric


for _m in (
    Metric("n_examples", "examples", "none", "sum", "examples measured", _ALL_SCENARIOS),
    Metric("n_sequences", "sequences", "none", "sum", "encoder inputs (QA windows, choices) measured", _ALL_SCENARIOS),
    Metric("n_batches", "batches", "none", "sum", "forward calls per pass", _ALL_SCENARIOS),
    Metric("real_tokens", "tokens", "none", "sum", "unpadded tokens, special tokens included", _ALL_SCENARIOS),
    Metric("padded_tokens", "tokens", "none", "sum", "rows x padded length actually executed", _ALL_SCENARIOS),
    Metric("padding_waste", "fraction", "lower", "recompute", "1 - real_tokens / padded_tokens", _ALL_SCENARIOS),
    Metric("wall_s", "s", "lower", "sum", "wall seconds of one timed pass", ("offline", "train")),
    Metric("throughput_seq_s", "seq/s", "higher", "recompute", "sequences / wall seconds", _ALL_SCENARIOS),
    Metric("throughput_tok_s", "tok/s", "higher", "recompute", "useful (unpadded) tokens / wall seconds",
           _ALL_SCENARIOS),
    Metric("latency_ms_p50", "ms", "lower", "recompute", "median latency (batch in offline, request in server)",
           _ALL_SCENARIOS),
    Metric("latency_ms_p90", "ms", "lower", "recompute", "90th percentile latency", _ALL_SCENARIOS),
    Metric("latency_ms_p99", "ms", "lower", "recompute", "99th percentile latency", _ALL_SCENARIOS),
    Metric("flops_useful", "FLOP", "none", "sum", "analytic FLOPs of the unpadded sequences", _ALL_SCENARIOS),
    Metric("flops_executed", "FLOP", "none", "sum", "analytic FLOPs of the padded batches as run", _ALL_SCENARIOS),
    Metric("mfu", "fraction", "higher", "recompute", "useful FLOP/s / GEMM peak measured in the same run",
           ("offline", "train")),
    Metric("accuracy", "score", "higher", "mean", "the task's own metric against gold labels", ("offline",)),
    Metric("agreement", "fraction", "higher", "weighted", "share of predictions equal to eager/fp32/static",
           ("offline",)),
    Metric("max_abs_diff", "logit", "lower", "max", "largest |output - reference output|", ("offline",)),
    Metric("energy_j", "J", "lower", "sum", "GPU energy over the timed passes (NVML)", _ALL_SCENARIOS),
    Metric("j_per_1k_tokens", "J/1k tok", "lower", "recompute", "energy per 1000 useful tokens", _ALL_SCENARIOS),
    Metric("peak_rss_mb", "MB", "lower", "max", "peak resident memory while measuring", _ALL_SCENARIOS),
    Metric("cuda_max_allocated_mb", "MB", "lower", "max", "CUDA max allocated while measuring", _ALL_SCENARIOS),
    Metric("forward_s", "s", "none", "sum", "seconds per pass inside forward calls", ("offline", "train")),
    Metric("harness_overhead_s", "s", "lower", "sum", "timed wall minus time inside forward calls",
           ("offline", "train")),
    Metric("predicted_s", "s", "none", "sum", "one pass predicted by the backend's own batch cost model",
           ("offline",)),
    Metric("packing_bound_s", "s", "none", "sum", "that model's floor for any plan within the token budget: no "
           "padding, fewest calls", ("offline",)),
    Metric("warmup_s", "s", "none", "sum", "seconds spent warming new padded shapes", _ALL_SCENARIOS),
    Metric("tokenize_s", "s", "none", "sum", "tokenization time, outside the timed region", _ALL_SCENARIOS),
    Metric("n_truncated", "sequences", "lower", "sum", "sequences cut at --max-length", _ALL_SCENARIOS),
    Metric("max_qps_ratio", "x", "higher", "none",
           "a server policy's max sustainable QPS / token-budget's (else none's), in the same run", ("server",)),
    # A ratio of two rows measured side by side in one run: set on rows (rows.add_intervals, with `speedup_ci95`
    # from passes paired by round) and recomputed by the gate from tok/s. Its interval and tok/s's
    # (`throughput_tok_s_ci95`) are [lo, hi] lists beside the figures, not metrics of their own.
    Metric("speedup", "x", "higher", "none", "useful tok/s of a batching / that of static in the same run",
           ("offline", "train")),
):
    register(_m)


def metrics_for(scenario: str) -> list[Metric]:
    return [m for m in METRICS.values() if scenario in m.scenarios]


def aggregated(how: Aggregation) -> tuple[str, ...]:
    """Names of the metrics combined into ALL rows in this way."""
    return tuple(m.name for m in METRICS.values() if m.aggregation == how)
