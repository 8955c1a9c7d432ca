"""Precise waiting, shared by the fake backend (service time) and the server loop (arrivals): time.sleep alone wakes
up to ~0.1 ms late, which would show as service or queueing time that did not happen."""

from __future__ import annotations

import time


def sleep_until(deadline: float) -> None:
    """Wait until time.perf_counter() reaches `deadline`: sleep most of the way, spin the last millisecond."""
    remaining = deadline - time.perf_counter()
    if remaining > 0.0015:
        time.sleep(remaining - 0.001)
    while time.perf_counter() < deadline:
        pass
