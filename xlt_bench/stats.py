"""Small statistics helpers shared by the profiler, reports and gate."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
