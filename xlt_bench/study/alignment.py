"""Study `alignment` (DESIGN §1 question 3): does a model's cross-lingual embedding alignment on parallel text track
its transfer accuracy per language?

Alignment is measured on parallel text (Tatoeba pairs {"text", "en"}, or XNLI, whose language files are line-by-line
translations of English's) from one documented hidden layer (embeddings.py); accuracy comes from a run of the model's
trained head on a DIFFERENT task (XNLI, PAWS-X, PAN-X). The study refuses to correlate a quantity with itself or with
a value derived from the same predictions, and gives no coefficient below five languages.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import pandas as pd

from xlt_bench.core.errors import InputError
from xlt_bench.backends.models import PRESETS
from xlt_bench.report.blocks import heading, plot, table
from xlt_bench.report.study import scatter_chart
from xlt_bench.study.base import SHARED_XTREME, Answer, Study, base_overrides, listed, make_config
from xlt_bench.study.stats import MIN_CORRELATION_LANGS, correlation, fmt

ALIGNMENT_TASK = "tatoeba"
# Parallel text the alignment can be measured on -> the transfer task used when --tasks is not given.
ALIGNMENT_SOURCES = {"tatoeba": "xnli", "xnli": "panx"}


def _no_head_reason(models: tuple[str, ...]) -> str:
    return (f"no model with a trained head: {', '.join(models)} "
            f"{'is a random-weight preset' if len(models) == 1 else 'are random-weight presets'} (no accuracy to "
            "correlate); give a fine-tuned checkpoint (a local directory or Hugging Face id with its task head) "
            "with --models")


class AlignmentStudy(Study):
    name = "alignment"
    question = ("Does a model's cross-lingual embedding alignment (parallel Tatoeba or XNLI sentences) track its "
                "transfer accuracy on another task, per language?")
    needs = ("a fine-tuned checkpoint with a trained head (--models DIR[,DIR2]) for a task other than the alignment "
             "data (--tasks; default xnli, or panx with --align-on xnli), its tokenizer, and the parallel text in "
             "--data (Tatoeba pairs, or XNLI with --align-on xnli); random-weight presets are refused")

    source = ALIGNMENT_TASK

    def check_args(self, args: argparse.Namespace) -> None:
        self.source = args.align_on or ALIGNMENT_TASK
        if self.source not in ALIGNMENT_SOURCES:
            raise InputError(f"'{self.source}' is not parallel text the study reads; choose "
                             f"{' or '.join(ALIGNMENT_SOURCES)}", field="align_on")
        models = listed(args.models, ())
        if not models and not args.from_dir:
            raise InputError("no model given: the study needs a fine-tuned checkpoint with a trained task head (a "
                             "local directory or Hugging Face id) in --models; random-weight presets have none",
                             field="models")
        presets = [m for m in models if m in PRESETS]
        if models and len(presets) == len(models):
            raise InputError(_no_head_reason(tuple(presets)), field="models")
        if args.layer is not None:
            for model in (m for m in models if m not in PRESETS):
                check_layer(model, args.layer)
        if self.source in listed(args.tasks, ()):
            raise InputError(f"the transfer task must differ from {self.source}, the alignment data: accuracy and "
                             "alignment on the same text would not be independent measures", field="tasks")

    def runs(self, args: argparse.Namespace) -> dict:
        models = [m for m in listed(args.models, ()) if m not in PRESETS]
        tokenizers = listed(args.tokenizers, ()) or (None,) * len(models)
        configs = {}
        for i, (model, tokenizer) in enumerate(zip(models, tokenizers)):
            overrides = base_overrides(args, tasks=ALIGNMENT_SOURCES[self.source], limit=64)
            # Accuracy only: one static pass per language (timing is not the question here).
            overrides.update(model=model, tokenizer=tokenizer, batching="static", backends="eager",
                             min_repeats=1)
            configs[f"{i + 1}-accuracy"] = make_config(overrides)
        return configs

    def missing(self, docs: dict[str, dict]) -> list[str]:
        found = [accuracy_by_lang(doc, self.source) for doc in docs.values()]
        if any(not acc.empty for acc in found):
            return []
        tasks = sorted({r["task"] for doc in docs.values() for r in doc["rows"]})
        if tasks == [self.source]:
            return [f"accuracy on a task other than {self.source}: the only accuracy here is on the alignment data "
                    "itself (for Tatoeba, retrieval from the same embeddings: a correlation with itself)"]
        return ["accuracy from a trained head (every row's accuracy is null: random-weight presets or a "
                "checkpoint without the task head)"]

    def analyse(self, docs: dict[str, dict], args: argparse.Namespace) -> Answer:
        blocks, sentences, data, limits, charts = [], [], {}, [], {}
        for name, doc in sorted(docs.items()):
            model = doc["run"].get("config", {}).get("model")
            accuracy = accuracy_by_lang(doc, self.source)
            if accuracy.empty:
                limits.append(f"{name} ({model}): no accuracy from a trained head on a task other than "
                              f"{self.source}")
                continue
            tokenizer = doc["run"].get("config", {}).get("tokenizer")
            limit = args.limit or (8 if args.quick else 200)
            alignment, layer = measure_alignment(model, tokenizer, _data(args, doc), args.layer,
                                                 sorted(accuracy["lang"].unique()), limit, self.source)
            result = correlate_alignment(alignment, accuracy, args.seed or 0, self.source)
            data[model] = {k: (v.__dict__ if hasattr(v, "__dict__") else v) for k, v in result.items()
                           if k != "table"}
            sentences.append(_sentence(model, layer, result, self.source))
            blocks += [heading(f"{model}: alignment (layer {layer}) and accuracy per language"),
                       table(result["table"], f"alignment on {self.source} translations; accuracy on the "
                                              "transfer task")]
            merged = accuracy.merge(alignment, on="lang")
            if len(merged):
                chart = f"alignment_{len(charts) + 1}"
                charts[chart] = scatter_chart(chart, f"{model}: alignment (layer {layer}) vs accuracy",
                                              merged["top1"].tolist(), merged["accuracy"].tolist(),
                                              list(merged["task"] + "/" + merged["lang"]),
                                              xlabel=f"{self.source} top-1 retrieval (xx → en)",
                                              ylabel="accuracy")
                blocks.append(plot(chart, charts[chart].title))
        if not sentences:
            raise InputError("; ".join(limits) or "no run holds accuracy", field="models")
        limits += [f"correlation is not causation: languages differ in script, pretraining data and test-set "
                   "difficulty at once", "accuracy comes from one checkpoint per model; a fine-tuning seed "
                   "changes per-language accuracy by a point or more"]
        refused = all("Refused" in s for s in sentences)
        return Answer(title="Does cross-lingual alignment track transfer accuracy?", answer=" ".join(sentences),
                      refused=refused, blocks=blocks, charts=charts, limits=limits, data=data, method=_METHOD)


def check_layer(model: str, layer: int) -> None:
    """--layer must name one of the model's hidden states: checked from its config before anything runs."""
    from transformers import AutoConfig
    try:
        layers = int(AutoConfig.from_pretrained(model, trust_remote_code=False).num_hidden_layers)
    except (OSError, ValueError, AttributeError):
        return   # the run's own model check reports an unloadable model
    if not 0 <= layer <= layers:
        raise InputError(f"layer {layer} does not exist: the model has layers 0 (embeddings) to {layers}",
                         field="layer")


def _data(args: argparse.Namespace, doc: dict) -> str:
    data = args.data or doc["run"].get("config", {}).get("data") or f"local:{SHARED_XTREME}"
    return data if data.startswith("local:") or data == "hf" else f"local:{SHARED_XTREME}"


def accuracy_by_lang(doc: dict, source: str = ALIGNMENT_TASK) -> pd.DataFrame:
    """Per (task, lang): the accuracy of the reference configuration (else the first row with one), for tasks other
    than the alignment data's; empty when no row has an accuracy."""
    rows = [r for r in doc.get("rows", []) if r.get("lang") != "ALL" and r.get("accuracy") is not None
            and r.get("task") != source]
    rows.sort(key=lambda r: not r.get("is_reference"))
    seen, out = set(), []
    for r in rows:
        if (r["task"], r["lang"]) not in seen:
            seen.add((r["task"], r["lang"]))
            out.append({"task": r["task"], "lang": r["lang"], "accuracy": float(r["accuracy"]),
                        "metric": r.get("accuracy_metric")})
    return pd.DataFrame(out, columns=["task", "lang", "accuracy", "metric"])


def parallel_sentences(data: str, source: str, lang: str, limit: int) -> tuple[list[str], list[str]]:
    """(sentences in `lang`, their English translations): Tatoeba pairs, or XNLI premises and hypotheses matched
    line by line with English's file (its files are translations of the same rows)."""
    from xlt_bench.data.dataset import load_examples
    from xlt_bench.data.tasks import get_task
    task = get_task(source)
    if lang not in task.languages or lang == "en":
        return [], []
    if source == ALIGNMENT_TASK:
        pairs = load_examples(data, task, lang, limit)
        return [p["text"] for p in pairs], [p["en"] for p in pairs]
    own, english = load_examples(data, task, lang, limit), load_examples(data, task, "en", limit)
    n = min(len(own), len(english))
    return ([e["text_a"] for e in own[:n]] + [e["text_b"] for e in own[:n]],
            [e["text_a"] for e in english[:n]] + [e["text_b"] for e in english[:n]])


def measure_alignment(model: str, tokenizer_spec: str | None, data: str, layer: int | None, langs: list[str],
                      limit: int, source: str = ALIGNMENT_TASK) -> tuple[pd.DataFrame, int]:
    """Per language with parallel text: retrieval top-1 (xx -> en) and mean pair cosine at `layer`."""
    from xlt_bench.results import task_scores
    from xlt_bench.data.tokenization import load_tokenizer
    from xlt_bench.study.embeddings import default_layer, embed, load_encoder
    encoder = load_encoder(model)
    tokenizer = load_tokenizer(tokenizer_spec, model)
    layer = default_layer(int(encoder.config.num_hidden_layers)) if layer is None else layer
    rows = []
    for lang in langs:
        own, english = parallel_sentences(data, source, lang, limit)
        if len(own) < 2:
            continue
        src, tgt = embed(encoder, tokenizer, own, layer), embed(encoder, tokenizer, english, layer)
        rows.append({"lang": lang, "pairs": len(own), "top1": task_scores.retrieval_top1(src, tgt),
                     "cosine": task_scores.mean_cosine(src, tgt)})
    return pd.DataFrame(rows, columns=["lang", "pairs", "top1", "cosine"]), layer


def same_source(x: pd.Series, y: pd.Series) -> bool:
    """True when two per-language series are the same numbers (a metric paired with itself)."""
    both = pd.concat([x, y], axis=1).dropna()
    return len(both) > 0 and np.allclose(both.iloc[:, 0], both.iloc[:, 1])


def correlate_alignment(alignment: pd.DataFrame, accuracy: pd.DataFrame, seed: int,
                        source: str = ALIGNMENT_TASK) -> dict[str, Any]:
    """Spearman and Pearson of alignment (top-1) with accuracy per transfer task, or a refusal with its reason."""
    merged = accuracy.merge(alignment, on="lang")
    out: dict[str, Any] = {"n": len(merged), "tasks": sorted(merged["task"].unique()) if len(merged) else []}
    out["table"] = pd.DataFrame({
        "task": merged["task"], "lang": merged["lang"], "pairs": merged["pairs"].astype(int).astype(str),
        "alignment top-1": [f"{100 * v:.1f}%" for v in merged["top1"]],
        "pair cosine": [f"{v:.3f}" for v in merged["cosine"]],
        "accuracy": [f"{100 * v:.1f}%" for v in merged["accuracy"]]})
    if source in out["tasks"]:
        out["refusal"] = (f"the accuracy is on {source}, the alignment data itself (for Tatoeba, retrieval from the "
                          "same embeddings), so a correlation would be of a metric with itself")
    elif same_source(merged["top1"], merged["accuracy"]):
        out["refusal"] = "alignment and accuracy are the same numbers: a correlation would be of a value with itself"
    elif len(merged) < MIN_CORRELATION_LANGS:
        out["refusal"] = (f"{len(merged)} languages have both alignment and accuracy; at least "
                          f"{MIN_CORRELATION_LANGS} are needed for a correlation worth a number")
    else:
        task = out["tasks"][0]
        sub = merged[merged["task"] == task]
        out["task"] = task
        out["spearman"] = correlation(sub["top1"], sub["accuracy"], "spearman", seed)
        out["pearson"] = correlation(sub["top1"], sub["accuracy"], "pearson", seed)
    return out


def _sentence(model: str, layer: int, r: dict[str, Any], source: str = ALIGNMENT_TASK) -> str:
    if "refusal" in r:
        return f"Refused for {model}: {r['refusal']}."
    sp, pe = r["spearman"], r["pearson"]
    if sp.value is None:
        return (f"Refused for {model}: alignment or accuracy does not vary across the {sp.n} languages, so no "
                "correlation is defined.")
    name = "Tatoeba" if source == ALIGNMENT_TASK else source.upper()
    return (f"For {model}, {name} alignment (top-1 retrieval, layer {layer}) and {r['task']} accuracy across "
            f"{sp.n} languages have Spearman ρ = {fmt(sp)} and Pearson r = {fmt(pe)} (95% bootstrap intervals "
            "over languages).")


_METHOD = [
    "alignment: sentence embeddings = mean over real tokens of one hidden layer (default ⌊layers/2⌋ + 1, 7 of 12 "
    "for base models, after XTREME's retrieval baselines, which pool a middle layer: middle layers align languages "
    "better than the last); top-1 = share of a language's sentences (Tatoeba pairs, or XNLI premises and hypotheses "
    "with --align-on xnli) whose nearest English sentence by cosine is its translation; pair cosine = mean cosine "
    "of translation pairs",
    "accuracy: the trained head's metric on the transfer task (eager/fp32/static reference rows)",
    "Spearman and Pearson across languages with 95% percentile bootstrap intervals over languages (2000 resamples, "
    "seeded); no coefficient below 5 languages",
]
