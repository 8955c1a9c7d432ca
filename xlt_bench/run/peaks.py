"""The run's GEMM peaks, the denominators of MFU: which (library, dtype) pairs its backends need, measured at the
start of the run and again at the end, and the peak each row's MFU is measured against
(xlt_bench/measure/gemm_peak.py times one GEMM)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from xlt_bench.results.rows import apply_peak


def gemm_libraries(pairs: Iterable[tuple[str, str]], classes: Mapping[str, type]) -> list[tuple[str, str]]:
    """The (GEMM library, dtype) pairs the run's (backend, dtype) pairs use, each once, sorted. `classes` are the
    backends' classes as preflight resolved them (RunPlan.backend_classes)."""
    return sorted({(classes[backend].gemm_library, dtype) for backend, dtype in pairs})


def measure_run_peaks(cfg, pairs: Iterable[tuple[str, str]], say: Callable[[str], None],
                      classes: Mapping[str, type]) -> dict[str, Any]:
    """One GEMM peak per (library, dtype) the run's (backend, dtype) pairs use, keyed "library/dtype"."""
    from xlt_bench.backends.models import ffn_sizes
    from xlt_bench.measure.gemm_peak import measure_peaks
    needed = gemm_libraries(pairs, classes)
    say("measuring GEMM peaks for MFU: " + ", ".join(f"{lib}/{d}" for lib, d in needed))
    # Timed on the model's own feed-forward GEMM (hidden -> intermediate); not a preset: a base model's.
    hidden, intermediate = ffn_sizes(cfg.model) or (None, None)
    return measure_peaks(needed, cfg.device, cfg.threads, hidden=hidden, intermediate=intermediate)


def merge_peaks(peaks: dict[str, Any], again: dict[str, Any]) -> None:
    """Keep both measurements of each peak and the best of them as `peak_flops_per_s`."""
    for key, entry in again.items():
        runs = [e for e in (peaks.get(key), entry) if e]
        rates = [e.get("flops_per_s_best") or e.get("flops_per_s") for e in runs]
        peaks[key] = {**runs[0], "measurements_flops_per_s": rates,
                      "peak_flops_per_s": max((r for r in rates if r), default=None)}


def peak_for(peaks: dict[str, Any], library: str, dtype: str) -> float | None:
    """The MFU denominator: the fastest GEMM rate measured for this library and dtype during the run."""
    entry = peaks.get(f"{library}/{dtype}")
    if not entry:
        return None
    return entry.get("peak_flops_per_s") or entry.get("flops_per_s_best") or entry.get("flops_per_s")


def apply_run_peaks(rows: Iterable[dict[str, Any]], peaks: dict[str, Any], classes: Mapping[str, type]) -> None:
    """Set every row's GEMM peak and MFU from the run's peaks (its backend's GEMM library, its dtype)."""
    for row in rows:
        library = classes[row["backend"]].gemm_library
        apply_peak(row, peak_for(peaks, library, row["dtype"]))
