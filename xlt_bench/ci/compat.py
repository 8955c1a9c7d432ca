"""Whether two runs can be gated against each other: the same workload (else exit 2, every difference named at
once), and warnings where only timing settings, the machine or library versions differ."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from xlt_bench.core.errors import InputError

# Settings that change the workload itself: comparing runs that differ here compares different experiments.
WORKLOAD_SETTINGS = ("model", "tokenizer", "data", "limit", "tasks", "langs", "batch_size", "max_length",
                     "max_tokens", "pad_multiple", "device", "dtype", "shape", "seed", "scenario", "attn")
# Server-scenario settings: what load is offered, for how long, under which policies and SLO; they define the
# server rows (max sustainable QPS depends on the SLO), so they must match when either run is a server run.
SERVER_SETTINGS = ("qps", "duration", "slo_ms", "arrival_seeds", "policy", "trace", "policy_options")
# Settings that change timing but not the workload: compared with a warning.
TIMING_SETTINGS = ("threads", "min_seconds", "min_repeats", "cost_model", "cost_model_file", "inject_delay_ms",
                   "inject_slowdown")
# Settings whose list order matters (not sorted before comparing).
ORDERED_SETTINGS = ("shape",)
# Machine facts in run.env (first key found wins; env layouts may name them differently).
MACHINE_FACTS = {"CPU": ("cpu_model", "cpu"), "threads": ("threads", "torch_threads"),
                 "cores": ("cores_available", "cores_logical", "cores"), "GPU": ("gpu_name", "gpu")}
# What makes two machines of a different kind: the same GEMM-relative speed cannot be expected of an AVX2 and an
# AVX-512 or AMX CPU, or of two GPUs (the non-GEMM share of a forward changes with the ISA).
MACHINE_KIND = {"CPU": ("cpu_model", "cpu"), "CPU flags": ("cpu_flags_of_interest",), "GPU": ("gpu_name", "gpu")}


def check_compatible(baseline: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Raise InputError (exit 2) when the runs measure different workloads; return warnings when only the
    machine or timing settings differ."""
    if baseline.get("schema_version") != current.get("schema_version"):
        raise InputError(f"schema_version differs: baseline {baseline.get('schema_version')}, "
                         f"current {current.get('schema_version')}", field="schema_version")
    base_cfg, cur_cfg = _config(baseline), _config(current)
    settings = WORKLOAD_SETTINGS
    if "server" in (base_cfg.get("scenario"), cur_cfg.get("scenario")):
        settings += SERVER_SETTINGS
    differ = {name: (b, c) for name in settings
              for b, c in [(_comparable(base_cfg.get(name), name), _comparable(cur_cfg.get(name), name))] if b != c}
    if differ:   # every difference at once: fixing one at a time would take as many gate runs
        said = "; ".join(f"{name} differs (baseline {_show(b)}, current {_show(c)})" for name, (b, c) in differ.items())
        raise InputError(f"runs are not comparable: {said}; make a new baseline with the current settings",
                         field="run.config." + ",".join(differ))
    warnings = [f"{name} differs: baseline {_show(base_cfg.get(name))}, current {_show(cur_cfg.get(name))}"
                for name in TIMING_SETTINGS
                if _comparable(base_cfg.get(name)) != _comparable(cur_cfg.get(name))]
    base_env, cur_env = baseline.get("run", {}).get("env") or {}, current.get("run", {}).get("env") or {}
    for label, keys in MACHINE_FACTS.items():
        b, c = _first(base_env, keys), _first(cur_env, keys)
        if b != c:
            warnings.append(f"machines differ: {label} baseline {_show(b)}, current {_show(c)}")
    base_libs, cur_libs = base_env.get("libraries") or {}, cur_env.get("libraries") or {}
    for lib in sorted(set(base_libs) | set(cur_libs)):
        if base_libs.get(lib) != cur_libs.get(lib):
            warnings.append(f"library versions differ: {lib} baseline {_show(base_libs.get(lib))}, "
                            f"current {_show(cur_libs.get(lib))}")
    return warnings


def machine_kind_differences(baseline: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """How the current run's machine differs in kind from the baseline's (CPU model, its ISA flags, GPU)."""
    base_env, cur_env = baseline.get("run", {}).get("env") or {}, current.get("run", {}).get("env") or {}
    out = []
    for label, keys in MACHINE_KIND.items():
        b, c = _first(base_env, keys), _first(cur_env, keys)
        if isinstance(b, list) or isinstance(c, list):
            b, c = sorted(b or []), sorted(c or [])
        if b != c:
            out.append(f"{label} baseline {_show(tuple(b) if isinstance(b, list) else b)}, "
                       f"current {_show(tuple(c) if isinstance(c, list) else c)}")
    return out


def _config(doc: dict[str, Any]) -> dict[str, Any]:
    """The run's config, a setting it lacks (a run made before the setting existed) read as its default."""
    from xlt_bench.core.config import RunConfig
    defaults = {f.name: f.default for f in dataclasses.fields(RunConfig)
                if f.default is not dataclasses.MISSING}
    return {**defaults, **((doc.get("run") or {}).get("config") or {})}


def _comparable(value: Any, name: str = "") -> Any:
    # Lists are order-insensitive settings (tasks, langs, dtypes) except a few (shape = B,L); TOML/JSON turn tuples
    # into lists.
    if isinstance(value, (list, tuple)) and name in ORDERED_SETTINGS:
        return tuple(str(v) for v in value)
    if isinstance(value, (list, tuple)):
        return tuple(sorted(str(v) for v in value))
    return value


def _first(env: dict[str, Any], keys: Iterable[str]) -> Any:
    return next((env[k] for k in keys if env.get(k) is not None), None)


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(value) or "(none)"
    return "(none)" if value is None else str(value)
