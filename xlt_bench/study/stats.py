"""Statistics the studies share: medians with spread, rank and linear correlation with bootstrap intervals over
languages, and ratios of two measured intervals.

Every resampling is seeded, so a study rerun on the same rows prints the same intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95
# Below this many languages a correlation is not worth a number (its bootstrap interval spans most of [-1, 1]).
MIN_CORRELATION_LANGS = 5


@dataclass(frozen=True)
class Estimate:
    """A point value and its 95% interval (lo, hi); the interval is None when it could not be computed."""

    value: float | None
    lo: float | None = None
    hi: float | None = None
    n: int = 0

    @property
    def has_interval(self) -> bool:
        return self.lo is not None and self.hi is not None


def spread(values: Sequence[float]) -> tuple[float | None, float | None, float | None]:
    """Median and interquartile range (p25, p75) of finite values; Nones for none."""
    arr = _finite(values)
    if arr.size == 0:
        return None, None, None
    return float(np.median(arr)), float(np.percentile(arr, 25)), float(np.percentile(arr, 75))


def _finite(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    return arr[np.isfinite(arr)]


def _rank_corr(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr
    return float(spearmanr(x, y)[0])


def _linear_corr(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(x, y)[0, 1])


CORRELATIONS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {"spearman": _rank_corr,
                                                                         "pearson": _linear_corr}


def correlation(x: Sequence[float], y: Sequence[float], kind: str = "spearman", seed: int = 0,
                resamples: int = BOOTSTRAP_RESAMPLES) -> Estimate:
    """Correlation across paired values (languages) with a percentile bootstrap interval: languages are drawn with
    replacement and resamples where either side is constant (coefficient undefined) are left out.
    Value None when fewer than MIN_CORRELATION_LANGS pairs or a side is constant."""
    pairs = np.array([(a, b) for a, b in zip(x, y) if a is not None and b is not None
                      and np.isfinite(a) and np.isfinite(b)], dtype=np.float64).reshape(-1, 2)
    n = len(pairs)
    if n < MIN_CORRELATION_LANGS or np.ptp(pairs[:, 0]) == 0 or np.ptp(pairs[:, 1]) == 0:
        return Estimate(None, n=n)
    func = CORRELATIONS[kind]
    value = func(pairs[:, 0], pairs[:, 1])
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        sample = pairs[rng.integers(0, n, n)]
        if np.ptp(sample[:, 0]) > 0 and np.ptp(sample[:, 1]) > 0:
            draws.append(func(sample[:, 0], sample[:, 1]))
    lo, hi = _percentile_interval(draws)
    return Estimate(value, lo, hi, n)


def _percentile_interval(draws: Sequence[float]) -> tuple[float | None, float | None]:
    arr = _finite(draws)
    if arr.size < 10:
        return None, None
    tail = (1 - CONFIDENCE) / 2 * 100
    return float(np.percentile(arr, tail)), float(np.percentile(arr, 100 - tail))


def bootstrap_statistic(groups: Sequence[Sequence[float]], statistic: Callable[..., float], seed: int = 0,
                        resamples: int = BOOTSTRAP_RESAMPLES, min_size: int = 2) -> Estimate:
    """`statistic(*groups)` with an interval from resampling each group (languages) with replacement on its own;
    no interval when a group has fewer than `min_size` values (a resample of one language is that language)."""
    arrays = [_finite(g) for g in groups]
    if any(a.size == 0 for a in arrays):
        return Estimate(None)
    value = float(statistic(*arrays))
    rng = np.random.default_rng(seed)
    draws = [statistic(*(a[rng.integers(0, a.size, a.size)] for a in arrays)) for _ in range(resamples)]
    lo, hi = _percentile_interval(draws) if all(a.size >= min_size for a in arrays) else (None, None)
    return Estimate(value, lo, hi, sum(a.size for a in arrays))


def median_ratio(numerator: Sequence[float], denominator: Sequence[float], seed: int = 0) -> Estimate:
    """median(numerator) ÷ median(denominator), each group of languages resampled on its own."""
    return bootstrap_statistic([numerator, denominator], lambda a, b: float(np.median(a) / np.median(b)), seed)


def geometric_mean(values: Sequence[float], seed: int = 0) -> Estimate:
    """Geometric mean of positive ratios (one per language) with a bootstrap interval over languages."""
    positive = [v for v in values if v is not None and np.isfinite(v) and v > 0]
    return bootstrap_statistic([positive], lambda a: float(np.exp(np.mean(np.log(a)))), seed,
                               min_size=MIN_CORRELATION_LANGS)


def interval_ratio(num: float | None, num_ci: Sequence[float] | None, den: float | None,
                   den_ci: Sequence[float] | None) -> Estimate:
    """num ÷ den with the conservative interval [num_lo ÷ den_hi, num_hi ÷ den_lo] of two independent 95% intervals
    (covers at least 90%; wider than an interval from paired passes). No interval when either side lacks one."""
    if num is None or den is None or not den:
        return Estimate(None)
    value = num / den
    if not _valid_ci(num_ci) or not _valid_ci(den_ci) or den_ci[0] <= 0:
        return Estimate(value)
    return Estimate(value, num_ci[0] / den_ci[1], num_ci[1] / den_ci[0])


def _valid_ci(ci) -> bool:
    return isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(v, (int, float)) for v in ci)


def fmt(est: Estimate, digits: int = 2, suffix: str = "") -> str:
    """'1.80× [1.60, 2.00]' style; 'no interval' spelled out when there is none."""
    if est.value is None:
        return "—"
    text = f"{est.value:.{digits}f}{suffix}"
    if est.has_interval:
        return f"{text} [{est.lo:.{digits}f}, {est.hi:.{digits}f}]"
    return f"{text} (no interval)"
