"""Batching strategies (DESIGN §3): static, static-longest and length-bucketed dynamic batching.

Dynamic batching sorts sequences by length and chooses batch boundaries over the sorted order. A greedy fill under
the token budget fails on small samples (64 sequences of 20..120 tokens land in one or two batches padded to the
longest), so boundaries are chosen by dynamic programming to minimise the predicted time of all batches under a
cost model `time(rows, padded_len)`; the cost model is measured per backend at start-up (see `fit_cost_model`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Batch:
    indices: np.ndarray   # positions in the input order of the sequences this batch holds
    padded_len: int       # every row is padded to this length

    @property
    def rows(self) -> int:
        return int(len(self.indices))

    @property
    def padded_tokens(self) -> int:
        return self.rows * self.padded_len

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows, self.padded_len


@dataclass(frozen=True)
class CostModel:
    """Predicted seconds for one batch: fixed + per_token * r*L + per_token_sq * r*L^2 (attention's L^2 term)."""

    fixed_s: float
    per_token_s: float
    per_token_sq_s: float = 0.0
    source: str = "default"

    def __call__(self, rows: np.ndarray | int, padded_len: np.ndarray | int) -> np.ndarray | float:
        tokens = rows * padded_len
        return self.fixed_s + self.per_token_s * tokens + self.per_token_sq_s * tokens * padded_len

    @classmethod
    def default(cls) -> CostModel:
        # Without a measurement: a batch costs as much fixed overhead as 32 tokens of compute (typical of an
        # encoder on CPU at small shapes); enough to stop the optimiser from cutting one batch per length.
        return cls(fixed_s=32.0, per_token_s=1.0, per_token_sq_s=0.0, source="default")


def round_up(length: int, multiple: int, cap: int | None = None) -> int:
    padded = -(-length // multiple) * multiple
    if cap is not None and padded > cap:
        padded = max(cap, length)
    return int(padded)


def make_batches(lengths: Sequence[int] | np.ndarray, strategy: str, *, batch_size: int = 32, max_length: int = 128,
                 max_tokens: int = 4096, pad_multiple: int = 8, cost: CostModel | None = None) -> list[Batch]:
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(lengths) == 0:
        return []
    if lengths.max() > max_length:
        raise ValueError(f"sequence of length {lengths.max()} exceeds max_length {max_length}; truncate first")
    if strategy == "static":
        return [Batch(idx, max_length) for idx in _chunks(np.arange(len(lengths)), batch_size)]
    if strategy == "static-longest":
        return [Batch(idx, int(lengths[idx].max())) for idx in _chunks(np.arange(len(lengths)), batch_size)]
    if strategy == "dynamic":
        return dynamic_batches(lengths, max_tokens=max_tokens, pad_multiple=pad_multiple, max_length=max_length,
                               cost=cost or CostModel.default())
    raise ValueError(f"unknown batching strategy '{strategy}'")


def _chunks(order: np.ndarray, size: int) -> list[np.ndarray]:
    return [order[i:i + size] for i in range(0, len(order), size)]


def dynamic_batches(lengths: np.ndarray, *, max_tokens: int, pad_multiple: int, max_length: int,
                    cost: Callable) -> list[Batch]:
    """Optimal contiguous partition of the length-sorted sequences under the token budget.

    best[j] = min over i of best[i] + cost(j - i, padded(len of item j-1)), subject to (j - i) * padded <= max_tokens.
    The longest item of a contiguous sorted run is its last one, so each candidate costs O(1); the search over i is
    vectorised with numpy, O(n * max_rows) in all.
    """
    order = np.argsort(lengths, kind="stable")
    sorted_len = lengths[order]
    n = len(sorted_len)
    padded = np.array([round_up(int(x), pad_multiple, max_length) for x in sorted_len], dtype=np.int64)
    if padded.max() > max_tokens:
        raise ValueError(f"max_tokens {max_tokens} is smaller than one padded sequence ({padded.max()})")
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    choice = np.zeros(n + 1, dtype=np.int64)
    for j in range(1, n + 1):
        plen = int(padded[j - 1])
        max_rows = min(j, max_tokens // plen)
        starts = np.arange(j - max_rows, j)            # candidate first items i (batch = items i..j-1)
        totals = best[starts] + cost(j - starts, plen)
        k = int(np.argmin(totals))
        best[j], choice[j] = totals[k], starts[k]
    batches: list[Batch] = []
    j = n
    while j > 0:
        i = int(choice[j])
        batches.append(Batch(order[i:j], int(padded[j - 1])))
        j = i
    batches.reverse()
    return batches


def collate(input_ids: Sequence[np.ndarray], token_type_ids: Sequence[np.ndarray] | None, batch: Batch,
            pad_id: int) -> dict[str, np.ndarray]:
    """Build the padded int64 arrays for one batch (done before timing)."""
    rows, plen = batch.shape
    ids = np.full((rows, plen), pad_id, dtype=np.int64)
    mask = np.zeros((rows, plen), dtype=np.int64)
    types = np.zeros((rows, plen), dtype=np.int64) if token_type_ids is not None else None
    for r, idx in enumerate(batch.indices):
        seq = input_ids[idx]
        ids[r, :len(seq)] = seq
        mask[r, :len(seq)] = 1
        if types is not None:
            types[r, :len(seq)] = token_type_ids[idx]
    out = {"input_ids": ids, "attention_mask": mask}
    if types is not None:
        out["token_type_ids"] = types
    return out


def batch_stats(lengths: np.ndarray, batches: Sequence[Batch]) -> dict[str, int]:
    real = int(sum(int(lengths[b.indices].sum()) for b in batches))
    return {"real_tokens": real, "padded_tokens": int(sum(b.padded_tokens for b in batches)), "n_batches": len(batches)}


def fit_cost_model(samples: Sequence[tuple[int, int, float]]) -> CostModel:
    """Least-squares fit of measured (rows, padded_len, seconds) to the CostModel form, coefficients kept >= 0."""
    rows = np.array([s[0] for s in samples], dtype=np.float64)
    plen = np.array([s[1] for s in samples], dtype=np.float64)
    secs = np.array([s[2] for s in samples], dtype=np.float64)
    design = np.stack([np.ones_like(rows), rows * plen, rows * plen * plen], axis=1)
    coef = _nonneg_lstsq(design, secs)
    if coef[1] <= 0 and coef[2] <= 0:
        return CostModel.default()
    return CostModel(fixed_s=float(coef[0]), per_token_s=float(coef[1]), per_token_sq_s=float(coef[2]),
                     source="measured")


def _nonneg_lstsq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # Relative errors matter (small batches are as important as big ones): weight each sample by 1/seconds.
    w = 1.0 / np.maximum(b, 1e-9)
    aw, bw = a * w[:, None], b * w
    active = list(range(a.shape[1]))
    while True:
        coef = np.zeros(a.shape[1])
        sol, *_ = np.linalg.lstsq(aw[:, active], bw, rcond=None)
        coef[active] = sol
        negative = [c for c in active if coef[c] < 0]
        if not negative:
            return coef
        active.remove(min(negative, key=lambda c: coef[c]))
        if not active:
            return np.zeros(a.shape[1])
