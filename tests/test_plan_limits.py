"""Limits the dynamic planner keeps: never predicted slower than static-longest where static's shapes were probed,
and never a shape that ran out of memory in the probe. Expectations worked out by hand in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from xlt_bench.batching import CostModel, make_batches, plan_dynamic, predict_seconds


def test_static_longest_beyond_a_small_budget_is_still_a_candidate():
    # 64 sequences of 128 tokens, static batch 32: static-longest is 2 calls of 32 x 128 = 4096 tokens, 4x a budget
    # of 1024. Cost 10 ms per call + 1 us per token: static-longest 2 x (0.010 + 0.004096) = 0.028192 s; within the
    # budget (8 rows per call) 8 x (0.010 + 0.001024) = 0.088192 s, 3.1x slower.
    lengths = np.full(64, 128)
    cost = CostModel(fixed_s=0.010, per_token_s=1e-6, max_tokens_measured=4096)   # the probe timed 32 x 128
    batches, info = plan_dynamic(lengths, cost, max_tokens=1024, pad_multiple=8, max_length=128, batch_size=32)
    static_longest = make_batches(lengths, "static-longest", batch_size=32, max_length=128)
    assert predict_seconds(cost, static_longest) == pytest.approx(0.028192)
    assert predict_seconds(cost, batches) == pytest.approx(0.028192)
    assert info.chosen.startswith("static-longest") and len(batches) == 2
    assert info.predicted_s["optimal"] == pytest.approx(0.088192)


def test_shapes_the_probe_never_timed_stay_out_of_the_plan():
    # The same workload, but the probe timed batches up to 1024 tokens only: 32 x 128 is an extrapolation, so
    # dynamic keeps within the budget (8 calls of 8 x 128), predicted 0.088192 s.
    lengths = np.full(64, 128)
    cost = CostModel(fixed_s=0.010, per_token_s=1e-6, max_tokens_measured=1024)
    batches, info = plan_dynamic(lengths, cost, max_tokens=1024, pad_multiple=8, max_length=128, batch_size=32)
    assert all(b.padded_tokens <= 1024 for b in batches) and len(batches) == 8
    assert predict_seconds(cost, batches) == pytest.approx(0.088192)
