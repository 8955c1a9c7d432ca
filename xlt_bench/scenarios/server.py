"""Server scenario (DESIGN §3 "Server scenario"): requests arrive one by one at an offered load (seeded Poisson, or a
trace), a batching policy forms batches from the queue, the real backend serves them. Per (policy, offered load): the
achieved throughput, latency percentiles on one clock, the share within the SLO, padding; per policy the maximum
sustainable QPS (the highest offered load whose p99 latency is within the SLO with nothing left unserved), found by
bisection when `--qps auto`, as MLPerf's Server metric.

Requests are single sequences drawn (seeded) from every selected language of the run's workload, so the mix is the
run's language mix. Every policy sees the same arrival times at a given load.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends.base import Backend
from ..budget import plan_budget
from ..flops import executed_flops, useful_flops
from ..metric_defs import Metric, register
from ..serving.arrivals import load_trace, poisson_arrivals
from ..serving.loop import serve, summarise
from ..serving.policies import Request, bucket_edges, make_policy
from .base import Outputs, Scenario, ScenarioContext

for _metric in (
    Metric("achieved_qps", "req/s", "higher", "none", "completed requests / offered window", ("server",)),
    Metric("within_slo", "fraction", "higher", "none", "requests completed within --slo-ms (unfinished = miss)",
           ("server",)),
    Metric("max_sustainable_qps", "req/s", "higher", "none",
           "highest offered load with p99 <= SLO and nothing unserved", ("server",)),
    Metric("latency_ms_max", "ms", "lower", "none", "slowest request", ("server",)),
):
    register(_metric)

BISECTION_STEPS = 3


class ServerScenario(Scenario):
    name = "server"

    def check(self, cfg, backend_names) -> None:
        for name in cfg.policy:
            make_policy(name, 4096, True, cfg.policy_options.get(name))
        if cfg.trace is not None:
            load_trace(cfg.trace)

    def needs_cost_model(self, cfg) -> bool:
        return True   # token budget and the length-bucketed policy's bucket edges

    def aggregate(self, rows):
        return []     # every server row already serves the whole language mix

    def run(self, ctx: ScenarioContext, backend: Backend) -> tuple[list[dict[str, Any]], Outputs]:
        cfg = ctx.cfg
        pool_ids = [ids for s in ctx.workload.sets for ids in s.input_ids]
        pool_types = ([t for s in ctx.workload.sets for t in s.token_type_ids]
                      if all(s.token_type_ids is not None for s in ctx.workload.sets) else None)
        langs = [s.lang for s in ctx.workload.sets for _ in s.input_ids]
        lengths = np.array([len(x) for x in pool_ids])
        max_length = max(ctx.workload.max_length, int(lengths.max()))
        budget = plan_budget(ctx.budget, cfg.batch_size, max_length)
        edges = bucket_edges(lengths, ctx.cost, budget, max_length)
        ctx.run_meta.setdefault("server", {})[f"{backend.name}/{backend.dtype}"] = {"budget": budget,
                                                                                   "bucket_edges": edges}
        self._warm_up(backend, pool_ids, pool_types, ctx.bundle.pad_id, lengths, budget)
        runner = _LoadRunner(ctx, backend, pool_ids, pool_types, langs, lengths, budget, edges)
        rows = []
        for policy in cfg.policy:
            ctx.say(f"server: policy {policy} on {backend.name}/{backend.dtype}")
            with ctx.clock("measure"):
                policy_rows = runner.sweep(policy)
            best = [r["offered_qps"] for r in policy_rows if _sustained(r, cfg.slo_ms)]
            for row in policy_rows:
                row["max_sustainable_qps"] = max(best) if best else None
            rows.extend(policy_rows)
        return rows, {}

    @staticmethod
    def _warm_up(backend, pool_ids, pool_types, pad_id, lengths, budget) -> None:
        from ..batching import Batch, collate
        longest = int(np.argmax(lengths))
        for rows in (1, max(1, budget // int(lengths[longest]))):
            batch = Batch(np.full(rows, longest, dtype=np.int64), int(lengths[longest]))
            backend.fetch(backend.forward(backend.prepare(collate(pool_ids, pool_types, batch, pad_id))))
        backend.synchronize()


def _sustained(row: dict[str, Any], slo_ms: float) -> bool:
    return not row["overloaded"] and row["latency_ms_p99"] <= slo_ms


class _LoadRunner:
    """Runs one policy at offered loads: the given list, a trace, or a bisection for the max sustainable QPS."""

    def __init__(self, ctx, backend, pool_ids, pool_types, langs, lengths, budget, edges):
        self.ctx, self.backend, self.cfg = ctx, backend, ctx.cfg
        self.pool_ids, self.pool_types, self.langs, self.lengths = pool_ids, pool_types, langs, lengths
        self.budget, self.edges = budget, edges

    def sweep(self, policy: str) -> list[dict[str, Any]]:
        cfg = self.cfg
        if cfg.trace is not None:
            return [self.measure(policy, None)]
        if cfg.qps != "auto":
            return [self.measure(policy, q) for q in cfg.qps]
        return self._bisect(policy)

    def _bisect(self, policy: str) -> list[dict[str, Any]]:
        """Double the offered load until the SLO breaks, then bisect between the last pass and the first fail."""
        rows, qps = [], self._start_qps()
        passed, failed = 0.0, None
        while failed is None:
            rows.append(self.measure(policy, qps))
            if _sustained(rows[-1], self.cfg.slo_ms):
                passed, qps = qps, qps * 2
            else:
                failed = qps
            if qps > 1e6:
                break
        for _ in range(BISECTION_STEPS if failed else 0):
            qps = (passed + failed) / 2
            rows.append(self.measure(policy, qps))
            if _sustained(rows[-1], self.cfg.slo_ms):
                passed = qps
            else:
                failed = qps
        return rows

    def _start_qps(self) -> float:
        """A quarter of the capacity the cost model predicts for full-budget batches of typical length."""
        cost = self.ctx.cost
        typical = int(np.median(self.lengths))
        rows = max(1, self.budget // typical)
        if cost is None:
            return 1.0
        return max(0.25, 0.25 * rows / float(cost(rows, typical)))

    def measure(self, policy_name: str, qps: float | None) -> dict[str, Any]:
        cfg = self.cfg
        seed = cfg.seed + int((qps or 0) * 1000)
        arrivals = load_trace(cfg.trace) if qps is None else poisson_arrivals(qps, cfg.duration, seed)
        duration = float(arrivals[-1]) if qps is None else cfg.duration
        draws = np.random.default_rng(seed + 1).integers(0, len(self.pool_ids), size=len(arrivals))
        requests = [Request(i, float(t), int(self.lengths[s]), int(s)) for i, (t, s) in enumerate(zip(arrivals, draws))]
        options = dict(self.cfg.policy_options.get(policy_name, {}))
        if policy_name == "length-bucketed":
            options.setdefault("edges", self.edges)
        policy = make_policy(policy_name, self.budget, True, options)
        # The run ends one SLO after the last arrival: what is still queued then has missed its SLO anyway.
        run = serve(self.backend, policy, requests, self.pool_ids, self.pool_types, self.ctx.bundle.pad_id,
                    stop_at=duration + cfg.slo_ms / 1000.0, harness_delay_s=cfg.inject_delay_ms / 1000.0)
        stats = summarise(run, duration, cfg.slo_ms, self.langs)
        return self._row(policy_name, qps, stats, run, duration)

    def _row(self, policy: str, qps: float | None, stats: dict[str, Any], run, duration: float) -> dict[str, Any]:
        cfg, flops_shape = self.cfg, self.ctx.flops_shape
        done = [r for r in run.requests if r.id in run.end]
        row: dict[str, Any] = dict(
            task=self.ctx.workload.task.name, lang="ALL", model=cfg.model, backend=self.backend.name,
            device=cfg.device, dtype=self.backend.dtype, batching=policy, scenario="server", policy=policy,
            offered_qps=qps if qps is not None else len(run.requests) / max(duration, 1e-9), slo_ms=cfg.slo_ms,
            duration_s=duration, n_examples=len(run.requests), n_sequences=len(run.requests),
            wall_s=max(duration, stats["n_completed"] and max(run.end.values())),
            flops_useful=useful_flops(flops_shape, [r.length for r in done]),
            flops_executed=executed_flops(flops_shape, [(b.rows, b.padded_len) for b in run.batches]),
            mfu=None, accuracy=None, agreement=None, max_abs_diff=None, parity_ok=None, is_reference=False,
            langs=sorted(set(self.langs)), notes=[], trace=cfg.trace)
        row.update(stats)
        if row["overloaded"]:
            row["notes"].append(f"overloaded: {row['n_unfinished']} of {row['n_requests']} requests unfinished "
                                f"{cfg.slo_ms:g} ms after the last arrival (counted as SLO misses)")
        return row
