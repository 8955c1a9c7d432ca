"""Limits the dynamic planner keeps: never predicted slower than static-longest where static's shapes were probed,
and never a shape that ran out of memory in the probe. Expectations worked out by hand in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from xlt_bench.batching.planners import CostModel, make_batches, plan_dynamic, predict_seconds


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


def test_no_plan_holds_more_rows_than_ran_where_a_wider_batch_ran_out_of_memory():
    # 40 sequences of 128 under a 4096-token budget and a launch-bound cost: 32 rows x 128 would be best, but at 128
    # 16 rows ran out of memory and 8 ran. Every batch at 128 holds at most 8 rows: 5 calls of 8. At 64 (shorter than
    # any failure) the limit does not apply.
    cost = CostModel(fixed_s=0.010, per_token_s=1e-9, max_tokens_measured=4096, out_of_memory=((16, 128, 8),))
    assert cost.max_rows(128) == 8 and cost.max_rows(256) == 8 and cost.max_rows(64) is None
    batches, info = plan_dynamic(np.full(40, 128), cost, max_tokens=4096, pad_multiple=8, max_length=128,
                                 batch_size=32)
    assert [b.rows for b in batches] == [8] * 5
    assert all(b.rows <= 8 for b in make_batches(np.full(40, 128), "dynamic", max_length=128, cost=cost))
    short, _ = plan_dynamic(np.full(40, 64), cost, max_tokens=4096, pad_multiple=8, max_length=128, batch_size=32)
    assert len(short) == 1   # 40 x 64 = 2560 tokens in one call
    # The limit survives a stored cost model (results.json -> --cost-model FILE).
    assert CostModel.from_dict(cost.to_dict()).out_of_memory == ((16, 128, 8),)


def test_the_probe_records_what_ran_out_of_memory_and_the_plan_keeps_to_what_ran():
    """The fake backend runs out of memory above rows x L^2 = 131072 (8 rows at 128, 32 at 64): the probe records
    the failures with the most rows that ran, and the dynamic plan at 128 never holds more than ran there."""
    from xlt_bench.backends.fake import FakeBackend, FakeCost
    from xlt_bench.backends.models import build_model
    from xlt_bench.measure.probe import probe_cost_model
    fake = FakeBackend(build_model("tiny-xlmr", "pair", 3), cost=FakeCost(fixed_ms=2.0, oom_tokens_sq=131072))
    fake.load()
    report: dict = {}
    model, samples, budget = probe_cost_model(fake, vocab_size=250002, pad_id=1, max_length=128, repeats=1,
                                              static_rows=32, floor_s=2.0, report=report)
    assert all(r * l * l <= 131072 for r, l, _ in samples)     # every timed shape ran
    assert model.out_of_memory, report
    for failed, plen, ran in model.out_of_memory:
        assert failed * plen * plen > 131072 >= ran * plen * plen and failed > ran
    assert model.max_rows(128) is not None and model.max_rows(128) <= 8
    batches, _ = plan_dynamic(np.full(64, 128), model, max_tokens=budget, pad_multiple=8, max_length=128,
                              batch_size=32)
    assert all(b.rows * 128 * 128 <= 131072 for b in batches)
