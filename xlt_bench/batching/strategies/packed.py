"""Packed batching: padding-free execution (xlt_bench/batching/packing.py). Sequences concatenated into rows of at most
max_length tokens, rows grouped into calls under the same token budget dynamic batching plans with; only backends
that declare `supports_packed` run it."""

from __future__ import annotations

import numpy as np

from xlt_bench.batching.planners import PlanInfo
from xlt_bench.batching.budget import clamp_to_measured
from xlt_bench.batching.packing import PackedBatch, plan_packed
from xlt_bench.batching.strategies.base import BatchingStrategy, PlanRequest


class PackedBatching(BatchingStrategy):
    name = "packed"
    # The probe decides the budget under --max-tokens auto, as for dynamic, so the two plan within the same budget.
    needs_cost_model = True
    uses_token_budget = True
    pads = False
    report_order = 25   # beside dynamic
    colour = "#c0392b"
    requires_backend_feature = "supports_packed"
    not_trainable_reason = "the train scenario runs padded batches only"

    def plan(self, lengths: np.ndarray, request: PlanRequest) -> tuple[list[PackedBatch], PlanInfo]:
        # Within what the probe timed, as dynamic's budget is, so the two plan under one budget.
        budget = clamp_to_measured(request.token_budget, request.cost, int(lengths.max()))
        batches = plan_packed(lengths, max_tokens=budget, row_len=request.max_length)
        return batches, PlanInfo("first-fit-decreasing", {}, budget)
