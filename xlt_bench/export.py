"""Export a run's aggregate numbers for trend charts.

github-action-benchmark (https://github.com/benchmark-action/github-action-benchmark) with `tool:
customBiggerIsBetter` reads a JSON list of {"name", "unit", "value", "extra"?}; every metric exported here is
one where bigger is better, so one file serves all three.
"""

from __future__ import annotations

from typing import Any

from .schema import ALL_LANGS
from .speedup import speedups
from .stats import is_number


def _extra(doc: dict[str, Any], row: dict[str, Any]) -> str:
    run = doc.get("run") or {}
    env = run.get("env") or {}
    parts = [f"model {row.get('model')}", f"device {row.get('device')}",
             f"real_tokens {row.get('real_tokens')}", f"padding_waste {_round(row.get('padding_waste'))}"]
    if run.get("git_sha"):
        parts.append(f"git {str(run['git_sha'])[:12]}{'+dirty' if run.get('git_dirty') else ''}")
    cpu = env.get("cpu_model") or env.get("cpu")
    if cpu:
        parts.append(f"cpu {cpu}")
    return "; ".join(parts)


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def github_action_benchmark(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per (task, lang=ALL, backend, dtype, batching) and metric: throughput_tok_s, speedup over
    static batching (non-static strategies only) and MFU (in percent of the same-run GEMM peak).
    Metrics that were not measured (null) are left out rather than exported as zero."""
    aggregates = [r for r in doc.get("rows", []) if r.get("lang") == ALL_LANGS]
    ratios = speedups(aggregates)
    entries: list[dict[str, Any]] = []
    for row in aggregates:
        name = "/".join(str(row[k]) for k in ("task", "backend", "dtype", "batching"))
        extra = _extra(doc, row)
        if is_number(row.get("throughput_tok_s")):
            entries.append({"name": f"{name} throughput", "unit": "tokens/s",
                            "value": float(row["throughput_tok_s"]), "extra": extra})
        for key, ratio in ratios.items():
            scenario, task, _lang, backend, dtype, pair = key[:6]
            if (scenario, task, backend, dtype) == (row.get("scenario", "offline"), row["task"], row["backend"],
                                                    row["dtype"]) and pair.split("/")[0] == row["batching"]:
                entries.append({"name": f"{name} speedup vs {pair.split('/')[1]}", "unit": "x",
                                "value": ratio, "extra": extra})
        if is_number(row.get("mfu")):
            entries.append({"name": f"{name} MFU", "unit": "% of GEMM peak",
                            "value": 100.0 * float(row["mfu"]), "extra": extra})
    return entries


