"""Study `resource` (DESIGN §1 question 2): do low-resource languages pay more? Cost per language grouped by Joshi et
al.'s (2020) resource class, one task per table, with a rank correlation of class with cost and its interval."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from xlt_bench.core.errors import InputError
from xlt_bench.core.languages import get_language
from xlt_bench.report.blocks import heading, num, pct, plot, table
from xlt_bench.report.study import scatter_chart
from xlt_bench.report.tables import RESOURCE_CLASS_NAMES
from xlt_bench.study.base import (DEFAULT_LIMIT, MBERT_VOCAB, Answer, Study, base_overrides, listed, make_config,
                                  one_run, quick_model)
from xlt_bench.study.frames import batching_frame, missing_batchings, primary
from xlt_bench.study.stats import Estimate, correlation, fmt, median_ratio, spread

# --quick: a dozen PAN-X languages spanning classes 1-5 (enough for a correlation, fast on tiny models).
QUICK_LANGS = "en,de,ja,hi,ko,fi,bn,ta,he,sw,yo,mr,my,te,jv"


def resource_class(lang: str) -> int | None:
    meta = get_language(lang)
    return meta.resource_class if meta else None


def class_label(cls: int) -> str:
    return RESOURCE_CLASS_NAMES.get(str(cls), str(cls))


class ResourceStudy(Study):
    name = "resource"
    question = "Do low-resource languages pay more (longer tokenization, more padding, more time per sentence)?"
    needs = ("one run with static and dynamic rows over a task covering Joshi classes 1-5 (default: PAN-X's 47 "
             "languages in ../shared/data with the mBERT vocabulary; Tatoeba's 41 also work)")

    def runs(self, args: argparse.Namespace) -> dict:
        model = quick_model(listed(args.models, ("mbert-base",))[0], args.quick)
        overrides = base_overrides(args, tasks="panx", langs=QUICK_LANGS if args.quick else "all",
                                   limit=DEFAULT_LIMIT)
        overrides.update(model=model, tokenizer=args.tokenizer or MBERT_VOCAB, batching="static,dynamic")
        return {"resource": make_config(overrides)}

    def missing(self, docs: dict[str, dict]) -> list[str]:
        doc, lacking_run = one_run(docs)
        if doc is None:
            return lacking_run
        lacking = [f"offline rows with batching '{b}'" for b in missing_batchings(doc, ("static", "dynamic"))]
        frame = batching_frame(doc)
        classes = {resource_class(lang) for lang in frame.get("lang", [])} - {None}
        if len(classes) < 2:
            lacking.append(f"languages of at least two resource classes (it has {len(classes)})")
        return lacking

    def analyse(self, docs: dict[str, dict], args: argparse.Namespace) -> Answer:
        doc = next(iter(docs.values()))
        frame = batching_frame(doc)
        backend, dtype = primary(frame)
        frame = frame[(frame.backend == backend) & (frame.dtype == dtype)].copy()
        frame["class"] = [resource_class(lang) for lang in frame["lang"]]
        frame = frame.dropna(subset=["class"])
        frame["speedup"] = frame["tok_s:dynamic"] / frame["tok_s:static"]
        taxes = parallel_tax(doc["run"].get("config", {}), sorted(frame["lang"].unique()))
        frame["parallel_tax"] = [taxes.get(lang, np.nan) for lang in frame["lang"]]
        frame["ms_per_sentence"] = 1000.0 / frame["seq_s:dynamic"]
        blocks, data, sentences, limits, charts = [], {}, [], [], {}
        seed = args.seed or 0
        for task, sub in frame.groupby("task", sort=False):
            sub = _with_tax(sub)
            findings = _findings(sub, seed)
            data[task] = {k: (v.__dict__ if isinstance(v, Estimate) else v) for k, v in findings.items()}
            sentences.append(_sentence(task, findings))
            grouped = _class_table(sub)
            blocks += [heading(f"{task}: cost by resource class ({backend}/{dtype}, {sub['model'].iloc[0]})"),
                       table(grouped, f"{task}: one row per Joshi class; median [IQR] over the class's languages; "
                                      "classes of one language are flagged")]
            limits += _limits(task, sub, findings)
            name = f"cost_by_class_{task}"
            charts[name] = scatter_chart(name, f"{task}: time per sentence (dynamic) by Joshi class",
                                         sub["class"].tolist(), sub["ms_per_sentence"].tolist(), list(sub["lang"]),
                                         xlabel="Joshi resource class (0 left-behind ... 5 winner)",
                                         ylabel="ms per sentence", jitter=0.15)
            blocks.append(plot(name, charts[name].title))
        answer = " ".join(sentences)
        return Answer(title="Do low-resource languages pay more?", answer=answer, blocks=blocks, charts=charts,
                      limits=list(dict.fromkeys(limits)), data=data, method=_METHOD)


def _with_tax(sub: pd.DataFrame) -> pd.DataFrame:
    """tokens/sentence ÷ English's on the same task (NaN when English did not run)."""
    english = sub.loc[sub["lang"] == "en", "tokens_per_seq"]
    sub = sub.copy()
    sub["tax"] = sub["tokens_per_seq"] / float(english.iloc[0]) if len(english) else np.nan
    return sub


def _findings(sub: pd.DataFrame, seed: int) -> dict:
    low_cls, high_cls = int(sub["class"].min()), int(sub["class"].max())
    low, high = sub[sub["class"] == low_cls], sub[sub["class"] == high_cls]
    return {"low_class": low_cls, "high_class": high_cls, "n_low": len(low), "n_high": len(high), "n": len(sub),
            "tokens": median_ratio(low["tokens_per_seq"], high["tokens_per_seq"], seed),
            "cost": median_ratio(low["ms_per_sentence"], high["ms_per_sentence"], seed),
            "speedup_low": _median_est(low["speedup"], seed), "speedup_high": _median_est(high["speedup"], seed),
            "rho_cost": correlation(sub["class"], sub["ms_per_sentence"], "spearman", seed),
            "rho_tokens": correlation(sub["class"], sub["tokens_per_seq"], "spearman", seed)}


def _median_est(values: pd.Series, seed: int) -> Estimate:
    from xlt_bench.study.stats import bootstrap_statistic
    return bootstrap_statistic([values.tolist()], lambda a: float(np.median(a)), seed, min_size=3)


def _sentence(task: str, f: dict) -> str:
    low, high = class_label(f["low_class"]), class_label(f["high_class"])
    text = (f"On {task}, class {low} languages (n={f['n_low']}) tokenize to {fmt(f['tokens'], 2, '×')} the median "
            f"tokens per sentence of class {high} (n={f['n_high']}) and cost {fmt(f['cost'], 2, '×')} its time per "
            f"sentence under dynamic batching, gaining {fmt(f['speedup_low'], 2, '×')} from dynamic batching vs "
            f"{fmt(f['speedup_high'], 2, '×')}")
    rho = f["rho_cost"]
    if rho.value is None:
        text += (f"; no rank correlation is given ({rho.n} languages; at least 5 with varying class and cost are "
                 "needed).")
    else:
        text += (f"; Spearman ρ of resource class with time per sentence is {fmt(rho)} over {rho.n} languages "
                 "(negative: lower class, higher cost).")
    return text


def _class_table(sub: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for cls, grp in sub.groupby("class"):
        def mid(col, show=lambda v: num(v, 1)):
            med, lo, hi = spread(grp[col].tolist())
            return show(med) if len(grp) == 1 else f"{show(med)} [{show(lo)}–{show(hi)}]"
        rows.append({"class": class_label(int(cls)) + (" (one language)" if len(grp) == 1 else ""),
                     "n": str(len(grp)), "languages": " ".join(sorted(grp["lang"])),
                     "tokens/sentence": mid("tokens_per_seq"),
                     "× English": mid("tax", _times),
                     "× English, parallel (Tatoeba)": mid("parallel_tax", _times),
                     "static waste": mid("waste:static", pct), "dynamic waste": mid("waste:dynamic", pct),
                     "dynamic ÷ static": mid("speedup", lambda v: f"{v:.2f}×"),
                     "ms/sentence (dynamic)": mid("ms_per_sentence", lambda v: f"{v:.3g}")})
    return pd.DataFrame(rows)


def _times(value) -> str:
    return "—" if value is None or np.isnan(value) else f"{value:.2f}×"


def parallel_tax(cfg: dict, langs: list[str]) -> dict[str, float]:
    """Per language: tokens of its Tatoeba sentences ÷ tokens of their English translations, with the run's own
    tokenizer: the language tax on the same meaning. Empty when the run's data has no Tatoeba text or its tokenizer
    cannot be loaded here."""
    from xlt_bench.data.dataset import load_examples
    from xlt_bench.data.tasks import get_task
    from xlt_bench.data.tokenization import load_tokenizer
    data = str(cfg.get("data") or "")
    if not data.startswith("local:") or not (Path(data[len("local:"):]) / "tatoeba").is_dir():
        return {}
    task = get_task("tatoeba")
    try:
        tokenizer = load_tokenizer(cfg.get("tokenizer"), str(cfg.get("model")))
    except InputError:
        return {}
    out = {}
    for lang in (lang for lang in langs if lang in task.languages):
        try:
            pairs = load_examples(data, task, lang)
        except InputError:
            return out
        if pairs:
            own = sum(len(ids) for ids in tokenizer([p["text"] for p in pairs])["input_ids"])
            english = sum(len(ids) for ids in tokenizer([p["en"] for p in pairs])["input_ids"])
            out[lang] = own / english
    return out


def _limits(task: str, sub: pd.DataFrame, f: dict) -> list[str]:
    out = []
    if task in ("panx", "udpos", "xnli", "pawsx"):
        out.append(f"{task} sentences are not translations of one another across every language, so tokens "
                   "relative to English mix sentence length with tokenization; the parallel column (Tatoeba "
                   "sentences ÷ their English translations) separates the two")
    if task == "tatoeba":
        out.append("tatoeba rows count both sides of each pair (the language's sentence and its English "
                   "translation), which halves the differences between languages")
    if sub["parallel_tax"].isna().all():
        out.append("no parallel language tax: the run's data holds no Tatoeba pairs or its tokenizer is not "
                   "available here")
    if "en" not in set(sub["lang"]):
        out.append(f"{task}: English did not run, so tokens relative to English are not given")
    singles = [class_label(int(c)) for c, g in sub.groupby("class") if len(g) == 1]
    if singles:
        out.append(f"{task}: class {', '.join(singles)} holds one language: its row is that language, not a group")
    if not f["tokens"].has_interval:
        out.append("the low/high class ratio has no interval: a class with a single language cannot be resampled")
    out.append("Joshi classes describe resources for the language in general, not in the model's pretraining data")
    return out


_METHOD = [
    "tokens/sentence = real tokens (special tokens included) ÷ sequences of the language's rows; padding waste "
    "= 1 − real/padded tokens; × English = tokens/sentence ÷ English's on the same task; × English, parallel = "
    "tokens of the language's Tatoeba sentences ÷ tokens of their English translations (same tokenizer); "
    "dynamic ÷ static = useful tok/s ratio; ms/sentence = 1000 ÷ sentences/s under "
    "dynamic batching (eager/fp32 unless the run lacks it)",
    "class ratios = median over the lowest class's languages ÷ median over the highest's, with a 95% percentile "
    "bootstrap interval resampling each class's languages (2000 resamples, seeded); medians of one class likewise",
    "rank correlation: Spearman ρ of Joshi class (0-5) with ms/sentence across languages, bootstrap over languages",
]
