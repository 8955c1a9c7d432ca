"""The offline batching-strategy contract: how a strategy plans batches and what the rest of the harness asks of it.

A strategy turns the token lengths of one language into batches (rows padded to one length each). Everything that
differs between strategies beyond planning is declared here as a class attribute, so scenarios, preflight, estimates
and the report ask the strategy instead of testing its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from xlt_bench.batching.planners import Batch, CostModel, PlanInfo


@dataclass(frozen=True)
class SharedPlan:
    """Another backend's cost model and token budget, for strategies that plan every backend's batches alike."""

    cost: CostModel | None
    max_tokens: int | None     # its run budget (None: none decided), resolved per language like the request's
    source: str                # "backend/dtype" whose measurements these are


@dataclass(frozen=True)
class PlanRequest:
    """What planning one language needs, beside its lengths."""

    batch_size: int                    # rows per batch of the fixed-size strategies
    max_length: int                    # no sequence is longer; static pads every row to it
    pad_multiple: int = 1              # token-budget strategies round each row's length up to a multiple of this
    max_tokens: int | None = None      # token budget per batch, padding counted (None: batch_size x max_length)
    cost: CostModel | None = None      # this backend's batch cost model (None: none was made)
    shared: SharedPlan | None = None   # the run's first backend's model and budget, where one was made

    @property
    def token_budget(self) -> int:
        from xlt_bench.batching.budget import plan_budget
        return plan_budget(self.max_tokens, self.batch_size, self.max_length)


class BatchingStrategy:
    """One offline batching strategy; subclasses set the attributes and implement `plan`."""

    name: ClassVar[str]
    # Whether plan() reads request.cost: a start-up probe of each backend is run when a configured strategy says so.
    needs_cost_model: ClassVar[bool] = False
    # Whether plan() bounds batches by a token budget (preflight checks a given --max-tokens holds one sequence).
    uses_token_budget: ClassVar[bool] = False
    # Speedups are measured against the first reference strategy that ran: lower rank is preferred; None = never.
    reference_rank: ClassVar[int | None] = None
    # Whether rows are padded to a common length within a batch (a padding-free strategy says False).
    pads: ClassVar[bool] = True
    # Whether every row is padded to max_length, so executed work is known before the run (estimates).
    pads_to_max_length: ClassVar[bool] = False
    # Position in tables and plots (ascending), and the colour of its bars (None: the plotting default).
    report_order: ClassVar[int] = 100
    colour: ClassVar[str | None] = None
    # A backend capability (a class attribute set to True on the backend) this strategy needs; None: any backend.
    requires_backend_feature: ClassVar[str | None] = None
    # Whether plan() reads request.shared (the run's first backend's plan inputs) instead of this backend's own.
    uses_shared_plan: ClassVar[bool] = False
    # The strategy a report's one-line summary headlines (its speedup over the reference), where it ran.
    headline: ClassVar[bool] = False
    # Why the train scenario cannot use this strategy (None: it can).
    not_trainable_reason: ClassVar[str | None] = None

    @property
    def is_reference(self) -> bool:
        return self.reference_rank is not None

    def plan(self, lengths: np.ndarray, request: PlanRequest) -> tuple[list[Batch], PlanInfo | None]:
        """Batches over `lengths` (positions index `lengths`), and the planner's choice where it compared plans."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<batching strategy {self.name}>"
