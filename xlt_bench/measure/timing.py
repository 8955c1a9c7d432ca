"""One way to time a sequence of calls (DESIGN §3 timing rules), shared by the benchmark passes (measure/passes.py) and the
GEMM peak (peak).

- CPU: `perf_counter` around each call. The runtimes return when the work is done, so each latency is that call's.
- CUDA: a pair of CUDA events around each call and one synchronisation after the last: the host never waits inside
  the sequence, so the GPU queue stays full as in a real throughput run, and each latency is the GPU's own time.
The wall time covers the whole sequence, the final synchronisation included.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass
class TimedCalls:
    results: list[Any]           # what each call returned, in order
    latencies_s: list[float]     # seconds per call
    wall_s: float                # seconds for the whole sequence


def time_calls(calls: Iterable[Callable[[], Any]], *, cuda_events: bool,
               synchronize: Callable[[], None]) -> TimedCalls:
    """Run `calls` back to back and time them; `synchronize` waits for the device (a no-op on the CPU)."""
    if cuda_events:
        return _time_calls_cuda(calls, synchronize)
    results, latencies = [], []
    clock = time.perf_counter
    start = clock()
    for call in calls:
        began = clock()
        results.append(call())
        latencies.append(clock() - began)
    synchronize()
    return TimedCalls(results, latencies, clock() - start)


def _time_calls_cuda(calls: Iterable[Callable[[], Any]], synchronize: Callable[[], None]) -> TimedCalls:
    import torch
    torch.cuda.synchronize()   # nothing queued before the sequence counts in it
    results, events = [], []
    start = time.perf_counter()
    for call in calls:
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        results.append(call())
        end.record()
        events.append((begin, end))
    synchronize()   # the one synchronisation of the sequence
    wall = time.perf_counter() - start
    return TimedCalls(results, [begin.elapsed_time(end) * 1e-3 for begin, end in events], wall)
