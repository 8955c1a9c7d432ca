"""Offline scenario (DESIGN §3): every sequence known up front, batched by each --batching strategy, timed per
language.

Repeats are interleaved. Per language, every backend of the task prepares and warms up the batches of every
batching first; then the timed passes run in rounds: round r times one pass of each (backend, batching) in turn
(backend A's static, dynamic, ..., then backend B's, ...). Load that drifts during the run (another job, thermal
throttling) therefore hits every configuration being compared in the same round, and pass r of one configuration
is paired with pass r of another for a ratio's interval (stats.paired_ratio_interval). Rounds continue until every
configuration has --min-repeats passes and --min-seconds of timed passes, or one of them reaches --max-seconds
(the time box), so all configurations of a language have the same number of passes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xlt_bench.backends.base import Backend
from xlt_bench.batching.planners import make_batches, packing_bound_seconds, predict_seconds
from xlt_bench.batching.budget import plan_budget
from xlt_bench.core.progress import bar
from xlt_bench.measure.passes import TimedSeries, prepare_batches, restore_order, wants_another_pass
from xlt_bench.results.rows import add_intervals, all_rows, measurement_row
from xlt_bench.core.schema import REFERENCE, RowKey
from xlt_bench.batching.strategies import get_strategy, plan, runs_on
from xlt_bench.batching.strategies.base import PlanRequest, SharedPlan
from xlt_bench.scenarios.base import Outputs, Scenario, ScenarioContext


@dataclass
class _Config:
    """One (backend, batching) of one language: its batches, and either its own timed series or the earlier
    configuration of the same backend whose identical batches it reuses."""
    ctx: ScenarioContext
    backend: Backend
    batching: str
    key: RowKey                  # what this configuration's row measures
    index: int                   # the backend's position in the task's list (rows come out in that order)
    batches: list
    plan: Any
    series: TimedSeries | None = None
    same_as: _Config | None = None
    row: dict[str, Any] = field(default_factory=dict)
    outputs: list = field(default_factory=list)
    # Per timed pass: energy (J), peak RSS and CUDA allocation (MB); the energy tracker's note.
    energy_j: list = field(default_factory=list)
    rss_mb: list = field(default_factory=list)
    cuda_mb: list = field(default_factory=list)
    energy_note: str | None = None


class OfflineScenario(Scenario):
    name = "offline"
    evaluates = True
    interleaves_backends = True

    def run(self, ctx: ScenarioContext, backend: Backend) -> tuple[list[dict[str, Any]], Outputs]:
        return self.run_together([(ctx, backend)])

    def run_together(self, loaded: list[tuple[ScenarioContext, Backend]]) -> tuple[list[dict[str, Any]], Outputs]:
        """Every loaded backend over every language, their passes interleaved per language. Rows come out grouped
        by backend (then language, then batching), as a run of one backend at a time would give them."""
        by_backend: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(loaded))}
        outputs: Outputs = {}
        first = loaded[0][0]
        names = ", ".join(f"{b.name}/{b.dtype}" for _, b in loaded)
        for encoded in bar(first.workload.sets, desc=f"{first.workload.task.name} {names}", unit="lang", leave=True):
            partitions: dict[tuple, _Config] = {}
            with first.clock("measure"):
                configs = [_prepare(ctx, backend, encoded, batching, i, partitions)
                           for i, (ctx, backend) in enumerate(loaded) for batching in batchings(ctx.cfg)
                           if runs_on(batching, backend)]
                _run_rounds([c for c in configs if c.series is not None], first.cfg)
            for config in configs:
                _finish(config, encoded)
                first.clock.seconds["warmup"] += config.row["warmup_s"]
                by_backend[config.index].append(config.row)
                outputs[(encoded.lang, config.backend.name, config.backend.dtype, config.batching)] = config.outputs
        return [row for i in sorted(by_backend) for row in by_backend[i]], outputs

    def aggregate(self, rows):
        """ALL rows, then every row's intervals and speedups (per-language rows are completed in place)."""
        out = all_rows(rows)
        add_intervals([*rows, *out])
        return out


def _prepare(ctx: ScenarioContext, backend: Backend, encoded, batching: str, index: int,
             partitions: dict[tuple, _Config]) -> _Config:
    """Plan one (backend, batching) of a language; prepare and warm its batches unless the same backend already
    has the very same partition (dynamic-shared on the first backend is its dynamic): then it reuses that one."""
    lengths = encoded.lengths
    batches, plan = plan_batches(ctx, lengths, batching, _max_length(ctx, lengths))
    key = RowKey(task=encoded.task, lang=encoded.lang, model=ctx.cfg.model, backend=backend.name,
                 device=ctx.cfg.device, dtype=backend.dtype, batching=batching, scenario="offline")
    config = _Config(ctx, backend, batching, key, index, batches, plan)
    partition = (index, tuple((type(b).__name__, b.padded_len, *b.indices.tolist()) for b in batches))
    if partition in partitions:
        config.same_as = partitions[partition]
        return config
    partitions[partition] = config
    prepared = prepare_batches(backend, encoded.input_ids, encoded.token_type_ids, batches, backend.bundle.pad_id)
    config.series = TimedSeries(backend, prepared, batches, lengths, seq_output=backend.bundle.head in ("token", "span"),
                                inject_delay_ms=ctx.cfg.inject_delay_ms, inject_slowdown=ctx.cfg.inject_slowdown)
    config.series.warm(ctx.warmed)
    return config


def _run_rounds(configs: list[_Config], cfg) -> None:
    """Timed passes, one per configuration per round, until the repeat rule of every configuration is met (all
    stop together, so pass r of each was timed in the same round). Energy and memory are tracked per pass and
    attributed to the configuration that ran it."""
    from xlt_bench.measure.trackers import EnergyTracker, MemoryTracker
    while _another_round(configs, cfg):
        for config in configs:
            energy = EnergyTracker(cfg.device)
            with MemoryTracker(cfg.device) as memory, energy:
                config.series.run_pass()
            config.energy_j.append(energy.energy_j)
            config.rss_mb.append(memory.peak_rss_mb)
            config.cuda_mb.append(memory.cuda_max_allocated_mb)
            config.energy_note = energy.note


def _another_round(configs: list[_Config], cfg) -> bool:
    """measure.passes.wants_another_pass over the language's configurations together: another round while any of them
    still wants one, unless one has reached the time box (then all stop, keeping the passes paired)."""
    wants = [wants_another_pass(len(c.series.pass_wall_s), c.series.timed_s, min_repeats=cfg.min_repeats,
                                min_seconds=cfg.min_seconds, max_seconds=cfg.max_seconds) for c in configs]
    boxed = cfg.max_seconds is not None and any(c.series.timed_s >= cfg.max_seconds for c in configs)
    return any(wants) and not boxed


def _finish(config: _Config, encoded) -> None:
    """The row and outputs of one configuration: measured, or copied from the configuration it shares batches
    with; then what the cost model predicts for its batches."""
    ctx, cfg = config.ctx, config.ctx.cfg
    if config.same_as is not None:   # its source comes earlier in the list, so is finished already
        source = config.same_as
        config.row = copy.deepcopy(source.row)
        config.row.update(config.key.fields(), warmup_s=0.0,
                          notes=[f"same batches as {source.batching}: its measurement is reused"])
        config.outputs = source.outputs
    else:
        config.row, config.outputs = _row_of(config, encoded)
        config.row["notes"].extend(config.backend.notes)
    lengths = encoded.lengths
    max_length = _max_length(ctx, lengths)
    if config.plan is not None:
        config.row.update(max_tokens=config.plan.budget, plan_chosen=config.plan.chosen,
                          plan_predicted_s=config.plan.predicted_s)
    else:   # static forms: the most tokens one of their calls can hold
        config.row["max_tokens"] = (cfg.shape[0] if cfg.shape else cfg.batch_size) * max_length
    # Under this backend's own cost model, whatever the strategy: predicted static ÷ dynamic is the speedup the
    # measured costs allow, beside the one measured.
    config.row["predicted_s"] = predict_seconds(ctx.cost, config.batches) if ctx.cost is not None else None
    # ...and that model's floor for any plan within this backend's budget (a prediction, not a measurement).
    config.row["packing_bound_s"] = (packing_bound_seconds(ctx.cost, lengths, dynamic_budget(cfg, ctx.budget,
                                                                                             max_length))
                                     if ctx.cost is not None else None)
    if get_strategy(config.batching).uses_shared_plan:
        config.row["partition_of"] = ctx.shared_plan[2]


def _row_of(config: _Config, encoded) -> tuple[dict[str, Any], list[np.ndarray]]:
    from xlt_bench.measure.trackers import joules_per_1k_tokens
    ctx, cfg, backend = config.ctx, config.ctx.cfg, config.backend
    m = config.series.measurement()
    row = measurement_row(key=config.key, lengths=encoded.lengths, n_examples=encoded.n_examples, measurement=m,
                          flops_shape=ctx.flops_shape, attn=ctx.bundle.attn)
    energies = config.energy_j   # per pass: the row's energy is that of one mean pass
    energy_j = float(np.mean(energies)) if energies and all(e is not None for e in energies) else None
    row.update(n_truncated=encoded.n_truncated, tokenize_s=encoded.tokenize_s,
               peak_rss_mb=_max(config.rss_mb), cuda_max_allocated_mb=_max(config.cuda_mb), energy_j=energy_j,
               j_per_1k_tokens=joules_per_1k_tokens(energy_j, row["real_tokens"]),
               recompiles_per_shape=backend.recompiles_per_shape)
    if config.energy_note:
        row["energy_note"] = config.energy_note
    return row, m.outputs


def _max(values: list) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _max_length(ctx: ScenarioContext, lengths: np.ndarray) -> int:
    # Static pads every sequence to --max-length (XTREME's scripts); --shape fixes B and L outright.
    cfg = ctx.cfg
    return cfg.shape[1] if cfg.shape is not None else max(ctx.workload.max_length, int(lengths.max()))


def reference_outputs(cfg, bundle, workload, outputs: Outputs) -> list[str]:
    """Agreement always: where the run lacks the reference configuration (eager / fp32 / static), compute its outputs
    untimed, so an int8-only or dynamic-only run still reports agreement. Adds them to `outputs`; returns the
    languages it computed."""
    from xlt_bench.backends.eager import EagerBackend
    missing = [s for s in workload.sets if (s.lang, *REFERENCE) not in outputs]
    if not missing:
        return []
    reference = EagerBackend(bundle, cfg.device, "fp32", cfg.threads, cfg.cache_dir)
    reference.load()
    seq_output = bundle.head in ("token", "span")
    for encoded in missing:
        lengths = encoded.lengths
        max_length = max(workload.max_length, int(lengths.max()))
        batches = make_batches(lengths, "static", batch_size=cfg.batch_size, max_length=max_length)
        prepared = prepare_batches(reference, encoded.input_ids, encoded.token_type_ids, batches, bundle.pad_id)
        fetched = [reference.fetch(reference.forward(p)) for p in prepared]
        outputs[(encoded.lang, *REFERENCE)] = restore_order(fetched, batches, lengths, seq_output)
    reference.close()
    return [s.lang for s in missing]


def batchings(cfg) -> tuple[str, ...]:
    # Fixed-shape mode runs B x L batches as given: every strategy would build the same batches.
    return ("static",) if cfg.shape is not None else cfg.batching


def dynamic_budget(cfg, budget: int | None, max_length: int) -> int:
    """A token-budget plan's budget for one language (budget.plan_budget)."""
    return plan_budget(budget, cfg.batch_size, max_length)


def plan_batches(ctx: ScenarioContext, lengths: np.ndarray, batching: str, max_length: int):
    """The batches of one language under one strategy, and the planner's choice (PlanInfo) where it compared plans."""
    cfg = ctx.cfg
    shared = SharedPlan(*ctx.shared_plan) if ctx.shared_plan is not None else None
    request = PlanRequest(batch_size=cfg.shape[0] if cfg.shape else cfg.batch_size, max_length=max_length,
                          pad_multiple=cfg.pad_multiple, max_tokens=ctx.budget, cost=ctx.cost, shared=shared)
    return plan(batching, lengths, request)
