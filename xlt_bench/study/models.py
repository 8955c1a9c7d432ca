"""Study `models` (DESIGN §1 question 4): two or more models on the same text, each with its own tokenizer, per
language and per language family: tokens/sentence, useful tok/s, sentences/s, cost per sentence, accuracy where
trained heads exist, and each model's ratios to the first model with intervals."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from xlt_bench.core.errors import InputError
from xlt_bench.core.languages import group_of
from xlt_bench.report.blocks import heading, num, plot, table
from xlt_bench.report.study import bar_chart
from xlt_bench.study.base import DEFAULT_LIMIT, Answer, Study, base_overrides, listed, make_config, quick_model
from xlt_bench.study.frames import batching_frame, missing_batchings, primary
from xlt_bench.study.stats import Estimate, fmt, geometric_mean, interval_ratio

BATCHING = "dynamic"


class ModelsStudy(Study):
    name = "models"
    question = "XLM-R vs mBERT (or any models), per language and per language family: cost and accuracy"
    needs = ("two or more models (--models, default xlmr-base,mbert-base), each with its own tokenizer: "
             "--tokenizers (one per model) with local data, or --data synthetic --profiles (one `xlt-bench lengths` "
             "file per model); without either, both run on the shipped mBERT lengths and the study says so")

    def check_args(self, args: argparse.Namespace) -> None:
        models = listed(args.models, ("xlmr-base", "mbert-base"))
        if len(models) < 2:
            raise InputError(f"the models study compares two or more models; --models gave {len(models)} "
                             f"({', '.join(models) or 'none'})", field="models")
        for option in ("tokenizers", "profiles"):
            given = listed(getattr(args, option), ())
            if given and len(given) != len(models):
                raise InputError(f"{len(given)} {option} for {len(models)} models: give one per model, in the "
                                 "order of --models", field=option)

    def runs(self, args: argparse.Namespace) -> dict:
        models = listed(args.models, ("xlmr-base", "mbert-base"))
        tokenizers = listed(args.tokenizers, ()) or (args.tokenizer,) * len(models)
        profiles = listed(args.profiles, ()) or (None,) * len(models)
        data = args.data or ("synthetic" if not args.tokenizers else None)
        configs = {}
        for i, (model, tokenizer, profile) in enumerate(zip(models, tokenizers, profiles)):
            overrides = base_overrides(args, tasks="xnli", limit=DEFAULT_LIMIT, data=data)
            overrides.update(model=quick_model(model, args.quick), tokenizer=tokenizer, profiles=profile,
                             batching=BATCHING)
            configs[f"{i + 1}-{_slug(model)}"] = make_config(overrides)
        return configs

    def missing(self, docs: dict[str, dict]) -> list[str]:
        models = {_model(doc) for doc in docs.values()}
        lacking = [] if len(models) >= 2 else [f"runs of two or more models (found {len(models)}: "
                                               f"{', '.join(sorted(map(str, models)))})"]
        for name, doc in docs.items():
            lacking += [f"{name}: offline rows with batching '{b}'" for b in missing_batchings(doc, (BATCHING,))]
        return lacking

    def analyse(self, docs: dict[str, dict], args: argparse.Namespace) -> Answer:
        ordered = sorted(docs.items())
        base_name, base_doc = ordered[0]
        base = _frame(base_doc)
        blocks, sentences, data, limits, charts = [], [], {}, [], {}
        same = _same_lengths(ordered)
        for name, doc in ordered[1:]:
            other = _frame(doc)
            merged = base.merge(other, on=["task", "lang", "backend", "dtype"], suffixes=("_a", "_b"))
            if merged.empty:
                limits.append(f"{name}: no (task, language, backend, dtype) in common with {base_name}")
                continue
            merged = _ratios(merged)
            a, b = _model(base_doc), _model(doc)
            summary = _summary(merged, args.seed or 0)
            data[f"{b}/{a}"] = {k: v.__dict__ for k, v in summary.items()}
            sentences.append(_sentence(a, b, summary, merged))
            blocks += [heading(f"{b} ÷ {a}: per language"), table(_language_table(merged, a, b),
                                                                  f"ratios are {b} ÷ {a}; dynamic batching")]
            blocks += [heading(f"{b} ÷ {a}: per language family"), table(_family_table(merged, args.seed or 0),
                                                                         "geometric mean over the family's languages")]
            limits += _accuracy_limits(merged, a, b)
            chart = f"sentences_ratio_{_slug(b)}"
            charts[chart] = bar_chart(chart, f"{b} ÷ {a}: sentences per second per language (dynamic)",
                                      list(merged["task"] + "/" + merged["lang"]), merged["seq_s_ratio"].tolist(),
                                      ylabel=f"{b} ÷ {a}", intervals=[[e.lo, e.hi] if e.has_interval else None
                                                                      for e in merged["seq_s_est"]])
            blocks.append(plot(chart, charts[chart].title))
        first = _label(same) + " ".join(sentences)
        if same:
            limits.insert(0, same)
        limits.append("intervals over languages resample languages: they describe how the ratio varies between "
                      "languages, not each language's measurement noise")
        limits.append("per-language ratio intervals combine the two rows' own 95% throughput intervals "
                      "conservatively (lo ÷ hi, hi ÷ lo): they cover at least 90%, and are missing where a row has "
                      "no interval")
        return Answer(title="Models compared per language and family", answer=first or "Refused: no common rows.",
                      refused=not sentences, blocks=blocks, charts=charts, limits=list(dict.fromkeys(limits)),
                      data=data, method=_METHOD)


def _slug(model: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in model.rstrip("/").split("/")[-1])


def _model(doc: dict) -> str:
    return str(doc["run"].get("config", {}).get("model") or next(iter(doc["rows"]), {}).get("model"))


def _frame(doc: dict) -> pd.DataFrame:
    frame = batching_frame(doc)
    backend, dtype = primary(frame)
    return frame[(frame.backend == backend) & (frame.dtype == dtype)]


def tokenizer_of(doc: dict) -> str:
    """Which tokenizer's lengths a run's rows carry: the profile's tokenizer for synthetic data, else --tokenizer or
    the model's own."""
    cfg = doc["run"].get("config", {})
    if cfg.get("data") == "synthetic":
        from xlt_bench.data.synthetic import profile_source
        try:
            made = profile_source(cfg.get("profiles"))
        except InputError:
            return f"profiles {cfg.get('profiles')}"
        return made.get("tokenizer_vocab_sha256") or made.get("tokenizer_sha256") or str(made.get("tokenizer"))
    from xlt_bench.data.tokenization import PRESET_TOKENIZERS
    return str(cfg.get("tokenizer") or PRESET_TOKENIZERS.get(cfg.get("model"), cfg.get("model")))


def _same_lengths(ordered: list[tuple[str, dict]]) -> str:
    """A sentence saying which models ran on one tokenizer's lengths ('' when every model had its own)."""
    by_tokenizer: dict[str, list[str]] = {}
    for _, doc in ordered:
        by_tokenizer.setdefault(tokenizer_of(doc), []).append(_model(doc))
    shared = [models for models in by_tokenizer.values() if len(models) > 1]
    if not shared:
        return ""
    names = "; ".join(", ".join(m) for m in shared)
    return (f"{names} ran on the same tokenizer's token lengths, so their ratios compare architectures only, not "
            "tokenizers")


def _label(same: str) -> str:
    return f"Labelled: {same}. " if same else ""


def _ratios(m: pd.DataFrame) -> pd.DataFrame:
    m = m.copy()
    m["tokens_ratio"] = m["tokens_per_seq_b"] / m["tokens_per_seq_a"]
    m["tok_s_ratio"] = m[f"tok_s:{BATCHING}_b"] / m[f"tok_s:{BATCHING}_a"]
    m["seq_s_ratio"] = m[f"seq_s:{BATCHING}_b"] / m[f"seq_s:{BATCHING}_a"]
    m["seq_s_est"] = [_seq_ratio(r) for r in m.to_dict("records")]
    m["family"] = [group_of(lang, "family") for lang in m["lang"]]
    return m


def _seq_ratio(r: dict) -> Estimate:
    """Sentences/s ratio; its interval from each row's tok/s interval (sentences/s is tok/s × a fixed count)."""
    def seq_ci(side):
        ci = r.get(f"tok_s_ci95:{BATCHING}_{side}")
        tok, seq = r[f"tok_s:{BATCHING}_{side}"], r[f"seq_s:{BATCHING}_{side}"]
        return [ci[0] * seq / tok, ci[1] * seq / tok] if isinstance(ci, (list, tuple)) and tok else None
    return interval_ratio(r[f"seq_s:{BATCHING}_b"], seq_ci("b"), r[f"seq_s:{BATCHING}_a"], seq_ci("a"))


def _summary(m: pd.DataFrame, seed: int) -> dict[str, Estimate]:
    return {"sentences_per_s": geometric_mean(m["seq_s_ratio"].tolist(), seed),
            "tokens_per_sentence": geometric_mean(m["tokens_ratio"].tolist(), seed),
            "useful_tok_s": geometric_mean(m["tok_s_ratio"].tolist(), seed)}


def _sentence(a: str, b: str, s: dict[str, Estimate], m: pd.DataFrame) -> str:
    return (f"Over {s['sentences_per_s'].n} languages ({', '.join(sorted(m['task'].unique()))}, "
            f"{m['backend'].iloc[0]}/{m['dtype'].iloc[0]}, dynamic batching), {b} processes "
            f"{fmt(s['sentences_per_s'], 2, '×')} the sentences per second of {a} (geometric mean, interval over "
            f"languages), with {fmt(s['tokens_per_sentence'], 2, '×')} its tokens per sentence and "
            f"{fmt(s['useful_tok_s'], 2, '×')} its useful tok/s.")


def _language_table(m: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    return pd.DataFrame({
        "task": m["task"], "lang": m["lang"], "family": m["family"],
        f"tokens/sentence {a}": [num(v, 1) for v in m["tokens_per_seq_a"]],
        f"tokens/sentence {b}": [num(v, 1) for v in m["tokens_per_seq_b"]],
        f"ms/sentence {a}": [f"{1000 / v:.3g}" for v in m[f"seq_s:{BATCHING}_a"]],
        f"ms/sentence {b}": [f"{1000 / v:.3g}" for v in m[f"seq_s:{BATCHING}_b"]],
        "tokens ÷": [f"{v:.2f}×" for v in m["tokens_ratio"]],
        "useful tok/s ÷": [f"{v:.2f}×" for v in m["tok_s_ratio"]],
        "sentences/s ÷": [fmt(e, 2, "×") for e in m["seq_s_est"]],
        f"accuracy {a}": [_acc(v) for v in m[f"accuracy:{BATCHING}_a"]],
        f"accuracy {b}": [_acc(v) for v in m[f"accuracy:{BATCHING}_b"]],
    }).reset_index(drop=True)


def _acc(value) -> str:
    return "—" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{100 * value:.1f}%"


def _family_table(m: pd.DataFrame, seed: int) -> pd.DataFrame:
    rows = []
    for family, grp in m.groupby("family"):
        rows.append({"family": family, "n": str(len(grp)), "languages": " ".join(sorted(grp["lang"].unique())),
                     "tokens ÷": fmt(geometric_mean(grp["tokens_ratio"].tolist(), seed), 2, "×"),
                     "useful tok/s ÷": fmt(geometric_mean(grp["tok_s_ratio"].tolist(), seed), 2, "×"),
                     "sentences/s ÷": fmt(geometric_mean(grp["seq_s_ratio"].tolist(), seed), 2, "×")})
    return pd.DataFrame(rows)


def _accuracy_limits(m: pd.DataFrame, a: str, b: str) -> list[str]:
    acc = m[[f"accuracy:{BATCHING}_a", f"accuracy:{BATCHING}_b"]].apply(pd.to_numeric, errors="coerce")
    if acc.notna().all(axis=1).any():
        return []
    return [f"accuracy is not compared: {a} or {b} has no trained head for these tasks (random-weight presets "
            "or synthetic inputs have no accuracy); give fine-tuned checkpoints with --models and real data"]


_METHOD = [
    "each model runs on the same examples (same task, languages, limit) with its own tokenizer; ratios divide the "
    "later model's figure by the first model's, per (task, language), on dynamic batching and the primary "
    "backend/dtype (eager/fp32 when it ran)",
    "across languages and within a family: geometric mean of the per-language ratios with a 95% percentile "
    "bootstrap interval over languages (2000 resamples, seeded; no interval below 5 languages)",
]
