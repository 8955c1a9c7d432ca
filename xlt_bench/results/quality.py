"""Quality beside speed: task metrics from gold labels, agreement and max |Δ| against the reference configuration,
and cross-lingual embedding alignment on parallel data.

Inputs are what the pipeline already holds: per-sequence outputs in input order (token and span heads cut to each
sequence's real length) and the language's EncodedSet (tokenization.py). The reference is eager / fp32 / static on
the same inputs (DESIGN §3). Every figure is a fraction in [0, 1]; None (null) where it cannot be measured, with the
reason in the row's notes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xlt_bench.results import task_scores
from xlt_bench.core.schema import REFERENCE
from xlt_bench.data.tasks import TaskSpec
from xlt_bench.data.tokenization import EncodedSet

FP32_PARITY_TOLERANCE = 1e-4
# Parallel data, where side 0 and side 1 of a pair say the same thing: alignment is meaningful there. Mewsli-X and
# LAReQA pair a query with an answer, which is retrieval but not translation. XNLI's language files are parallel too,
# but its model has a classification head whose logits are no sentence embedding: alignment would need a second,
# pooled forward pass, so it is left to Tatoeba.
PARALLEL_TASKS = ("tatoeba",)
MAP_K = 20


@dataclass
class Quality:
    """The quality fields of one row (DESIGN §3 defines them; §4 the row layout)."""

    accuracy: float | None = None
    accuracy_metric: str | None = None
    exact_match: float | None = None          # extractive QA only; accuracy holds F1
    alignment_cosine: float | None = None
    alignment_top1: float | None = None
    notes: list[str] = field(default_factory=list)

    def as_row_fields(self, kind: str) -> dict[str, Any]:
        out = {"accuracy": self.accuracy, "accuracy_metric": self.accuracy_metric,
               "alignment_cosine": self.alignment_cosine, "alignment_top1": self.alignment_top1}
        if kind == "qa":
            out["exact_match"] = self.exact_match
        return out


# --- the pipeline's entry point ----------------------------------------------------------------------------------

def fill_quality(spec: TaskSpec, sets: Sequence[EncodedSet], rows: list[dict[str, Any]],
                 outputs: dict[tuple, list[np.ndarray]], *, trained_head: bool, random_weights: bool) -> None:
    """Add accuracy, agreement, max |Δ|, parity and alignment to every row of one task, in place.
    outputs is keyed (lang, backend, dtype, batching), as the pipeline collects it."""
    by_lang = {encoded.lang: encoded for encoded in sets}
    predicted: dict[tuple, Any] = {}         # predictions per configuration, computed once

    def preds(key: tuple) -> Any:
        if key not in predicted:
            predicted[key] = predictions(by_lang[key[0]], outputs[key])
        return predicted[key]

    for row in rows:
        encoded = by_lang[row["lang"]]
        key = (row["lang"], row["backend"], row["dtype"], row["batching"])
        quality = evaluate_outputs(spec, encoded, outputs[key], trained_head=trained_head,
                                   random_weights=random_weights)
        row.update(quality.as_row_fields(spec.kind))
        row.setdefault("notes", []).extend(n for n in quality.notes if n not in row["notes"])
        row["is_reference"] = key[1:] == REFERENCE
        ref_key = (row["lang"],) + REFERENCE
        if ref_key not in outputs:
            row.update(agreement=None, max_abs_diff=None, parity_ok=None)
            row["notes"].append("agreement null: the run has no reference configuration (eager/fp32/static)")
            continue
        diff = max_abs_diff(outputs[key], outputs[ref_key])
        row.update(agreement=agreement(preds(key), preds(ref_key)), max_abs_diff=diff,
                   parity_ok=parity(row["dtype"], diff))
        if row["dtype"] != "fp32":
            row["notes"].append(f"{row['dtype']}: agreement and max |Δ| reported against fp32, parity not judged")


# --- accuracy ---------------------------------------------------------------------------------------------------

def evaluate_outputs(spec: TaskSpec, encoded: EncodedSet, outs: Sequence[np.ndarray], *, trained_head: bool,
                     random_weights: bool) -> Quality:
    """The task's own metric (and alignment on parallel data) for one configuration's outputs."""
    quality = Quality(accuracy_metric="f1" if spec.kind == "qa" else spec.metric)
    if encoded.synthetic:
        quality.notes.append("accuracy null: synthetic inputs (random token ids) have no gold labels")
        return quality
    quality.notes.extend(encoded.caveats)
    if spec.kind == "retrieval":
        return _retrieval_quality(spec, encoded, outs, quality, random_weights)
    if not trained_head:
        quality.notes.append(f"accuracy null: the model has no trained {spec.name} head "
                             f"({'random weights' if random_weights else 'head missing from the checkpoint'})")
        return quality
    if encoded.labels is None:
        quality.notes.append("accuracy null: the data has no gold labels")
        return quality
    if spec.kind == "qa":
        mlqa_lang = encoded.lang if spec.name == "mlqa" else None
        quality.accuracy, quality.exact_match = qa_f1_em(encoded, outs, lang=mlqa_lang)
    elif spec.kind == "tagging":
        quality.accuracy = tagging_score(spec, encoded, outs)
    else:
        quality.accuracy = task_scores.accuracy(predictions(encoded, outs), np.asarray(encoded.labels))
    return quality


def tagging_score(spec: TaskSpec, encoded: EncodedSet, outs: Sequence[np.ndarray]) -> float | None:
    """Entity-level F1 (seqeval) for PAN-X, token accuracy for UD-POS, over each word's first sub-word."""
    pred, gold = task_scores.tag_predictions(list(outs), encoded.labels)
    if spec.metric == "f1_entity":
        return task_scores.entity_f1(task_scores.ids_to_tags(pred, spec.labels), task_scores.ids_to_tags(gold, spec.labels))
    return task_scores.token_accuracy(pred, gold)


def qa_f1_em(encoded: EncodedSet, outs: Sequence[np.ndarray],
             lang: str | None = None) -> tuple[float | None, float | None]:
    """SQuAD F1 and EM of each example's best span over its windows (lang: MLQA's normalisation)."""
    texts = qa_answer_texts(encoded, outs)
    gold = [list((answers or {}).get("text") or []) for answers in encoded.labels]
    return task_scores.squad_f1_em(texts, gold, lang)


def qa_answer_texts(encoded: EncodedSet, outs: Sequence[np.ndarray]) -> list[str]:
    """The predicted answer text per example: the context characters of its best-scoring span."""
    offsets, contexts = encoded.offsets, encoded.contexts
    texts = []
    for example, (window, start, end) in enumerate(_best_spans(encoded, outs)):
        if window < 0:
            texts.append("")
            continue
        span = offsets[window]
        texts.append(contexts[example][int(span[start][0]):int(span[end][1])])
    return texts


def _best_spans(encoded: EncodedSet, outs: Sequence[np.ndarray]) -> list[tuple[int, int, int]]:
    """(window, start, end) per example, the highest start+end score over the example's windows, restricted to
    context tokens when the data side stored offsets. (-1, -1, -1) when no window has a valid span."""
    offsets = encoded.offsets
    best: list[tuple[float, int, int, int]] = [(-np.inf, -1, -1, -1) for _ in range(encoded.n_examples)]
    for window, (logits, example) in enumerate(zip(outs, encoded.example_index)):
        logits = np.asarray(logits).reshape(len(logits), -1)
        allowed = None
        if offsets is not None:
            n = min(len(logits), len(offsets[window]))
            logits, allowed = logits[:n], offsets[window][:n, 0] >= 0
        span = task_scores.best_span(logits, allowed)
        if span is not None and span[2] > best[example][0]:
            best[example] = (span[2], window, span[0], span[1])
    return [(w, s, e) for _, w, s, e in best]


def _retrieval_quality(spec: TaskSpec, encoded: EncodedSet, outs: Sequence[np.ndarray], quality: Quality,
                       random_weights: bool) -> Quality:
    """Retrieval needs no head: the mean-pooled embedding is the model's own, so it is measured for any model."""
    src, tgt = retrieval_sides(encoded, outs)
    if src is None:
        quality.notes.append("accuracy null: the data has no aligned text/en sides")
        return quality
    if spec.metric == "retrieval_map20":
        relevant = [[i] for i in range(len(src))]     # the local layout pairs each text with one target
        quality.accuracy = task_scores.retrieval_map_at_k(src, tgt, relevant, k=MAP_K)
    else:
        quality.accuracy = task_scores.retrieval_top1(src, tgt)
    if spec.name in PARALLEL_TASKS:
        quality.alignment_cosine = task_scores.mean_cosine(src, tgt)
        quality.alignment_top1 = task_scores.retrieval_top1(src, tgt)
    if random_weights:
        quality.notes.append("retrieval accuracy and alignment measure a random-weight model (no pretraining)")
    return quality


def retrieval_sides(encoded: EncodedSet, outs: Sequence[np.ndarray]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """[n, dim] embeddings of each pair's own-language side (side == 0) and of its English side (1), in
    example order; pairs missing a side are dropped. (None, None) when the set records no sides."""
    side = encoded.side
    if side is None or not len(outs):
        return None, None
    side = np.asarray(side)
    first = {int(e): i for i, e in enumerate(encoded.example_index) if side[i] == 0}
    second = {int(e): i for i, e in enumerate(encoded.example_index) if side[i] == 1}
    pairs = sorted(set(first) & set(second))
    if not pairs:
        return None, None
    src = np.stack([np.asarray(outs[first[e]], dtype=np.float64).ravel() for e in pairs])
    tgt = np.stack([np.asarray(outs[second[e]], dtype=np.float64).ravel() for e in pairs])
    return src, tgt


# --- predictions and agreement -----------------------------------------------------------------------------------

def predictions(encoded: EncodedSet, outs: Sequence[np.ndarray]) -> np.ndarray:
    """What a configuration predicts, in a form two configurations can be compared on:
    pair: label per example; multiple_choice: chosen sequence per example; tagging: label per labelled token
    (every real token when there are no labels), flattened; qa: 'window:start:end' of each example's best span;
    retrieval: index of each sentence's nearest English side."""
    kind = encoded.kind
    if kind == "pair":
        return np.array([int(np.argmax(o)) for o in outs], dtype=np.int64)
    if kind == "multiple_choice":
        return _choices(np.array([float(np.asarray(o).ravel()[0]) for o in outs]), encoded.example_index)
    if kind == "tagging":
        return _token_predictions(outs, encoded.labels)
    if kind == "qa":
        return np.array([f"{w}:{s}:{e}" for w, s, e in _best_spans(encoded, outs)], dtype=object)
    if kind == "retrieval":
        src, tgt = retrieval_sides(encoded, outs)
        if src is None:
            return np.array([], dtype=np.int64)
        return np.argmax(task_scores.cosine_matrix(src, tgt), axis=1)
    raise ValueError(f"unknown task kind {kind!r}")


def _choices(scores: np.ndarray, example_index: np.ndarray) -> np.ndarray:
    """Index (within its example) of the best-scoring sequence, per example in example order."""
    example_index = np.asarray(example_index)
    order = np.argsort(example_index, kind="stable")
    bounds = np.flatnonzero(np.diff(example_index[order])) + 1
    return np.array([int(np.argmax(scores[group])) for group in np.split(order, bounds)] if len(order) else [],
                    dtype=np.int64)


def _token_predictions(outs: Sequence[np.ndarray], labels: list | None) -> np.ndarray:
    if not outs:
        return np.array([], dtype=np.int64)
    if labels is None:
        return np.concatenate([np.argmax(o, axis=-1).ravel() for o in outs])
    pred, _ = task_scores.tag_predictions(list(outs), labels)
    return np.concatenate(pred) if pred else np.array([], dtype=np.int64)


def agreement(pred: np.ndarray, reference: np.ndarray) -> float | None:
    return task_scores.agreement(pred, reference)


def max_abs_diff(outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> float | None:
    """Largest |Δ| over every sequence's output (token outputs are already cut to the real tokens)."""
    if len(outputs) != len(reference):
        raise ValueError(f"max_abs_diff: {len(outputs)} outputs but {len(reference)} reference outputs")
    diffs = [task_scores.max_abs_diff(a, b) for a, b in zip(outputs, reference)]
    diffs = [d for d in diffs if d is not None]
    return max(diffs) if diffs else None


def parity(dtype: str, diff: float | None) -> bool | None:
    """fp32 must match the reference numerically; reduced precisions are reported, not judged."""
    if dtype != "fp32" or diff is None:
        return None
    return bool(diff <= FP32_PARITY_TOLERANCE)
