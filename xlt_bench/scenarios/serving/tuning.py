"""Tuning the server policies on data that is not measured afterwards, with the same budget for every policy.

- The sequence pool is split per language (seeded): a held-out share fits what is fitted to lengths (the
  length-bucketed policy's bucket edges); requests, for tuning and for measurement, are drawn from the rest.
- Every tunable policy tries `policies.TRIALS` settings (`Policy.trial_settings`) at one tuning load, on one arrival
  seed that no measurement uses, for the same duration; the setting with the fewest unfinished requests, then the
  lowest p99 latency, is kept. Options given in a `[policy.<name>]` table are used as they are, untuned.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

FIT_SHARE = 1 / 3         # of each language's sequences, held out to fit bucket edges
TUNING_SEED_INDEX = 10_000   # an arrival-seed index no measurement uses (measurements use 0 .. seeds-1)


def held_out_split(langs: Sequence[str], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit indices, serve indices) of the pool: per language a seeded FIT_SHARE (rounded up) is held out, as long
    as the language keeps at least two sequences to serve; otherwise all of it serves."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    langs_arr = np.asarray(langs)
    fit: list[int] = []
    for lang in dict.fromkeys(langs):
        members = np.flatnonzero(langs_arr == lang)
        n_fit = int(np.ceil(len(members) * FIT_SHARE))
        if len(members) - n_fit >= 2:
            fit.extend(rng.permutation(members)[:n_fit].tolist())
    fit_idx = np.array(sorted(fit), dtype=np.int64)
    serve_idx = np.setdiff1d(np.arange(len(langs)), fit_idx)
    return fit_idx, serve_idx


def choose(policy: str, trials: Sequence[dict[str, Any]], results: Sequence[dict[str, Any]],
           load: float) -> dict[str, Any]:
    """Keep the best of the trial settings, given each one's `summarise` figures (same order). Returns the record
    the run keeps: the load, each trial's setting and score, the chosen setting."""
    scored = [{"options": options, "n_unfinished": stats["n_unfinished"], "latency_ms_p99": stats["latency_ms_p99"],
               "achieved_qps": stats["achieved_qps"]} for options, stats in zip(trials, results)]
    best = min(range(len(scored)), key=lambda i: (scored[i]["n_unfinished"], scored[i]["latency_ms_p99"]))
    return {"policy": policy, "load_qps": load, "trials": scored, "chosen": scored[best]["options"]}
