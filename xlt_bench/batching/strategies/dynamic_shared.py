"""Dynamic-shared batching: the dynamic partition planned with the run's first backend/dtype's cost model and budget,
run on every backend, so backend ratios compare runtimes on identical batches (README "Comparing backends")."""

from __future__ import annotations

import dataclasses

import numpy as np

from xlt_bench.batching.planners import Batch, PlanInfo
from xlt_bench.batching.strategies.base import PlanRequest
from xlt_bench.batching.strategies.dynamic import DynamicBatching


class DynamicSharedBatching(DynamicBatching):
    name = "dynamic-shared"
    uses_shared_plan = True
    headline = False
    report_order = 30
    colour = None
    not_trainable_reason = ("compares inference backends on one partition; the train scenario plans each backend's "
                            "steps itself (use dynamic)")

    def plan(self, lengths: np.ndarray, request: PlanRequest) -> tuple[list[Batch], PlanInfo]:
        if request.shared is None:
            raise RuntimeError("dynamic-shared needs the first backend's cost model, and none was made")
        shared = request.shared
        return super().plan(lengths, dataclasses.replace(request, cost=shared.cost, max_tokens=shared.max_tokens,
                                                         shared=None))
