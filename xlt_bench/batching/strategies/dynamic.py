"""Dynamic batching: length-sorted sequences cut into batches under a token budget, the cut points chosen under this
backend's measured cost model (batching.plan_dynamic)."""

from __future__ import annotations

import numpy as np

from xlt_bench.batching.planners import Batch, PlanInfo, plan_dynamic
from xlt_bench.batching.strategies.base import BatchingStrategy, PlanRequest


class DynamicBatching(BatchingStrategy):
    name = "dynamic"
    needs_cost_model = True
    uses_token_budget = True
    headline = True
    report_order = 20
    colour = "#2e8b57"

    def plan(self, lengths: np.ndarray, request: PlanRequest) -> tuple[list[Batch], PlanInfo]:
        return plan_dynamic(lengths, request.cost, max_tokens=request.token_budget,
                            pad_multiple=request.pad_multiple, max_length=request.max_length,
                            batch_size=request.batch_size)
