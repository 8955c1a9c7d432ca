"""Offline scenario (DESIGN §3): every sequence known up front, batched by each --batching strategy, timed per
language. This is the measurement the harness was built around; its numbers are unchanged by the scenario layer."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from ..backends.base import Backend
from ..batching import make_batches, packing_bound_seconds, plan_dynamic, predict_seconds
from ..progress import bar
from ..profiler import measure, prepare_batches, restore_order
from ..rows import measurement_row
from ..schema import REFERENCE
from .base import Outputs, Scenario, ScenarioContext


class OfflineScenario(Scenario):
    name = "offline"
    evaluates = True

    def run(self, ctx: ScenarioContext, backend: Backend) -> tuple[list[dict[str, Any]], Outputs]:
        rows: list[dict[str, Any]] = []
        outputs: Outputs = {}
        desc = f"{ctx.workload.task.name} {backend.name}/{backend.dtype}"
        for encoded in bar(ctx.workload.sets, desc=desc, unit="lang", leave=True):
            measured: dict[tuple, tuple[dict[str, Any], list[np.ndarray]]] = {}   # partition -> its measurement
            for batching in batchings(ctx.cfg):
                with ctx.clock("measure"):
                    row, outs = measure_one(ctx, backend, encoded, batching, measured)
                ctx.clock.seconds["warmup"] += row["warmup_s"]
                row["notes"].extend(backend.notes)
                rows.append(row)
                outputs[(encoded.lang, backend.name, backend.dtype, batching)] = outs
        return rows, outputs


def reference_outputs(cfg, bundle, workload, outputs: Outputs) -> list[str]:
    """Agreement always: where the run lacks the reference configuration (eager / fp32 / static), compute its outputs
    untimed, so an int8-only or dynamic-only run still reports agreement. Adds them to `outputs`; returns the
    languages it computed."""
    from ..backends.eager import EagerBackend
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


def measure_one(ctx: ScenarioContext, backend: Backend, encoded, batching: str,
                measured: dict | None = None) -> tuple[dict[str, Any], list[np.ndarray]]:
    """One language under one strategy on one backend. `measured` maps the partitions already timed for this
    language on this backend to their (row, outputs): a strategy that plans the very same batches (dynamic-shared
    on the first backend is its dynamic) reuses that measurement instead of timing identical work twice."""
    cfg = ctx.cfg
    lengths = encoded.lengths
    # Static pads every sequence to --max-length (XTREME's scripts); --shape fixes B and L outright.
    max_length = cfg.shape[1] if cfg.shape is not None else max(ctx.workload.max_length, int(lengths.max()))
    batches, plan = plan_batches(ctx, lengths, batching, max_length)
    partition = tuple((b.padded_len, *b.indices.tolist()) for b in batches)
    if measured is not None and partition in measured:
        first, outs = measured[partition]
        row = copy.deepcopy(first)
        row.update(batching=batching, warmup_s=0.0)
        row["notes"] = [f"same batches as {first['batching']}: its measurement is reused"]
    else:
        row, outs = _time_batches(ctx, backend, encoded, batching, batches)
        if measured is not None:
            measured[partition] = (row, outs)
    if plan is not None:
        row.update(max_tokens=plan.budget, plan_chosen=plan.chosen, plan_predicted_s=plan.predicted_s)
    # Under this backend's own cost model, whatever the strategy: predicted static ÷ dynamic is the speedup the
    # measured costs allow, beside the one measured.
    row["predicted_s"] = predict_seconds(ctx.cost, batches) if ctx.cost is not None else None
    # ...and the floor of any plan within this backend's budget: static ÷ this is what perfect packing would give.
    row["packing_bound_s"] = (packing_bound_seconds(ctx.cost, lengths, dynamic_budget(cfg, ctx.budget, max_length))
                              if ctx.cost is not None else None)
    if batching == "dynamic-shared":
        row["partition_of"] = ctx.shared_plan[2]
    return row, outs


def _time_batches(ctx: ScenarioContext, backend: Backend, encoded, batching: str, batches) -> tuple[dict[str, Any],
                                                                                                list[np.ndarray]]:
    from ..trackers import EnergyTracker, MemoryTracker, joules_per_1k_tokens
    cfg = ctx.cfg
    lengths = encoded.lengths
    prepared = prepare_batches(backend, encoded.input_ids, encoded.token_type_ids, batches, backend.bundle.pad_id)
    energy = EnergyTracker(cfg.device)   # entered by measure() around the timed passes only, not the warm-up
    with MemoryTracker(cfg.device) as memory:
        m = measure(backend, prepared, batches, lengths, min_seconds=cfg.min_seconds, min_repeats=cfg.min_repeats,
                    inject_delay_ms=cfg.inject_delay_ms, inject_slowdown=cfg.inject_slowdown,
                    seq_output=backend.bundle.head in ("token", "span"),
                    warmed_shapes=ctx.warmed, timed_tracker=energy)
    ident = dict(task=encoded.task, lang=encoded.lang, model=cfg.model, backend=backend.name, device=cfg.device,
                 dtype=backend.dtype, batching=batching, scenario="offline", attn=ctx.bundle.attn)
    row = measurement_row(ident=ident, lengths=lengths, n_examples=encoded.n_examples, measurement=m,
                          flops_shape=ctx.flops_shape)
    energy_j = energy.energy_j / m.n_repeats if energy.energy_j is not None else None
    row.update(n_truncated=encoded.n_truncated, tokenize_s=encoded.tokenize_s, peak_rss_mb=memory.peak_rss_mb,
               cuda_max_allocated_mb=memory.cuda_max_allocated_mb, energy_j=energy_j,
               j_per_1k_tokens=joules_per_1k_tokens(energy_j, row["real_tokens"]),
               recompiles_per_shape=backend.recompiles_per_shape)
    if energy.note:
        row["energy_note"] = energy.note
    return row, m.outputs


def dynamic_budget(cfg, budget: int | None, max_length: int) -> int:
    """A dynamic plan's token budget: the probed one (batch_size x max_length without one), never below one
    sequence of max_length."""
    return max(budget or cfg.batch_size * max_length, max_length)


def plan_batches(ctx: ScenarioContext, lengths: np.ndarray, batching: str, max_length: int):
    """The batches of one language under one strategy, and for dynamic the planner's choice (PlanInfo)."""
    cfg = ctx.cfg
    if not batching.startswith("dynamic"):
        batch_size = cfg.shape[0] if cfg.shape else cfg.batch_size
        return make_batches(lengths, batching, batch_size=batch_size, max_length=max_length), None
    cost, budget = ctx.cost, ctx.budget
    if batching == "dynamic-shared":
        if ctx.shared_plan is None:
            raise RuntimeError("dynamic-shared needs the first backend's cost model, and none was made")
        cost, budget, _ = ctx.shared_plan
    return plan_dynamic(lengths, cost, max_tokens=dynamic_budget(cfg, budget, max_length),
                        pad_multiple=cfg.pad_multiple, max_length=max_length, batch_size=cfg.batch_size)
