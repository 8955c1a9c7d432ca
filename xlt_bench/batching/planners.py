"""Batching primitives (DESIGN §3): batches, the batch cost model, and the planners the strategies call
(xlt_bench/strategies holds the strategies themselves: static, static-longest, dynamic, dynamic-shared).

Dynamic batching sorts sequences by length and chooses batch boundaries over the sorted order. A greedy fill under
the token budget fails on small samples (64 sequences of 20..120 tokens land in one or two batches padded to the
longest), so boundaries are chosen by dynamic programming to minimise the predicted time of all batches under a
cost model `time(rows, padded_len)`; the cost model is measured per backend at start-up (see `fit_cost_model`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from xlt_bench.batching.budget import clamp_to_measured


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
    """Predicted seconds for one batch: fixed + per_token * r*L + per_token_sq * r*L^2 (attention's L^2 term),
    fitted to timings of the backend measured at start-up over the shapes it will run (measure/probe.py probe_cost_model).

    A flat fit (per-token terms zero: a launch-bound GPU at these sizes) is valid and means "fewest batches, then
    least padding". `max_tokens_measured` is the largest batch the probe timed: the planner never builds a batch
    beyond it, so the model is never extrapolated for the plans it chooses."""

    fixed_s: float
    per_token_s: float
    per_token_sq_s: float = 0.0
    max_tokens_measured: int | None = None
    rel_error: float | None = None          # mean |predicted - measured| / measured over the probe samples
    source: str = "measured"
    key: str | None = None                  # "backend/dtype/device" the probe ran on
    # (rows that ran out of memory, padded_len, the most rows that ran at that length) from the probe: at that
    # length or a longer one, no plan holds more rows than ran.
    out_of_memory: tuple[tuple[int, int, int], ...] = ()

    def __call__(self, rows: np.ndarray | int, padded_len: np.ndarray | int) -> np.ndarray | float:
        tokens = rows * padded_len
        return self.fixed_s + self.per_token_s * tokens + self.per_token_sq_s * tokens * padded_len

    def tie_break_per_token(self) -> float:
        """A negligible cost per padded token (a millionth of a 64-token sequence's cost per token), so that among
        plans predicted equally fast the one with less padding wins — what a flat fit needs to be deterministic."""
        return 1e-6 * float(self(1, 64)) / 64

    def for_planning(self) -> CostModel:
        """The same model with its shape ratios rounded to powers of two, for choosing partitions.

        Which partition is optimal depends only on two ratios: tokens worth one call (fixed / per_token) and the
        length at which attention's L^2 term matches the linear one (per_token / per_token_sq); the overall scale
        cancels. Rounding each ratio to the nearest power of two (in log2) means timing noise of a few percent
        leaves the partition unchanged unless a ratio lies within that noise of a bin edge."""
        if self.per_token_s <= 0:
            return CostModel(1.0, 0.0, 0.0, self.max_tokens_measured, source="planning",
                             out_of_memory=self.out_of_memory)
        per_token = 1.0 / _pow2(self.fixed_s / self.per_token_s) if self.fixed_s > 0 else 1.0
        per_token_sq = per_token / _pow2(self.per_token_s / self.per_token_sq_s) if self.per_token_sq_s > 0 else 0.0
        fixed = 1.0 if self.fixed_s > 0 else 0.0
        return CostModel(fixed, per_token, per_token_sq, self.max_tokens_measured, source="planning",
                         out_of_memory=self.out_of_memory)

    def max_rows(self, padded_len: int) -> int | None:
        """The most rows a batch padded to `padded_len` may hold: no more than ran where a wider batch at this length
        or a shorter one ran out of memory (a longer batch needs at least as much memory). None: no limit known."""
        limits = [ran for _, length, ran in self.out_of_memory if length <= padded_len]
        return min(limits) if limits else None

    def fits_memory(self, batch: Batch) -> bool:
        limit = self.max_rows(batch.padded_len)
        return limit is None or batch.rows <= limit

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CostModel:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["out_of_memory"] = tuple(tuple(int(x) for x in shape) for shape in values.get("out_of_memory") or ())
        return cls(**values)


def round_up(length: int, multiple: int, cap: int | None = None) -> int:
    padded = -(-length // multiple) * multiple
    if cap is not None and padded > cap:
        padded = max(cap, length)
    return int(padded)


def make_batches(lengths: Sequence[int] | np.ndarray, strategy: str, *, batch_size: int = 32, max_length: int = 128,
                 max_tokens: int = 4096, pad_multiple: int = 8, cost: CostModel | None = None) -> list[Batch]:
    """The batches of registered strategy `strategy` (xlt_bench.batching.strategies) over `lengths`."""
    from xlt_bench.batching.strategies import plan
    from xlt_bench.batching.strategies.base import PlanRequest
    request = PlanRequest(batch_size=batch_size, max_length=max_length, pad_multiple=pad_multiple,
                          max_tokens=max_tokens, cost=cost)
    return plan(strategy, lengths, request)[0]


def fixed_size_batches(lengths: np.ndarray, batch_size: int, pad_to: int | None = None) -> list[Batch]:
    """batch_size sequences per batch in the given order, padded to `pad_to` (else to each batch's longest)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    return [Batch(idx, pad_to if pad_to is not None else int(lengths[idx].max()))
            for idx in _chunks(np.arange(len(lengths)), batch_size)]


def _chunks(order: np.ndarray, size: int) -> list[np.ndarray]:
    return [order[i:i + size] for i in range(0, len(order), size)]


@dataclass(frozen=True)
class PlanInfo:
    """Which candidate plan the dynamic batcher chose, and each candidate's predicted seconds (results.json)."""

    chosen: str
    predicted_s: dict[str, float]
    budget: int


def plan_dynamic(lengths: Sequence[int] | np.ndarray, cost: CostModel | None, *, max_tokens: int, pad_multiple: int,
                 max_length: int, batch_size: int = 32) -> tuple[list[Batch], PlanInfo]:
    """The dynamic plan: candidates compared under the cost model, the fastest predicted kept.

    Candidates: the cost-optimal contiguous partition of the length-sorted sequences (dynamic programming), a greedy
    fill of the token budget over the sorted order, and static-longest (batch_size rows) over the sorted and the
    dataset order, each where its batches lie within the budget or the range the probe measured (the model is not
    trusted beyond it). So dynamic is never predicted slower than either static form whose shapes were probed.
    Without a cost model
    (`--no-cost-model`) the greedy fill is the plan."""
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    padded = np.array([round_up(int(x), pad_multiple, max_length) for x in lengths], dtype=np.int64)
    budget = clamp_to_measured(int(max_tokens), cost, int(padded.max()))
    if padded.max() > budget:
        raise ValueError(f"max_tokens {budget} is smaller than one padded sequence ({padded.max()})")
    candidates = {"greedy": _greedy_fill(order, padded, budget, cost)}
    if cost is None:
        return candidates["greedy"], PlanInfo("greedy", {}, budget)
    candidates["optimal"] = _optimal_partition(order, padded, budget, cost.for_planning())
    for name, seq in (("static-longest-sorted", order), ("static-longest", np.arange(len(lengths)))):
        plan = [_batch(idx, padded) for idx in _chunks(seq, batch_size)]
        # Static runs these batches whatever the budget; where the probe timed shapes this large the model holds
        # there, so they stay candidates (dynamic falls back on them) even beyond a smaller budget.
        if all(b.padded_tokens <= max(budget, cost.max_tokens_measured or 0) and cost.fits_memory(b) for b in plan):
            candidates[name] = plan
    tie = cost.tie_break_per_token()
    scored = {name: (predict_seconds(cost, plan), tie * sum(b.padded_tokens for b in plan))
              for name, plan in candidates.items()}
    chosen = min(scored, key=lambda name: sum(scored[name]))
    return candidates[chosen], PlanInfo(chosen, {k: v[0] for k, v in scored.items()}, budget)


def predict_seconds(cost: Callable, batches: Sequence[Batch]) -> float:
    return float(sum(cost(b.rows, b.padded_len) for b in batches))


def packing_bound_seconds(cost: CostModel, lengths: Sequence[int] | np.ndarray, max_tokens: int) -> float:
    """A floor on one pass under `cost` for any plan within the token budget: no padding at all, in the fewest calls
    the budget allows (ceil(real tokens / budget)). A batch padded to L >= each of its lengths l_i executes
    rows*L >= sum l_i tokens and rows*L^2 >= sum l_i^2, so no partition is predicted faster than this."""
    lengths = np.asarray(lengths, dtype=np.float64)
    real = float(lengths.sum())
    calls = -(-int(real) // int(max_tokens))   # ceil
    return float(calls * cost.fixed_s + cost.per_token_s * real + cost.per_token_sq_s * float((lengths ** 2).sum()))


def _batch(indices: np.ndarray, padded: np.ndarray) -> Batch:
    return Batch(indices, int(padded[indices].max()))


def _greedy_fill(order: np.ndarray, padded: np.ndarray, budget: int, cost: CostModel | None = None) -> list[Batch]:
    """Length-sorted sequences added to the current batch while rows x longest stays within the budget (and below
    the shapes that ran out of memory)."""
    batches, start = [], 0
    for end in range(1, len(order) + 1):
        if end < len(order) and _rows_fit(end + 1 - start, int(padded[order[end]]), budget, cost):
            continue
        batches.append(_batch(order[start:end], padded))
        start = end
    return batches


def _rows_fit(rows: int, plen: int, budget: int, cost: CostModel | None) -> bool:
    limit = cost.max_rows(plen) if cost is not None else None
    return rows * plen <= budget and (limit is None or rows <= limit)


def _optimal_partition(order: np.ndarray, padded: np.ndarray, budget: int, cost: CostModel) -> list[Batch]:
    """Contiguous partition of the sorted sequences minimising predicted time (+ a negligible padding tie-break).

    best[j] = min over i of best[i] + cost(j - i, padded of item j-1), subject to (j - i) * padded <= budget. The
    longest item of a sorted run is its last, so each candidate costs O(1); the search over i is vectorised with
    numpy, O(n * max_rows) in all."""
    sorted_pad = padded[order]
    n, tie = len(order), cost.tie_break_per_token()
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    choice = np.zeros(n + 1, dtype=np.int64)
    for j in range(1, n + 1):
        plen = int(sorted_pad[j - 1])
        most = budget // plen if cost.max_rows(plen) is None else max(1, min(budget // plen, cost.max_rows(plen)))
        starts = np.arange(j - min(j, most), j)   # candidate first items i (batch = items i..j-1)
        rows = j - starts
        totals = best[starts] + cost(rows, plen) + tie * rows * plen
        k = int(np.argmin(totals))
        best[j], choice[j] = totals[k], starts[k]
    batches: list[Batch] = []
    j = n
    while j > 0:
        i = int(choice[j])
        batches.append(Batch(order[i:j], int(sorted_pad[j - 1])))
        j = i
    return batches[::-1]


def collate(input_ids: Sequence[np.ndarray], token_type_ids: Sequence[np.ndarray] | None, batch: Batch,
            pad_id: int) -> dict[str, np.ndarray]:
    """Build the padded int64 arrays for one batch (done before timing)."""
    if hasattr(batch, "collate"):   # a packed batch (xlt_bench/batching/packing.py) lays out its own rows
        return batch.collate(input_ids, token_type_ids, pad_id)
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


def fit_cost_model(samples: Sequence[tuple[int, int, float]], key: str | None = None) -> CostModel:
    """Non-negative least squares fit of measured (rows, padded_len, seconds) to the CostModel form.

    Residuals are relative (each sample weighted by 1/seconds: small batches matter as much as big ones). The
    coefficients are rounded to two significant digits, so timing noise of a few percent does not move them and the
    partitions built from them are reproducible from run to run."""
    from scipy.optimize import nnls
    rows = np.array([s[0] for s in samples], dtype=np.float64)
    plen = np.array([s[1] for s in samples], dtype=np.float64)
    secs = np.array([s[2] for s in samples], dtype=np.float64)
    if len(samples) == 0 or np.any(secs <= 0):
        raise ValueError("a cost model needs timings > 0")
    design = np.stack([np.ones_like(rows), rows * plen, rows * plen * plen], axis=1)
    weight = 1.0 / secs
    coef, _ = nnls(design * weight[:, None], secs * weight)
    coef = np.array([_round_sig(c, 2) for c in coef])
    model = CostModel(fixed_s=float(coef[0]), per_token_s=float(coef[1]), per_token_sq_s=float(coef[2]),
                      max_tokens_measured=int((rows * plen).max()), key=key)
    predicted = model(rows, plen)
    return dataclasses.replace(model, rel_error=float(np.mean(np.abs(predicted - secs) / secs)))


def _pow2(ratio: float) -> float:
    return float(2.0 ** round(np.log2(ratio)))


def _round_sig(value: float, digits: int) -> float:
    if value <= 0 or not np.isfinite(value):
        return 0.0
    return float(f"{value:.{digits}g}")
