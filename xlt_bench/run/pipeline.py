"""`xlt-bench run`: joins the stages (part of the CLI layer, the only place that may import every stage).

tasks -> dataset -> tokenization/synthetic -> batching -> backends -> scenario -> rows/quality -> results files.

Nothing is lost: everything that can be checked is checked (preflight.py) before the first measurement; the new run
is written into a staging directory beside --out and swapped in only when complete (run_dir.py: only a directory
the harness wrote is ever replaced, and a finished run only with `force`); any failure or interruption (Ctrl-C,
SIGTERM) leaves the rows measured so far in --out/results.incomplete.json, which no reader mistakes for a finished
run.
"""

from __future__ import annotations

import gc
import logging
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from xlt_bench.results import quality

from xlt_bench.core import progress

from xlt_bench.run import run_dir
from xlt_bench.batching.planners import CostModel
from xlt_bench.core.config import RunConfig
from xlt_bench.core.errors import InputError, RunTerminated
from xlt_bench.core.flops import EncoderShape
from xlt_bench.backends.models import build_model
from xlt_bench.run.preflight import RunPlan, preflight
from xlt_bench.measure.probe import probe_cost_model
from xlt_bench.run.peaks import apply_run_peaks, merge_peaks
from xlt_bench.run.peaks import measure_run_peaks as _measure_peaks
from xlt_bench.scenarios import get_scenario
from xlt_bench.scenarios.base import ScenarioContext, StageClock
from xlt_bench.core.schema import atomic_write_text, results_document, write_results
from xlt_bench.core.stats import INTERVAL_METHOD
from xlt_bench.data.tasks import TaskSpec
from xlt_bench.measure.trackers import RssWindow, children_peak_rss_mb
from xlt_bench.data.workload import load_workload

log = logging.getLogger("xlt_bench")


def _say(message: str) -> None:
    """Progress line on stderr that does not break the progress bars; none with -q (errors only)."""
    if not progress.QUIET:
        tqdm.write(f"xlt-bench: {message}", file=sys.stderr)


def run(cfg: RunConfig, out_dir: Path, *, force: bool = False) -> dict[str, Any]:
    """Run the whole benchmark into `out_dir` (results.json + rows.csv). Returns the results document."""
    from xlt_bench.core.env import finish_metadata, run_metadata
    started = time.time()
    out_dir = Path(out_dir)
    plan = preflight(cfg, out_dir, force=force)   # every check that takes seconds, before minutes of measuring
    run_meta = run_metadata(cfg.to_dict())
    run_meta.update(incomplete=True, skipped=[], notes=list(plan.notes))
    rows: list[dict[str, Any]] = []
    clock = StageClock()
    staging = run_dir.staging_dir(out_dir)
    try:
        with _sigterm_as_interrupt():
            _measure_all(cfg, plan, run_meta, clock, rows)
            if not rows:
                skipped = "; ".join(f"{s['task']}/{s['lang']}: {s['reason']}" for s in run_meta["skipped"])
                raise InputError(f"nothing was measured ({skipped or 'no languages selected'})", field="langs")
            _stop_if_terminated()
            rows.extend(_aggregate(cfg, rows))
            run_meta["incomplete"] = False
            finish_metadata(run_meta, started)
            run_meta["time_breakdown_s"] = _breakdown(clock, rows, run_meta)
            run_meta["peak_rss_mb_by_stage"] = {k: round(v, 1) for k, v in clock.rss_mb.items()}
            run_meta["peak_rss_mb"] = round(RssWindow.process_peak_mb(), 1)
            children = children_peak_rss_mb()   # ONNX export / fusion run in child processes
            run_meta["peak_rss_children_mb"] = round(children, 1) if children else None
            write_results(staging / "results.json", run_meta, rows)
            _write_csv(staging / "rows.csv", rows)
            run_dir.swap_in(staging, out_dir)
    except BaseException as exc:
        if not isinstance(exc, run_dir.SwapFailed):   # a finished run that could not be swapped in stays there
            run_dir.discard(staging)
        if rows or not isinstance(exc, InputError):
            run_dir.write_incomplete(out_dir, run_meta, rows, exc)
        raise
    return results_document(run_meta, rows)


def _measure_all(cfg: RunConfig, plan: RunPlan, run_meta: dict, clock: StageClock, rows: list[dict[str, Any]]) -> None:
    """Measure every task into `rows` (in place, so a later failure still has the finished tasks' rows)."""
    with clock("gemm_peaks"):
        run_meta["env"]["gemm_peaks"] = _measure_peaks(cfg, plan.pairs, _say, plan.backend_classes)
    cost_models: dict[tuple[str, str], tuple[CostModel | None, int]] = {}
    by_task = run_meta.setdefault("peak_rss_mb_by_task", {})
    for spec in plan.specs:
        with RssWindow() as window:   # flat across tasks: each task's peak should match the first's
            rows.extend(_run_task(cfg, spec, plan, run_meta, clock, cost_models))
        by_task[spec.name] = round(window.peak_mb, 1) if window.peak_mb else None
    with clock("gemm_peaks"):
        # Again at the end: the peak is the best the machine showed during the run, so a busy moment at
        # start-up cannot inflate MFU.
        merge_peaks(run_meta["env"]["gemm_peaks"], _measure_peaks(cfg, plan.pairs, _say, plan.backend_classes))
    apply_run_peaks(rows, run_meta["env"]["gemm_peaks"], plan.backend_classes)


def _aggregate(cfg: RunConfig, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return get_scenario(cfg.scenario)().aggregate(rows)


_TERMINATED = threading.Event()


@contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (what `timeout` and CI cancellation send) ends the run like Ctrl-C: partial rows are kept.

    The handler raises where the signal lands; if that is inside code that swallows exceptions (a __del__ during
    garbage collection), the flag it sets is checked again before every backend and before results are written."""
    _TERMINATED.clear()

    def handler(signum, frame):
        _TERMINATED.set()
        raise RunTerminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (a sweep worker): leave signals to the caller
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_if_terminated() -> None:
    if _TERMINATED.is_set():
        raise RunTerminated()


def _breakdown(clock: StageClock, rows: list[dict[str, Any]], run_meta: dict) -> dict[str, float]:
    """Where the run's wall time went. `timed_forward` is inside forward calls; `timed_harness` is the rest of the
    timed region (the harness's own overhead while measuring)."""
    per_lang = [r for r in rows if r["lang"] != "ALL"]
    out = {k: round(v, 3) for k, v in clock.seconds.items()}
    out["timed_forward"] = round(sum((r.get("forward_s") or 0.0) * (r.get("n_repeats") or 1) for r in per_lang), 3)
    out["timed_harness"] = round(sum((r.get("harness_overhead_s") or 0.0) * (r.get("n_repeats") or 1)
                                     for r in per_lang), 3)
    out["total"] = round(run_meta.get("duration_s") or 0.0, 3)
    return out


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    import pandas as pd
    frame = pd.DataFrame([{k: v for k, v in r.items() if not isinstance(v, (list, dict))} for r in rows])
    atomic_write_text(path, frame.to_csv(index=False))


# --- one task: model, workload, every backend through the scenario ------------------------------------------------

@dataclass
class _Task:
    """What every backend of one task shares while it runs (model, workload, scenario, the run's bookkeeping)."""
    cfg: RunConfig
    spec: TaskSpec
    plan: RunPlan
    run_meta: dict
    clock: StageClock
    cost_models: dict            # (backend, dtype) -> (cost model, budget), probed once per run
    scenario: Any
    bundle: Any = None
    workload: Any = None
    flops_shape: EncoderShape | None = None
    failures: list[BaseException] = field(default_factory=list)   # backends that failed to load


def _run_task(cfg: RunConfig, spec: TaskSpec, plan: RunPlan, run_meta: dict, clock: StageClock,
              cost_models: dict) -> list[dict[str, Any]]:
    """One task: its model and workload, then every backend through the scenario. A scenario that interleaves
    backends (offline) gets them all loaded at once, so their passes alternate per language and load between
    backends cancels in their ratios; the others get one backend at a time. Each group is closed before the next
    (bounded memory); a backend that fails to load is skipped and named, the others still run."""
    task = _Task(cfg, spec, plan, run_meta, clock, cost_models, get_scenario(cfg.scenario)())
    _load_model_and_workload(task)
    rows: list[dict[str, Any]] = []
    outputs: dict[tuple, list[np.ndarray]] = {}
    groups = [list(plan.pairs)] if task.scenario.interleaves_backends else [[pair] for pair in plan.pairs]
    for group in groups:
        if not task.workload.sets:
            break
        group_rows, group_outputs = _run_group(task, group)
        rows.extend(group_rows)
        outputs.update(group_outputs)
    if task.failures and not rows:
        raise task.failures[0]
    if task.scenario.evaluates and task.workload.sets:
        _fill_quality(cfg, spec, task.bundle, task.workload, rows, outputs, run_meta, clock)
    del task, outputs   # the model and its outputs go before the next task's model is built
    _release_memory()
    return rows


def _load_model_and_workload(task: _Task) -> None:
    """Build the task's model and its workload (data read at preflight, tokenized now); notes and skipped
    languages go into the run's metadata."""
    cfg, spec, run_meta = task.cfg, task.spec, task.run_meta
    _say(f"{spec.name}: loading model {cfg.model}")
    with task.clock("model_build"):
        task.bundle = build_model(cfg.model, spec.kind, spec.num_labels, seed=cfg.seed, attn=cfg.attn)
    run_meta["notes"].extend(n for n in task.bundle.notes if n not in run_meta["notes"])
    with task.clock("data_and_tokenization"):
        task.workload = load_workload(cfg, spec, task.bundle, task.plan.examples.get(spec.name), task.plan.tokenizer)
    run_meta["skipped"].extend(task.workload.skipped)
    for encoded in task.workload.sets:
        run_meta["notes"].extend(f"{spec.name}/{encoded.lang}: {n}" for n in encoded.notes)
    run_meta["interval_method"] = INTERVAL_METHOD
    bundle = task.bundle
    task.flops_shape = EncoderShape.from_config(bundle.config, bundle.head, max(bundle.num_labels, 1))


def _run_group(task: _Task, group: list[tuple[str, str]]) -> tuple[list[dict[str, Any]], dict]:
    """Load a group of backends, run them through the scenario (together when it interleaves them) and close them
    again: sessions, compiled graphs and model copies are released before the next group (bounded memory)."""
    loaded: list = []
    try:
        for backend_name, dtype in group:
            _stop_if_terminated()
            backend = _load_backend(task, backend_name, dtype)
            if backend is not None:
                loaded.append((_context(task, backend_name, dtype), backend))
        if not loaded:
            return [], {}
        scenario = task.scenario
        return scenario.run_together(loaded) if scenario.interleaves_backends else scenario.run(*loaded[0])
    finally:
        for _, backend in loaded:
            backend.close()
        del loaded
        _release_memory()


def _context(task: _Task, backend_name: str, dtype: str) -> ScenarioContext:
    """What the scenario measures one loaded backend with: the task's workload and the backend's cost model."""
    cost, budget = task.cost_models.get((backend_name, dtype), (None, None))
    return ScenarioContext(cfg=task.cfg, bundle=task.bundle, flops_shape=task.flops_shape, workload=task.workload,
                           clock=task.clock, cost=cost, budget=budget, run_meta=task.run_meta, say=_say,
                           shared_plan=_shared_plan(task.plan.pairs[0], task.cost_models))


def _load_backend(task: _Task, backend_name: str, dtype: str):
    """A loaded backend (and its cost model probed, once per backend and dtype), or None when it failed: the
    failure is recorded in run.skipped and the run goes on with the other backends."""
    cfg, spec = task.cfg, task.spec
    backend_class = task.plan.backend_classes[backend_name]
    backend = backend_class(task.bundle, cfg.device, dtype, cfg.threads, cfg.cache_dir)
    _say(f"{spec.name}: preparing {backend_name}/{dtype} on {cfg.device}")
    try:
        with task.clock("backend_load"):
            backend.load()
        if (backend_name, dtype) not in task.cost_models and task.scenario.needs_cost_model(cfg):
            # One probe per backend and dtype: task heads differ by a few hundred FLOPs, the encoder is the cost.
            with task.clock("cost_probe"):
                task.cost_models[backend_name, dtype] = _cost_model(cfg, backend, task.bundle, task.run_meta,
                                                                    _timed_tokens(cfg, task.workload))
    except Exception as exc:  # noqa: BLE001 - one backend's failure must not cost the others' measurements
        backend.close()
        task.failures.append(exc)
        reason = f"{backend_name}/{dtype} failed to load: {exc.__class__.__name__}: {exc}"
        log.warning("%s: %s", spec.name, reason)
        task.run_meta["skipped"].append({"task": spec.name, "lang": "all languages", "backend": backend_name,
                                         "dtype": dtype, "reason": reason})
        return None
    return backend


def _timed_tokens(cfg: RunConfig, workload) -> int:
    """Useful tokens one backend will time in this task: every language, batching and repeat (what the cost
    probe's time allowance is a share of)."""
    per_pass = sum(int(encoded.lengths.sum()) for encoded in workload.sets)
    return per_pass * len(cfg.batching) * cfg.min_repeats


def _fill_quality(cfg: RunConfig, spec: TaskSpec, bundle, workload, rows: list, outputs: dict, run_meta: dict,
                  clock: StageClock) -> None:
    from xlt_bench.scenarios.offline import reference_outputs
    with clock("reference_outputs"):
        computed = reference_outputs(cfg, bundle, workload, outputs)
    if computed:
        run_meta["notes"].append(f"{spec.name}: reference outputs (eager/fp32/static) computed untimed for "
                                 f"agreement ({', '.join(computed)})")
    with clock("evaluation"):
        quality.fill_quality(spec, workload.sets, rows, outputs, trained_head=bundle.trained_head,
                              random_weights=bundle.is_preset)


def _shared_plan(first: tuple[str, str], cost_models: dict) -> tuple[CostModel | None, int | None, str] | None:
    """What batching 'dynamic-shared' plans with on every backend: the run's first backend/dtype's cost model and
    budget (probed first, since that pair runs first)."""
    if first not in cost_models:
        return None
    model, budget = cost_models[first]
    return model, budget, "/".join(first)


def _release_memory() -> None:
    """Collect the released backend or model, and hand freed heap back to the OS: glibc keeps large freed arenas
    otherwise, and the next task's model would stack on top of them (flat RSS across tasks, issue 11)."""
    gc.collect()
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        pass


def _cost_model(cfg: RunConfig, backend, bundle, run_meta: dict, run_tokens: int | None = None,
                ) -> tuple[CostModel | None, int]:
    """The backend's batch cost model and token budget: probed, reused from --cost-model FILE, or none.
    `run_tokens` (useful tokens the run will time on the backend) bounds the probe's time (a share of the run's)."""
    from xlt_bench.batching.budget import run_budget
    key = f"{backend.name}/{backend.dtype}/{backend.device}"
    samples: list = []
    probe_report: dict = {}
    model, stored, probed = None, None, None
    if cfg.cost_model_file:
        model, stored = load_cost_model(cfg.cost_model_file, key)
    elif cfg.cost_model:
        _say(f"{backend.name}/{backend.dtype}: timing shapes for the dynamic batcher's cost model and budget")
        model, samples, probed = probe_cost_model(backend, bundle.vocab_size, bundle.pad_id, cfg.max_length,
                                                  max_tokens=cfg.max_tokens, seed=cfg.seed, static_rows=cfg.batch_size,
                                                  run_tokens=run_tokens, report=probe_report)
    budget = run_budget(cfg.max_tokens, cfg.batch_size, cfg.max_length, probed=probed, cost=model, stored=stored)
    run_meta.setdefault("cost_models", {})[key] = {
        **(model.to_dict() if model else {"source": "none (--no-cost-model): greedy budget fill"}),
        "budget": budget, "samples": [list(s) for s in samples], **probe_report}
    return model, budget


def load_cost_model(path: str, key: str) -> tuple[CostModel, int | None]:
    """A stored cost model and the budget the run that measured it chose: from a results.json (its
    run.cost_models[key]) or one CostModel JSON."""
    import json
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read a cost model: {exc}", file=path, field="cost_model_file") from None
    entry = doc.get("run", {}).get("cost_models", {}).get(key) if isinstance(doc.get("run"), dict) else doc
    if not isinstance(entry, dict) or "fixed_s" not in entry:
        have = ", ".join(doc.get("run", {}).get("cost_models", {})) if isinstance(doc.get("run"), dict) else ""
        raise InputError(f"no cost model for {key}" + (f" (it has: {have})" if have else ""), file=path,
                         field="cost_model_file")
    if entry.get("key") not in (None, key):
        raise InputError(f"the cost model was measured on {entry['key']}, not {key}: plans would follow another "
                         "backend's costs", file=path, field="cost_model_file")
    model = CostModel.from_dict(entry)
    return CostModel(**{**model.to_dict(), "source": f"file:{path}", "key": key}), entry.get("budget")
