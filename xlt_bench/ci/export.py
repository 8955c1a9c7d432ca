"""Export a run's aggregate numbers for trend charts.

github-action-benchmark (https://github.com/benchmark-action/github-action-benchmark) with `tool:
customBiggerIsBetter` reads a JSON list of {"name", "unit", "value", "extra"?}; every metric exported here is
one where bigger is better, so one file serves all three.
"""

from __future__ import annotations

from typing import Any

from xlt_bench.core.errors import InputError
from xlt_bench.core.schema import ALL_LANGS, ROW_KEY, row_key
from xlt_bench.results.speedup import speedups
from xlt_bench.core.stats import is_number

_BATCHING_AT = ROW_KEY.index("batching")


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
    """One entry per aggregate row (lang=ALL) and metric: throughput_tok_s, speedup over the reference batching
    of the same run (non-reference strategies only) and MFU (in percent of the same-run GEMM peak).
    Metrics that were not measured (null) are left out rather than exported as zero. In a merged sweep each
    row's speedup is its own shard's ratio, and names carry the model and shard so that they never collide."""
    aggregates = [r for r in doc.get("rows", []) if r.get("lang") == ALL_LANGS]
    ratios = speedups(aggregates)
    entries: list[dict[str, Any]] = []
    for row in aggregates:
        name = entry_name(row)
        extra = _extra(doc, row)
        if is_number(row.get("throughput_tok_s")):
            entries.append({"name": f"{name} throughput", "unit": "tokens/s",
                            "value": float(row["throughput_tok_s"]), "extra": extra})
        ratio, reference = _own_speedup(row, ratios)
        if ratio is not None:
            entries.append({"name": f"{name} speedup vs {reference}", "unit": "x", "value": ratio, "extra": extra})
        if is_number(row.get("mfu")):
            entries.append({"name": f"{name} MFU", "unit": "% of GEMM peak",
                            "value": 100.0 * float(row["mfu"]), "extra": extra})
    _check_unique(entries)
    return entries


def entry_name(row: dict[str, Any]) -> str:
    """task/backend/dtype/batching for a single run (names stay stable across runs for trend charts); a sweep's
    row is prefixed with its model and suffixed with its shard, a server row with its offered load."""
    batching = row.get("policy") if row.get("policy") is not None else row.get("batching")
    name = "/".join(str(v) for v in (row["task"], row["backend"], row["dtype"], batching))
    if row.get("shard"):
        name = f"{row.get('model')}/{name} [shard {row['shard']}]"
    if row.get("offered_qps") is not None:
        name += f" @{row['offered_qps']:g}qps"
    return name


def _own_speedup(row: dict[str, Any], ratios: dict[tuple[str, ...], float]) -> tuple[float | None, str | None]:
    """The ratio whose key is this row's own key (same shard, same load): never a neighbour's."""
    own = row_key(row)
    for key, ratio in ratios.items():
        batching, _, reference = key[_BATCHING_AT].partition("/")
        if key[:_BATCHING_AT] + (batching,) + key[_BATCHING_AT + 1:] == own:
            return ratio, reference
    return None, None


def _check_unique(entries: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for entry in entries:
        if entry["name"] in seen:
            raise InputError(f"two rows export under the same name '{entry['name']}' (rows not told apart by "
                             "task, backend, dtype, batching, model, shard and load)", field="rows")
        seen.add(entry["name"])
