"""Everything a run can check in seconds, checked before the first minute of measuring (GEMM peaks, model build).

`preflight` resolves tasks, languages, backends, dtypes, the scenario, the model, the tokenizer, every data file and
the output directory, and returns what it read (examples, tokenizer) so the run does not read it twice. `run
--dry-run` calls it and measures nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xlt_bench.backends import get_backend_class
from xlt_bench.backends.base import Backend
from xlt_bench.core.config import RunConfig
from xlt_bench.core.errors import InputError
from xlt_bench.backends.models import PRESETS
from xlt_bench.run.run_dir import check_out_dir
from xlt_bench.data.tasks import TaskSpec, get_task, resolve_langs

log = logging.getLogger("xlt_bench")


@dataclass
class RunPlan:
    specs: list[TaskSpec]
    langs: dict[str, list[str]]                       # task -> languages to run
    pairs: list[tuple[str, str]]                      # (backend, dtype) to run
    backend_classes: dict[str, type[Backend]] = field(default_factory=dict)   # resolved once, here
    examples: dict[str, dict[str, list[dict]]] = field(default_factory=dict)  # task -> lang -> examples
    tokenizer: Any = None
    notes: list[str] = field(default_factory=list)


def preflight(cfg: RunConfig, out_dir: Path | None = None, *, force: bool = False) -> RunPlan:
    from xlt_bench.core.option_checks import check_options
    check_options(cfg)
    _check_device(cfg)
    specs = [get_task(t) for t in dict.fromkeys(cfg.tasks)]
    langs = {spec.name: resolve_langs(spec, cfg.langs) for spec in specs}
    classes = backend_classes(cfg.backends)
    pairs = backend_dtype_pairs(cfg, classes)
    from xlt_bench.scenarios import get_scenario
    scenario = get_scenario(cfg.scenario)()
    scenario.check(cfg, [b for b, _ in pairs])
    strategy_notes = _check_strategies(cfg, [b for b, _ in pairs])
    _check_budget(cfg, specs)
    if out_dir is not None:
        check_out_dir(Path(out_dir), force=force)
    _check_model(cfg.model)
    _check_positions(cfg, specs)
    _check_limit(cfg)
    _check_cost_model_file(cfg, pairs)
    plan = RunPlan(specs=specs, langs=langs, pairs=pairs, backend_classes=classes)
    plan.notes.extend(strategy_notes)
    if cfg.shape is None and cfg.data != "synthetic":
        _read_data(cfg, plan)
    elif cfg.shape is None and cfg.tokenizer:   # the profiles must come from this tokenizer: fail now, not later
        from xlt_bench.data.synthetic import check_profile_tokenizer
        check_profile_tokenizer(cfg.profiles, cfg.tokenizer)
    return plan


def _check_cost_model_file(cfg: RunConfig, pairs: list[tuple[str, str]]) -> None:
    """--cost-model FILE must hold a cost model for every backend/dtype of the run (missing, unreadable or another
    backend's file: exit 2 now, not after the model is built)."""
    if cfg.cost_model_file:
        from xlt_bench.run.pipeline import load_cost_model
        for backend, dtype in pairs:
            load_cost_model(cfg.cost_model_file, f"{backend}/{dtype}/{cfg.device}")


def _check_device(cfg: RunConfig) -> None:
    if cfg.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise InputError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu",
                             field="device")


def backend_classes(names: Iterable[str]) -> dict[str, type[Backend]]:
    """Each named backend's class, imported once (the registry imports its module on first lookup)."""
    return {name: get_backend_class(name) for name in dict.fromkeys(names)}


def backend_dtype_pairs(cfg: RunConfig, classes: dict[str, type[Backend]] | None = None) -> list[tuple[str, str]]:
    """Every requested (backend, dtype) the backend supports on the device; a dtype nobody supports is an error.
    `classes` are the backends' resolved classes (looked up here when not given)."""
    classes = classes or backend_classes(cfg.backends)
    pairs, unsupported = [], []
    for name in dict.fromkeys(cfg.backends):
        for dtype in dict.fromkeys(cfg.dtype):
            (pairs if (cfg.device, dtype) in classes[name].supported else unsupported).append((name, dtype))
    if not pairs or any(all(d != dt for _, d in pairs) for dt in cfg.dtype):
        combos = "; ".join(f"{n}: {', '.join(sorted(f'{d}/{t}' for d, t in classes[n].supported))}"
                           for n in cfg.backends)
        raise InputError(f"no requested backend runs {cfg.device} with dtype(s) "
                         f"{', '.join(d for d in cfg.dtype if all(d != x for _, x in pairs))}; supported: {combos}",
                         field="dtype")
    for name, dtype in unsupported:
        log.warning("skipping %s/%s: not supported on %s", name, dtype, cfg.device)
    return pairs


def _check_strategies(cfg: RunConfig, backends: list[str]) -> list[str]:
    """A batching strategy that needs a backend capability runs only on backends that declare it (notes say which
    backends skip it)."""
    from xlt_bench.backends import BACKENDS
    from xlt_bench.batching.strategies import check_backends
    notes = check_backends(cfg.batching, list(dict.fromkeys(backends)), get_backend_class, BACKENDS.names(),
                           file=cfg.source)
    for note in notes:
        log.warning("%s", note)
    return notes


def _check_budget(cfg: RunConfig, specs: list[TaskSpec]) -> None:
    """A token budget must hold one sequence of every task (QA windows are 384 tokens whatever --max-length says)."""
    from xlt_bench.batching.strategies import uses_token_budget
    if not uses_token_budget(cfg.batching) or not isinstance(cfg.max_tokens, int):
        return
    for spec in specs:
        need = spec.max_length or cfg.max_length
        if cfg.max_tokens < need:
            raise InputError(f"--max-tokens {cfg.max_tokens} is below task '{spec.name}''s sequence length {need}: "
                             f"one sequence would not fit a batch; use at least {need} or 'auto'",
                             file=cfg.source, field="max_tokens")


def _check_positions(cfg: RunConfig, specs: list[TaskSpec]) -> None:
    """Every sequence must fit the model's position table; past it the embedding lookup fails mid-run."""
    from xlt_bench.backends.models import position_limit
    limit = position_limit(cfg.model)
    if limit is None:
        return
    usable, table, offset = limit
    asked = [("max_length", cfg.max_length)] + ([("shape", cfg.shape[1])] if cfg.shape is not None else [])
    asked += [("tasks", spec.max_length) for spec in specs if spec.max_length]
    for option, length in asked:
        if length > usable:
            table_note = f" ({table} rows, positions start after the padding index: offset {offset})" if offset else ""
            raise InputError(f"{length} tokens exceed the {usable} positions model {cfg.model} can embed"
                             f"{table_note}; at most {usable}", file=cfg.source, field=option)


# Bytes one synthetic example may take in memory: int64 token ids and attention mask per position.
_BYTES_PER_POSITION = 16


def _check_limit(cfg: RunConfig) -> None:
    """--limit must be a count this machine can hold: synthetic data makes that many examples per language."""
    if cfg.limit is None:
        return
    if cfg.limit > np.iinfo(np.int64).max:
        raise InputError(f"{cfg.limit} is beyond any count (at most {np.iinfo(np.int64).max})", file=cfg.source,
                         field="limit")
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    most = memory // 2 // (_BYTES_PER_POSITION * cfg.max_length)
    if cfg.limit > most:
        raise InputError(f"{cfg.limit} examples per language of up to {cfg.max_length} tokens would not fit half "
                         f"of this machine's {memory / 2**30:.0f} GiB of memory; at most {most}", file=cfg.source,
                         field="limit")


def _check_model(name: str) -> None:
    """A preset, or something the Auto classes can resolve (a local directory or a reachable hub id)."""
    if name in PRESETS:
        return
    from xlt_bench.backends.models import check_model_source
    check_model_source(name)


def _read_data(cfg: RunConfig, plan: RunPlan) -> None:
    """Read every task's data files and load the tokenizer: a bad file fails here, not after the first task."""
    from xlt_bench.data.dataset import load_examples, missing_reason
    from xlt_bench.data.tokenization import load_tokenizer
    named = tuple(cfg.langs) not in (("all",), ())
    for spec in plan.specs:
        for lang in plan.langs[spec.name]:
            reason = missing_reason(cfg.data, spec, lang)
            if reason and named:
                raise InputError(f"language '{lang}' of task '{spec.name}' was asked for but cannot be read: "
                                 f"{reason}", file=cfg.source, field="langs")
        plan.examples[spec.name] = {lang: load_examples(cfg.data, spec, lang, cfg.limit)
                                    for lang in plan.langs[spec.name]}
    if any(ex for by_lang in plan.examples.values() for ex in by_lang.values()):
        plan.tokenizer = load_tokenizer(cfg.tokenizer, cfg.model)


def estimate_flops(cfg: RunConfig) -> float:
    """Analytic forward FLOPs of a run over the shipped length profiles: static padded to --max-length, the other
    strategies at their useful FLOPs (a lower bound), times the minimum repeats. NaN for models that are not
    presets (their shape is not known without loading them)."""
    from xlt_bench.run.estimate import workload_flops
    per_batching = workload_flops(cfg)
    if per_batching is None:
        return float("nan")
    return sum(per_batching.values()) * len(backend_dtype_pairs(cfg))


def describe(cfg: RunConfig, plan: RunPlan) -> list[str]:
    """What a run would do (for --dry-run)."""
    lines = [f"scenario {cfg.scenario}; model {cfg.model}; device {cfg.device}; data {cfg.data}",
             "backends/dtypes: " + ", ".join(f"{b}/{d}" for b, d in plan.pairs),
             "batching: " + ", ".join(cfg.batching)]
    for spec in plan.specs:
        langs = plan.langs[spec.name]
        read = plan.examples.get(spec.name)
        counts = f" ({sum(len(v) for v in read.values())} examples read)" if read else ""
        lines.append(f"{spec.name}: {len(langs)} language(s) {' '.join(langs)}{counts}")
    flops = estimate_flops(cfg)
    lines.append(f"estimated compute: ~{flops:.2e} forward FLOPs (analytic, shipped length profiles; nothing was "
                 "measured)" if flops == flops else "estimated compute: unknown for a non-preset model")
    return lines
