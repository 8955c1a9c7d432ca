"""The token budget, decided in budget.py: run budget (given / probed / stored / fallback), per-language budget,
and the clamp to what the probe measured. Expectations computed by hand."""

from __future__ import annotations

from xlt_bench.batching.planners import CostModel
from xlt_bench.batching.budget import clamp_to_measured, fallback, given_or_none, plan_budget, run_budget


def test_fallback_is_batch_size_full_length_rows():
    assert fallback(32, 128) == 4096


def test_run_budget_sources_in_order():
    stored_model = CostModel(1e-3, 1e-6, max_tokens_measured=2048)
    # The probe's choice wins (given --max-tokens, the probe probes up to it and returns it).
    assert run_budget("auto", 32, 128, probed=1536) == 1536
    assert run_budget(3000, 32, 128, probed=3000, cost=stored_model) == 3000
    # A given budget beats a reused model's stored one.
    assert run_budget(3000, 32, 128, cost=stored_model, stored=1024) == 3000
    # 'auto' with a reused model: its stored budget, else the largest batch it timed.
    assert run_budget("auto", 32, 128, cost=stored_model, stored=1024) == 1024
    assert run_budget("auto", 32, 128, cost=stored_model) == 2048
    assert run_budget("auto", 32, 128, cost=CostModel(1e-3, 0.0)) is None
    # 'auto' without any cost model (--no-cost-model): the fallback.
    assert run_budget("auto", 8, 64) == 512


def test_given_or_none():
    assert given_or_none("auto") is None and given_or_none(700) == 700


def test_plan_budget_per_language():
    assert plan_budget(None, 32, 128) == 4096        # none decided: the fallback at this language's length
    assert plan_budget(None, 4, 384) == 1536         # a QA window of 384 tokens
    assert plan_budget(100, 32, 128) == 128          # never below one sequence of max_length
    assert plan_budget(5000, 32, 128) == 5000


def test_clamp_to_measured():
    model = CostModel(1e-3, 1e-6, max_tokens_measured=2048)
    assert clamp_to_measured(4096, model, 64) == 2048     # never beyond the largest batch timed
    assert clamp_to_measured(1024, model, 64) == 1024
    assert clamp_to_measured(1024, model, 3000) == 3000   # but one padded sequence always fits
    assert clamp_to_measured(4096, None, 64) == 4096      # no model: nothing to clamp to
    assert clamp_to_measured(4096, CostModel(1e-3, 0.0), 64) == 4096
