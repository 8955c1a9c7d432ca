"""Small statistics helpers shared by the measure stage, reports and gate, and the 95% intervals every timed figure carries.

Interval method (`INTERVAL_METHOD`): a Student-t interval on the logarithm of per-pass values, back-transformed.
Timings are positive and their noise is multiplicative (a busy core slows every call by a share), so logs make it
additive and roughly symmetric. With the 3 to 10 passes a row gets, a percentile bootstrap undercovers badly (with 3
passes it can only return the spread of 3 values, which holds the mean about 75% of the time, not 95%), while the
t quantile widens the interval for the few degrees of freedom and is close to nominal coverage under roughly normal
log noise (tests/test_intervals.py checks 95% coverage on simulated and fake-backend passes).

A speedup's interval is paired: pass r of a batching is divided by pass r of the reference batching, which ran in
the same round (interleaved), so load that hits both cancels in the ratio before the interval is formed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

INTERVAL_METHOD = "student-t on log per-pass values (paired passes for ratios), 95%"
CONFIDENCE = 0.95


def is_number(value: object) -> bool:
    """An int or float, not a bool (JSON and TOML give both; True is not a measurement)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), None for no values."""
    if len(values) == 0:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def padding_waste(real_tokens: int, padded_tokens: int) -> float | None:
    """1 - real/padded (DESIGN §3); None when nothing was executed."""
    if padded_tokens <= 0:
        return None
    return 1.0 - real_tokens / padded_tokens


def safe_ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return num / den


def log_t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Interval for the geometric mean of positive `values`: mean(log v) ± t(n-1) · sd / sqrt(n), exponentiated.
    None with fewer than two values or any value that is not a positive number."""
    logs = _logs(values)
    if logs is None or len(logs) < 2:
        return None
    mean = float(np.mean(logs))
    from scipy import stats as scipy_stats   # imported here: scipy.stats adds ~1 s to every command's start-up
    t_quantile = scipy_stats.t.ppf(0.5 + confidence / 2, len(logs) - 1)
    half = float(t_quantile * np.std(logs, ddof=1) / math.sqrt(len(logs)))
    return math.exp(mean - half), math.exp(mean + half)


def paired_ratio_interval(numerators: Sequence[float], denominators: Sequence[float],
                          confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Interval for the ratio numerator / denominator from paired values (pass r with pass r): the log-t interval
    of the per-pair ratios. Only the first min(len) pairs are used; None with fewer than two pairs."""
    n = min(len(numerators), len(denominators))
    if n < 2:
        return None
    ratios = []
    for a, b in zip(numerators[:n], denominators[:n]):
        if not (is_number(a) and is_number(b)) or b <= 0:
            return None
        ratios.append(a / b)
    return log_t_interval(ratios, confidence)


def per_pass_rates(amount: float, pass_wall_s: Sequence[float]) -> list[float]:
    """amount / wall for each pass (e.g. useful tokens per second of each timed pass)."""
    return [amount / w for w in pass_wall_s if is_number(w) and w > 0]


def excludes_one(interval: Sequence[float] | None) -> bool | None:
    """Whether a ratio's interval lies wholly above or below 1 (a difference the passes can tell); None without
    an interval."""
    if not interval:
        return None
    return not (interval[0] <= 1.0 <= interval[1])


def _logs(values: Sequence[float]) -> np.ndarray | None:
    if any(not is_number(v) or v <= 0 for v in values):
        return None
    return np.log(np.asarray(values, dtype=np.float64))
