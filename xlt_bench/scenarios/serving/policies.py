"""Batching policies of the server scenario (a registry; options per policy from TOML `[policy.<name>]`).

A policy sees the queue (requests waiting, in arrival order) when the server is free and returns the requests of the
next batch, or None with the time it wants to be asked again (a queue delay that has not run out). Every policy
here is work-conserving except `fixed`, which may hold a partial batch for up to its maximum queue delay.

- none: one request per forward call.
- fixed: Triton-style: dispatch max_batch requests as soon as there are that many, else whatever is queued once the
  oldest has waited max_delay_ms. Length-blind.
- token-budget: text-embeddings-inference style: FIFO up to a token budget that counts padding when the backend
  pads (rows x the longest row). Length-blind, but bounded in memory.
- length-bucketed (ours): one queue per length bucket; the bucket of the oldest request is served, up to the token
  budget, so a batch's rows have similar lengths (little padding). Bucket edges come from the offline planner's cost
  model over a held-out sample of the run's lengths.

Tuning: each policy offers `TRIALS` settings of its main knob (`trial_settings`); the server scenario tries each on
arrivals that are not measured afterwards and keeps the best, so every tunable policy gets the same tuning budget.
`none` has no knob.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from xlt_bench.core.errors import InputError
from xlt_bench.core.registry import Registry


@dataclass
class Request:
    id: int
    arrival: float      # seconds from the start of the run (scheduled, open loop)
    length: int         # tokens, special tokens included
    seq: int            # index into the workload's sequence pool


TRIALS = 3   # settings tried per tunable policy


class Policy:
    name: ClassVar[str]

    def __init__(self, budget: int, pads: bool = True, **options: Any):
        self.budget, self.pads = budget, pads

    @classmethod
    def trial_settings(cls, budget: int, max_length: int, fit_lengths: np.ndarray, cost) -> list[dict[str, Any]]:
        """The option sets tuning tries (`TRIALS` of them for a policy with a knob; one empty set without)."""
        return [{}]

    def select(self, queue: Sequence[Request], now: float) -> tuple[list[Request] | None, float | None]:
        raise NotImplementedError

    def tokens(self, batch: Sequence[Request]) -> int:
        """Tokens the batch costs: rows x longest when the backend pads, else the sum of lengths."""
        if not batch:
            return 0
        lengths = [r.length for r in batch]
        return len(batch) * max(lengths) if self.pads else sum(lengths)

    def _fill(self, candidates: Sequence[Request], limit: int | None = None) -> list[Request]:
        """Take candidates in order while the batch stays within the token budget (always at least one)."""
        batch: list[Request] = []
        for request in candidates:
            if batch and (self.tokens(batch + [request]) > self.budget or (limit and len(batch) >= limit)):
                break
            batch.append(request)
        return batch


class NoBatching(Policy):
    name = "none"

    def select(self, queue, now):
        return ([queue[0]], None) if queue else (None, None)


class FixedPolicy(Policy):
    name = "fixed"

    def __init__(self, budget: int, pads: bool = True, max_batch: int = 8, max_delay_ms: float = 50.0, **options):
        super().__init__(budget, pads)
        if max_batch < 1 or max_delay_ms < 0:
            raise InputError("fixed policy needs max_batch >= 1 and max_delay_ms >= 0", field="policy.fixed")
        self.max_batch, self.max_delay_s = int(max_batch), max_delay_ms / 1000.0

    @classmethod
    def trial_settings(cls, budget, max_length, fit_lengths, cost):
        return [{"max_batch": b} for b in (4, 8, 16)]

    def select(self, queue, now):
        if not queue:
            return None, None
        due = queue[0].arrival + self.max_delay_s
        if len(queue) >= self.max_batch or now >= due:
            return list(queue[: self.max_batch]), None
        return None, due


class TokenBudgetPolicy(Policy):
    name = "token-budget"

    def __init__(self, budget: int, pads: bool = True, max_tokens: int = 0, **options):
        super().__init__(budget, pads)
        if max_tokens < 0:
            raise InputError("token-budget policy needs max_tokens >= 0 (0: the run's token budget)",
                             field="policy.token-budget")
        self.budget = int(max_tokens) or budget

    @classmethod
    def trial_settings(cls, budget, max_length, fit_lengths, cost):
        return [{"max_tokens": max(1, int(budget * share))} for share in (0.5, 1.0, 2.0)]

    def select(self, queue, now):
        return (self._fill(queue), None) if queue else (None, None)


class LengthBucketedPolicy(Policy):
    name = "length-bucketed"

    def __init__(self, budget: int, pads: bool = True, edges: Sequence[int] = (), **options):
        super().__init__(budget, pads)
        self.edges = np.array(sorted(set(int(e) for e in edges)) or [budget], dtype=np.int64)

    @classmethod
    def trial_settings(cls, budget, max_length, fit_lengths, cost):
        return [{"edges": bucket_edges(fit_lengths, cost, budget, max_length, max_buckets=n)} for n in (2, 4, 8)]

    def bucket(self, length: int) -> int:
        return int(np.searchsorted(self.edges, length))

    def select(self, queue, now):
        if not queue:
            return None, None
        chosen = self.bucket(queue[0].length)        # the bucket of the oldest request: no bucket starves
        same = [r for r in queue if self.bucket(r.length) == chosen]
        return self._fill(same), None


POLICIES = Registry("policy", "policy", {
    "none": "xlt_bench.scenarios.serving.policies:NoBatching",
    "fixed": "xlt_bench.scenarios.serving.policies:FixedPolicy",
    "token-budget": "xlt_bench.scenarios.serving.policies:TokenBudgetPolicy",
    "length-bucketed": "xlt_bench.scenarios.serving.policies:LengthBucketedPolicy",
}, base=Policy)


def make_policy(name: str, budget: int, pads: bool, options: dict[str, Any] | None = None) -> Policy:
    cls = POLICIES.get(name)
    try:
        return cls(budget, pads, **(options or {}))
    except TypeError as exc:
        raise InputError(f"bad options for policy '{name}': {exc}", field=f"policy.{name}") from None


def bucket_edges(lengths: np.ndarray, cost, budget: int, max_length: int, max_buckets: int = 4) -> list[int]:
    """Bucket edges from the offline planner: the padded lengths of the cost-optimal partition of the workload's
    own lengths (where the planner found it worth cutting a batch is where a bucket should end), then merged down to
    `max_buckets`: a server sees a few requests at a time, and a bucket that rarely holds two requests never forms
    a batch. Each merge joins the neighbours whose union adds the fewest padded tokens."""
    from xlt_bench.batching.planners import plan_dynamic
    lengths = np.asarray(lengths)
    batches, _ = plan_dynamic(lengths, cost, max_tokens=budget, pad_multiple=1, max_length=max_length)
    edges = sorted({b.padded_len for b in batches} | {max_length})
    while len(edges) > max(max_buckets, 1):
        lows = [0] + edges[:-1]
        extra = []
        for i in range(len(edges) - 1):   # merging bucket i into i+1 pads bucket i's requests up to edges[i+1]
            members = lengths[(lengths > lows[i]) & (lengths <= edges[i])]
            extra.append(int(((edges[i + 1] - members).clip(min=0)).sum()))
        del edges[int(np.argmin(extra))]
    return edges
