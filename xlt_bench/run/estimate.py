"""How long a run's timed passes should take, predicted without running it (for `run --dry-run`).

time = analytic FLOPs of the workload (flops.py, over the shipped length profiles) ÷ (GEMM rate × efficiency), per
backend, dtype and batching. The GEMM rate (the fastest call, as for MFU) is measured now, about half a second per
library and dtype (measure/gemm_peak.py), or where that fails read from the stored baseline's run metadata. The
efficiency is what the baseline's ALL rows reached, executed FLOP/s ÷ that run's GEMM peak, for the same backend,
dtype and batching where the baseline has it, else the median over its rows; with no baseline it is 1 and the figure
a lower bound.
Strategies that pad every row to --max-length (static) count the padded FLOPs they will execute; the others count
useful FLOPs only (their padding is decided at run time), so their figures are lower bounds too. The fake backend's
passes come from its declared cost instead. The start-up (GEMM peaks, model build, ONNX export, cost probe, warm-up)
is estimated from the model's size and the probe's own time rules, and added.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xlt_bench.core.config import RunConfig

# Beside the package, not the working directory: the estimate must not change with the cwd.
DEFAULT_BASELINE = Path(__file__).resolve().parents[1] / "results" / "baseline" / "results.json"
GEMM_SECONDS = 0.5


@dataclass
class Estimate:
    seconds: float                                   # NaN when unknown (a model that is not a preset)
    parts: dict[tuple[str, str, str], float]         # (backend, dtype, batching) -> seconds
    rates: dict[str, float]                          # "library/dtype" -> FLOP/s used
    rate_source: str
    efficiency_source: str
    startup: dict[str, float] = field(default_factory=dict)   # stage -> seconds before and around the timed passes

    @property
    def timed_s(self) -> float:
        return float(sum(self.parts.values()))


def workload_flops(cfg: RunConfig) -> dict[str, float] | None:
    """Forward FLOPs per batching over the shipped length profiles, times the minimum repeats; None for a model
    that is not a preset (its dimensions are unknown without loading it)."""
    import numpy as np

    from xlt_bench.core.flops import EncoderShape, executed_flops, useful_flops
    from xlt_bench.backends.models import HEAD_FOR_KIND, PRESETS, preset_config
    from xlt_bench.batching.strategies import pads_to_max_length
    from xlt_bench.data.synthetic import available_profiles, lengths_from_hist
    from xlt_bench.data.tasks import get_task, resolve_langs
    if cfg.model not in PRESETS:
        return None
    profiles, totals = available_profiles(), dict.fromkeys(cfg.batching, 0.0)
    for task in cfg.tasks:
        spec = get_task(task)
        flops_shape = EncoderShape.from_config(preset_config(cfg.model), HEAD_FOR_KIND[spec.kind],
                                               max(spec.num_labels, 1))
        for lang in resolve_langs(spec, cfg.langs):
            hist = profiles.get((task, lang), {}).get("hist")
            if hist is None:
                continue
            lengths = np.minimum(lengths_from_hist(hist, cfg.limit), cfg.max_length)
            for batching in cfg.batching:
                totals[batching] += (executed_flops(flops_shape, [(len(lengths), cfg.max_length)])
                                     if pads_to_max_length(batching) else useful_flops(flops_shape, lengths.tolist()))
    return {batching: flops * max(cfg.min_repeats, 1) for batching, flops in totals.items()}


def load_baseline(path: Path = DEFAULT_BASELINE) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def baseline_efficiency(doc: dict[str, Any] | None) -> tuple[dict[tuple[str, str, str], float], float | None]:
    """(backend, dtype, batching) -> executed FLOP/s ÷ GEMM peak over the baseline's ALL rows, and their median."""
    effs: dict[tuple[str, str, str], float] = {}
    for row in (doc or {}).get("rows", []):
        wall, peak, flops = row.get("wall_s"), row.get("gemm_peak_flops"), row.get("flops_executed")
        if row.get("lang") == "ALL" and wall and peak and flops:
            effs[(row["backend"], row["dtype"], row["batching"])] = flops / wall / peak
    return effs, (statistics.median(effs.values()) if effs else None)


def gemm_rates(cfg: RunConfig, needed: list[tuple[str, str]], baseline: dict[str, Any] | None,
               seconds: float = GEMM_SECONDS) -> tuple[dict[str, float], str]:
    """FLOP/s per "library/dtype" of `needed` (the run's GEMM libraries and dtypes): measured now, else the
    baseline's stored peaks."""
    from xlt_bench.measure.gemm_peak import measure_peaks
    measured = measure_peaks(needed, cfg.device, cfg.threads, seconds=seconds)
    stored = ((baseline or {}).get("run", {}).get("env", {}) or {}).get("gemm_peaks", {})
    rates, sources = {}, set()
    # The fastest call, as the MFU denominator is (peaks.peak_for): the baseline's efficiencies are relative to it.
    for key, entry in measured.items():
        rate, source = entry.get("flops_per_s_best"), "measured now"
        if not rate:
            old = stored.get(key) or {}
            rate, source = old.get("peak_flops_per_s") or old.get("flops_per_s_best"), "read from the baseline"
        if rate:
            rates[key] = rate
            sources.add(source)
    return rates, " / ".join(sorted(sources)) or "unavailable"


def estimate_run(cfg: RunConfig, pairs: list[tuple[str, str]], baseline_path: Path = DEFAULT_BASELINE, *,
                 backend_classes: dict[str, type] | None = None) -> Estimate:
    """The run's predicted seconds. `backend_classes`: the backends' classes as preflight resolved them
    (RunPlan.backend_classes); looked up here when not given (a sweep estimating its shards)."""
    from xlt_bench.run.peaks import gemm_libraries
    from xlt_bench.batching.strategies import runs_on
    from xlt_bench.run.preflight import backend_classes as resolve
    flops = workload_flops(cfg)
    baseline = load_baseline(baseline_path)
    effs, median_eff = baseline_efficiency(baseline)
    eff_source = f"efficiency reached by {baseline_path}" if effs else "efficiency 1 (no baseline): a lower bound"
    if flops is None:
        return Estimate(math.nan, {}, {}, "not measured", eff_source)
    classes = backend_classes or resolve(b for b, _ in pairs)
    needed = gemm_libraries(pairs, classes)
    rates, rate_source = gemm_rates(cfg, needed, baseline)
    passes = 3 if cfg.scenario == "train" else 1       # a training step ≈ forward + backward (2x forward)
    parts = {}
    for backend, dtype in pairs:
        if backend == "fake":
            parts.update({(backend, dtype, b): passes * s for b, s in fake_seconds(cfg).items()})
            continue
        rate = rates.get(f"{classes[backend].gemm_library}/{dtype}")
        for batching, total in flops.items():
            if not runs_on(batching, classes[backend]):   # preflight notes it and the run skips it
                continue
            eff = effs.get((backend, dtype, batching), median_eff or 1.0)
            parts[(backend, dtype, batching)] = passes * total / (rate * eff) if rate else math.nan
    parts = {key: repeat_rule(cfg, s) for key, s in parts.items()}
    startup = startup_seconds(cfg, pairs, parts, len(needed))
    return Estimate(sum(parts.values()) + sum(startup.values()), parts, rates, rate_source, eff_source, startup)


def repeat_rule(cfg: RunConfig, seconds: float) -> float:
    """One configuration's timed seconds over all its rows under the repeat rule (measure.passes.wants_another_pass):
    `seconds` holds min_repeats passes; a row keeps passing until --min-seconds, unless --max-seconds stops it."""
    rows = max(1, sum(1 for _ in _profile_lengths(cfg)))
    if not seconds == seconds or not seconds:
        return seconds
    one_pass = seconds / max(cfg.min_repeats, 1) / rows
    per_row = max(seconds / rows, one_pass * math.ceil(cfg.min_seconds / one_pass))
    if cfg.max_seconds is not None:
        per_row = min(per_row, max(cfg.max_seconds, one_pass))
    return per_row * rows


# Start-up costs, measured on the shared 2-core development machine (`time_breakdown_s` of runs on the presets):
# building tiny-xlmr (8 M parameters) took ~9 s and mini-xlmr (67 M) ~16 s with the imports; exporting mini-xlmr to
# ONNX and loading it ~65 s; GEMM peaks ~3 s per library and dtype.
BUILD_FIXED_S, BUILD_S_PER_PARAM = 8.0, 1.2e-7
EXPORT_S_PER_PARAM = 1.0e-6
PEAK_S = 3.0


def startup_seconds(cfg: RunConfig, pairs: list[tuple[str, str]], timed: dict[tuple[str, str, str], float],
                    n_peaks: int) -> dict[str, float]:
    """Seconds outside the timed passes: GEMM peaks (`n_peaks` library/dtype pairs), model build, ONNX export, the
    cost probe (its allowance: a share of the pair's timed seconds, at least its floor) and warm-up (about one pass
    of each row)."""
    from xlt_bench.backends.models import preset_config
    from xlt_bench.measure.probe import PROBE_FLOOR_S, PROBE_SHARE
    from xlt_bench.batching.strategies import needs_cost_model
    c = preset_config(cfg.model)
    params = c.vocab_size * c.hidden_size + c.num_hidden_layers * (4 * c.hidden_size ** 2
                                                                    + 2 * c.hidden_size * c.intermediate_size)
    out = {"GEMM peaks": PEAK_S * n_peaks, "model build": len(cfg.tasks) * (BUILD_FIXED_S
                                                                                     + BUILD_S_PER_PARAM * params)}
    exports = sum(1 for b, _ in pairs if b == "onnxruntime")
    if exports:
        out["ONNX export"] = exports * len(cfg.tasks) * EXPORT_S_PER_PARAM * params
    probing = cfg.cost_model and not cfg.cost_model_file and needs_cost_model(cfg.batching)
    if probing:
        per_pair = [sum(s for (b, d, _), s in timed.items() if (b, d) == pair) for pair in pairs]
        out["cost probe"] = sum(max(PROBE_FLOOR_S, PROBE_SHARE * s) for s in per_pair if s == s)
    repeats = max(cfg.min_repeats, 1)
    out["warm-up"] = sum(s for s in timed.values() if s == s) / repeats
    return out


def fake_seconds(cfg: RunConfig) -> dict[str, float]:
    """The fake backend's passes from its declared cost (XLT_FAKE_COST): static pads batch_size rows to
    --max-length; the other strategies are counted at one call per batch_size sequences on their own tokens."""
    import numpy as np

    from xlt_bench.backends.fake import FakeCost
    from xlt_bench.batching.strategies import pads_to_max_length
    cost, repeats = FakeCost.from_env(), max(cfg.min_repeats, 1)
    totals = dict.fromkeys(cfg.batching, 0.0)
    for lengths in _profile_lengths(cfg):
        calls = -(-len(lengths) // cfg.batch_size)
        for batching in cfg.batching:
            if pads_to_max_length(batching):
                totals[batching] += calls * cost.seconds(cfg.batch_size, cfg.max_length)
            else:
                totals[batching] += (calls * cost.fixed_ms * 1e-3 + cost.per_token_us * 1e-6 * float(lengths.sum())
                                     + cost.per_token_sq_ns * 1e-9 * float(np.square(lengths).sum()))
    return {b: t * repeats for b, t in totals.items()}


def _profile_lengths(cfg: RunConfig):
    """The lengths each (task, language) of the run is expected to have (shipped profiles, cut to --max-length)."""
    import numpy as np

    from xlt_bench.data.synthetic import available_profiles, lengths_from_hist
    from xlt_bench.data.tasks import get_task, resolve_langs
    profiles = available_profiles()
    for task in cfg.tasks:
        for lang in resolve_langs(get_task(task), cfg.langs):
            hist = profiles.get((task, lang), {}).get("hist")
            if hist is not None:
                yield np.minimum(lengths_from_hist(hist, cfg.limit), cfg.max_length).astype(np.float64)


def describe_estimate(est: Estimate) -> list[str]:
    if not est.parts:
        return ["estimated time: unknown for a model that is not a preset (its FLOPs need its shape)"]
    from xlt_bench.batching.strategies import pads_to_max_length
    parts = ", ".join(f"{b}/{d} {batching} {'' if pads_to_max_length(batching) else '≥ '}{s:.1f} s"
                      for (b, d, batching), s in est.parts.items())
    rates = ", ".join(f"{key} {rate / 1e9:.0f} GFLOP/s" for key, rate in est.rates.items())
    startup = ", ".join(f"{name} ~{s:.0f} s" for name, s in est.startup.items())
    return [f"estimated timed passes: ~{est.timed_s:.1f} s ({parts})",
            f"  = analytic FLOPs ÷ (GEMM rate {est.rate_source}: {rates or 'none'} × {est.efficiency_source}); the "
            "fake backend's from its declared cost",
            f"estimated run: ~{est.seconds:.0f} s = timed passes + start-up ({startup})"]
