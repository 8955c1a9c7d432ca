"""Request arrival times for the server scenario: seeded Poisson at an offered load, or replay of a trace file.

Open loop: arrival times are fixed before the run starts and never wait for the server, so a slow server (or a slow
harness) shows up as queueing latency instead of silently lowering the offered load (no coordinated omission).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xlt_bench.core.errors import InputError


def poisson_arrivals(qps: float, duration_s: float, seed: int = 0) -> np.ndarray:
    """Arrival times (seconds from the start) of a Poisson process of rate `qps` over `duration_s`."""
    if not qps > 0:
        raise InputError(f"offered load {qps} must be > 0 requests/s", field="qps")
    if not duration_s > 0:
        raise InputError(f"duration {duration_s} must be > 0 seconds", field="duration")
    rng = np.random.default_rng(seed)
    expected = int(qps * duration_s)
    gaps = rng.exponential(1.0 / qps, size=expected + 10 * int(np.sqrt(expected) + 10))
    times = np.cumsum(gaps)
    times = times[times < duration_s]
    if times.size == 0:
        raise InputError(f"a {duration_s} s run at {qps} req/s issues no request; raise --duration or --qps",
                         field="duration")
    return times


def load_trace(path: str | Path) -> np.ndarray:
    """A trace: one arrival time in seconds per line (from the trace's start), sorted, non-negative; '#' comments."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the trace: {exc}", file=str(path), field="trace") from None
    times: list[float] = []
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            value = float(text)
        except ValueError:
            raise InputError(f"'{text}' is not a time in seconds", file=str(path), line=number,
                             field="arrival") from None
        if not np.isfinite(value) or value < 0:
            raise InputError(f"arrival time {value} must be a finite number >= 0", file=str(path), line=number,
                             field="arrival")
        if times and value < times[-1]:
            raise InputError(f"arrival times must be sorted ({value} after {times[-1]})", file=str(path),
                             line=number, field="arrival")
        times.append(value)
    if not times:
        raise InputError("the trace holds no arrival time", file=str(path), field="trace")
    return np.array(times, dtype=np.float64)
