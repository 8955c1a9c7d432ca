"""CI regression gate: compare a run against a baseline on metrics that survive noisy machines.

Raw tokens/s on a shared CI runner moves by tens of percent between identical runs, so the default checks are
ratios measured inside one run, where the machine's speed cancels out:
- speedup: useful tok/s of each batching strategy ÷ that of static batching in the same run (same backend/dtype/lang);
- mfu: useful FLOP/s ÷ the GEMM peak measured on the same machine in the same run;
- padding_waste: deterministic for a given data set and batcher, so it gets a small absolute tolerance.
Absolute throughput_tok_s (and latency) checks exist but are opt-in (`--check throughput_tok_s:0.4`).

A metric the baseline has and the current run lacks is a failure ("missing"): a gate that passes when the dynamic
rows silently disappear would let the very regression it exists for through.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xlt_bench.ci.compat import machine_kind_differences
from xlt_bench.core.catalogue import METRICS, Metric
from xlt_bench.core.errors import InputError
from xlt_bench.core.schema import ALL_LANGS, ROW_KEY, row_key
from xlt_bench.report.gate_table import format_change, format_value
from xlt_bench.results.speedup import speedups


@dataclass(frozen=True)
class Check:
    """One gated metric. `threshold` is the worsening allowed: a fraction of the baseline when `relative`
    (0.15 = fail when more than 15% worse), else an absolute amount in the metric's own unit.
    `aggregate_only` gates the lang == ALL rows only: a single language's few batches are timed over a second or
    two, so one burst of load elsewhere on the machine moves them far more than the aggregate."""

    metric: str
    threshold: float
    higher_is_better: bool
    relative: bool = True
    aggregate_only: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.threshold < float("inf"):  # also rejects NaN
            raise InputError(f"threshold {self.threshold} must be a finite non-negative number", field="check")
        if self.relative and self.higher_is_better and self.threshold >= 1:
            # A higher-is-better value can lose at most 100% of itself: such a check could never fail.
            raise InputError(f"{self.metric}: a relative allowance of {self.threshold:.0%} can never fail "
                             "(a value cannot drop by 100% or more); use a fraction below 1", field="check")

    def describe(self) -> str:
        sign = "-" if self.higher_is_better else "+"
        amount = f"{self.threshold:.0%}" if self.relative else f"{self.threshold:g}"
        return f"{sign}{amount}" + ("" if self.relative else " abs")

    def applies_to(self, key: tuple[str, ...]) -> bool:
        return not self.aggregate_only or key[ROW_KEY.index("lang")] == ALL_LANGS


# Gated metrics that no row carries (the gate derives them from rows), and the declared metric whose unit and
# direction each takes: the plan's predicted speedup is a ratio like the measured one.
DERIVED_FROM = {"predicted_speedup": "speedup"}


def declaration(metric: str) -> Metric:
    """The catalogue's declaration (core/catalogue.py) of a gated metric: its unit and direction."""
    return METRICS[DERIVED_FROM.get(metric, metric)]


def _check(metric: str, threshold: float, **kind: Any) -> Check:
    """A check whose direction comes from the metric's declaration, never restated here."""
    return Check(metric, threshold, higher_is_better=declaration(metric).higher_is_better, **kind)


# Kind of every metric the gate understands; the numbers are the default allowances. speedup and mfu were
# chosen with benchmarks/calibrate_gate.py from 20 clean reruns of benchmarks/ci.toml and planted regressions on the
# shared 2-core development machine: at 15% no clean rerun failed (worst -12.7% speedup, -10.2% mfu) while a
# uniform 20% slowdown failed 5 of 6 runs and a 10 ms per-batch delay all 5 (README "How the defaults were chosen").
KNOWN_METRICS: dict[str, Check] = {
    "speedup": _check("speedup", 0.15, aggregate_only=True),
    "mfu": _check("mfu", 0.15, aggregate_only=True),
    "padding_waste": _check("padding_waste", 0.02, relative=False),
    "throughput_tok_s": _check("throughput_tok_s", 0.50, aggregate_only=True),
    "throughput_seq_s": _check("throughput_seq_s", 0.50, aggregate_only=True),
    "latency_ms_p50": _check("latency_ms_p50", 1.00, aggregate_only=True),
    "latency_ms_p90": _check("latency_ms_p90", 1.00, aggregate_only=True),
    "j_per_1k_tokens": _check("j_per_1k_tokens", 0.50, aggregate_only=True),
    # Server runs: each policy's max sustainable QPS ÷ that of token-budget (else none) measured in the same run.
    "max_qps_ratio": _check("max_qps_ratio", 0.30),
    # The plan's own promise: static's predicted seconds ÷ this batching's, both under the run's cost model. A run
    # that probes afresh (no --cost-model) and plans with what it probed gates the probe and the planner; timing
    # noise enters only through the probe. A ratio like `speedup` (DERIVED_FROM).
    "predicted_speedup": _check("predicted_speedup", 0.25, aggregate_only=True),
}
DEFAULT_CHECKS: tuple[Check, ...] = tuple(KNOWN_METRICS[m] for m in ("speedup", "padding_waste", "mfu"))
# Ratios of two timed passes (unit "x"): reruns are combined by their median, not their best.
RATIO_METRICS = tuple(m for m in KNOWN_METRICS if declaration(m).unit == "x")


def parse_check(text: str) -> Check:
    """"METRIC:THRESHOLD[:SCOPE]" -> Check.

    THRESHOLD is the worsening allowed: a fraction ("0.15") or percentage ("15%") of the baseline for relative
    metrics, an absolute amount for padding_waste; "METRIC" alone takes the metric's default threshold.
    SCOPE is "per-lang" (every row) or "aggregate" (lang == ALL rows only); it defaults to the metric's default.
    """
    metric, _, rest = text.strip().partition(":")
    value, _, scope = rest.partition(":")
    metric, value, scope = metric.strip(), value.strip(), scope.strip()
    if metric not in KNOWN_METRICS:
        raise InputError(f"'{text}': unknown metric '{metric}'; known: {', '.join(KNOWN_METRICS)}", field="check")
    known = KNOWN_METRICS[metric]
    if scope not in ("", "per-lang", "aggregate"):
        raise InputError(f"'{text}': scope '{scope}' is not 'per-lang' or 'aggregate'", field="check")
    aggregate_only = known.aggregate_only if not scope else scope == "aggregate"
    if not value:
        return Check(metric, known.threshold, known.higher_is_better, known.relative, aggregate_only)
    try:
        threshold = float(value.rstrip("%")) / (100 if value.endswith("%") else 1)
    except ValueError:
        raise InputError(f"'{text}': threshold '{value}' is not a number (expected e.g. {metric}:0.15)",
                         field="check") from None
    if not 0 <= threshold < float("inf"):
        raise InputError(f"'{text}': threshold must be a finite non-negative number", field="check")
    return Check(metric, threshold, known.higher_is_better, known.relative, aggregate_only)


# ---------------------------------------------------------------------------------------------------- machines

# Metrics whose baseline holds only on the same kind of machine: every gated metric but the ratios within one run
# (speedup, unit "x") and padding waste, which is deterministic for a given data set and batcher. A new absolute
# metric is machine-bound unless named here.
MACHINE_INDEPENDENT = ("padding_waste",)
MACHINE_BOUND = tuple(m for m in KNOWN_METRICS if m not in RATIO_METRICS + MACHINE_INDEPENDENT)


def checks_for_machines(checks: Sequence[Check], baseline: dict[str, Any], currents: Sequence[dict[str, Any]],
                        across_machines: bool = False) -> tuple[list[Check], list[str]]:
    """The checks that can be judged on these machines, and warnings. Against a baseline from another kind of
    machine the machine-bound metrics (MFU, absolute speed) are not gated unless `across_machines`: a regression
    could not be told from the change of hardware. Nothing left to gate is an error (exit 2)."""
    differences = list(dict.fromkeys(d for doc in currents for d in machine_kind_differences(baseline, doc)))
    if not differences or across_machines:
        return list(checks), []
    kept = [c for c in checks if c.metric not in MACHINE_BOUND]
    dropped = sorted({c.metric for c in checks} - {c.metric for c in kept})
    if not dropped:
        return kept, []
    if not kept:
        raise InputError(f"nothing to gate: {', '.join(dropped)} need a baseline from the same kind of machine "
                         f"({'; '.join(differences)}); remake the baseline here or pass --across-machines",
                         field="baseline")
    return kept, [f"the baseline comes from another kind of machine ({'; '.join(differences)}): "
                  f"{', '.join(dropped)} not gated, only {', '.join(sorted({c.metric for c in kept}))} "
                  "(remake the baseline on this kind of machine, or pass --across-machines)"]


# ---------------------------------------------------------------------------------------------------- comparison

@dataclass
class GateResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[str]:
        return [r["message"] for r in self.rows if r["status"] == "regression"]

    @property
    def missing(self) -> list[str]:
        return [r["message"] for r in self.rows if r["status"] == "missing"]

    @property
    def failures(self) -> list[str]:
        """Regressions and missing metrics: both fail the gate."""
        return [r["message"] for r in self.rows if r["status"] != "ok"]

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0

    def summary(self) -> str:
        if not self.failures:
            return f"gate passed: {len(self.rows)} checks ok"
        metrics = sorted({r["metric"] for r in self.rows if r["status"] != "ok"})
        return (f"gate FAILED: {len(self.regressions)} regression(s), {len(self.missing)} missing "
                f"(metrics: {', '.join(metrics)})")


def compare_runs(baseline: dict[str, Any], current: dict[str, Any] | Sequence[dict[str, Any]],
                 checks: Sequence[Check] = DEFAULT_CHECKS) -> GateResult:
    """Check every (task, lang or ALL, backend, dtype, batching) of the baseline against the current run.

    `current` may be several runs of the same configuration: each metric then takes its best value over them.
    Load on a shared machine only ever makes a run look worse, and a real regression shows in every rerun, so
    "rerun once when the gate fails, and gate on the best of the two" removes most false alarms at no cost to
    detection. Call compat.check_compatible first (for each current run); this function only compares numbers."""
    currents = [current] if isinstance(current, dict) else list(current)
    if not currents:
        raise InputError("no current run to compare", field="current")
    base_values = metric_table(baseline["rows"])
    result = GateResult()
    for check in checks:
        base = base_values.get(check.metric, {})
        cur = best_values([metric_table(doc["rows"]).get(check.metric, {}) for doc in currents], check)
        for key in sorted(k for k in base if check.applies_to(k)):
            result.rows.append(_judge(check, key, base[key], cur.get(key)))
        new = sorted(k for k in set(cur) - set(base) if check.applies_to(k))
        if new:
            result.warnings.append(f"{check.metric}: {len(new)} key(s) not in the baseline, not gated "
                                   f"(e.g. {'/'.join(new[0])})")
    if not result.rows:
        raise InputError("nothing to gate: no baseline row has a value for the checked metrics "
                         f"({', '.join(c.metric for c in checks)})", field="baseline")
    if len(currents) > 1:
        result.warnings.append(f"current values over {len(currents)} runs: the best per metric, the median for "
                               "ratios of two passes (speedup)")
    return result


def best_values(tables: Sequence[dict[tuple[str, ...], float]], check: Check) -> dict[tuple[str, ...], float]:
    """Per key, the best value over several runs (a key missing from a run is ignored there). Load only ever makes
    a run slower, so the best is the fairest figure for one timing; a ratio of two timings (speedup) is inflated
    as easily as deflated by load during one of them, so it takes the median instead."""
    values: dict[tuple[str, ...], list[float]] = {}
    for table in tables:
        for key, value in table.items():
            values.setdefault(key, []).append(value)
    if check.metric in RATIO_METRICS:
        return {key: float(np.median(v)) for key, v in values.items()}
    pick = max if check.higher_is_better else min
    return {key: pick(v) for key, v in values.items()}


def metric_table(rows: Sequence[dict[str, Any]]) -> dict[str, dict[tuple[str, ...], float]]:
    """{metric: {row key: value}} for every row metric that has a number, plus the derived speedup."""
    table: dict[str, dict[tuple[str, ...], float]] = {}
    for row in rows:
        key = row_key(row)
        for metric in KNOWN_METRICS:
            value = row.get(metric)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                table.setdefault(metric, {})[key] = float(value)
    table["speedup"] = speedups(rows)
    table["max_qps_ratio"] = max_qps_ratios(rows)
    table["predicted_speedup"] = predicted_speedups(rows)
    return table


def predicted_speedups(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, ...], float]:
    """The speedup each plan was predicted to give: the rows of one language time the same useful tokens, so tok/s
    is proportional to 1 / predicted seconds and `speedups` applies to it unchanged."""
    as_rates = [{**row, "throughput_tok_s": 1.0 / row["predicted_s"]} for row in rows
                if isinstance(row.get("predicted_s"), (int, float)) and row["predicted_s"] > 0]
    return speedups(as_rates)


# The policy every other policy's max sustainable QPS is measured against, in order of preference.
POLICY_REFERENCES = ("token-budget", "none")


def max_qps_ratios(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, ...], float]:
    """Server rows: max sustainable QPS of each policy ÷ the reference policy's, per (task, backend, dtype) of one
    run. The key's batching reads e.g. "length-bucketed/token-budget"."""
    best: dict[tuple[str, ...], dict[str, float]] = {}
    for row in rows:
        q = row.get("max_sustainable_qps")
        if row.get("scenario") == "server" and isinstance(q, (int, float)) and q > 0:
            group = ("server", str(row["task"]), "ALL", str(row["backend"]), str(row["dtype"]))
            best.setdefault(group, {})[str(row["policy"])] = float(q)
    out: dict[tuple[str, ...], float] = {}
    for group, by_policy in best.items():
        reference = next((p for p in POLICY_REFERENCES if p in by_policy), None)
        for policy, q in by_policy.items():
            if reference and policy != reference:
                out[group + (f"{policy}/{reference}",)] = q / by_policy[reference]
    return out


def _judge(check: Check, key: tuple[str, ...], base: float, cur: float | None) -> dict[str, Any]:
    name = "/".join(key)
    row = {"key": name, "metric": check.metric, "baseline": base, "current": cur, "change": None,
           "threshold": check.describe(), "relative": check.relative, "status": "ok", "message": ""}
    if not math.isfinite(base) or (check.relative and base == 0):
        row["status"] = "missing"
        row["message"] = (f"{check.metric} for {name}: the baseline value {format_value(base)} cannot anchor a "
                          f"{'relative ' if check.relative else ''}check; remake the baseline")
        return row
    if cur is not None and not math.isfinite(cur):
        row["status"] = "regression"
        row["message"] = f"{check.metric} for {name} is {cur} (not a finite number) in the current run"
        return row
    if cur is None:
        row["status"] = "missing"
        row["message"] = (f"{check.metric} missing for {name}: the baseline has {format_value(base)}, the current run "
                          "has no value (a row, backend or batching strategy disappeared)")
        return row
    if check.relative:
        row["change"] = (cur - base) / abs(base) if base else None
        worse_by = (base - cur if check.higher_is_better else cur - base) / abs(base) if base else 0.0
    else:
        row["change"] = cur - base
        worse_by = base - cur if check.higher_is_better else cur - base
    if worse_by > check.threshold:
        row["status"] = "regression"
        row["message"] = (f"{check.metric} regressed for {name}: {format_value(base)} -> {format_value(cur)} "
                          f"({format_change(row['change'], check.relative)}, allowed {check.describe()})")
    return row
