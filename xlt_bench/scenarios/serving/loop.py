"""The open-loop server: requests arrive at fixed times, a policy forms batches from the queue, the real backend runs
them. One clock (time.perf_counter) measures everything: a request's latency is its completion minus its scheduled
arrival, so queue wait, batch formation, host copies and the forward pass are all in it, and a harness that falls
behind shows up as latency rather than as a lower offered load (no coordinated omission).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xlt_bench.batching.planners import Batch, collate
from xlt_bench.core.clock import sleep_until
from xlt_bench.scenarios.serving.policies import Policy, Request


@dataclass
class ServedBatch:
    id: int
    rows: int
    padded_len: int
    start: float
    end: float


@dataclass
class ServerRun:
    requests: list[Request]
    start: dict[int, float] = field(default_factory=dict)     # request id -> service start (s from run start)
    end: dict[int, float] = field(default_factory=dict)       # request id -> completion
    batch_of: dict[int, int] = field(default_factory=dict)
    batches: list[ServedBatch] = field(default_factory=list)
    stopped_at: float = 0.0

    @property
    def unfinished(self) -> list[Request]:
        return [r for r in self.requests if r.id not in self.end]


def serve(backend, policy: Policy, requests: list[Request], pool_ids: list[np.ndarray],
          pool_types: list[np.ndarray] | None, pad_id: int, stop_at: float,
          harness_delay_s: float = 0.0) -> ServerRun:
    """Serve `requests` (sorted by arrival) until all complete or `stop_at` seconds have passed.

    `harness_delay_s` is a testing aid: an extra pause after every batch, as a slow harness would add."""
    import gc
    gc_was_enabled = gc.isenabled()
    gc.disable()   # a collection pause mid-run would be measured as queueing that the server did not cause
    try:
        return _serve(backend, policy, requests, pool_ids, pool_types, pad_id, stop_at, harness_delay_s)
    finally:
        if gc_was_enabled:
            gc.enable()


def _serve(backend, policy: Policy, requests: list[Request], pool_ids, pool_types, pad_id: int, stop_at: float,
           harness_delay_s: float) -> ServerRun:
    result = ServerRun(requests=requests)
    queue: list[Request] = []
    upcoming = 0
    clock = time.perf_counter
    origin = clock()
    while True:
        now = clock() - origin
        while upcoming < len(requests) and requests[upcoming].arrival <= now:
            queue.append(requests[upcoming])
            upcoming += 1
        if now >= stop_at or (not queue and upcoming == len(requests)):
            break
        batch, wake = policy.select(queue, now) if queue else (None, None)
        if batch is None:
            next_arrival = requests[upcoming].arrival if upcoming < len(requests) else stop_at
            sleep_until(origin + min(x for x in (wake, next_arrival, stop_at) if x is not None))
            continue
        chosen = {r.id for r in batch}
        queue = [r for r in queue if r.id not in chosen]
        # Service starts when the server took the decision (`now`): choosing the batch is part of serving it.
        _run_batch(backend, batch, pool_ids, pool_types, pad_id, result, origin, now)
        if harness_delay_s:
            time.sleep(harness_delay_s)
    result.stopped_at = clock() - origin
    return result


def _run_batch(backend, batch: list[Request], pool_ids, pool_types, pad_id: int, result: ServerRun,
               origin: float, start: float) -> None:
    clock = time.perf_counter
    padded_len = max(r.length for r in batch)
    spec = Batch(np.array([r.seq for r in batch], dtype=np.int64), padded_len)
    inputs = backend.prepare(collate(pool_ids, pool_types, spec, pad_id))
    backend.fetch(backend.forward(inputs))   # the caller gets its answer: fetch (and device sync) included
    end = clock() - origin
    batch_id = len(result.batches)
    result.batches.append(ServedBatch(batch_id, len(batch), padded_len, start, end))
    for request in batch:
        result.start[request.id], result.end[request.id], result.batch_of[request.id] = start, end, batch_id



def summarise(run: ServerRun, duration_s: float, slo_ms: float, langs: list[str]) -> dict[str, Any]:
    """The measured figures of one (policy, offered load) run. Unfinished requests count as SLO misses; their
    latency is censored at the stop time (a lower bound), and the run is marked overloaded."""
    latency_ms, waits_ms, by_lang = [], [], {}
    for r in run.requests:
        done = r.id in run.end
        lat = ((run.end[r.id] if done else run.stopped_at) - r.arrival) * 1000.0
        latency_ms.append(lat)
        by_lang.setdefault(langs[r.seq], []).append(lat)
        if done:
            waits_ms.append((run.start[r.id] - r.arrival) * 1000.0)
    latency = np.array(latency_ms)
    done = [r for r in run.requests if r.id in run.end]
    real = sum(r.length for r in done)
    padded = sum(b.rows * b.padded_len for b in run.batches)
    # Achieved throughput over the offered window (or until the last completion if the server drained later).
    window = max(duration_s, max(run.end.values(), default=0.0))
    return dict(
        n_requests=len(run.requests), n_completed=len(done), n_unfinished=len(run.unfinished),
        overloaded=bool(run.unfinished),
        achieved_qps=len(done) / window, throughput_seq_s=len(done) / window, throughput_tok_s=real / window,
        latency_ms_p50=float(np.percentile(latency, 50)), latency_ms_p90=float(np.percentile(latency, 90)),
        latency_ms_p99=float(np.percentile(latency, 99)), latency_ms_max=float(latency.max()),
        mean_queue_wait_ms=float(np.mean(waits_ms)) if waits_ms else None,
        mean_service_ms=float(np.mean([(b.end - b.start) * 1000 for b in run.batches])) if run.batches else None,
        within_slo=float(np.mean(latency <= slo_ms)),
        real_tokens=real, padded_tokens=padded, n_batches=len(run.batches),
        padding_waste=1 - real / padded if padded else None,
        mean_batch_rows=float(np.mean([b.rows for b in run.batches])) if run.batches else None,
        mean_batch_tokens=float(np.mean([b.rows * b.padded_len for b in run.batches])) if run.batches else None,
        latency_ms_p99_by_lang={lang: float(np.percentile(v, 99)) for lang, v in sorted(by_lang.items())},
        batch_rows_histogram={str(rows): n for rows, n in sorted(Counter(b.rows for b in run.batches).items())},
        requests=[[round(r.arrival, 6), round(run.start.get(r.id, -1.0), 6), round(run.end.get(r.id, -1.0), 6),
                   run.batch_of.get(r.id, -1), r.length, langs[r.seq]] for r in run.requests],
    )
