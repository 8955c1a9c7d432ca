"""The batcher's own overhead on 10k sequence lengths: it runs before timing, but must stay cheap."""

from __future__ import annotations

import numpy as np
import pytest

from xlt_bench.batching import make_batches

MAX_LENGTH = 128


def realistic_lengths(n: int = 10_000, seed: int = 0) -> np.ndarray:
    """Token lengths of sentence pairs across languages: log-normal per language with medians from ~35 (English-like)
    to ~90 (Thai/Burmese-like, which tokenize 2-3x longer), truncated at MAX_LENGTH as the tokenizer would."""
    rng = np.random.default_rng(seed)
    medians = rng.choice([35, 40, 45, 55, 70, 90], size=n)
    lengths = np.exp(rng.normal(np.log(medians), 0.45))
    return np.clip(np.rint(lengths), 6, MAX_LENGTH).astype(np.int64)


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
