"""The search for the max sustainable QPS, one estimate per arrival seed over offered loads that every seed shares.

Every offered load is served once per arrival seed. For seed s the visited loads split into those it sustained and
those it did not; its bracket is [highest load sustained below its lowest failed load, that failed load], so a
noisy pass above a failure is ignored (the estimate stays conservative). The next load doubles the highest load
while some seed has not failed yet, halves the lowest while some seed has not passed yet, and otherwise bisects the
widest bracket, until every bracket is at most `rel_width` wide relative to its lower end. Seed s's max sustainable
QPS is the lower end of its bracket; the estimate across seeds and its 95% interval come from
`xlt_bench.core.stats.log_t_interval` over those per-seed values (`max_qps_estimate`).

Pure logic, no clock: tests drive it with hand-made outcomes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from xlt_bench.core.stats import log_t_interval

REL_WIDTH = 0.05           # bisect until every seed's bracket is within 5% of its lower end
MAX_LOADS = 40             # a hard stop: each load costs seeds x duration seconds
MAX_QPS = 1e6
MIN_QPS_SHARE = 1 / 1024   # never halve below this share of the first load


@dataclass(frozen=True)
class Bracket:
    passed: float            # highest load sustained below `failed` (0: none sustained)
    failed: float | None     # lowest load not sustained (None: every visited load was sustained)

    @property
    def width(self) -> float:
        """(failed - passed) / passed; infinite while one end is missing."""
        if self.failed is None or self.passed <= 0:
            return math.inf
        return (self.failed - self.passed) / self.passed


def seed_brackets(outcomes: Mapping[float, Sequence[bool]], n_seeds: int) -> list[Bracket]:
    """One bracket per seed from {load: [sustained for seed 0, 1, ...]}."""
    brackets = []
    for seed in range(n_seeds):
        failed = min((q for q, ok in outcomes.items() if not ok[seed]), default=None)
        passed = max((q for q, ok in outcomes.items() if ok[seed] and (failed is None or q < failed)), default=0.0)
        brackets.append(Bracket(passed, failed))
    return brackets


def next_load(outcomes: Mapping[float, Sequence[bool]], n_seeds: int, start: float,
              rel_width: float = REL_WIDTH, min_qps: float = 0.0) -> float | None:
    """The next offered load to serve, or None when every bracket is narrow enough (or cannot be narrowed: no
    halving below `min_qps`, e.g. a load too low to issue enough requests in the run's duration)."""
    if not outcomes:
        return start
    if len(outcomes) >= MAX_LOADS:
        return None
    brackets = seed_brackets(outcomes, n_seeds)
    higher, lower = max(outcomes) * 2, min(outcomes) / 2
    if any(b.failed is None for b in brackets) and higher <= MAX_QPS:
        return higher
    if any(b.passed <= 0 for b in brackets) and lower >= max(start * MIN_QPS_SHARE, min_qps):
        return lower
    # Seeds that cannot be bracketed within the limits keep their open bracket; the others are narrowed.
    closed = [b for b in brackets if b.failed is not None and b.passed > 0 and b.width > rel_width]
    if not closed:
        return None
    widest = max(closed, key=lambda b: b.width)
    return (widest.passed + widest.failed) / 2


def search(sustained_at: Callable[[float], Sequence[bool]], n_seeds: int, start: float,
           rel_width: float = REL_WIDTH, min_qps: float = 0.0) -> dict[float, list[bool]]:
    """Serve loads chosen by `next_load` until it says stop; `sustained_at(load)` serves every seed at that load."""
    outcomes: dict[float, list[bool]] = {}
    load = next_load(outcomes, n_seeds, max(start, min_qps), rel_width, min_qps)
    while load is not None:
        outcomes[load] = list(sustained_at(load))
        load = next_load(outcomes, n_seeds, max(start, min_qps), rel_width, min_qps)
    return outcomes


def max_qps_estimate(brackets: Sequence[Bracket], rel_width: float | None = REL_WIDTH) -> dict[str, object]:
    """The figures a row carries: the per-seed values (lower bracket ends), their geometric mean and log-t 95%
    interval, each bracket, and whether every bracket reached `rel_width` (None: a fixed list of loads, no target)."""
    per_seed = [b.passed if b.passed > 0 else None for b in brackets]
    found = [v for v in per_seed if v is not None]
    complete = len(found) == len(per_seed) and bool(found)
    interval = log_t_interval(found) if complete else None
    return {
        "max_sustainable_qps": geometric_mean(found) if complete else None,
        "max_sustainable_qps_ci95": list(interval) if interval else None,
        "max_sustainable_qps_by_seed": per_seed,
        "max_qps_bracket_by_seed": [[b.passed, b.failed] for b in brackets],
        "max_qps_resolved": (None if rel_width is None
                             else all(b.width <= rel_width for b in brackets)),
    }


def geometric_mean(values: Sequence[float]) -> float | None:
    """The geometric mean (the centre of a log-t interval); the value itself when all are equal, so a figure that
    did not vary is reported exactly. Falls back to the arithmetic mean when a value is not positive."""
    if not values:
        return None
    if all(v == values[0] for v in values):
        return float(values[0])
    if any(v <= 0 for v in values):
        return float(sum(values) / len(values))
    return math.exp(sum(math.log(v) for v in values) / len(values))
