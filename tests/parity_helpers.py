"""Test helper: output parity between a backend and the reference (eager fp32) on the same inputs (the runs
themselves judge parity in xlt_bench/results/quality.py; this adds correlation and masked argmax agreement for tests).

Shapes: [B, C] (sequence logits), [B, L, C] (token logits), [B, L, 2] (span start/end logits), [B, H] (pooled
embeddings). For per-token outputs, `mask` ([B, L], 1 = real token) drops padded positions, whose values no task
reads. Prediction agreement follows the head: argmax over classes for logits, argmax over real positions for spans,
and none for pooled embeddings (their "prediction" is a retrieval over the whole set, judged by the task).
"""

from __future__ import annotations

import numpy as np


def compare_outputs(reference: np.ndarray, candidate: np.ndarray, mask: np.ndarray | None = None,
                    head: str | None = None) -> dict[str, float | None]:
    """{"max_abs_diff", "argmax_agreement", "correlation"}; `head` (sequence|token|span|pooled) resolves the
    one ambiguous case, token logits with 2 labels vs span logits, and defaults to token/sequence by shape."""
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.shape != cand.shape:
        raise ValueError(f"output shapes differ: reference {ref.shape}, candidate {cand.shape}")
    if head is None:
        head = "token" if ref.ndim == 3 else "sequence"
    real = _real_positions(ref, mask)
    ref_real, cand_real = ref[real], cand[real]
    return {"max_abs_diff": float(np.max(np.abs(ref_real - cand_real))) if ref_real.size else 0.0,
            "argmax_agreement": _agreement(ref, cand, mask, head),
            "correlation": _correlation(ref_real.ravel(), cand_real.ravel())}


def _real_positions(ref: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Boolean index over the leading axes that selects what is compared."""
    if ref.ndim == 3 and mask is not None:
        return np.asarray(mask).astype(bool)[:, : ref.shape[1]]
    return np.ones(ref.shape[:1], dtype=bool)


def _agreement(ref: np.ndarray, cand: np.ndarray, mask: np.ndarray | None, head: str) -> float | None:
    if head == "pooled":
        return None
    if head == "span":
        # Predicted start and end positions per row: argmax over real positions only.
        keep = np.ones(ref.shape[:2], dtype=bool) if mask is None else np.asarray(mask).astype(bool)
        fill = np.where(keep[..., None], 0.0, -np.inf)
        same = np.argmax(ref + fill, axis=1) == np.argmax(cand + fill, axis=1)
        return float(same.mean())
    same = np.argmax(ref, axis=-1) == np.argmax(cand, axis=-1)
    if ref.ndim == 3:
        same = same[_real_positions(ref, mask)]
    return float(same.mean()) if same.size else None


def _correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation of all compared values: scale-free, so it judges random-weight models whose logits are
    tiny and whose argmax flips on near ties. None when either side is constant."""
    if a.size < 2 or np.std(a) == 0 or np.std(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])
