"""Offline batching strategies: a registry of names -> "module:Class" (imported on lookup), and the questions the
rest of the harness asks about the strategies a run uses.

To add a strategy: one module here with a `BatchingStrategy` subclass, and one line in `STRATEGIES`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from xlt_bench.core.errors import InputError
from xlt_bench.core.registry import Registry

STRATEGIES = Registry("batching strategy", "batching", {
    "static": "xlt_bench.batching.strategies.static:StaticBatching",
    "static-longest": "xlt_bench.batching.strategies.static_longest:StaticLongestBatching",
    "dynamic": "xlt_bench.batching.strategies.dynamic:DynamicBatching",
    "dynamic-shared": "xlt_bench.batching.strategies.dynamic_shared:DynamicSharedBatching",
    "packed": "xlt_bench.batching.strategies.packed:PackedBatching",
}, base="xlt_bench.batching.strategies.base:BatchingStrategy")

_instances: dict[tuple[str, type], object] = {}


def get_strategy(name: str):
    """The strategy object registered as `name` (InputError naming the field 'batching' when unknown)."""
    cls = STRATEGIES.get(name)
    key = (name, cls)
    if key not in _instances:
        _instances[key] = cls()
    return _instances[key]


def _known(names: Iterable[str]) -> list:
    """Strategy objects of the registered, importable names among `names` (result files may name others)."""
    return [get_strategy(n) for n in names if n in STRATEGIES and STRATEGIES.available(n)]


def reference_order() -> tuple[str, ...]:
    """Reference strategies, most preferred first: speedups are measured against the first of these that ran."""
    refs = [s for s in _known(STRATEGIES.names()) if s.is_reference]
    return tuple(s.name for s in sorted(refs, key=lambda s: s.reference_rank))


def report_order() -> tuple[str, ...]:
    """Every registered strategy in the order tables and plots show them."""
    return tuple(s.name for s in sorted(_known(STRATEGIES.names()), key=lambda s: s.report_order))


def colour_of(name: str) -> str | None:
    """The plot colour of a strategy; None for names that are not registered strategies."""
    found = _known([name])
    return found[0].colour if found else None


def headline(batchings: Sequence[str]) -> str:
    """Which of `batchings` (non-empty) a summary headlines: the first headline strategy, else the first given."""
    return next((s.name for s in _known(batchings) if s.headline), batchings[0])


def needs_cost_model(names: Iterable[str]) -> bool:
    return any(s.needs_cost_model for s in _known(names))


def uses_token_budget(names: Iterable[str]) -> bool:
    return any(s.uses_token_budget for s in _known(names))


def pads_to_max_length(name: str) -> bool:
    found = _known([name])
    return bool(found and found[0].pads_to_max_length)


def check_backends(batchings: Sequence[str], backends: Sequence[str], backend_class: Callable[[str], type],
                   all_backends: Iterable[str] = (), *, file: str | None = None) -> list[str]:
    """A strategy that needs a backend capability runs only on backends that declare it. When none of the run's
    backends can run it: InputError (exit 2) listing the registered backends that can. When some can: it runs on
    those, and the returned notes say which backends it skips (a run comparing eager and ONNX Runtime still
    measures packed on eager)."""
    notes = []
    for name in batchings:
        feature = get_strategy(name).requires_backend_feature
        if feature is None:
            continue
        cannot = [b for b in backends if not getattr(backend_class(b), feature, False)]
        if not cannot:
            continue
        can = [b for b in all_backends if _has_feature(backend_class, b, feature)]
        if len(cannot) == len(backends):
            raise InputError(f"batching '{name}' needs backends with {feature}; {', '.join(cannot)} "
                             f"{'does' if len(cannot) == 1 else 'do'} not; backends that can run it: "
                             f"{', '.join(can) or 'none installed'}", file=file, field="batching")
        notes.append(f"batching '{name}' is not run on {', '.join(cannot)} (no {feature}); backends that can run "
                     f"it: {', '.join(can)}")
    return notes


def runs_on(name: str, backend: object) -> bool:
    """Whether strategy `name` can run on this backend (class or instance)."""
    feature = get_strategy(name).requires_backend_feature
    return feature is None or bool(getattr(backend, feature, False))


def _has_feature(backend_class: Callable[[str], type], name: str, feature: str) -> bool:
    try:
        return bool(getattr(backend_class(name), feature, False))
    except InputError:   # its optional runtime is not installed
        return False


def plan(name: str, lengths: Sequence[int] | np.ndarray, request):
    """Batches of one language under strategy `name`, and its PlanInfo (None for strategies that compare nothing)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(lengths) == 0:
        return [], None
    if lengths.max() > request.max_length:
        raise ValueError(f"sequence of length {lengths.max()} exceeds max_length {request.max_length}; truncate "
                         "first")
    return get_strategy(name).plan(lengths, request)
