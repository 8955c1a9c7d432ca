"""Synthetic data reproduces the shipped length profiles (exactly at the profile's own count), seeded and pad-free."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from xlt_bench.core.errors import InputError
from xlt_bench.data.synthetic import available_profiles, lengths_from_hist, profile_source, synthetic_encoded
from xlt_bench.data.tasks import get_task

BIG = 1 << 20


def synth(task, lang, n=None, *, max_length=BIG, seed=0, pad_id=1, vocab_size=250002, types=False):
    return synthetic_encoded(get_task(task), lang, n, vocab_size=vocab_size, pad_id=pad_id, max_length=max_length,
                             seed=seed, takes_token_types=types)


def hist_of(lengths) -> dict[str, int]:
    return {str(k): v for k, v in sorted(Counter(int(x) for x in lengths).items())}


def test_lengths_from_hist_by_hand():
    hist = {"2": 1, "4": 3}
    assert lengths_from_hist(hist).tolist() == [2, 4, 4, 4]
    assert lengths_from_hist(hist, 4).tolist() == [2, 4, 4, 4]
    # quantiles floor((i + 0.5) * 4 / n) of [2, 4, 4, 4]
    assert lengths_from_hist(hist, 2).tolist() == [4, 4]
    assert lengths_from_hist(hist, 8).tolist() == [2, 2, 4, 4, 4, 4, 4, 4]


def test_shipped_profiles_cover_the_shared_task_languages():
    keys = available_profiles()
    per_task = Counter(task for task, _ in keys)
    assert per_task == {"xnli": 15, "pawsx": 7, "tatoeba": 41, "panx": 47}
    assert "mbert-cased/vocab.txt" in profile_source()["tokenizer"]


def test_every_profile_is_reproduced_exactly_at_its_own_count():
    for (task, lang), profile in available_profiles().items():
        out = synth(task, lang)
        assert out.n_examples == profile["n_examples"] and out.n_sequences == profile["n_sequences"]
        assert hist_of(out.lengths) == profile["hist"], (task, lang)
        if "sides" in profile:
            side = out.side
            for i, name in enumerate(out.sides):
                assert hist_of(out.lengths[side == i]) == profile["sides"][name]["hist"], (task, lang, name)


def test_other_counts_follow_the_profile_quantiles():
    out = synth("xnli", "th", 64)
    expected = lengths_from_hist(available_profiles()[("xnli", "th")]["hist"], 64)
    assert sorted(out.lengths.tolist()) == expected.tolist()
    assert out.n_examples == 64 and out.example_index.tolist() == list(range(64))


def test_seeded_ids_avoid_pad_and_stay_in_vocab():
    a, b, c = synth("pawsx", "ja", 50, seed=3), synth("pawsx", "ja", 50, seed=3), synth("pawsx", "ja", 50, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a.input_ids, b.input_ids))
    assert not all(np.array_equal(x, y) for x, y in zip(a.input_ids, c.input_ids))
    small = synth("pawsx", "ja", 200, pad_id=0, vocab_size=5)
    ids = np.concatenate(small.input_ids)
    assert ids.min() >= 1 and ids.max() <= 4 and set(ids.tolist()) == {1, 2, 3, 4}
    assert ids.dtype == np.int64 and small.labels is None and small.token_type_ids is None


def test_lengths_are_clipped_to_max_length_and_counted():
    profile = available_profiles()[("xnli", "th")]
    expected_cut = sum(c for k, c in profile["hist"].items() if int(k) > 128)
    out = synth("xnli", "th", max_length=128)
    assert out.lengths.max() == 128 and out.n_truncated == expected_cut > 0
    assert any(f"{expected_cut} of 300 sequences truncated" in n for n in out.notes)


def test_token_types_for_two_segment_models():
    out = synth("xnli", "en", 5, types=True, pad_id=0, vocab_size=119547)
    for ids, types in zip(out.input_ids, out.token_type_ids):
        n = len(ids)
        assert types.tolist() == [0] * ((n + 1) // 2) + [1] * (n // 2)


def test_retrieval_keeps_both_sides():
    out = synth("tatoeba", "jv", 10)
    assert out.n_examples == 10 and out.n_sequences == 20
    assert out.side.tolist() == [0] * 10 + [1] * 10
    assert out.example_index.tolist() == list(range(10)) * 2


def test_missing_profiles_are_input_errors():
    with pytest.raises(InputError) as exc:
        synth("panx", "th")
    assert exc.value.field == "langs" and "yo" in str(exc.value)
    with pytest.raises(InputError) as exc:
        synth("xquad", "en")
    assert exc.value.field == "tasks" and "xnli" in str(exc.value)


def test_fixed_shape_gives_one_padded_shape():
    from xlt_bench.data.synthetic import fixed_shape_encoded
    out = fixed_shape_encoded(get_task("xnli"), "en", (4, 16), vocab_size=100, pad_id=1, seed=0,
                              takes_token_types=False)
    assert out.lengths.tolist() == [16] * 4 and out.n_examples == 4 and out.token_type_ids is None
    assert all(1 not in ids.tolist() for ids in out.input_ids)
    pairs = fixed_shape_encoded(get_task("tatoeba"), "de", (4, 8), vocab_size=100, pad_id=0, seed=0,
                                takes_token_types=True)
    assert pairs.example_index.tolist() == [0, 0, 1, 1] and pairs.side.tolist() == [0, 1, 0, 1]
    assert pairs.n_examples == 2 and pairs.token_type_ids[0].tolist() == [0] * 8


# --- profiles from `xlt-bench lengths`, read by --data synthetic --profiles FILE -----------------------------------

@pytest.fixture()
def own_profiles(tmp_path, tiny_vocab_file):
    """A profile file written by `lengths` from hand-made data: xnli/en lengths 6, 8 and 15 (see test_lengths)."""
    import json

    from xlt_bench.data.lengths import build_profiles, write_profiles
    (tmp_path / "data" / "xnli").mkdir(parents=True)
    rows = [{"text_a": "the cats", "text_b": "a dog", "label": 0}, {"text_a": "the cat", "text_b": "dog", "label": 1},
            {"text_a": "the cat sat on the mat . the dog sat", "text_b": "a dog", "label": 2}]
    (tmp_path / "data" / "xnli" / "en.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "profiles.json"
    write_profiles(build_profiles(f"local:{tmp_path / 'data'}", ["xnli"], ("en",), str(tiny_vocab_file)), path)
    return path


def test_lengths_output_feeds_synthetic_data(own_profiles, tiny_vocab_file):
    enc = synthetic_encoded(get_task("xnli"), "en", None, vocab_size=50, pad_id=0, max_length=128, seed=0,
                            takes_token_types=False, profile_path=str(own_profiles), tokenizer=str(tiny_vocab_file))
    assert sorted(len(ids) for ids in enc.input_ids) == [6, 8, 15]
    assert str(tiny_vocab_file) in enc.notes[0]
    assert ("xnli", "en") in available_profiles(str(own_profiles))


def test_a_profile_of_another_tokenizer_is_refused_naming_both(own_profiles, mbert_vocab):
    with pytest.raises(InputError) as err:
        synthetic_encoded(get_task("xnli"), "en", None, vocab_size=50, pad_id=0, max_length=128, seed=0,
                          takes_token_types=False, profile_path=str(own_profiles), tokenizer=str(mbert_vocab))
    message = str(err.value)
    assert str(mbert_vocab) in message and "vocab.txt" in message and "24 tokens" in message
    assert err.value.field == "profiles" and err.value.file == str(own_profiles)


def test_shipped_profiles_accept_the_mbert_vocabulary_they_were_made_with(mbert_vocab):
    enc = synthetic_encoded(get_task("xnli"), "en", 4, vocab_size=119547, pad_id=0, max_length=128, seed=0,
                            takes_token_types=True, tokenizer=str(mbert_vocab))
    assert enc.n_examples == 4
