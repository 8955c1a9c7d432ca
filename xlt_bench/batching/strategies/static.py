"""Static batching: batch_size sequences in dataset order, every row padded to max_length (XTREME's scripts)."""

from __future__ import annotations

import numpy as np

from xlt_bench.batching.planners import Batch, fixed_size_batches
from xlt_bench.batching.strategies.base import BatchingStrategy, PlanRequest


class StaticBatching(BatchingStrategy):
    name = "static"
    reference_rank = 0
    pads_to_max_length = True
    report_order = 0
    colour = "#7f8fa6"

    def plan(self, lengths: np.ndarray, request: PlanRequest) -> tuple[list[Batch], None]:
        return fixed_size_batches(lengths, request.batch_size, pad_to=request.max_length), None
