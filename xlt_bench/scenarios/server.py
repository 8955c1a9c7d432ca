"""Server scenario (DESIGN §3 "Server scenario"): requests arrive one by one at an offered load (seeded Poisson, or a
trace), a batching policy forms batches from the queue, the real backend serves them. Per (policy, offered load): the
achieved throughput and latency percentiles on one clock, with 95% intervals across `--arrival-seeds` repeats, the
share within the SLO, padding; per policy the maximum sustainable QPS (the highest offered load whose p99 latency is
within the SLO with nothing left unserved), bisected per seed to within 5% when `--qps auto` (MLPerf's Server metric),
with an interval across seeds (xlt_bench/scenarios/serving/search.py).

Requests are single sequences drawn (seeded) from the run's workload, so the mix is the run's language mix; a
held-out share of it only fits the length-bucketed policy's bucket edges, and every tunable policy is tuned with the
same number of trial settings on an arrival seed that is not measured (xlt_bench/scenarios/serving/tuning.py). Every policy sees
the same arrival times and requests for a given (load, seed), and a seed's arrivals at two loads are the same
exponential draws rescaled (common random numbers), so p99 against load is smooth within a seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xlt_bench.backends.base import Backend
from xlt_bench.batching.budget import plan_budget
from xlt_bench.core.flops import executed_flops, useful_flops
from xlt_bench.core.catalogue import Metric, register
from xlt_bench.core.schema import ALL_LANGS, RowKey
from xlt_bench.scenarios.serving.arrivals import load_trace, poisson_arrivals
from xlt_bench.scenarios.serving.combine import combine_seeds
from xlt_bench.scenarios.serving.loop import serve, summarise
from xlt_bench.scenarios.serving.policies import POLICIES, Request, make_policy
from xlt_bench.scenarios.serving.search import REL_WIDTH, max_qps_estimate, next_load, seed_brackets
from xlt_bench.scenarios.serving.tuning import TUNING_SEED_INDEX, choose, held_out_split
from xlt_bench.scenarios.base import Outputs, Scenario, ScenarioContext

for _metric in (
    Metric("achieved_qps", "req/s", "higher", "none", "completed requests / offered window (geometric mean over "
           "arrival seeds)", ("server",)),
    Metric("within_slo", "fraction", "higher", "none", "requests completed within --slo-ms (unfinished = miss)",
           ("server",)),
    Metric("max_sustainable_qps", "req/s", "higher", "none",
           "highest offered load with p99 <= SLO and nothing unserved (geometric mean over arrival seeds)",
           ("server",)),
    Metric("latency_ms_max", "ms", "lower", "none", "slowest request", ("server",)),
):
    register(_metric)

MIN_REQUESTS = 20   # the search serves no load that expects fewer requests per run (a p99 of nothing)
SERVER_INTERVAL_METHOD = "student-t on log per-seed values, 95% (xlt_bench.core.stats.log_t_interval)"


class ServerScenario(Scenario):
    name = "server"

    def check(self, cfg, backend_names) -> None:
        for name in cfg.policy:
            make_policy(name, 4096, True, cfg.policy_options.get(name))
        if cfg.trace is not None:
            load_trace(cfg.trace)

    def needs_cost_model(self, cfg) -> bool:
        return True   # token budget, the start of the search and the length-bucketed policy's bucket edges

    def aggregate(self, rows):
        return []     # every server row already serves the whole language mix

    def run(self, ctx: ScenarioContext, backend: Backend) -> tuple[list[dict[str, Any]], Outputs]:
        cfg = ctx.cfg
        runner = _LoadRunner(ctx, backend)
        self._warm_up(backend, runner)
        meta = {"budget": runner.budget, "held_out_sequences": int(len(runner.fit_idx)),
                "served_sequences": int(len(runner.serve_idx)), "arrival_seeds": cfg.arrival_seeds, "tuning": {}}
        ctx.say(f"server: policies {', '.join(cfg.policy)} on {backend.name}/{backend.dtype}, interleaved")
        with ctx.clock("tune"):
            options, meta["tuning"] = runner.tune(cfg.policy)
        if "length-bucketed" in options:
            meta["bucket_edges"] = options["length-bucketed"].get("edges")
        with ctx.clock("measure"):
            rows = runner.sweep(cfg.policy, options)
        ctx.run_meta.setdefault("server", {})[f"{backend.name}/{backend.dtype}"] = meta
        return rows, {}

    @staticmethod
    def _warm_up(backend, runner) -> None:
        from xlt_bench.batching.planners import Batch, collate
        longest = int(np.argmax(runner.lengths))
        length = int(runner.lengths[longest])
        for n_rows in (1, max(1, runner.budget // length)):
            batch = Batch(np.full(n_rows, longest, dtype=np.int64), length)
            backend.fetch(backend.forward(backend.prepare(collate(runner.pool_ids, runner.pool_types, batch,
                                                                  runner.ctx.bundle.pad_id))))
        backend.synchronize()


def _sustained(stats: dict[str, Any], slo_ms: float) -> bool:
    return not stats["overloaded"] and stats["latency_ms_p99"] <= slo_ms


def arrival_seed(base: int, index: int) -> int:
    """The seed of arrival process `index` of a run seeded `base` (independent streams per index)."""
    return int(np.random.SeedSequence([base, index]).generate_state(1)[0])


class _LoadRunner:
    """Serves one policy at offered loads, once per arrival seed: a list of loads, a trace, or the search."""

    def __init__(self, ctx: ScenarioContext, backend: Backend):
        self.ctx, self.backend, self.cfg = ctx, backend, ctx.cfg
        sets = ctx.workload.sets
        self.pool_ids = [ids for s in sets for ids in s.input_ids]
        self.pool_types = ([t for s in sets for t in s.token_type_ids]
                           if all(s.token_type_ids is not None for s in sets) else None)
        self.langs = [s.lang for s in sets for _ in s.input_ids]
        self.lengths = np.array([len(x) for x in self.pool_ids])
        self.max_length = max(ctx.workload.max_length, int(self.lengths.max()))
        self.budget = plan_budget(ctx.budget, self.cfg.batch_size, self.max_length)
        self.fit_idx, self.serve_idx = held_out_split(self.langs, self.cfg.seed)
        self.trace = load_trace(self.cfg.trace) if self.cfg.trace is not None else None

    # --- tuning --------------------------------------------------------------------------------------------------
    def tune(self, policies) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """The options each policy is measured with, and the tuning records. Trial i of every policy runs before
        trial i + 1 of any, so drift in the machine's speed hits every policy's tuning alike."""
        load, options, records, trials = self.tuning_load(), {}, {}, {}
        for policy in policies:
            given = self.cfg.policy_options.get(policy)
            if given:
                options[policy] = dict(given)
                records[policy] = {"policy": policy, "given": dict(given), "trials": [], "chosen": dict(given)}
                continue
            fit_lengths = self.lengths[self.fit_idx] if len(self.fit_idx) else self.lengths[self.serve_idx]
            trials[policy] = POLICIES.get(policy).trial_settings(self.budget, self.max_length, fit_lengths,
                                                                 self.ctx.cost)
        measured: dict[str, list[dict[str, Any]]] = {p: [] for p in trials if len(trials[p]) > 1}
        for i in range(max((len(t) for t in trials.values()), default=0)):
            for policy in measured:
                if i < len(trials[policy]):
                    measured[policy].append(self.serve_once(policy, trials[policy][i], load, TUNING_SEED_INDEX,
                                                            self.tuning_duration(load))[0])
        for policy, settings in trials.items():
            if policy in measured:
                records[policy] = choose(policy, settings, measured[policy], load)
                records[policy]["seed_index"] = TUNING_SEED_INDEX
            else:   # nothing to choose between: no tuning run
                records[policy] = {"policy": policy, "load_qps": load, "trials": [], "chosen": settings[0]}
            options[policy] = dict(records[policy]["chosen"])
        return options, records

    def tuning_load(self) -> float:
        """Half the predicted capacity (twice where the search starts); a trace's own mean rate."""
        if self.trace is not None:
            return len(self.trace) / max(float(self.trace[-1]), 1e-9)
        return 2 * self.start_qps()

    def tuning_duration(self, load: float) -> float:
        """As long as a measured load runs (a trace's span), and long enough to expect MIN_REQUESTS requests."""
        span = float(self.trace[-1]) if self.trace is not None else self.cfg.duration
        return max(span, MIN_REQUESTS / load)

    def start_qps(self) -> float:
        """A quarter of the capacity the cost model predicts for full-budget batches of typical length."""
        cost = self.ctx.cost
        typical = int(np.median(self.lengths))
        rows = max(1, self.budget // typical)
        if cost is None:
            return 1.0
        return max(0.25, 0.25 * rows / float(cost(rows, typical)))

    # --- measuring -----------------------------------------------------------------------------------------------
    def sweep(self, policies, options: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows of every policy. Policies take turns load by load (in the search, step by step), so drift in the
        machine's speed lands on all of them rather than in their ratio."""
        n_seeds, auto = self.cfg.arrival_seeds, self.trace is None and self.cfg.qps == "auto"
        measured: dict[str, dict[float, tuple[float | None, list]]] = {p: {} for p in policies}
        outcomes: dict[str, dict[float, list[bool]]] = {p: {} for p in policies}
        if self.trace is not None:
            rate = len(self.trace) / max(float(self.trace[-1]), 1e-9)
            steps = [[(p, None, rate) for p in policies]]
            method = "the trace's own rate; repeats replay the same arrivals (interval: service noise only)"
        elif not auto:
            steps = [[(p, float(q), float(q)) for p in policies] for q in self.cfg.qps]
            method = "highest listed load each seed sustained below its lowest failed one (resolution: the list)"
        else:
            steps = self._search_steps(policies, outcomes)
            method = (f"per-seed bisection to {REL_WIDTH:.0%} (lower end of each seed's bracket), "
                      "geometric mean and log-t interval across seeds")
        for step in steps:
            for policy, qps, key in step:
                runs = [self.serve_once(policy, options[policy], qps, k) for k in range(n_seeds)]
                measured[policy][key] = (qps, runs)
                outcomes[policy][key] = self._outcome(policy, key, runs)
        rows = []
        for policy in policies:
            estimate = max_qps_estimate(seed_brackets(outcomes[policy], n_seeds), REL_WIDTH if auto else None)
            for key in sorted(measured[policy]):
                qps, runs = measured[policy][key]
                rows.append({**self._row(policy, options[policy], qps, runs), **estimate, "max_qps_method": method})
        return rows

    def _search_steps(self, policies, outcomes):
        """Each step: the next load of every policy whose search is not done (reads `outcomes` as it fills)."""
        start, floor, active = self.start_qps(), MIN_REQUESTS / self.cfg.duration, list(policies)
        while active:
            step = []
            for policy in list(active):
                load = next_load(outcomes[policy], self.cfg.arrival_seeds, max(start, floor), REL_WIDTH, floor)
                if load is None:
                    active.remove(policy)
                else:
                    step.append((policy, load, load))
            if step:
                yield step

    def _outcome(self, policy: str, key: float, runs) -> list[bool]:
        ok = [_sustained(stats, self.cfg.slo_ms) for stats, _ in runs]
        p99 = "/".join(f"{stats['latency_ms_p99']:.0f}" for stats, _ in runs)
        self.ctx.say(f"server: {policy} @ {key:.4g} QPS: p99 {p99} ms per seed, sustained by {sum(ok)} of "
                     f"{len(ok)} seeds")
        return ok

    def serve_once(self, policy_name: str, options: dict[str, Any], qps: float | None, seed_index: int,
                   duration: float | None = None):
        """One run of the policy at a load (None: the trace) with arrival seed `seed_index` over `duration` seconds
        [--duration]: (summary, run)."""
        cfg = self.cfg
        if qps is None:
            arrivals, duration, seed_index = self.trace, float(self.trace[-1]), 0   # a trace replays identically
        else:
            duration = duration or cfg.duration
            arrivals = poisson_arrivals(qps, duration, arrival_seed(cfg.seed, seed_index))
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, seed_index, 2]))
        draws = self.serve_idx[rng.integers(0, len(self.serve_idx), size=len(arrivals))]
        requests = [Request(i, float(t), int(self.lengths[s]), int(s)) for i, (t, s) in enumerate(zip(arrivals, draws))]
        policy = make_policy(policy_name, self.budget, True, options)
        # The run ends one SLO after the last arrival: what is still queued then has missed its SLO anyway.
        run = serve(self.backend, policy, requests, self.pool_ids, self.pool_types, self.ctx.bundle.pad_id,
                    stop_at=duration + cfg.slo_ms / 1000.0, harness_delay_s=cfg.inject_delay_ms / 1000.0)
        stats = summarise(run, duration, cfg.slo_ms, self.langs)
        stats.update(duration_s=duration, wall_s=max(duration, max(run.end.values(), default=0.0)))
        return stats, run

    def _row(self, policy: str, options: dict[str, Any], qps: float | None, runs: list) -> dict[str, Any]:
        cfg, flops_shape = self.cfg, self.ctx.flops_shape
        stats = combine_seeds([s for s, _ in runs])
        done = [r.length for _, run in runs for r in run.requests if r.id in run.end]
        duration = runs[0][0]["duration_s"]
        key = RowKey(task=self.ctx.workload.task.name, lang=ALL_LANGS, model=cfg.model, backend=self.backend.name,
                     device=cfg.device, dtype=self.backend.dtype, batching=None, scenario="server", policy=policy)
        row: dict[str, Any] = dict(
            **key.fields(), policy_options=options,
            offered_qps=qps if qps is not None else len(self.trace) / max(duration, 1e-9), slo_ms=cfg.slo_ms,
            duration_s=duration, arrival_seed_indices=list(range(len(runs))), n_examples=stats["n_requests"],
            n_sequences=stats["n_requests"], wall_s=sum(s["wall_s"] for s, _ in runs),
            flops_useful=useful_flops(flops_shape, done),
            flops_executed=executed_flops(flops_shape, [(b.rows, b.padded_len) for _, run in runs for b in run.batches]),
            mfu=None, accuracy=None, agreement=None, max_abs_diff=None, parity_ok=None, is_reference=False,
            langs=sorted(set(self.langs)), notes=[], trace=cfg.trace, interval_method=SERVER_INTERVAL_METHOD)
        row.update(stats)
        for i, (s, _) in enumerate(runs):
            if s["overloaded"]:
                row["notes"].append(f"seed {i} overloaded: {s['n_unfinished']} of {s['n_requests']} requests "
                                    f"unfinished {cfg.slo_ms:g} ms after the last arrival (counted as SLO misses)")
        return row
