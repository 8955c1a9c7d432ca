"""Export a run's aggregate numbers for trend charts.

github-action-benchmark (https://github.com/benchmark-action/github-action-benchmark) with `tool:
customBiggerIsBetter` reads a JSON list of {"name", "unit", "value", "extra"?}; every metric exported here is
one where bigger is better (its direction in core/catalogue.py), so one file serves all three. Units come from the
catalogue too, spelled as a trend chart shows them.
"""

from __future__ import annotations

from typing import Any

from xlt_bench.core.catalogue import METRICS
from xlt_bench.core.errors import InputError
from xlt_bench.core.schema import ALL_LANGS, ROW_KEY, row_key
from xlt_bench.core.stats import is_number
from xlt_bench.results.speedup import speedups

_BATCHING_AT = ROW_KEY.index("batching")

# The metrics each aggregate row exports, in order, and the label its entry's name ends with.
EXPORTED = {"throughput_tok_s": "throughput", "speedup": "speedup vs {reference}", "mfu": "MFU"}
# Catalogue units spelled out for a chart's axis.
SPELLED_UNITS = {"tok/s": "tokens/s"}
# A fraction is charted in percent of what it is a fraction of.
PERCENT_OF = {"mfu": "GEMM peak"}


def chart_unit(metric: str) -> tuple[str, float]:
    """The unit an exported metric is charted in, and the factor from its catalogue unit to that one."""
    unit = METRICS[metric].unit
    if unit == "fraction":
        return f"% of {PERCENT_OF[metric]}", 100.0
    return SPELLED_UNITS.get(unit, unit), 1.0


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
        name, extra = entry_name(row), _extra(doc, row)
        for metric, label in EXPORTED.items():
            # speedup is a ratio between rows (this row's own), the others are the row's own values
            value, reference = _own_speedup(row, ratios) if metric == "speedup" else (row.get(metric), None)
            if is_number(value):
                unit, factor = chart_unit(metric)
                entries.append({"name": f"{name} {label.format(reference=reference)}", "unit": unit,
                                "value": factor * float(value), "extra": extra})
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
