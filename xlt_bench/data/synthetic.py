"""`--data synthetic`: seeded token-id sequences whose lengths reproduce a shipped (task, language) length profile.

With n equal to the profile's count the multiset of lengths is exactly the profile's histogram; with another n the
lengths are the histogram's evenly spaced quantiles. Order is a seeded shuffle (real data is not sorted by length).
Token ids are uniform over the model's vocabulary, never the pad id; they carry no meaning, so labels are None.
"""

from __future__ import annotations

import time
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from xlt_bench.core.errors import InputError
from xlt_bench.data.lengths import SHIPPED_PROFILES, read_profiles
from xlt_bench.data.tasks import TaskSpec
from xlt_bench.data.tokenization import EncodedSet


@lru_cache(maxsize=4)
def _profiles_doc(path: str) -> dict[str, Any]:
    return read_profiles(path)


def available_profiles(path: str | None = None) -> dict[tuple[str, str], dict]:
    doc = _profiles_doc(str(path or SHIPPED_PROFILES))
    return {(task, lang): p for task, by_lang in doc["profiles"].items() for lang, p in by_lang.items()}


def profile_source(path: str | None = None) -> dict[str, Any]:
    """How the shipped profiles were made (tokenizer, data, date), for run metadata and reports."""
    return dict(_profiles_doc(str(path or SHIPPED_PROFILES))["made_by"])


@lru_cache(maxsize=8)
def check_profile_tokenizer(path: str | None, tokenizer_spec: str) -> None:
    """Lengths of one tokenizer cannot stand for another's: the profile file must record `tokenizer_spec`'s
    vocabulary (by its fingerprint, else its file hash, else its name). InputError naming both otherwise."""
    from xlt_bench.data.lengths import tokenizer_identity
    from xlt_bench.data.tokenization import load_tokenizer
    made = profile_source(path)
    wanted = tokenizer_identity(tokenizer_spec, load_tokenizer(tokenizer_spec, tokenizer_spec))
    for key in ("tokenizer_vocab_sha256", "tokenizer_sha256"):
        if made.get(key) and wanted.get(key):
            if made[key] == wanted[key]:
                return
            break
    else:
        if Path(str(made.get("tokenizer"))).resolve() == Path(tokenizer_spec).resolve():
            return
    raise InputError(f"the length profiles were made with tokenizer '{made.get('tokenizer')}' "
                     f"({made.get('tokenizer_class')}, {made.get('tokenizer_vocab_size')} tokens), not with "
                     f"--tokenizer '{tokenizer_spec}' ({wanted.get('tokenizer_class')}, "
                     f"{wanted.get('tokenizer_vocab_size')} tokens): build profiles for it with `xlt-bench lengths "
                     f"--tokenizer {tokenizer_spec}`", file=str(path or SHIPPED_PROFILES), field="profiles")


def lengths_from_hist(hist: dict, n: int | None = None) -> np.ndarray:
    """Sorted lengths: the histogram itself when n is None or its count, else n evenly spaced quantiles of it."""
    values = np.array(sorted(int(k) for k in hist), dtype=np.int64)
    counts = np.array([int(hist[str(v)] if str(v) in hist else hist[v]) for v in values], dtype=np.int64)
    expanded = np.repeat(values, counts)
    if n is None or n == expanded.size:
        return expanded
    picks = np.floor((np.arange(n) + 0.5) * expanded.size / n).astype(np.int64)
    return expanded[np.minimum(picks, expanded.size - 1)]


def get_profile(task: TaskSpec, lang: str, path: str | None = None) -> dict:
    profiles = available_profiles(path)
    if (task.name, lang) in profiles:
        return profiles[(task.name, lang)]
    have = sorted(lang_ for task_, lang_ in profiles if task_ == task.name)
    if have:
        raise InputError(f"no shipped length profile for {task.name}/{lang}; profiles exist for: {', '.join(have)} "
                         f"(build others with `xlt-bench lengths`)", field="langs")
    tasks = sorted({task_ for task_, _ in profiles})
    raise InputError(f"no shipped length profiles for task '{task.name}' (synthetic data exists for "
                     f"{', '.join(tasks)}); use --data local:DIR or hf, or build one with `xlt-bench lengths`",
                     field="tasks")


def synthetic_encoded(task: TaskSpec, lang: str, n: int | None, *, vocab_size: int, pad_id: int, max_length: int,
                      seed: int, takes_token_types: bool, profile_path: str | None = None,
                      tokenizer: str | None = None) -> EncodedSet:
    """n examples (None: the profile's own count) of seeded ids with the profile's lengths, clipped to max_length.
    With `tokenizer` (the run's --tokenizer) the profiles must have been made by that tokenizer."""
    start = time.perf_counter()
    if tokenizer is not None:
        check_profile_tokenizer(profile_path, tokenizer)
    profile = get_profile(task, lang, profile_path)
    rng = np.random.default_rng([seed, zlib.crc32(f"{task.name}/{lang}".encode())])
    if "sides" in profile:
        lengths, example_index, sides = _retrieval_lengths(profile, n, rng)
        n_examples = len(example_index) // len(profile["sides"])
    else:
        per_example = profile["n_sequences"] / max(profile["n_examples"], 1)
        n_seq = profile["n_sequences"] if n is None else int(round(n * per_example))
        lengths = rng.permutation(lengths_from_hist(profile["hist"], n_seq))
        example_index = np.floor(np.arange(n_seq) / per_example).astype(np.int64)
        n_examples, sides = (profile["n_examples"] if n is None else n), {}
    n_truncated = int((lengths > max_length).sum())
    lengths = np.minimum(lengths, max_length)
    input_ids = _random_ids(rng, lengths, vocab_size, pad_id)
    types = _token_types(lengths, pair=task.kind in ("pair", "multiple_choice", "qa")) if takes_token_types else None
    notes = [f"synthetic ids reproducing the {task.name}/{lang} length profile ({profile_source(profile_path)['tokenizer']})"]
    if n_truncated:
        notes.append(f"{n_truncated} of {len(lengths)} sequences truncated to {max_length} tokens")
    return EncodedSet(task=task.name, lang=lang, kind=task.kind, input_ids=input_ids, token_type_ids=types,
                      example_index=example_index, labels=None, n_examples=n_examples, n_truncated=n_truncated,
                      tokenize_s=time.perf_counter() - start, notes=notes, synthetic=True, **sides)


def _retrieval_lengths(profile: dict, n: int | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """Each side reproduces its own histogram; side i's sequences follow side i-1's, as in tokenization.
    The dict holds the EncodedSet fields `side` and `sides`."""
    n_pairs = profile["n_examples"] if n is None else n
    order = rng.permutation(n_pairs)            # one shuffle for both sides keeps pairs of similar rank aligned
    parts = [lengths_from_hist(side["hist"], n_pairs)[order] for side in profile["sides"].values()]
    k = len(parts)
    sides = {"side": np.repeat(np.arange(k, dtype=np.int64), n_pairs), "sides": tuple(profile["sides"])}
    return np.concatenate(parts), np.tile(np.arange(n_pairs, dtype=np.int64), k), sides


def _random_ids(rng: np.random.Generator, lengths: np.ndarray, vocab_size: int, pad_id: int) -> list[np.ndarray]:
    flat = rng.integers(0, vocab_size - 1, size=int(lengths.sum()), dtype=np.int64)
    flat[flat >= pad_id] += 1                  # skip pad_id, stay below vocab_size
    return [part for part in np.split(flat, np.cumsum(lengths)[:-1])] if len(lengths) else []


def _token_types(lengths: np.ndarray, pair: bool) -> list[np.ndarray]:
    """Pairs: first half segment 0, second half segment 1 (the cost is the same whatever the split)."""
    out = []
    for length in lengths:
        types = np.zeros(int(length), dtype=np.int64)
        if pair:
            types[(int(length) + 1) // 2:] = 1
        out.append(types)
    return out


def fixed_shape_encoded(task: TaskSpec, lang: str, shape: tuple[int, int], *, vocab_size: int, pad_id: int,
                        seed: int, takes_token_types: bool) -> EncodedSet:
    """`--shape B,L`: B sequences of exactly L seeded ids (one padded shape, for comparison with other tools)."""
    start = time.perf_counter()
    rows, length = int(shape[0]), int(shape[1])
    rng = np.random.default_rng([seed, zlib.crc32(f"shape/{task.name}/{lang}/{rows}x{length}".encode())])
    lengths = np.full(rows, length, dtype=np.int64)
    per_example = 2 if task.kind in ("multiple_choice", "retrieval") else 1
    example_index = np.arange(rows, dtype=np.int64) // per_example
    sides: dict[str, Any] = {}
    if task.kind == "retrieval":      # sides alternate: pair i is sequences 2i (text) and 2i+1 (en)
        sides = {"side": np.arange(rows, dtype=np.int64) % 2, "sides": ("text", "en")}
    types = _token_types(lengths, pair=task.kind in ("pair", "multiple_choice", "qa")) if takes_token_types else None
    return EncodedSet(task=task.name, lang=lang, kind=task.kind, input_ids=_random_ids(rng, lengths, vocab_size, pad_id),
                      token_type_ids=types, example_index=example_index, labels=None,
                      n_examples=int(example_index[-1]) + 1 if rows else 0, n_truncated=0,
                      tokenize_s=time.perf_counter() - start, notes=[f"fixed shape {rows}x{length}, synthetic ids"],
                      synthetic=True, fixed_shape=(rows, length), **sides)
