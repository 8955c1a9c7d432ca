"""Batchers on small hand-checked length lists (DESIGN §3 definitions)."""

import numpy as np
import pytest

from xlt_bench.batching.planners import (Batch, CostModel, batch_stats, collate, fit_cost_model, make_batches,
                                packing_bound_seconds, plan_dynamic, predict_seconds, round_up)
from xlt_bench.core.stats import padding_waste

LENGTHS = np.array([5, 20, 9, 3, 17, 12])  # real_tokens = 66


def stats(lengths, batches):
    s = batch_stats(lengths, batches)
    return s["real_tokens"], s["padded_tokens"], s["n_batches"]


def test_static_pads_every_row_to_max_length():
    batches = make_batches(LENGTHS, "static", batch_size=4, max_length=32)
    assert [b.indices.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5]]
    # 6 rows x 32 = 192 padded tokens; waste = 1 - 66/192
    assert stats(LENGTHS, batches) == (66, 192, 2)
    assert padding_waste(66, 192) == pytest.approx(1 - 66 / 192)


def test_static_longest_pads_to_batch_longest():
    batches = make_batches(LENGTHS, "static-longest", batch_size=4, max_length=32)
    # batch 1 longest 20 -> 4*20 = 80; batch 2 longest 17 -> 2*17 = 34; total 114
    assert [b.padded_len for b in batches] == [20, 17]
    assert stats(LENGTHS, batches) == (66, 114, 2)


def test_dynamic_sorts_and_pads_to_multiple_of_8():
    # Huge fixed cost per batch: the optimiser puts everything in one batch: 6 rows x round_up(20, 8)=24 -> 144.
    expensive = CostModel(fixed_s=1e6, per_token_s=1.0)
    batches = make_batches(LENGTHS, "dynamic", max_length=32, max_tokens=4096, pad_multiple=8, cost=expensive)
    assert len(batches) == 1 and batches[0].padded_len == 24
    assert batches[0].indices.tolist() == [3, 0, 2, 5, 4, 1]  # sorted by length, stable
    # No fixed cost: each batch pads to its own multiple of 8: [3,5] -> 8 (2x8=16), [9,12] -> 16 (2x16=32),
    # [17,20] -> 24 (2x24=48); total 96 tokens and zero padding beyond rounding.
    free = CostModel(fixed_s=0.0, per_token_s=1.0)
    batches = make_batches(LENGTHS, "dynamic", max_length=32, max_tokens=4096, pad_multiple=8, cost=free)
    # ([17] and [20] apart cost the same 48 tokens as together: either is optimal.)
    assert sum(b.padded_tokens for b in batches) == 96
    assert {b.padded_len for b in batches} == {8, 16, 24}


def test_dynamic_never_exceeds_token_budget_and_covers_every_sequence_once():
    rng = np.random.default_rng(1)
    lengths = rng.integers(4, 129, size=500)
    for cost in (None, CostModel(1e9, 1.0), CostModel(0.0, 1.0, 0.01)):
        batches = make_batches(lengths, "dynamic", max_length=128, max_tokens=1000, cost=cost)
        assert all(b.padded_tokens <= 1000 for b in batches)
        seen = np.concatenate([b.indices for b in batches])
        assert sorted(seen.tolist()) == list(range(500))
        assert all(lengths[b.indices].max() <= b.padded_len for b in batches)


def test_dynamic_cuts_waste_on_small_wide_sample():
    # 64 sequences spread 20..120 under a 4096 budget with a CPU-like cost (0.1 ms per call, 1 us per token, so a
    # call is worth 100 tokens): greedy fill gives two batches with > 25% waste; the optimum
    # cuts wherever merging would add more than ~100 padded tokens.
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 121, size=64)
    cost = CostModel(fixed_s=1e-4, per_token_s=1e-6)
    batches, info = plan_dynamic(lengths, cost, max_tokens=4096, pad_multiple=1, max_length=128)
    greedy, _ = plan_dynamic(lengths, None, max_tokens=4096, pad_multiple=1, max_length=128)
    assert padding_waste(*stats(lengths, greedy)[:2]) > 0.25
    real, padded, n = stats(lengths, batches)
    assert info.chosen == "optimal"
    assert padding_waste(real, padded) < 0.5 * padding_waste(*stats(lengths, greedy)[:2])
    assert n <= 16  # each batch must save ~100 padded tokens over merging: batches stay several rows large
    assert info.predicted_s["optimal"] <= min(info.predicted_s.values())


def test_round_up_respects_cap():
    assert round_up(17, 8) == 24
    assert round_up(125, 8, cap=128) == 128
    assert round_up(127, 8, cap=126) == 127  # the cap never cuts a real sequence


def test_sequence_longer_than_max_length_is_rejected():
    with pytest.raises(ValueError):
        make_batches([200], "static", max_length=128)


def test_collate_pads_with_pad_id_and_masks():
    ids = [np.array([0, 7, 2]), np.array([0, 2])]
    types = [np.array([0, 0, 1]), np.array([0, 1])]
    out = collate(ids, types, Batch(np.array([1, 0]), 4), pad_id=1)
    assert out["input_ids"].tolist() == [[0, 2, 1, 1], [0, 7, 2, 1]]
    assert out["attention_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 0]]
    assert out["token_type_ids"].tolist() == [[0, 1, 0, 0], [0, 0, 1, 0]]


def test_fit_cost_model_recovers_coefficients_to_two_digits():
    true = CostModel(0.002, 1e-5, 1e-8)
    shapes = [(1, 16), (1, 128), (4, 32), (16, 16), (8, 64), (2, 128), (32, 8)]
    fitted = fit_cost_model([(r, l, float(true(r, l))) for r, l in shapes], key="eager/fp32/cpu")
    assert (fitted.fixed_s, fitted.per_token_s, fitted.per_token_sq_s) == (0.002, 1e-5, 1e-8)
    assert fitted.max_tokens_measured == 512 and fitted.rel_error == pytest.approx(0.0, abs=1e-9)
    assert CostModel.from_dict(fitted.to_dict()) == fitted


def test_flat_fit_keeps_its_intercept():
    # A launch-bound backend: 5 ms whatever the shape. The fit must be flat (not rejected, not zero).
    fitted = fit_cost_model([(r, l, 0.005) for r, l in [(1, 16), (8, 128), (64, 64), (32, 128)]])
    assert fitted.fixed_s == 0.005 and fitted.per_token_s == 0.0 and fitted.per_token_sq_s == 0.0


def _noisy(true: CostModel, shapes, noise: float, seed: int):
    rng = np.random.default_rng(seed)
    return [(r, l, float(true(r, l)) * rng.uniform(1 - noise, 1 + noise)) for r, l in shapes]


PROBE_SHAPES = [(1, 16), (64, 16), (1, 32), (32, 32), (1, 64), (16, 64), (1, 128), (8, 128), (2, 64), (4, 64)]
REGIMES = {
    "constant": CostModel(5e-3, 0.0),                    # launch-bound GPU
    "linear": CostModel(1e-3, 1e-6),                     # CPU: overhead + per token
    "quadratic": CostModel(1e-3, 1e-6, 1.5e-8),          # attention's L^2 term matters
}


@pytest.mark.parametrize("regime", REGIMES)
def test_partitions_do_not_flip_with_five_percent_noise(regime):
    lengths = np.random.default_rng(3).integers(8, 129, size=300)
    plans = set()
    for seed in range(6):
        fitted = fit_cost_model(_noisy(REGIMES[regime], PROBE_SHAPES, 0.05, seed))
        batches, _ = plan_dynamic(lengths, fitted, max_tokens=1024, pad_multiple=1, max_length=128)
        plans.add(tuple(tuple(b.indices.tolist()) for b in batches))
    assert len(plans) == 1


@pytest.mark.parametrize("regime", REGIMES)
def test_dynamic_never_predicted_slower_than_static_longest(regime):
    true = REGIMES[regime]
    for seed in range(4):
        lengths = np.random.default_rng(seed).integers(4, 129, size=200)
        batches, info = plan_dynamic(lengths, true, max_tokens=4096, pad_multiple=1, max_length=128)
        static_longest = make_batches(lengths, "static-longest", batch_size=32, max_length=128)
        assert predict_seconds(true, batches) <= predict_seconds(true, static_longest) + 1e-12


def test_constant_cost_packs_fewest_batches_then_least_padding():
    # 5 ms per call whatever the shape, budget 64 tokens: lengths 8 x8, 16 x4, 32 x2 -> fewest batches is 3
    # (64 + 64 + 64 tokens); among 3-batch plans the padding tie-break keeps each length group together.
    lengths = np.array([8] * 8 + [16] * 4 + [32] * 2)
    batches, info = plan_dynamic(lengths, CostModel(5e-3, 0.0), max_tokens=64, pad_multiple=1, max_length=32)
    assert len(batches) == 3
    assert sorted(b.padded_len for b in batches) == [8, 16, 32]
    assert sum(b.padded_tokens for b in batches) == int(lengths.sum())


def test_linear_cost_known_optimum():
    # 10 ms per call, 1 ms per padded token; lengths [2, 2, 10, 10]; budget 40. Options: one batch 4 x 10 = 40
    # tokens -> 10 + 40 = 50 ms; [2, 2] + [10, 10] -> (10 + 4) + (10 + 20) = 44 ms; one per sequence -> 4x10 + 24 = 64.
    lengths = np.array([10, 2, 10, 2])
    batches, info = plan_dynamic(lengths, CostModel(10e-3, 1e-3), max_tokens=40, pad_multiple=1, max_length=16)
    assert [sorted(b.indices.tolist()) for b in batches] == [[1, 3], [0, 2]]
    assert info.predicted_s["optimal"] == pytest.approx(0.044)


def test_packing_bound_by_hand():
    # 10 ms per call, 1 ms per token, 0.01 ms per token x length; lengths 10, 20, 30 (60 tokens) under a 32-token
    # budget need at least 2 calls: 2 x 10 + 60 x 1 + (100 + 400 + 900) x 0.01 = 94 ms.
    cost = CostModel(10e-3, 1e-3, 1e-5)
    assert packing_bound_seconds(cost, [10, 20, 30], 32) == pytest.approx(0.094)
    assert packing_bound_seconds(cost, [10, 20, 30], 64) == pytest.approx(0.084)   # one call fits them all
    assert packing_bound_seconds(cost, [], 64) == 0.0


@pytest.mark.parametrize("regime", REGIMES)
def test_no_plan_within_the_budget_beats_the_packing_bound(regime):
    cost = REGIMES[regime]
    for seed in range(4):
        lengths = np.random.default_rng(seed).integers(4, 129, size=200)
        bound = packing_bound_seconds(cost, lengths, 1024)
        batches, info = plan_dynamic(lengths, cost, max_tokens=1024, pad_multiple=8, max_length=128)
        assert bound <= min(info.predicted_s.values()) + 1e-12
        assert bound <= predict_seconds(cost, batches) + 1e-12
    # The floor is tight: equal lengths fill 4 budget-full batches of 16 x 16 with no padding, and the plan meets it.
    equal = np.full(64, 16)
    batches, _ = plan_dynamic(equal, cost, max_tokens=256, pad_multiple=1, max_length=128)
    assert len(batches) == 4
    assert predict_seconds(cost, batches) == pytest.approx(packing_bound_seconds(cost, equal, 256))


def test_budget_never_exceeds_what_the_probe_measured():
    cost = CostModel(1e-3, 0.0, max_tokens_measured=256)
    batches, info = plan_dynamic(np.full(100, 16), cost, max_tokens=65536, pad_multiple=1, max_length=128)
    assert info.budget == 256 and all(b.padded_tokens <= 256 for b in batches)


def test_no_cost_model_is_a_greedy_fill():
    lengths = np.array([3, 5, 9, 12, 17, 20])
    batches, info = plan_dynamic(lengths, None, max_tokens=40, pad_multiple=1, max_length=32)
    assert info.chosen == "greedy"
    # sorted 3,5,9,12 -> 4 x 12 = 48 > 40, so [3,5,9] (27), then [12] + 17 -> 34 ok, + 20 -> 60 > 40: [12,17], [20]
    assert [b.padded_len for b in batches] == [9, 17, 20]
