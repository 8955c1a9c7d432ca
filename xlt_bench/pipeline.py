"""`xlt-bench run`: joins the stages (part of the CLI layer, the only place that may import every stage).

tasks -> dataset -> tokenization/synthetic -> batching -> backends -> profiler -> rows/evaluate -> results files.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from contextlib import contextmanager
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from . import evaluate
from .backends import get_backend_class
from .batching import CostModel, make_batches
from .config import RunConfig
from .errors import InputError
from .flops import EncoderShape
from .models import ModelBundle, build_model
from .profiler import COST_PROBE_SHAPES, measure, prepare_batches, probe_cost_model
from .rows import all_rows, apply_peak, measurement_row
from .schema import atomic_write_text, results_document, write_results
from .tasks import TaskSpec, get_task, resolve_langs

log = logging.getLogger("xlt_bench")


class StageClock:
    """Wall seconds per stage of the whole run, so the report can show where a run's time went beyond the timed
    forward calls (model build, export, peaks, cost probes, warm-up)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


def _say(message: str) -> None:
    """Progress line on stderr that does not break the progress bars."""
    tqdm.write(f"xlt-bench: {message}", file=sys.stderr)

RESULT_FILES = ("results.json", "rows.csv", "report.md", "report.html")


@dataclass
class Workload:
    task: TaskSpec
    sets: list[Any]                               # EncodedSet per language
    max_length: int                               # the run's effective --max-length for this task and model
    skipped: list[dict[str, str]] = field(default_factory=list)


def run(cfg: RunConfig, out_dir: Path) -> dict[str, Any]:
    """Run the whole benchmark and write results.json + rows.csv. Returns the results document."""
    from .env import finish_metadata, run_metadata
    started = time.time()
    out_dir = Path(out_dir)
    _clear_previous(out_dir)
    run_meta = run_metadata(cfg.to_dict())
    run_meta.update(incomplete=True, skipped=[], notes=[])
    rows: list[dict[str, Any]] = []
    clock = StageClock()
    try:
        _check_device(cfg)
        specs = [get_task(t) for t in cfg.tasks]
        for spec in specs:  # bad task/language names fail before any minute is spent measuring
            resolve_langs(spec, cfg.langs)
        pairs = _backend_dtype_pairs(cfg)
        with clock("gemm_peaks"):
            run_meta["env"]["gemm_peaks"] = _measure_peaks(cfg, pairs)
        cost_models: dict[tuple[str, str], CostModel | None] = {}
        for spec in specs:
            rows.extend(_run_task(cfg, spec, pairs, run_meta, clock, cost_models))
        with clock("gemm_peaks"):
            # Again at the end: the peak is the best the machine showed during the run, so a busy moment at
            # start-up cannot inflate MFU.
            _merge_peaks(run_meta["env"]["gemm_peaks"], _measure_peaks(cfg, pairs))
        for row in rows:
            library = get_backend_class(row["backend"]).gemm_library
            apply_peak(row, _peak_for(run_meta, library, row["dtype"]))
    except KeyboardInterrupt:
        # Leave a file that says what it is; never one that looks like a finished results.json.
        run_meta["notes"].append("interrupted by the user (Ctrl-C): rows are partial")
        write_results(out_dir / "results.incomplete.json", run_meta, rows)
        raise
    rows.extend(all_rows(rows))
    run_meta["incomplete"] = False
    finish_metadata(run_meta, started)
    run_meta["time_breakdown_s"] = _breakdown(clock, rows, run_meta)
    write_results(out_dir / "results.json", run_meta, rows)
    _write_csv(out_dir / "rows.csv", rows)
    return results_document(run_meta, rows)


def _breakdown(clock: StageClock, rows: list[dict[str, Any]], run_meta: dict) -> dict[str, float]:
    """Where the run's wall time went. `timed_forward` is inside forward calls; `timed_harness` is the rest of the
    timed region (the harness's own overhead while measuring)."""
    per_lang = [r for r in rows if r["lang"] != "ALL"]
    out = {k: round(v, 3) for k, v in clock.seconds.items()}
    out["timed_forward"] = round(sum(r["forward_s"] * r["n_repeats"] for r in per_lang), 3)
    out["timed_harness"] = round(sum(r["harness_overhead_s"] * r["n_repeats"] for r in per_lang), 3)
    out["total"] = round(run_meta.get("duration_s") or 0.0, 3)
    return out


def _clear_previous(out_dir: Path) -> None:
    # A stale results.json from an older run must not pass for this run's output if this one is interrupted.
    for name in RESULT_FILES + ("results.incomplete.json",):
        (out_dir / name).unlink(missing_ok=True)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    import pandas as pd
    frame = pd.DataFrame([{k: v for k, v in r.items() if not isinstance(v, (list, dict))} for r in rows])
    atomic_write_text(path, frame.to_csv(index=False))


def _check_device(cfg: RunConfig) -> None:
    if cfg.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise InputError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu",
                             field="device")


def _backend_dtype_pairs(cfg: RunConfig) -> list[tuple[str, str]]:
    """Every requested (backend, dtype) the backend supports on the device; a dtype nobody supports is an error."""
    pairs, unsupported = [], []
    for name in cfg.backends:
        cls = get_backend_class(name)
        for dtype in cfg.dtype:
            (pairs if (cfg.device, dtype) in cls.supported else unsupported).append((name, dtype))
    if not pairs or any(all(d != dt for _, d in pairs) for dt in cfg.dtype):
        combos = "; ".join(f"{n}: {', '.join(sorted(f'{d}/{t}' for d, t in get_backend_class(n).supported))}"
                           for n in cfg.backends)
        raise InputError(f"no requested backend runs {cfg.device} with dtype(s) "
                         f"{', '.join(d for d in cfg.dtype if all(d != x for _, x in pairs))}; supported: {combos}",
                         field="dtype")
    for name, dtype in unsupported:
        log.warning("skipping %s/%s: not supported on %s", name, dtype, cfg.device)
    return pairs


def _measure_peaks(cfg: RunConfig, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    from .peak import measure_peaks
    needed = sorted({(get_backend_class(b).gemm_library, d) for b, d in pairs})
    _say("measuring GEMM peaks for MFU: " + ", ".join(f"{lib}/{d}" for lib, d in needed))
    return measure_peaks(needed, cfg.device, cfg.threads)


def _merge_peaks(peaks: dict[str, Any], again: dict[str, Any]) -> None:
    """Keep both measurements of each peak and the best of them as `peak_flops_per_s`."""
    for key, entry in again.items():
        runs = [e for e in (peaks.get(key), entry) if e]
        rates = [e.get("flops_per_s_best") or e.get("flops_per_s") for e in runs]
        peaks[key] = {**runs[0], "measurements_flops_per_s": rates,
                      "peak_flops_per_s": max((r for r in rates if r), default=None)}


def _peak_for(run_meta: dict, library: str, dtype: str) -> float | None:
    """The MFU denominator: the fastest GEMM rate measured for this library and dtype during the run."""
    entry = run_meta["env"].get("gemm_peaks", {}).get(f"{library}/{dtype}")
    if not entry:
        return None
    return entry.get("peak_flops_per_s") or entry.get("flops_per_s_best") or entry.get("flops_per_s")


def load_workload(cfg: RunConfig, spec: TaskSpec, bundle: ModelBundle) -> Workload:
    """Tokenize (or synthesise) every language of a task once, before any timing."""
    max_length = min(spec.max_length or cfg.max_length, bundle.max_positions)
    workload = Workload(task=spec, sets=[], max_length=max_length)
    langs = resolve_langs(spec, cfg.langs)
    tokenizer = None
    for lang in langs:
        if cfg.shape is not None:
            from .synthetic import fixed_shape_encoded
            workload.sets.append(fixed_shape_encoded(spec, lang, cfg.shape, vocab_size=bundle.vocab_size,
                                                     pad_id=bundle.pad_id, seed=cfg.seed,
                                                     takes_token_types=bundle.takes_token_types))
            continue
        if cfg.data == "synthetic":
            from .synthetic import available_profiles, synthetic_encoded
            if (spec.name, lang) not in available_profiles():
                workload.skipped.append({"task": spec.name, "lang": lang, "reason": "no shipped length profile"})
                continue
            workload.sets.append(synthetic_encoded(spec, lang, cfg.limit, vocab_size=bundle.vocab_size,
                                                   pad_id=bundle.pad_id, max_length=max_length, seed=cfg.seed,
                                                   takes_token_types=bundle.takes_token_types))
            continue
        from .dataset import load_examples
        from .tokenization import encode, load_tokenizer
        examples = load_examples(cfg.data, spec, lang, cfg.limit)
        if not examples:
            log.warning("%s/%s: no examples, language skipped", spec.name, lang)
            workload.skipped.append({"task": spec.name, "lang": lang, "reason": "no examples (empty file)"})
            continue
        tokenizer = tokenizer or load_tokenizer(cfg.tokenizer, cfg.model)
        workload.sets.append(encode(spec, lang, examples, tokenizer, max_length=max_length,
                                    vocab_size=bundle.vocab_size, takes_token_types=bundle.takes_token_types))
    return workload


def _run_task(cfg: RunConfig, spec: TaskSpec, pairs: list[tuple[str, str]], run_meta: dict,
              clock: StageClock, cost_models: dict) -> list[dict[str, Any]]:
    _say(f"{spec.name}: loading model {cfg.model}")
    with clock("model_build"):
        bundle = build_model(cfg.model, spec.kind, spec.num_labels, seed=cfg.seed)
    run_meta["notes"].extend(n for n in bundle.notes if n not in run_meta["notes"])
    with clock("data_and_tokenization"):
        workload = load_workload(cfg, spec, bundle)
    run_meta["skipped"].extend(workload.skipped)
    for es in workload.sets:
        run_meta["notes"].extend(f"{spec.name}/{es.lang}: {n}" for n in es.notes)
    shape = EncoderShape.from_config(bundle.config, bundle.head, max(bundle.num_labels, 1))
    rows: list[dict[str, Any]] = []
    outputs: dict[tuple, list[np.ndarray]] = {}
    for backend_name, dtype in pairs:
        backend = get_backend_class(backend_name)(bundle, cfg.device, dtype, cfg.threads, cfg.cache_dir)
        _say(f"{spec.name}: preparing {backend_name}/{dtype} on {cfg.device}")
        with clock("backend_load"):
            backend.load()
        if (backend_name, dtype) not in cost_models:
            # One probe per backend and dtype: task heads differ by a few hundred FLOPs, the encoder is the cost.
            with clock("cost_probe"):
                cost_models[backend_name, dtype] = _cost_model(cfg, backend, bundle, run_meta)
        cost = cost_models[backend_name, dtype]
        warmed: set[tuple[int, int]] = set()  # shapes this backend has run once already
        desc = f"{spec.name} {backend_name}/{dtype}"
        for es in tqdm(workload.sets, desc=desc, unit="lang", leave=True):
            for batching in _batchings(cfg):
                with clock("measure"):
                    row, outs = _measure_one(cfg, backend, es, batching, cost, shape, workload.max_length,
                                             warmed)
                clock.seconds["warmup"] += row["warmup_s"]
                row["notes"].extend(backend.notes)
                rows.append(row)
                outputs[(es.lang, backend_name, dtype, batching)] = outs
        backend.close()
    with clock("evaluation"):
        _evaluate_rows(spec, bundle, workload, rows, outputs)
    return rows


def _batchings(cfg: RunConfig) -> tuple[str, ...]:
    # Fixed-shape mode runs B x L batches as given: every strategy would build the same batches.
    return ("static",) if cfg.shape is not None else cfg.batching


def _cost_model(cfg: RunConfig, backend, bundle: ModelBundle, run_meta: dict) -> CostModel | None:
    if "dynamic" not in _batchings(cfg):
        return None
    if not cfg.cost_model:
        model, samples = CostModel.default(), []
    else:
        _say(f"{backend.name}/{backend.dtype}: timing {len(COST_PROBE_SHAPES)} shapes for the dynamic batcher's cost model")
        model, samples = probe_cost_model(backend, bundle.vocab_size, bundle.pad_id, cfg.max_length, seed=cfg.seed)
    run_meta.setdefault("cost_models", {})[f"{backend.name}/{backend.dtype}"] = {
        **dataclasses.asdict(model), "samples": [list(s) for s in samples]}
    return model


def _measure_one(cfg: RunConfig, backend, es, batching: str, cost: CostModel | None, shape: EncoderShape,
                 max_length: int, warmed: set) -> tuple[dict[str, Any], list[np.ndarray]]:
    from .trackers import EnergyTracker, MemoryTracker, joules_per_1k_tokens
    lengths = es.lengths
    # Static pads every sequence to --max-length (XTREME's scripts); --shape fixes B and L outright.
    max_length = cfg.shape[1] if cfg.shape is not None else max(max_length, int(lengths.max()))
    batches = make_batches(lengths, batching, batch_size=cfg.shape[0] if cfg.shape else cfg.batch_size,
                           max_length=max_length, max_tokens=max(cfg.max_tokens, max_length),
                           pad_multiple=cfg.pad_multiple, cost=cost)
    prepared = prepare_batches(backend, es.input_ids, es.token_type_ids, batches, backend.bundle.pad_id)
    with MemoryTracker(cfg.device) as memory, EnergyTracker(cfg.device) as energy:
        m = measure(backend, prepared, batches, lengths, min_seconds=cfg.min_seconds, min_repeats=cfg.min_repeats,
                    inject_delay_ms=cfg.inject_delay_ms, seq_output=backend.bundle.head in ("token", "span"),
                    warmed_shapes=warmed)
    ident = dict(task=es.task, lang=es.lang, model=cfg.model, backend=backend.name, device=cfg.device,
                 dtype=backend.dtype, batching=batching)
    row = measurement_row(ident=ident, lengths=lengths, n_examples=es.n_examples, measurement=m, shape=shape)
    energy_j = energy.energy_j / m.n_repeats if energy.energy_j is not None else None
    row.update(n_truncated=es.n_truncated, tokenize_s=es.tokenize_s, peak_rss_mb=memory.peak_rss_mb,
               cuda_max_allocated_mb=memory.cuda_max_allocated_mb, energy_j=energy_j,
               j_per_1k_tokens=joules_per_1k_tokens(energy_j, row["real_tokens"]),
               recompiles_per_shape=backend.recompiles_per_shape)
    if energy.note:
        row["energy_note"] = energy.note
    return row, m.outputs


def _evaluate_rows(spec: TaskSpec, bundle: ModelBundle, workload: Workload, rows: list[dict[str, Any]],
                   outputs: dict[tuple, list[np.ndarray]]) -> None:
    evaluate.fill_quality(spec, workload.sets, rows, outputs, trained_head=bundle.trained_head,
                          random_weights=bundle.is_preset)
