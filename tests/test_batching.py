"""Batchers on small hand-checked length lists (DESIGN §3 definitions)."""

import numpy as np
import pytest

from xlt_bench.batching import (Batch, CostModel, batch_stats, collate, fit_cost_model, make_batches, round_up)
from xlt_bench.stats import padding_waste

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
    assert sum(b.padded_tokens for b in batches) == 96
    assert sorted(b.padded_len for b in batches) == [8, 16, 24]


def test_dynamic_never_exceeds_token_budget_and_covers_every_sequence_once():
    rng = np.random.default_rng(1)
    lengths = rng.integers(4, 129, size=500)
    for cost in (CostModel.default(), CostModel(1e9, 1.0), CostModel(0.0, 1.0, 0.01)):
        batches = make_batches(lengths, "dynamic", max_length=128, max_tokens=1000, cost=cost)
        assert all(b.padded_tokens <= 1000 for b in batches)
        seen = np.concatenate([b.indices for b in batches])
        assert sorted(seen.tolist()) == list(range(500))
        assert all(lengths[b.indices].max() <= b.padded_len for b in batches)


def test_dynamic_cuts_waste_on_small_wide_sample():
    # 64 sequences spread 20..120 under a 4096 budget: a greedy fill gives 1-2 batches padded to ~120 (>40% waste).
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 121, size=64)
    batches = make_batches(lengths, "dynamic", max_length=128, max_tokens=4096)
    real, padded, n = stats(lengths, batches)
    assert padding_waste(real, padded) < 0.10
    assert n <= 16  # batches stay large enough to be efficient


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


def test_fit_cost_model_recovers_coefficients():
    true = CostModel(0.002, 1e-5, 1e-8)
    shapes = [(1, 16), (1, 128), (4, 32), (16, 16), (8, 64), (2, 128), (32, 8)]
    fitted = fit_cost_model([(r, l, float(true(r, l))) for r, l in shapes])
    assert fitted.source == "measured"
    for r, l in shapes:
        assert fitted(r, l) == pytest.approx(true(r, l), rel=1e-6)
