"""Study `train-cost` (DESIGN §1 question 5): what does English-only vs multilingual intermediate-task training,
followed by fine-tuning for a low-resource target, cost in FLOPs and time, in standard and robust regimes?

FLOPs come from the `train-cost` machinery (train_cost.py: analytic forward + backward over per-language length
profiles); hours on this machine from a measured train-scenario run of the same model and max length (refused
otherwise); accelerator hours are projections. This study adds the arms (intermediate phase + fine-tuning phase),
their ratio to English-only, optimizer steps, and trainer-style length grouping with a fixed number of examples per
optimizer step (mega-batch sorting) beside the token-budget plan of a globally length-sorted epoch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from xlt_bench.core.errors import InputError
from xlt_bench.report.blocks import heading, sci, sig, table
from xlt_bench.study.base import Answer, Study

DEFAULT_PLAN = Path(__file__).resolve().parents[2] / "benchmarks" / "train-plans" / "intermediate-task.toml"
ENGLISH_ARM = "english-only"
FINETUNE = "finetune"
MEGA_BATCH = 50          # sort within windows of 50 x batch size, as length-grouping samplers do
GROUPED = "group-by-length"


class TrainCostStudy(Study):
    name = "train-cost"
    question = ("What does training cost in FLOPs and hours: English-only vs multilingual intermediate-task "
                "training, then fine-tuning for a low-resource target, standard vs robust regimes?")
    needs = ("a plan TOML of '<arm>/intermediate' and 'finetune/<regime>' phases (default "
             "benchmarks/train-plans/intermediate-task.toml); for hours on this machine, --measured RUN_DIR (or "
             "--from): an `xlt-bench run --scenario train` of the plan's model and max length")

    def runs(self, args: argparse.Namespace) -> dict:
        return {}   # FLOPs are analytic; a measured rate comes from --measured / --from

    def missing(self, docs: dict[str, dict]) -> list[str]:
        if len(docs) != 1:
            return [f"one train-scenario run (found {len(docs)})"]
        doc = next(iter(docs.values()))
        if not any(r.get("scenario") == "train" and r.get("lang") == "ALL" for r in doc["rows"]):
            return ["train-scenario ALL rows (`xlt-bench run --scenario train`)"]
        return []

    def analyse(self, docs: dict[str, dict], args: argparse.Namespace) -> Answer:
        from xlt_bench.core.schema import load_results
        from xlt_bench.run.train_cost import load_plan, project_training_cost
        plan = load_plan(args.plan or DEFAULT_PLAN)
        measured = next(iter(docs.values())) if docs else (load_results(args.measured) if args.measured else None)
        if measured is not None:
            check_measured(measured, plan, args.measured or args.from_dir)
        rows = project_training_cost(plan, measured)
        rows += grouped_rows(plan, rows)
        arms = arm_table(rows, {r.name: r.batch_size for r in plan.regimes})
        if arms.empty:
            raise InputError(f"the plan has no '<arm>/intermediate' phase with '{FINETUNE}/<regime>' phases to "
                             "combine", file=str(args.plan or DEFAULT_PLAN), field="regime")
        blocks = [heading("Arms: intermediate phase + fine-tuning phase"),
                  table(_arm_display(arms, measured is not None), "FLOPs executed (padding included); × English-only "
                        "divides by the English-only arm of the same fine-tuning regime and batching"),
                  heading("Phases"), table(_phase_display(rows), "one row per phase and batching (train_cost.py)")]
        return Answer(title="Training cost: English-only vs multilingual intermediate-task training",
                      answer=_answer(arms, plan, measured is not None), blocks=blocks, limits=_limits(measured),
                      method=_method(plan), data={"arms": arms.to_dict("records")})


def check_measured(doc: dict, plan, source) -> None:
    """A rate measured on another model or max length would put another model's speed into these hours."""
    cfg = doc["run"].get("config", {})
    models = {r.model for r in plan.regimes}
    lengths = {r.max_length for r in plan.regimes}
    if cfg.get("model") not in models:
        raise InputError(f"the measured run is of model '{cfg.get('model')}', the plan trains "
                         f"{', '.join(sorted(models))}: its speed cannot stand for the plan's", file=str(source),
                         field="measured")
    if cfg.get("max_length") not in lengths:
        raise InputError(f"the measured run has max_length {cfg.get('max_length')}, the plan "
                         f"{', '.join(map(str, sorted(lengths)))}", file=str(source), field="measured")


def grouped_rows(plan, rows: list[dict]) -> list[dict]:
    """Per phase: length grouping as trainers do it (shuffle, sort within mega-batches of 50 x batch size, cut
    into batches of a FIXED number of examples), so every optimizer step keeps its batch size."""
    from xlt_bench.core.flops import executed_flops, useful_flops
    from xlt_bench.backends.models import HEAD_FOR_KIND
    from xlt_bench.data.synthetic import available_profiles, lengths_from_hist
    from xlt_bench.data.tasks import get_task
    from xlt_bench.run.train_cost import model_flops_shape
    out, profiles = [], available_profiles()
    for regime in plan.regimes:
        static = next((r for r in rows if r["regime"] == regime.name and r["batching"] == "static"), None)
        if static is None:
            continue
        spec = get_task(regime.task)
        flops_shape, _ = model_flops_shape(regime.model, HEAD_FOR_KIND[spec.kind], spec.num_labels)
        useful = executed = 0.0
        for lang in regime.langs:
            profile = profiles[(regime.task, lang)]
            lengths = np.minimum(lengths_from_hist(profile["hist"], 20000), regime.max_length)
            shapes = megabatch_shapes(lengths, regime.batch_size)
            ratio = executed_flops(flops_shape, shapes) / useful_flops(flops_shape, lengths.tolist())
            weight = regime.examples[lang] * profile["n_sequences"] / profile["n_examples"]
            useful += weight
            executed += weight * ratio
        ratio = executed / useful
        grouped = dict(static, batching=GROUPED, flops_executed=static["flops_useful"] * ratio,
                       padding_share=1 - 1 / ratio, hours_here=None, accelerator_hours=None,
                       accelerator_energy_kwh=None)
        out.append(grouped)
    return out


def megabatch_shapes(lengths: np.ndarray, batch_size: int, seed: int = 0) -> list[tuple[int, int]]:
    """(rows, padded length) of each batch: a seeded shuffle, sorted within windows of MEGA_BATCH x batch_size,
    cut into batches of batch_size examples, each padded to its longest."""
    order = np.random.default_rng(seed).permutation(len(lengths))
    shuffled = lengths[order]
    window = MEGA_BATCH * batch_size
    shapes = []
    for start in range(0, len(shuffled), window):
        chunk = np.sort(shuffled[start:start + window])[::-1]
        for b in range(0, len(chunk), batch_size):
            part = chunk[b:b + batch_size]
            shapes.append((len(part), int(part.max())))
    return shapes


def arm_table(rows: list[dict], batch_sizes: dict[str, int]) -> pd.DataFrame:
    """One row per (arm, fine-tuning regime, batching): the two phases' sums and the ratio to English-only.
    Optimizer steps of a phase = its examples (sequences ÷ smoothing copies) ÷ its batch size."""
    frame = pd.DataFrame(rows)
    frame["arm"] = frame["regime"].str.split("/").str[0]
    frame["phase"] = frame["regime"].str.split("/").str[1]
    intermediate = frame[frame["phase"] == "intermediate"]
    finetune = frame[frame["arm"] == FINETUNE]
    records = []
    for (arm, batching), inter in intermediate.groupby(["arm", "batching"], sort=False):
        for _, tune in finetune[finetune["batching"] == batching].iterrows():
            i = inter.iloc[0]
            records.append({"arm": arm, "finetune": tune["phase"], "batching": batching,
                            "flops": i["flops_executed"] + tune["flops_executed"],
                            "useful": i["flops_useful"] + tune["flops_useful"],
                            "steps": _steps(i, batch_sizes) + _steps(tune, batch_sizes),
                            "finetune_flops": tune["flops_executed"],
                            "hours_here": _sum(i["hours_here"], tune["hours_here"]),
                            "accel_hours": _sum(i["accelerator_hours"], tune["accelerator_hours"]),
                            "accelerator": i["accelerator"]})
    arms = pd.DataFrame(records)
    if arms.empty:
        return arms
    english = arms[arms["arm"] == ENGLISH_ARM].set_index(["finetune", "batching"])["flops"]
    arms["x_english"] = [r.flops / english.get((r.finetune, r.batching), np.nan) for r in arms.itertuples()]
    return arms


def _steps(row, batch_sizes: dict[str, int]) -> float:
    return float(row["sequences"]) / float(row["token_multiplier"] or 1) / float(batch_sizes[row["regime"]])


def _sum(a, b):
    if a is None or b is None or (isinstance(a, float) and np.isnan(a)) or (isinstance(b, float) and np.isnan(b)):
        return None
    return a + b


def _answer(arms: pd.DataFrame, plan, measured: bool) -> str:
    standard = arms[arms["finetune"] == "standard"] if (arms["finetune"] == "standard").any() else arms
    other = standard[standard["arm"] != ENGLISH_ARM]
    arm = other["arm"].iloc[0] if len(other) else ENGLISH_ARM
    ratios = ", ".join(f"{r.x_english:.2f}× ({r.batching})" for r in other[other["arm"] == arm].itertuples())
    text = (f"Projected, not measured: at the same budget of intermediate-task examples, the {arm} arm "
            f"(intermediate phase + standard fine-tuning) costs {ratios} the training FLOPs of English-only; the "
            "figures are analytic FLOPs over the shipped length profiles, so no sampling interval applies, and the "
            "difference is the other languages' longer tokenization, which static padding to max length hides.")
    english = arms[(arms["arm"] == ENGLISH_ARM) & (arms["batching"] == arms["batching"].iloc[0])]
    tune = english.set_index("finetune")["finetune_flops"]
    if "standard" in tune and len(tune) > 1:
        robust = ", ".join(f"{name} {tune[name] / tune['standard']:.2f}×" for name in tune.index if name != "standard")
        text += (f" Robust fine-tuning multiplies the fine-tuning phase's FLOPs ({english['batching'].iloc[0]}) by "
                 f"{robust}.")
    if not measured:
        text += " Hours on this machine are not given: no matching train-scenario run was passed with --measured."
    return text


def _arm_display(arms: pd.DataFrame, measured: bool) -> pd.DataFrame:
    accel = arms["accelerator"].iloc[0]
    out = pd.DataFrame({"arm": arms["arm"], "fine-tuning": arms["finetune"], "batching": arms["batching"],
                        "FLOPs executed": arms["flops"].map(sci), "FLOPs useful": arms["useful"].map(sci),
                        "× English-only": [f"{v:.2f}×" if np.isfinite(v) else "—" for v in arms["x_english"]],
                        "optimizer steps": arms["steps"].map(lambda v: f"{v:,.0f}"),
                        f"{accel} hours (projected)": arms["accel_hours"].map(sig)})
    if measured:
        out["hours here (measured rate)"] = arms["hours_here"].map(sig)
    return out


def _phase_display(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    return pd.DataFrame({"phase": frame["regime"], "kind": frame["kind"], "batching": frame["batching"],
                         "langs": frame["langs"].map(len), "passes/update": frame["passes_per_update"],
                         "sequences": frame["sequences"].map(sig), "FLOPs executed": frame["flops_executed"].map(sci),
                         "on padding": frame["padding_share"].map(lambda v: f"{100 * v:.1f}%")})


def _limits(measured) -> list[str]:
    out = ["every FLOP figure is a projection from analytic FLOPs and length profiles (300 sentences per language), "
           "not a measured training run; accelerator hours assume the plan's MFU",
           "'dynamic' (train_cost.py) cuts a token budget of batch_size x max_length from a globally length-sorted "
           "epoch: its padding is a lower bound and its batches hold varying numbers of examples; "
           f"'{GROUPED}' sorts within windows of {MEGA_BATCH} x batch size and keeps the examples per optimizer step "
           "fixed, as trainers' length-grouping samplers do",
           "optimizer steps = sequences ÷ the plan's batch size (fixed examples per step: static and "
           f"{GROUPED}); the token-budget 'dynamic' plan would take a different number of steps",
           "accuracy after each arm is not modelled: the study prices the arms, it does not say which transfers "
           "better"]
    if measured is None:
        out.append("hours on this machine: pass --measured RUN_DIR of `xlt-bench run --scenario train` with the "
                   "plan's model and max length")
    return out


def _method(plan) -> list[str]:
    return [f"plan `{plan.path}`: phases named '<arm>/intermediate' and '{FINETUNE}/<regime>'; an arm = its "
            "intermediate phase + one fine-tuning phase",
            "training FLOPs per sequence = 3 × forward FLOPs of its padded batch (forward + backward), × (K + 1) "
            "passes for adversarial training, × k copies for randomized smoothing; optimizer FLOPs apart",
            "× English-only = the arm's executed FLOPs ÷ the English-only arm's, same fine-tuning regime and "
            "batching"]
