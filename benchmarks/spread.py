"""Run-to-run spread of every gated metric over repeated runs of one configuration: how the gate's default
thresholds were chosen, and how to re-choose them for your own CI machines.

    for i in 1 2 3 4; do xlt-bench run --config benchmarks/ci.toml --out results/spread/$i --no-report; done
    python benchmarks/spread.py results/spread/*

For each metric and key it prints the worst worsening the gate would have seen taking any run as baseline and any
other as current: (max - min) / max for higher-is-better ratios, (max - min) / min for lower-is-better ones, and
max - min for absolute checks. A default threshold must sit well above the largest of these.
"""

from __future__ import annotations

import sys
from collections import defaultdict

from xlt_bench.ci.gate import KNOWN_METRICS, metric_table
from xlt_bench.core.schema import ALL_LANGS, ROW_KEY, load_results


def worst_worsening(values: list[float], metric: str) -> float:
    check = KNOWN_METRICS[metric]
    lo, hi = min(values), max(values)
    if not check.relative:
        return hi - lo
    base = hi if check.higher_is_better else lo
    return (hi - lo) / abs(base) if base else 0.0


def spread(paths: list[str]) -> dict[str, dict[str, tuple[float, str]]]:
    """{metric: {"ALL"|"per-lang": (largest worst-case worsening, its key)}}."""
    tables = [metric_table(load_results(p)["rows"]) for p in paths]
    out: dict[str, dict[str, tuple[float, str]]] = defaultdict(dict)
    for metric in KNOWN_METRICS:
        keys = set.intersection(*(set(t.get(metric, {})) for t in tables))
        for key in sorted(keys):
            scope = "ALL" if key[ROW_KEY.index("lang")] == ALL_LANGS else "per-lang"
            value = worst_worsening([t[metric][key] for t in tables], metric)
            if value >= out[metric].get(scope, (-1.0, ""))[0]:
                out[metric][scope] = (value, "/".join(key))
    return out


def main(paths: list[str]) -> None:
    if len(paths) < 2:
        sys.exit("usage: python benchmarks/spread.py RUN_DIR RUN_DIR [RUN_DIR ...]")
    print(f"{len(paths)} runs; worst worsening between any two runs (the gate's default allowance in brackets)")
    for metric, scopes in spread(paths).items():
        check = KNOWN_METRICS[metric]
        for scope, (value, key) in sorted(scopes.items()):
            shown = f"{value:.1%}" if check.relative else f"{value:.4f}"
            print(f"  {metric:18s} {scope:8s} {shown:>8s}  [{check.describe()}]  at {key}")


if __name__ == "__main__":
    main(sys.argv[1:])
