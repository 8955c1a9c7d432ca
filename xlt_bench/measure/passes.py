"""Timing of a backend over batches (DESIGN §3 timing rules) and the per-batch record the rows are built from.

Discipline: inputs are collated and copied to the device before the timed region; every padded shape is run once
before timing; on CUDA each batch is bracketed by events and the host synchronises once per pass; raw per-batch
latencies are kept; a pass is repeated until both --min-seconds and --min-repeats are met.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any
from dataclasses import dataclass

import numpy as np

from xlt_bench.backends.base import Backend
from xlt_bench.batching.planners import Batch, collate
from xlt_bench.measure.timing import time_calls


@dataclass
class Measurement:
    batches: list[Batch]
    latencies_ms: list[float]       # every timed batch of every pass, in execution order
    pass_wall_s: list[float]        # wall time of each timed pass
    outputs: list[np.ndarray]       # per sequence, input order; token outputs trimmed to the sequence length
    warmup_shapes: int
    warmup_s: float = 0.0

    @property
    def n_repeats(self) -> int:
        return len(self.pass_wall_s)

    @property
    def wall_s(self) -> float:
        """Mean wall seconds of one pass over all batches (the timed region)."""
        return float(np.mean(self.pass_wall_s))

    @property
    def forward_s(self) -> float:
        """Mean seconds per pass spent inside forward calls; wall_s - forward_s is the harness's own overhead."""
        return float(np.sum(self.latencies_ms) / 1000.0 / self.n_repeats)


def prepare_batches(backend: Backend, input_ids: Sequence[np.ndarray], token_type_ids: Sequence[np.ndarray] | None,
                    batches: Sequence[Batch], pad_id: int) -> list:
    return [backend.prepare(collate(input_ids, token_type_ids, b, pad_id)) for b in batches]


def warm_up(backend: Backend, prepared: Sequence, batches: Sequence[Batch],
            warmed: set[tuple[int, int]] | None = None) -> int:
    """Run each padded shape this backend has not run yet once, so compilation, allocator and cache effects stay out
    of the timing. `warmed` is the backend's set of shapes already run (shared across languages and batchings:
    a shape warmed for one language is warm for the next). Returns how many shapes were warmed now."""
    warmed = set() if warmed is None else warmed
    count = 0
    for batch, inputs in zip(batches, prepared):
        key = getattr(batch, "warm_key", batch.shape)   # a packed call runs another graph than a padded one
        if key not in warmed:
            warmed.add(key)
            for _ in range(backend.warmup_calls):
                backend.fetch(backend.forward(inputs))
            count += 1
    backend.synchronize()
    return count


def timed_pass(backend: Backend, prepared: Sequence, inject_delay_ms: float = 0.0,
               inject_slowdown: float = 0.0) -> tuple[list, list[float], float]:
    """One pass over all batches (timing.time_calls: events and one synchronisation on CUDA). Returns raw outputs,
    per-batch latencies (ms) and the pass wall time (s). The two testing aids plant regressions: a fixed sleep per
    batch, or a sleep of `inject_slowdown` times the batch's own time (every batch (1 + x) times slower)."""
    def call(inputs):
        if not (inject_delay_ms or inject_slowdown):
            return lambda: backend.forward(inputs)

        def planted():
            began = time.perf_counter()
            out = backend.forward(inputs)
            if inject_slowdown:   # on CUDA the one synchronisation per batch is part of what is planted
                backend.synchronize()
                time.sleep(inject_slowdown * (time.perf_counter() - began))
            if inject_delay_ms:
                time.sleep(inject_delay_ms / 1000.0)
            return out
        return planted

    timed = time_calls([call(inputs) for inputs in prepared], cuda_events=backend.device == "cuda",
                       synchronize=backend.synchronize)
    return timed.results, [s * 1000.0 for s in timed.latencies_s], timed.wall_s


class TimedSeries:
    """One configuration (a backend and the batches of one language under one batching), warmed up once and then
    timed one pass at a time, so that the passes of several configurations can be interleaved round by round
    (scenarios/offline.py): load drifting during a run then hits every configuration being compared alike."""

    def __init__(self, backend: Backend, prepared: Sequence, batches: Sequence[Batch], lengths: np.ndarray, *,
                 seq_output: bool = False, inject_delay_ms: float = 0.0, inject_slowdown: float = 0.0):
        self.backend, self.prepared, self.batches, self.lengths = backend, prepared, list(batches), lengths
        self.seq_output = seq_output
        self.inject = (inject_delay_ms, inject_slowdown)
        self.latencies_ms: list[float] = []
        self.pass_wall_s: list[float] = []
        self.warmup_shapes, self.warmup_s = 0, 0.0
        self._first_outputs: list = []

    def warm(self, warmed_shapes: set[tuple[int, int]] | None = None) -> None:
        start = time.perf_counter()
        self.warmup_shapes = warm_up(self.backend, self.prepared, self.batches, warmed_shapes)
        self.warmup_s = time.perf_counter() - start

    def run_pass(self) -> float:
        """One timed pass over every batch; returns its wall seconds."""
        outs, lat, wall = timed_pass(self.backend, self.prepared, *self.inject)
        if not self.pass_wall_s:
            self._first_outputs = outs
        self.latencies_ms.extend(lat)
        self.pass_wall_s.append(wall)
        return wall

    @property
    def timed_s(self) -> float:
        return float(sum(self.pass_wall_s))

    def measurement(self) -> Measurement:
        fetched = [self.backend.fetch(o) for o in self._first_outputs]
        outputs = restore_order(fetched, self.batches, self.lengths, self.seq_output)
        return Measurement(batches=self.batches, latencies_ms=self.latencies_ms, pass_wall_s=self.pass_wall_s,
                           outputs=outputs, warmup_shapes=self.warmup_shapes, warmup_s=self.warmup_s)


def wants_another_pass(passes: int, timed_s: float, *, min_repeats: int, min_seconds: float = 0.0,
                       max_seconds: float | None = None) -> bool:
    """The repeat rule of one row: at least `min_repeats` passes and `min_seconds` of timed passes, unless the
    row's passes have already taken `max_seconds` (the time box wins; a row left with one pass has no interval)."""
    if passes == 0:
        return True
    if max_seconds is not None and timed_s >= max_seconds:
        return False
    return passes < min_repeats or timed_s < min_seconds


def measure(backend: Backend, prepared: Sequence, batches: Sequence[Batch], lengths: np.ndarray, *,
            min_seconds: float = 0.0, min_repeats: int = 1, max_seconds: float | None = None,
            inject_delay_ms: float = 0.0, inject_slowdown: float = 0.0, seq_output: bool = False,
            warmed_shapes: set[tuple[int, int]] | None = None, timed_tracker: Any = None) -> Measurement:
    """Warm up, then timed passes of one configuration on its own (no interleaving). `timed_tracker` (a context
    manager, e.g. the energy tracker) brackets the timed passes only, so warm-up (and compilation) never counts in
    what it measures."""
    series = TimedSeries(backend, prepared, batches, lengths, seq_output=seq_output,
                         inject_delay_ms=inject_delay_ms, inject_slowdown=inject_slowdown)
    series.warm(warmed_shapes)
    with timed_tracker if timed_tracker is not None else nullcontext():
        while wants_another_pass(len(series.pass_wall_s), series.timed_s, min_repeats=min_repeats,
                                 min_seconds=min_seconds, max_seconds=max_seconds):
            series.run_pass()
    return series.measurement()


def restore_order(batch_outputs: Sequence[np.ndarray], batches: Sequence[Batch], lengths: np.ndarray,
                  seq_output: bool) -> list[np.ndarray]:
    """Scatter batch outputs back to input order; per-token outputs are cut to each sequence's real length."""
    n = sum(len(b.indices) for b in batches)   # sequences (a packed batch holds more than its rows)
    restored: list[np.ndarray | None] = [None] * n
    for batch, out in zip(batches, batch_outputs):
        for row, idx in enumerate(batch.indices):
            restored[idx] = out[row, : lengths[idx]] if seq_output else out[row]
    return restored  # type: ignore[return-value]
