"""The start-up probe: time a backend on a ladder of synthetic shapes, fit its per-call cost model and choose the
token budget (`--max-tokens auto`) where throughput stops rising by more than the probe's own noise."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from xlt_bench.backends.base import Backend
from xlt_bench.batching.planners import CostModel, fit_cost_model
from xlt_bench.measure.passes import timed_pass


# Token budgets the start-up probe may try: up to 65,536 tokens on CUDA (launch-bound GPUs keep gaining up to there),
# 16,384 on CPU, where throughput saturates around a thousand tokens per batch.
PROBE_TOKEN_CAP = {"cuda": 65536, "cpu": 16384}
PROBE_LENGTHS = (16, 32, 64, 128, 256, 512)
# Timings per probed shape (after its warm-up); the fastest is kept. Noise on a shared machine is one-sided (a
# disturbed call only ever takes longer), so the minimum of 3 is wrong only when all 3 calls are disturbed, where
# their median is wrong as soon as 2 are.
PROBE_REPEATS = 3
# The budget search stops once the smoothed throughput gains less than this over two doublings, or less than the
# tolerance where that is larger: a gain smaller than the probe's noise cannot be told from it.
STALL_GAIN = 0.05
# The probe may take this share of the timed seconds the run will spend on the backend (estimated from the best
# throughput probed so far and the useful tokens the run will time), and never less than PROBE_FLOOR_S: short runs
# keep a usable probe (on 2 CPU cores xlmr-base needs about 20 s to double its batch up to static's 2,048-4,096
# tokens; a 3 s floor stopped it at 128 tokens while throughput was still rising), long runs a probe that grows with
# them instead of a fixed per-shape limit.
PROBE_SHARE = 0.15
PROBE_FLOOR_S = 20.0
# The auto budget's tolerance: at least this, and at least 3 x the probe's measured noise (a robust relative s.d. of
# a shape's repeated timings), so noise alone cannot move the choice; at most MAX_TOLERANCE, beyond which a curve
# could not tell a batch from one twice its size (a machine that noisy is reported, not trusted).
BASE_TOLERANCE = 0.10
MAX_TOLERANCE = 0.30


@dataclass
class _Probe:
    """The probe's running state: what it timed, for how long, and how much time it may take."""
    backend: Backend
    vocab_size: int
    pad_id: int
    repeats: int
    rng: np.random.Generator
    run_tokens: int | None
    share: float
    floor_s: float
    started: float = field(default_factory=time.perf_counter)
    samples: list = field(default_factory=list)        # (rows, padded_len, fastest seconds)
    spreads: list = field(default_factory=list)        # relative s.d. of each shape's repeats
    out_of_memory: list = field(default_factory=list)  # (rows that failed, padded_len, most rows that ran there)
    best_rate: float = 0.0

    def time(self, rows: int, plen: int) -> float:
        ids = self.rng.integers(5, min(self.vocab_size, 30000), size=(rows, plen)).astype(np.int64)
        ids[ids == self.pad_id] = self.pad_id + 1
        inputs = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if self.backend.bundle.takes_token_types:
            inputs["token_type_ids"] = np.zeros_like(ids)
        prepared = self.backend.prepare(inputs)
        for _ in range(self.backend.warmup_calls):   # as before timing (TorchScript on CUDA compiles on its 2nd call)
            self.backend.fetch(self.backend.forward(prepared))
        self.backend.synchronize()
        times = [timed_pass(self.backend, [prepared])[2] for _ in range(self.repeats)]
        seconds = float(np.min(times))
        if len(times) > 1:
            # Median absolute deviation of the logs, scaled to a normal s.d.: one disturbed call does not count.
            logs = np.log(times)
            self.spreads.append(float(1.4826 * np.median(np.abs(logs - np.median(logs)))))
        self.samples.append((rows, plen, seconds))
        self.best_rate = max(self.best_rate, rows * plen / seconds)
        return seconds

    @property
    def allowed_s(self) -> float:
        if not self.run_tokens or not self.best_rate:
            return self.floor_s
        return max(self.floor_s, self.share * self.run_tokens / self.best_rate)

    def affords(self, rows: int, plen: int, seconds_per_call: float) -> bool:
        """Whether timing this shape (warm-up and repeats) stays within the probe's allowance."""
        spent = time.perf_counter() - self.started
        return spent + seconds_per_call * (self.repeats + self.backend.warmup_calls) <= self.allowed_s

    @property
    def noise(self) -> float:
        return float(np.median(self.spreads)) if self.spreads else 0.0

    @property
    def tolerance(self) -> float:
        return min(MAX_TOLERANCE, max(BASE_TOLERANCE, 3.0 * self.noise))


def smoothed(rates: Sequence[float]) -> list[float]:
    """Running median of three over a throughput curve (the two ends as measured): one noisy shape inside the curve
    cannot make a dip or a peak of its own."""
    return [float(np.median(rates[i - 1: i + 2])) if 0 < i < len(rates) - 1 else float(rates[i])
            for i in range(len(rates))]


def choose_budget(tokens: Sequence[int], rates: Sequence[float], tolerance: float) -> int:
    """The largest probed batch whose smoothed throughput is within `tolerance` of the best smoothed one, where
    only a drop over two points in a row counts (the last point of the curve has no neighbour to smooth it with:
    alone below the line it is taken for noise, as the search does)."""
    curve = smoothed(rates)
    floor = (1.0 - tolerance) * max(curve)
    for i in range(int(np.argmax(curve)) + 1, len(curve) - 1):
        if curve[i] < floor and curve[i + 1] < floor:   # a sustained drop past the best: the range ends before it
            return max(t for t, r in zip(tokens[:i], curve[:i]) if r >= floor)
    return max(t for t, r in zip(tokens, curve) if r >= floor or t == tokens[-1])


def probe_cost_model(backend: Backend, vocab_size: int, pad_id: int, max_length: int, *,
                     max_tokens: int | str = "auto", repeats: int = PROBE_REPEATS, seed: int = 0,
                     static_rows: int | None = None, run_tokens: int | None = None, share: float = PROBE_SHARE,
                     floor_s: float = PROBE_FLOOR_S, report: dict | None = None,
                     ) -> tuple[CostModel, list[tuple[int, int, float]], int]:
    """Time synthetic shapes on this backend over the range the plans will use; fit time(rows, padded_len).

    Every shape is timed `repeats` times after its warm-up and keeps the fastest (PROBE_REPEATS says why).
    1. Budget: at a typical length, double the rows until the smoothed throughput curve (`smoothed`) gains less
       than STALL_GAIN (or the tolerance) over two doublings or falls below its best by more than the tolerance, the device's cap or
       memory is reached, or the next shape would take the probe past its allowance (a share of the run's timed
       seconds, `PROBE_SHARE`). 'auto' takes `choose_budget` on that curve, with tolerance max(BASE_TOLERANCE, 3 x the probe
       noise) (at most MAX_TOLERANCE); a given --max-tokens is probed up to, never past.
    2. Fit: at every padded length up to --max-length one row, a full budget and static's batch (`static_rows`),
       so static's prediction is an interpolation, plus the budget search's samples.
    `report`, when given, receives the probe's noise, tolerance, curve, seconds and why the search stopped."""
    probe = _Probe(backend, vocab_size, pad_id, max(1, repeats), np.random.default_rng(seed), run_tokens, share,
                   floor_s)
    typical = min(64, max_length)
    cap = PROBE_TOKEN_CAP.get(backend.device, 16384) if max_tokens == "auto" else int(max_tokens)
    cap = max(cap, max_length)
    tokens, rates, stop = _search(probe, typical, cap)
    noise, tolerance = probe.noise, probe.tolerance   # as the choice saw them (the fit's shapes come after)
    budget = choose_budget(tokens, rates, tolerance) if max_tokens == "auto" else cap
    budget = max(budget, max_length)
    lengths = [x for x in PROBE_LENGTHS if x < max_length] + [max_length]
    for plen in lengths:
        for rows in sorted({1, max(1, budget // plen), *([static_rows] if static_rows else [])}):
            _fit_shape(probe, rows, plen)
    if report is not None:
        report.update(probe_repeats=probe.repeats, probe_noise=round(noise, 4),
                      budget_tolerance=round(tolerance, 4), probe_seconds=round(time.perf_counter() - probe.started,
                                                                                  3),
                      probe_allowed_s=round(probe.allowed_s, 3), search_stop=stop,
                      search_curve=[[t, round(r, 1)] for t, r in zip(tokens, rates)])
    key = f"{backend.name}/{backend.dtype}/{backend.device}"
    model = without_unresolved_terms(fit_cost_model(probe.samples, key=key), probe.samples, tolerance)
    model = dataclasses.replace(model, out_of_memory=tuple(sorted(set(probe.out_of_memory))))
    return model, probe.samples, int(budget)


def without_unresolved_terms(model: CostModel, samples: Sequence[tuple[int, int, float]],
                             tolerance: float) -> CostModel:
    """Zero a term of the fit that is below `tolerance` of every probed timing: the probe cannot tell it from its
    noise, and a term fitted to noise would decide between plans that differ only by it (a launch-bound backend's
    tiny per-token term picks another two-call partition on every probe). Predictions move by less than the
    tolerance; the planner's own tie-break (least padding) then decides between plans the model calls equal."""
    rows = np.array([s[0] for s in samples], dtype=np.float64)
    plen = np.array([s[1] for s in samples], dtype=np.float64)
    predicted = model(rows, plen)
    terms = {"fixed_s": np.full_like(rows, model.fixed_s), "per_token_s": model.per_token_s * rows * plen,
             "per_token_sq_s": model.per_token_sq_s * rows * plen * plen}
    unresolved = {name: 0.0 for name, part in terms.items() if 0 < float(np.max(part / predicted)) < tolerance}
    if not unresolved or len(unresolved) == len(terms):
        return model
    kept = dataclasses.replace(model, **unresolved)
    secs = np.array([s[2] for s in samples], dtype=np.float64)
    return dataclasses.replace(kept, rel_error=float(np.mean(np.abs(kept(rows, plen) - secs) / secs)))


def _search(probe: _Probe, typical: int, cap: int) -> tuple[list[int], list[float], str]:
    """The budget search: (tokens, tok/s) per probed batch at the typical length, and why it stopped."""
    tokens, rates = [], []
    rows, last_s = 1, 0.0
    while True:
        if tokens and not probe.affords(rows, typical, 2.0 * last_s):
            return tokens, rates, "time share"
        try:
            last_s = probe.time(rows, typical)
        except Exception as exc:  # noqa: BLE001 - only running out of memory ends the search; anything else raises
            if not (tokens and is_out_of_memory(exc)):
                raise
            _free_device_memory(probe.backend)
            probe.out_of_memory.append((rows, typical, rows // 2))   # the search doubles: half of it ran
            return tokens, rates, "memory"   # the budget stays within what ran
        tokens.append(rows * typical)
        rates.append(rows * typical / last_s)
        tolerance = probe.tolerance
        curve = smoothed(rates)
        # Judged on the last two points together, so one disturbed shape at the end does not stop the search.
        if len(curve) >= 3 and max(curve[-2:]) < (1.0 + max(STALL_GAIN, tolerance)) * curve[-3]:
            return tokens, rates, "throughput flat"
        if len(curve) >= 2 and max(curve[-2:]) < (1.0 - tolerance) * max(curve):
            return tokens, rates, "throughput falling"
        if 2 * rows * typical > cap:
            return tokens, rates, "token cap"
        rows *= 2


def _fit_shape(probe: _Probe, rows: int, plen: int) -> None:
    """One more shape for the fit, unless it is timed already or would take the probe past its allowance (a
    single row is always timed: the planner needs every length)."""
    if (rows, plen) in {(a, b) for a, b, _ in probe.samples}:
        return
    if rows > 1 and probe.best_rate and not probe.affords(rows, plen, rows * plen / probe.best_rate):
        return
    failed = None
    while True:
        try:
            probe.time(rows, plen)
            break
        except Exception as exc:  # noqa: BLE001 - as in the search
            if rows == 1 or not is_out_of_memory(exc):
                raise
            # Attention's L^2 memory at a long length: halve until a batch runs, so the planner keeps to what ran.
            _free_device_memory(probe.backend)
            failed, rows = rows, rows // 2
            if (rows, plen) in {(a, b) for a, b, _ in probe.samples}:
                break
    if failed:
        probe.out_of_memory.append((failed, plen, rows))


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
