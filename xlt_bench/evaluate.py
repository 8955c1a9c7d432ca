"""Quality beside speed: task accuracy from gold labels, agreement and max |Δ| against the reference configuration.

The reference is eager / fp32 / static on the same inputs (DESIGN §3). Predictions are derived from outputs per task
kind; accuracy is null when the model has no trained head for the task (random-weight presets).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import metrics

REFERENCE = ("eager", "fp32", "static")
FP32_PARITY_TOLERANCE = 1e-4


def predictions(kind: str, outputs: Sequence[np.ndarray], example_index: np.ndarray) -> np.ndarray:
    """One prediction per example (pair, multiple choice, retrieval) or one per labelled token (tagging, flattened)."""
    if kind == "pair":
        return np.array([int(np.argmax(o)) for o in outputs])
    if kind == "multiple_choice":
        scores = np.array([float(o.reshape(-1)[0]) for o in outputs])
        n_examples = int(example_index.max()) + 1 if len(example_index) else 0
        return np.array([int(np.argmax(scores[example_index == e])) for e in range(n_examples)])
    if kind in ("tagging", "qa"):
        return np.concatenate([np.argmax(o, axis=-1).reshape(-1) for o in outputs]) if outputs else np.array([])
    if kind == "retrieval":
        return _nearest_partner(np.stack(outputs))
    raise ValueError(f"unknown task kind {kind}")


def _nearest_partner(embeddings: np.ndarray) -> np.ndarray:
    # Without side information every embedding's nearest other embedding is its prediction.
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    return np.argmax(sims, axis=1)


def max_abs_diff(outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> float:
    return float(max((np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))) for a, b in zip(outputs, reference)),
                     default=0.0))


def compare_to_reference(kind: str, dtype: str, outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray],
                         example_index: np.ndarray) -> dict[str, Any]:
    diff = max_abs_diff(outputs, reference)
    agree = metrics.agreement(predictions(kind, outputs, example_index), predictions(kind, reference, example_index))
    # fp32 must match the reference numerically; reduced precisions are reported (agreement, max |Δ|), not judged.
    parity = diff <= FP32_PARITY_TOLERANCE if dtype == "fp32" else None
    return {"agreement": agree, "max_abs_diff": diff, "parity_ok": parity}


def task_accuracy(kind: str, metric: str, outputs: Sequence[np.ndarray], gold: list | None,
                  example_index: np.ndarray) -> float | None:
    """The task's metric from gold labels, or None when there are none to compare with."""
    if gold is None:
        return None
    if kind in ("pair", "multiple_choice"):
        return metrics.accuracy(predictions(kind, outputs, example_index), np.asarray(gold))
    if kind == "tagging":
        preds = [np.argmax(o, axis=-1) for o in outputs]
        return metrics.token_accuracy(preds, [np.asarray(g) for g in gold])
    return None
