"""Every number a row can carry, declared once: unit, direction and how per-language rows combine into ALL.

Rows, the gate, the report and export iterate these declarations instead of naming fields each on their own
(DESIGN §5). A scenario that adds a metric adds one `Metric` here (or registers its own with `register`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["higher", "lower", "none"]
# sum: add per-language values; max: the worst; min: the fewest; mean: unweighted mean over languages (XTREME's task
# score); weighted: mean weighted by n_examples; same: one value for the whole configuration (the first language's);
# recompute: derived from the ALL row's own totals or pooled samples (rows.py holds one recipe per such metric);
# none: not aggregated (absent from ALL rows, or set on them afterwards).
Aggregation = Literal["sum", "max", "min", "mean", "weighted", "same", "recompute", "none"]
# number: a scalar (null when unknown); interval: a [lo, hi] pair beside its figure; samples: a list of per-pass or
# per-batch values; label: text describing how the figure was obtained.
Kind = Literal["number", "interval", "samples", "label"]


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    direction: Direction
    aggregation: Aggregation
    description: str
    scenarios: tuple[str, ...] = ("offline",)   # scenarios whose rows carry it
    kind: Kind = "number"
    required: bool = False   # every row has the key (DESIGN §4), null where the value is not meaningful

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"


_ALL_SCENARIOS = ("offline", "server", "train")
_TIMED = ("offline", "train")   # scenarios whose rows are timed passes over one language

METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    if metric.name in METRICS and METRICS[metric.name] != metric:
        raise ValueError(f"metric '{metric.name}' is declared twice with different definitions")
    METRICS[metric.name] = metric
    return metric


_R = {"required": True}   # in every row (schema.ROW_FIELDS)

for _m in (
    Metric("n_examples", "examples", "none", "sum", "examples measured", _ALL_SCENARIOS, **_R),
    Metric("n_sequences", "sequences", "none", "sum", "encoder inputs (QA windows, choices) measured", _ALL_SCENARIOS),
    Metric("n_batches", "batches", "none", "sum", "forward calls per pass", _ALL_SCENARIOS, **_R),
    Metric("real_tokens", "tokens", "none", "sum", "unpadded tokens, special tokens included", _ALL_SCENARIOS, **_R),
    Metric("padded_tokens", "tokens", "none", "sum", "rows x padded length actually executed", _ALL_SCENARIOS, **_R),
    Metric("padding_waste", "fraction", "lower", "recompute", "1 - real_tokens / padded_tokens", _ALL_SCENARIOS,
           **_R),
    Metric("wall_s", "s", "lower", "sum", "wall seconds of one timed pass", _TIMED, **_R),
    Metric("throughput_seq_s", "seq/s", "higher", "recompute", "sequences / wall seconds", _ALL_SCENARIOS, **_R),
    Metric("throughput_tok_s", "tok/s", "higher", "recompute", "useful (unpadded) tokens / wall seconds",
           _ALL_SCENARIOS, **_R),
    Metric("latency_ms_p50", "ms", "lower", "recompute", "median latency (batch in offline, request in server)",
           _ALL_SCENARIOS, **_R),
    Metric("latency_ms_p90", "ms", "lower", "recompute", "90th percentile latency", _ALL_SCENARIOS, **_R),
    Metric("latency_ms_p99", "ms", "lower", "recompute", "99th percentile latency", _ALL_SCENARIOS, **_R),
    Metric("flops_useful", "FLOP", "none", "sum", "analytic FLOPs of the unpadded sequences", _ALL_SCENARIOS, **_R),
    Metric("flops_executed", "FLOP", "none", "sum", "analytic FLOPs of the padded batches as run", _ALL_SCENARIOS,
           **_R),
    Metric("mfu", "fraction", "higher", "recompute", "useful FLOP/s / GEMM peak measured in the same run", _TIMED,
           **_R),
    Metric("accuracy", "score", "higher", "mean", "the task's own metric against gold labels", ("offline",), **_R),
    Metric("agreement", "fraction", "higher", "weighted", "share of predictions equal to eager/fp32/static",
           ("offline",), **_R),
    Metric("max_abs_diff", "logit", "lower", "max", "largest |output - reference output|", ("offline",)),
    Metric("energy_j", "J", "lower", "sum", "GPU energy over the timed passes (NVML)", _ALL_SCENARIOS),
    Metric("j_per_1k_tokens", "J/1k tok", "lower", "recompute", "energy per 1000 useful tokens", _ALL_SCENARIOS),
    Metric("peak_rss_mb", "MB", "lower", "max", "peak resident memory while measuring", _ALL_SCENARIOS),
    Metric("cuda_max_allocated_mb", "MB", "lower", "max", "CUDA max allocated while measuring", _ALL_SCENARIOS),
    Metric("forward_s", "s", "none", "sum", "seconds per pass inside forward calls", _TIMED),
    Metric("harness_overhead_s", "s", "lower", "sum", "timed wall minus time inside forward calls", _TIMED),
    Metric("predicted_s", "s", "none", "sum", "one pass predicted by the backend's own batch cost model",
           ("offline",)),
    Metric("packing_bound_s", "s", "none", "sum", "that model's floor for any plan within the token budget: no "
           "padding, fewest calls", ("offline",)),
    Metric("warmup_s", "s", "none", "sum", "seconds spent warming new padded shapes", _ALL_SCENARIOS),
    Metric("warmup_shapes", "shapes", "none", "sum", "padded shapes warmed before timing", _TIMED),
    Metric("tokenize_s", "s", "none", "sum", "tokenization time, outside the timed region", _ALL_SCENARIOS),
    Metric("n_truncated", "sequences", "lower", "sum", "sequences cut at --max-length", _ALL_SCENARIOS),
    Metric("mean_tokens_per_seq", "tokens", "none", "recompute", "real_tokens / n_sequences", _TIMED),
    Metric("gemm_peak_flops", "FLOP/s", "none", "same", "the GEMM peak MFU is measured against (one per library "
           "and dtype in a run)", _TIMED),
    Metric("alignment_cosine", "cosine", "higher", "mean", "mean cosine of a language's sentences to their English "
           "translations", ("offline",)),
    Metric("alignment_top1", "fraction", "higher", "mean", "share of sentences whose nearest English sentence is "
           "their translation", ("offline",)),
    Metric("max_qps_ratio", "x", "higher", "none",
           "a server policy's max sustainable QPS / token-budget's (else none's), in the same run", ("server",)),
    # A ratio of two rows measured side by side in one run: set on rows (rows.add_intervals, with `speedup_ci95`
    # from passes paired by round) and recomputed by the gate from tok/s.
    Metric("speedup", "x", "higher", "none", "useful tok/s of a batching / that of static in the same run", _TIMED),
    Metric("speedup_ci95", "x", "higher", "none", "95% interval of speedup from passes paired by round (set with "
           "speedup, after aggregation)", _TIMED, kind="interval"),
    Metric("n_repeats", "passes", "none", "min", "timed passes (an ALL row: the fewest of its languages')", _TIMED),
    Metric("pass_wall_s", "s", "none", "recompute", "wall seconds of each timed pass (an ALL row's pass r: the sum "
           "of its languages' pass r)", _TIMED, kind="samples"),
    Metric("throughput_tok_s_ci95", "tok/s", "higher", "recompute", "95% interval of useful tok/s over the "
           "per-pass rates (an ALL row: over its summed passes)", _TIMED, kind="interval"),
    Metric("latencies_ms", "ms", "none", "recompute", "per-batch (train: per-step) latencies; an ALL row keeps none, "
           "its percentiles pool its languages'", _TIMED, kind="samples"),
    Metric("max_tokens", "tokens", "none", "none", "the most tokens one call of the plan can hold (the token "
           "budget, padding counted)", ("offline",)),
    Metric("attn", "", "none", "none", "the attention implementation the model ran", _TIMED, kind="label"),
):
    register(_m)


def declared(*, kind: Kind | None = None, required: bool | None = None) -> tuple[Metric, ...]:
    """The registered metrics in declaration order, optionally only those of one kind or requirement."""
    return tuple(m for m in METRICS.values()
                 if (kind is None or m.kind == kind) and (required is None or m.required == required))
