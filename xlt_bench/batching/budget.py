"""The token budget per batch (padding counted), decided here and nowhere else.

Three steps, each taken once:
1. `run_budget`: per backend/dtype for the whole run: a given --max-tokens; with 'auto', what the start-up probe
   chose, or the budget stored beside a reused cost model (else the largest batch that model timed), or without a
   cost model the fallback.
2. `plan_budget`: per language: that budget, or the fallback where the run decided none; never below one sequence
   of max_length.
3. `clamp_to_measured`: inside the planner: never beyond the largest batch the probe timed (the cost model is not
   extrapolated), never below one padded sequence.

The fallback is batch_size full-length rows: the memory a static batch uses anyway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xlt_bench.batching.planners import CostModel

AUTO = "auto"


def fallback(batch_size: int, max_length: int) -> int:
    return int(batch_size) * int(max_length)


def run_budget(max_tokens: int | str, batch_size: int, max_length: int, *, probed: int | None = None,
               cost: CostModel | None = None, stored: int | None = None) -> int | None:
    """One backend's budget for the run. `probed`: the probe's choice (it probes up to a given budget, so that is
    the given budget); `cost`/`stored`: a reused cost model and the budget saved with it. None only when a reused
    model carries neither (each language then plans with the fallback at its own length)."""
    if probed is not None:
        return int(probed)
    if max_tokens != AUTO:
        return int(max_tokens)
    if cost is not None:
        return stored or cost.max_tokens_measured
    return fallback(batch_size, max_length)


def given_or_none(max_tokens: int | str) -> int | None:
    """The budget the user gave, None for 'auto' (what a scenario that does not probe plans with)."""
    return None if max_tokens == AUTO else int(max_tokens)


def plan_budget(budget: int | None, batch_size: int, max_length: int) -> int:
    """One language's budget: the run's (or the fallback), at least one sequence of max_length."""
    return max(int(budget or fallback(batch_size, max_length)), int(max_length))


def clamp_to_measured(budget: int, cost: CostModel | None, longest_padded: int) -> int:
    """Within the largest batch the cost model's probe timed, but never below one padded sequence."""
    if cost is not None and cost.max_tokens_measured:
        return max(min(int(budget), int(cost.max_tokens_measured)), int(longest_padded))
    return int(budget)
