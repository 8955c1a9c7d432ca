"""Static-longest batching: batch_size sequences in dataset order, each batch padded to its own longest row."""

from __future__ import annotations

import numpy as np

from xlt_bench.batching.planners import Batch, fixed_size_batches
from xlt_bench.batching.strategies.base import BatchingStrategy, PlanRequest


class StaticLongestBatching(BatchingStrategy):
    name = "static-longest"
    reference_rank = 1
    report_order = 10
    colour = "#e1a95f"

    def plan(self, lengths: np.ndarray, request: PlanRequest) -> tuple[list[Batch], None]:
        return fixed_size_batches(lengths, request.batch_size), None
