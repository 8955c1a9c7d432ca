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

from .backends.base import Backend
from .batching import Batch, CostModel, collate, fit_cost_model
from .timing import time_calls


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
        if batch.shape not in warmed:
            warmed.add(batch.shape)
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


# Token budgets the start-up probe may try: up to 65,536 tokens on CUDA (launch-bound GPUs keep gaining up to there),
# 16,384 on CPU, where throughput saturates around a thousand tokens per batch.
PROBE_TOKEN_CAP = {"cuda": 65536, "cpu": 16384}
# A probe shape slower than this ends the budget search: a bigger batch would only make the probe slow.
PROBE_SHAPE_LIMIT_S = 1.0
PROBE_LENGTHS = (16, 32, 64, 128, 256, 512)


def probe_cost_model(backend: Backend, vocab_size: int, pad_id: int, max_length: int, *,
                     max_tokens: int | str = "auto", repeats: int = 2, seed: int = 0,
                     shape_limit_s: float = PROBE_SHAPE_LIMIT_S) -> tuple[CostModel, list[tuple[int, int, float]], int]:
    """Time synthetic shapes on this backend over the range the plans will use; fit time(rows, padded_len).

    1. Budget: at a typical length, double the rows until throughput stops rising (< 5% over two doublings), a
       shape takes longer than `shape_limit_s`, or the device's cap; 'auto' takes the largest probed batch whose
       tok/s is within 10% of the best (a given --max-tokens is probed up to, never past).
    2. Fit: one row and a full budget at every padded length up to --max-length, plus the budget search's samples.
    Each shape keeps the fastest of `repeats` timings: noise on a shared machine only ever adds time."""
    rng = np.random.default_rng(seed)

    def timed(rows: int, plen: int) -> float:
        ids = rng.integers(5, min(vocab_size, 30000), size=(rows, plen)).astype(np.int64)
        ids[ids == pad_id] = pad_id + 1
        inputs = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if backend.bundle.takes_token_types:
            inputs["token_type_ids"] = np.zeros_like(ids)
        prepared = backend.prepare(inputs)
        for _ in range(backend.warmup_calls):   # as before timing (TorchScript on CUDA compiles on its 2nd call)
            backend.fetch(backend.forward(prepared))
        backend.synchronize()
        return float(min(timed_pass(backend, [prepared])[2] for _ in range(repeats)))

    lengths = [x for x in PROBE_LENGTHS if x < max_length] + [max_length]
    typical = min(64, max_length)
    cap = PROBE_TOKEN_CAP.get(backend.device, 16384) if max_tokens == "auto" else int(max_tokens)
    cap = max(cap, max_length)
    samples, rates = [], []
    rows = 1
    while True:
        try:
            seconds = timed(rows, typical)
        except Exception as exc:  # noqa: BLE001 - only running out of memory ends the search; anything else raises
            if not (samples and is_out_of_memory(exc)):
                raise
            _free_device_memory(backend)
            break   # the memory limit: the budget stays within what ran
        samples.append((rows, typical, seconds))
        rates.append((rows * typical, rows * typical / seconds))
        best = max(r for _, r in rates)
        stalled = len(rates) >= 3 and max(r for _, r in rates[-2:]) < 1.05 * max(r for _, r in rates[:-2])
        if stalled or seconds > shape_limit_s or 2 * rows * typical > cap:
            break
        rows *= 2
    budget = max(t for t, r in rates if r >= 0.9 * best) if max_tokens == "auto" else cap
    budget = max(budget, max_length)
    for plen in lengths:
        for r in sorted({1, max(1, budget // plen)}):
            if (r, plen) not in {(a, b) for a, b, _ in samples}:
                try:
                    samples.append((r, plen, timed(r, plen)))
                except Exception as exc:  # noqa: BLE001 - as above
                    if r == 1 or not is_out_of_memory(exc):
                        raise
                    # Attention's L^2 memory at a long length: unmeasured, so the planner stays below it.
                    _free_device_memory(backend)
    key = f"{backend.name}/{backend.dtype}/{backend.device}"
    return fit_cost_model(samples, key=key), samples, int(budget)


def is_out_of_memory(exc: BaseException) -> bool:
    """A batch too large for the device or host: torch's CUDA OOM, ONNX Runtime's failed allocation, MemoryError."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "failed to allocate memory" in text or "bad_alloc" in text


def _free_device_memory(backend: Backend) -> None:
    if backend.device == "cuda":
        import torch
        torch.cuda.empty_cache()
