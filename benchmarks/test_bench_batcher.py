"""The batcher's own overhead on 10k sequence lengths: it runs before timing, but must stay cheap."""

from __future__ import annotations

import numpy as np
import pytest

from xlt_bench.batching.planners import make_batches
from xlt_bench.data.synthetic import available_profiles, lengths_from_hist

MAX_LENGTH = 128


def realistic_lengths(n: int = 10_000, seed: int = 0) -> np.ndarray:
    """n pair lengths drawn from the shipped XNLI length profiles (mBERT tokenizer on real XTREME data) of all
    15 languages in equal shares, in random order as a dataset would give them, truncated at MAX_LENGTH."""
    rng = np.random.default_rng(seed)
    hists = [p["hist"] for (task, _), p in sorted(available_profiles().items()) if task == "xnli"]
    pools = [lengths_from_hist(h) for h in hists]
    picks = [rng.choice(pools[i], size=n // len(pools) + 1) for i in range(len(pools))]
    lengths = rng.permutation(np.concatenate(picks))[:n]
    return np.minimum(lengths, MAX_LENGTH).astype(np.int64)


LENGTHS = realistic_lengths()


@pytest.mark.parametrize("strategy", ["static", "static-longest", "dynamic"])
def test_make_batches(benchmark, strategy):
    benchmark.group = "batcher 10k lengths"
    batches = benchmark(make_batches, LENGTHS, strategy, batch_size=32, max_length=MAX_LENGTH, max_tokens=4096,
                        pad_multiple=8)
    covered = np.sort(np.concatenate([b.indices for b in batches]))
    assert np.array_equal(covered, np.arange(len(LENGTHS)))          # every sequence exactly once
    assert all(b.padded_len >= LENGTHS[b.indices].max() for b in batches)
    padded = sum(len(b.indices) * b.padded_len for b in batches)
    benchmark.extra_info.update(n_batches=len(batches), padding_waste=round(1 - LENGTHS.sum() / padded, 4))
