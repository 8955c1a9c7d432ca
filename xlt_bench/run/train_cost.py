"""`xlt-bench train-cost --plan PLAN.toml`: training FLOPs, time and energy of fine-tuning regimes (issue 15).

A plan lists regimes (English-only fine-tuning, multilingual intermediate training, robust training). Token counts
come from per-language length distributions (the shipped profiles, or real data through `xlt-bench lengths`);
FLOPs are analytic (flops.py: forward + backward = 3x forward per pass); hours on this machine come from a measured
train-scenario run (`--measured RUN_DIR`: useful training FLOP/s of the same batching and dtype); hours on a named
accelerator are a projection from its datasheet peak at a stated MFU, labelled as such.

Regimes (Huang et al. 2021, "Improving Zero-Shot Cross-Lingual Transfer Learning via Robust Training"):
`standard`; `adversarial` with K projected-gradient steps per update (K + 1 forward and backward passes);
`smoothing` with k perturbed copies of each example (k x the tokens).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xlt_bench.core.config import line_of
from xlt_bench.core.registry import did_you_mean
from xlt_bench.core.stats import is_number
from xlt_bench.core.errors import InputError
from xlt_bench.core.flops import EncoderShape, TRAIN_PASS_FACTOR, forward_flops, optimizer_flops

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Dense bf16 tensor-core peaks and board power from the vendors' datasheets (NVIDIA H100 Tensor Core GPU datasheet,
# SXM5: 989 TFLOP/s bf16 dense, 700 W; NVIDIA A100 datasheet, SXM4: 312 TFLOP/s bf16 dense, 400 W).
ACCELERATORS: dict[str, dict[str, Any]] = {
    "h100-sxm": {"peak_flops_per_s": 989e12, "watts": 700, "source": "NVIDIA H100 datasheet (SXM5, bf16 dense)"},
    "a100-sxm": {"peak_flops_per_s": 312e12, "watts": 400, "source": "NVIDIA A100 datasheet (SXM4, bf16 dense)"},
}
REGIMES = ("standard", "adversarial", "smoothing")
SIMULATED_SEQUENCES = 20000
REGIME_KEYS = {"name", "model", "task", "langs", "examples", "examples_per_lang", "epochs", "regime", "pgd_steps",
               "epsilon", "copies", "max_length", "batch_size"}
PLAN_KEYS = {"regime", "accelerator", "mfu", "batching", "dtype", "measured"}


@dataclass(frozen=True)
class Regime:
    name: str
    model: str
    task: str
    langs: tuple[str, ...]
    examples: dict[str, int]          # per language
    epochs: float
    regime: str = "standard"
    pgd_steps: int = 0
    epsilon: float | None = None
    copies: int = 1
    max_length: int = 128
    batch_size: int = 32

    @property
    def passes(self) -> int:
        """Forward + backward passes per update."""
        return self.pgd_steps + 1 if self.regime == "adversarial" else 1

    @property
    def token_multiplier(self) -> int:
        return self.copies if self.regime == "smoothing" else 1


@dataclass
class TrainingPlan:
    path: str
    regimes: list[Regime]
    accelerator: str = "h100-sxm"
    mfu: float = 0.4
    batching: tuple[str, ...] = ("static", "dynamic")
    dtype: str = "bf16"
    measured: str | None = None
    notes: list[str] = field(default_factory=list)


def load_plan(path: str | Path) -> TrainingPlan:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        doc = tomllib.loads(text)
    except FileNotFoundError:
        raise InputError("plan file not found", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})", file=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"invalid TOML: {exc}", file=str(path)) from None
    for key in doc:
        if key not in PLAN_KEYS:
            raise InputError(f"unknown key; known: {', '.join(sorted(PLAN_KEYS))}", file=str(path),
                             line=line_of(text, key), field=key)
    tables = doc.get("regime")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise InputError("a plan needs at least one [[regime]] table", file=str(path), field="regime")
    starts = [n for n, line in enumerate(text.splitlines(), start=1) if line.strip() == "[[regime]]"]
    regimes = [_regime(t, str(path), text, starts[i] if i < len(starts) else 0) for i, t in enumerate(tables)]
    plan = TrainingPlan(path=str(path), regimes=regimes)
    for key in ("accelerator", "mfu", "batching", "dtype", "measured"):
        if key in doc:
            setattr(plan, key, doc[key])
    _check_plan(plan, text)
    return plan


def _regime(table: dict, path: str, text: str, start: int) -> Regime:
    def fail(key: str, reason: str):
        raise InputError(reason, file=path, line=line_of(text, key, start) or start, field=f"regime.{key}")

    for key in table:
        if key not in REGIME_KEYS:
            fail(key, f"unknown key; known: {', '.join(sorted(REGIME_KEYS))}")
    for key in ("name", "task", "langs", "epochs"):
        if key not in table:
            fail(key, "is required")
    from xlt_bench.data.tasks import get_task, resolve_langs
    try:
        spec = get_task(str(table["task"]))
        langs = table["langs"] if isinstance(table["langs"], list) else [str(table["langs"])]
        langs = tuple(resolve_langs(spec, tuple(str(x) for x in langs)))
    except InputError as exc:
        fail("task" if exc.field == "tasks" else "langs", exc.reason)
    examples = _examples(table, langs, fail)
    from xlt_bench.backends.model_source import check_model_source
    try:
        check_model_source(str(table.get("model", "xlmr-base")))
    except InputError as exc:
        fail("model", exc.reason)
    numbers = {"epochs": (float, 0.0), "pgd_steps": (int, 1), "copies": (int, 1), "max_length": (int, 1),
               "batch_size": (int, 1)}
    for key, (kind, minimum) in numbers.items():
        if key in table and (not is_number(table[key])
                             or (kind is int and not isinstance(table[key], int)) or table[key] < minimum
                             or (key == "epochs" and table[key] <= 0)):
            fail(key, f"must be {'a positive number' if kind is float else f'an integer >= {minimum}'}")
    regime = str(table.get("regime", "standard"))
    if regime not in REGIMES:
        fail("regime", f"'{regime}' is not one of {', '.join(REGIMES)}")
    if regime == "adversarial" and "pgd_steps" not in table:
        fail("pgd_steps", "adversarial training needs pgd_steps (K >= 1)")
    if regime == "smoothing" and "copies" not in table:
        fail("copies", "randomized smoothing needs copies (k >= 1)")
    return Regime(name=str(table["name"]), model=str(table.get("model", "xlmr-base")), task=spec.name, langs=langs,
                  examples=examples, epochs=float(table["epochs"]), regime=regime,
                  pgd_steps=int(table.get("pgd_steps", 0)), epsilon=table.get("epsilon"),
                  copies=int(table.get("copies", 1)), max_length=int(table.get("max_length", 128)),
                  batch_size=int(table.get("batch_size", 32)))


def _examples(table: dict, langs: tuple[str, ...], fail) -> dict[str, int]:
    if ("examples" in table) == ("examples_per_lang" in table):
        fail("examples", "give exactly one of examples (split evenly over langs) or examples_per_lang")
    key = "examples" if "examples" in table else "examples_per_lang"
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        fail(key, "must be a positive integer")
    if key == "examples":
        share = value // len(langs)
        return {lang: share + (1 if i < value % len(langs) else 0) for i, lang in enumerate(langs)}
    return {lang: value for lang in langs}


def _check_plan(plan: TrainingPlan, text: str) -> None:
    def fail(key: str, reason: str):
        raise InputError(reason, file=plan.path, line=line_of(text, key), field=key)

    if plan.accelerator not in ACCELERATORS:
        fail("accelerator", f"unknown; known: {', '.join(ACCELERATORS)}")
    if not is_number(plan.mfu) or not 0 < plan.mfu <= 1:
        fail("mfu", "must be a fraction in (0, 1]")
    plan.batching = tuple([plan.batching] if isinstance(plan.batching, str) else plan.batching)
    allowed = trainable_strategies()
    for b in plan.batching:
        if b not in allowed:
            fail("batching", f"'{b}' is not one of {', '.join(allowed)}{did_you_mean(b, allowed)}")


def trainable_strategies() -> tuple[str, ...]:
    """The batching strategies a training run can use (xlt_bench/strategies)."""
    from xlt_bench.batching.strategies import STRATEGIES, get_strategy
    return tuple(n for n in STRATEGIES.names()
                 if STRATEGIES.available(n) and get_strategy(n).not_trainable_reason is None)


# --- estimates ----------------------------------------------------------------------------------------------------

def model_flops_shape(model: str, head: str, num_labels: int) -> tuple[EncoderShape, int]:
    """The EncoderShape (for FLOPs) and trainable parameter count of a preset or a Hugging Face config (built on the
    meta device)."""
    import torch

    from xlt_bench.backends.models import PRESETS, _auto_class, preset_config
    if model in PRESETS:
        config = preset_config(model, max(num_labels, 1))
    else:
        from xlt_bench.backends.models import check_model_source
        from transformers import AutoConfig
        check_model_source(model)
        config = AutoConfig.from_pretrained(model, trust_remote_code=False)
    with torch.device("meta"):
        module = _auto_class(head).from_config(config)
    n_params = sum(p.numel() for p in module.parameters())
    return EncoderShape.from_config(config, head, max(num_labels, 1)), int(n_params)


def padding_ratio(flops_shape: EncoderShape, lengths: np.ndarray, batching: str, max_length: int,
                  batch_size: int, seed: int = 0) -> float:
    """Executed / useful FLOPs of one epoch over `lengths` under a batching strategy, simulated over a seeded shuffle
    of the profile (real data is not sorted). Without a cost model, a token-budget strategy fills batches greedily
    up to the fallback budget, batch_size x max_length padded tokens (what a launch-bound accelerator's planner
    converges to: fewest batches)."""
    from xlt_bench.batching.budget import fallback
    from xlt_bench.core.flops import executed_flops, useful_flops
    from xlt_bench.batching.strategies import plan
    from xlt_bench.batching.strategies.base import PlanRequest
    lengths = np.minimum(lengths, max_length)
    useful = useful_flops(flops_shape, lengths.tolist())
    order = np.random.default_rng(seed).permutation(len(lengths))
    request = PlanRequest(batch_size=batch_size, max_length=max_length, pad_multiple=1,
                          max_tokens=fallback(batch_size, max_length), cost=None)
    batches, _ = plan(batching, lengths[order], request)
    executed = executed_flops(flops_shape, [b.shape for b in batches])
    return executed / useful


def project_training_cost(plan: TrainingPlan, measured: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per (regime, batching): FLOPs, hours on this machine (measured rate) and on the accelerator."""
    from xlt_bench.backends.models import HEAD_FOR_KIND
    from xlt_bench.data.synthetic import available_profiles, lengths_from_hist
    from xlt_bench.data.tasks import get_task
    accel = ACCELERATORS[plan.accelerator]
    rates = measured_rates(measured, plan.dtype) if measured else {}
    out = []
    for regime in plan.regimes:
        spec = get_task(regime.task)
        flops_shape, n_params = model_flops_shape(regime.model, HEAD_FOR_KIND[spec.kind], spec.num_labels)
        profiles = available_profiles()
        missing = [lang for lang in regime.langs if (regime.task, lang) not in profiles]
        if missing:
            raise InputError(f"no length profile for {regime.task}/{', '.join(missing)}; build one with "
                             "`xlt-bench lengths`", file=plan.path, field=f"regime.{regime.name}.langs")
        for batching in plan.batching:
            useful = executed = sequences = 0.0
            for lang in regime.langs:
                profile = profiles[(regime.task, lang)]
                n_seq = (regime.examples[lang] * regime.epochs * regime.token_multiplier
                         * profile["n_sequences"] / profile["n_examples"])
                # Batches are cut from a whole epoch, not from the profile's few hundred sequences: simulate on
                # evenly spaced quantiles of the profile, as many as an epoch has (capped to keep this fast).
                sample = int(min(n_seq / max(regime.epochs, 1e-9), SIMULATED_SEQUENCES))
                lengths = np.minimum(lengths_from_hist(profile["hist"], max(sample, 1)), regime.max_length)
                per_seq = TRAIN_PASS_FACTOR * forward_flops_mean(flops_shape, lengths)
                lang_useful = n_seq * per_seq * regime.passes
                useful += lang_useful
                executed += lang_useful * padding_ratio(flops_shape, lengths, batching, regime.max_length,
                                                        regime.batch_size)
                sequences += n_seq
            steps = sequences / regime.batch_size
            rate = rates.get(batching)
            accel_hours = executed / (accel["peak_flops_per_s"] * plan.mfu) / 3600
            out.append(dict(
                regime=regime.name, kind=regime.regime, model=regime.model, task=regime.task,
                langs=list(regime.langs), batching=batching, passes_per_update=regime.passes,
                token_multiplier=regime.token_multiplier, sequences=sequences, flops_useful=useful,
                flops_executed=executed, padding_share=1 - useful / executed if executed else None,
                optimizer_flops=optimizer_flops(n_params, int(steps)),
                hours_here=useful / rate / 3600 if rate else None,
                accelerator=plan.accelerator, accelerator_hours=accel_hours,
                accelerator_energy_kwh=accel_hours * accel["watts"] / 1000,
            ))
    return out


def forward_flops_mean(flops_shape: EncoderShape, lengths: np.ndarray) -> float:
    values, counts = np.unique(lengths, return_counts=True)
    total = sum(forward_flops(flops_shape, int(v)) * int(c) for v, c in zip(values, counts))
    return total / max(int(counts.sum()), 1)


def measured_rates(doc: dict[str, Any], dtype: str) -> dict[str, float]:
    """Useful training FLOP/s per batching from a train-scenario run's ALL rows (of the plan's dtype)."""
    rates: dict[str, list[tuple[float, float]]] = {}
    for row in doc.get("rows", []):
        if row.get("scenario") == "train" and row.get("lang") == "ALL" and row.get("dtype") == dtype:
            rates.setdefault(row["batching"], []).append((row["flops_useful"], row["wall_s"]))
    if not rates:
        raise InputError(f"no train-scenario ALL rows of dtype {dtype} in the measured run; run "
                         f"`xlt-bench run --scenario train --dtype {dtype} ...` first", field="measured")
    return {b: sum(f for f, _ in v) / sum(w for _, w in v) for b, v in rates.items()}
