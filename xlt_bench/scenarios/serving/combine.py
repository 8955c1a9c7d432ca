"""One (policy, offered load) row from the runs of its arrival seeds.

Rates and latencies are the geometric means of the per-seed values (the centre of the log-t interval that
`xlt_bench.core.stats.log_t_interval` puts around them); `achieved_qps`, `throughput_tok_s` and `latency_ms_p99` carry a
95% interval across seeds (`*_ci95`) and their per-seed values (`*_by_seed`). Counts and token totals are sums over
the seeds; shares are recomputed from the sums. With Poisson arrivals each seed draws new arrival times and new
requests, so an interval covers arrival and service noise; a trace replays the same arrivals and requests for every
repeat, so its interval covers service noise only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from xlt_bench.core.stats import log_t_interval
from xlt_bench.scenarios.serving.search import geometric_mean

GEOMETRIC = ("achieved_qps", "throughput_seq_s", "throughput_tok_s", "latency_ms_p50", "latency_ms_p90",
             "latency_ms_p99", "latency_ms_max")
WITH_INTERVAL = ("achieved_qps", "throughput_tok_s", "latency_ms_p99")
SUMMED = ("n_requests", "n_completed", "n_unfinished", "real_tokens", "padded_tokens", "n_batches")
AVERAGED = ("within_slo", "mean_queue_wait_ms", "mean_service_ms")


def combine_seeds(per_seed: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The row figures of one (policy, load) from `summarise` of each seed's run (in seed order)."""
    out: dict[str, Any] = {"n_seeds": len(per_seed)}
    for key in GEOMETRIC:
        out[key] = geometric_mean([s[key] for s in per_seed])
    for key in WITH_INTERVAL:
        values = [s[key] for s in per_seed]
        found = log_t_interval(values)
        out[f"{key}_ci95"] = [found[0], found[1]] if found else None
        out[f"{key}_by_seed"] = values
    for key in SUMMED:
        out[key] = int(sum(s[key] for s in per_seed))
    for key in AVERAGED:
        values = [s[key] for s in per_seed if s.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
    sustained = [not s["overloaded"] for s in per_seed]
    out.update(
        overloaded=not all(sustained), overloaded_by_seed=[s["overloaded"] for s in per_seed],
        padding_waste=1 - out["real_tokens"] / out["padded_tokens"] if out["padded_tokens"] else None,
        # every completed request sat in exactly one batch
        mean_batch_rows=out["n_completed"] / out["n_batches"] if out["n_batches"] else None,
        mean_batch_tokens=out["padded_tokens"] / out["n_batches"] if out["n_batches"] else None,
        latency_ms_p99_by_lang=_per_language(per_seed),
        batch_rows_histogram=_summed_histogram(per_seed),
        # each request's record gains the index of its seed
        requests=[record + [i] for i, s in enumerate(per_seed) for record in s["requests"]],
    )
    return out


def _per_language(per_seed: Sequence[dict[str, Any]]) -> dict[str, float]:
    langs = sorted({lang for s in per_seed for lang in s["latency_ms_p99_by_lang"]})
    return {lang: geometric_mean([s["latency_ms_p99_by_lang"][lang] for s in per_seed
                                  if lang in s["latency_ms_p99_by_lang"]]) for lang in langs}


def _summed_histogram(per_seed: Sequence[dict[str, Any]]) -> dict[str, int]:
    total: Counter = Counter()
    for s in per_seed:
        total.update({int(k): v for k, v in s["batch_rows_histogram"].items()})
    return {str(rows): n for rows, n in sorted(total.items())}
