"""Choose the gate's allowances from measured runs: false alarms on clean reruns against detection of planted
regressions, for each candidate allowance, with and without the rerun rule of `.ci/run`.

    # clean reruns and planted regressions of the CI workload (README "How the defaults were chosen"):
    for i in $(seq 1 20); do xlt-bench run --config benchmarks/ci.toml --cost-model results/baseline/results.json \
        --no-report --force --out results/calib/clean-$i; done
    for i in $(seq 1 6); do xlt-bench run ... --inject-slowdown 0.25 --out results/calib/uniform-$i; done
    python benchmarks/calibrate_gate.py --baseline results/baseline/results.json \
        --clean results/calib/clean-* --planted results/calib/uniform-*

A clean run that fails the gate is a false alarm; a planted run that passes is a miss. "With rerun" follows
.ci/run: a failing run is gated again together with the next run (run i+1 of the same set), and only a second
failure counts.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from xlt_bench.ci.gate import DEFAULT_CHECKS, KNOWN_METRICS, Check, compare_runs, metric_table
from xlt_bench.core.schema import ALL_LANGS, load_results

CANDIDATES = {"speedup": (0.10, 0.15, 0.20, 0.25, 0.30), "mfu": (0.10, 0.15, 0.20, 0.25, 0.30, 0.40)}


def fails(baseline: dict, runs: Sequence[dict], checks: Sequence[Check]) -> bool:
    return compare_runs(baseline, list(runs), checks).exit_code != 0


def failure_counts(baseline: dict, runs: Sequence[dict], checks: Sequence[Check]) -> tuple[int, int]:
    """(runs failing alone, runs still failing after one rerun with the next run of the set)."""
    alone = [fails(baseline, [run], checks) for run in runs]
    after_rerun = [bad and fails(baseline, [run, runs[(i + 1) % len(runs)]], checks)
                   for i, (run, bad) in enumerate(zip(runs, alone))]
    return sum(alone), sum(after_rerun)


def most_typical(paths: Sequence[str]) -> str:
    """The run whose gated values (speedup and MFU of the ALL rows) lie nearest the median of all the runs, in
    summed |log ratio|: a baseline that is neither a lucky nor an unlucky run."""
    tables = [metric_table(load_results(p)["rows"]) for p in paths]
    keys = [(m, k) for m in ("speedup", "mfu") for k in tables[0].get(m, {}) if k[2] == ALL_LANGS]
    medians = {mk: float(np.median([t[mk[0]][mk[1]] for t in tables])) for mk in keys}
    distance = [sum(abs(np.log(t[m][k] / medians[(m, k)])) for m, k in keys) for t in tables]
    return paths[int(np.argmin(distance))]


def single_metric_check(metric: str, allowance: float) -> Check:
    known = KNOWN_METRICS[metric]
    return Check(metric, allowance, known.higher_is_better, known.relative, known.aggregate_only)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="the baseline run [the most typical --clean run, which then leaves the "
                                           "clean set]")
    parser.add_argument("--clean", nargs="+", required=True, help="run directories of unchanged code")
    parser.add_argument("--planted", nargs="*", default=[], help="run directories with a planted regression")
    args = parser.parse_args(argv)
    if not args.baseline:
        args.baseline = most_typical(args.clean)
        args.clean = [p for p in args.clean if p != args.baseline]
        print(f"baseline: {args.baseline} (nearest the median of the clean runs)")
    baseline = load_results(args.baseline)
    clean = [load_results(p) for p in args.clean]
    planted = [load_results(p) for p in args.planted]
    print(f"{len(clean)} clean runs, {len(planted)} planted; counts are runs failing the gate "
          "(alone / after one rerun)")
    print(f"{'check':22s} {'false alarms':>14s} {'detected':>10s}")
    for metric, allowances in CANDIDATES.items():
        for allowance in allowances:
            checks = [single_metric_check(metric, allowance)]
            false_alone, false_rerun = failure_counts(baseline, clean, checks)
            hit = failure_counts(baseline, planted, checks) if planted else None
            shown = f"{hit[0]}/{hit[1]} of {len(planted)}" if hit else "-"
            print(f"{metric + ':' + format(allowance, '.0%'):22s} {f'{false_alone}/{false_rerun}':>10s} of "
                  f"{len(clean)} {shown:>10s}")
    false_alone, false_rerun = failure_counts(baseline, clean, DEFAULT_CHECKS)
    hit = failure_counts(baseline, planted, DEFAULT_CHECKS) if planted else None
    defaults = ", ".join(f"{c.metric} {c.describe()}" for c in DEFAULT_CHECKS)
    print(f"the default checks ({defaults}): false alarms {false_alone}/{false_rerun} of {len(clean)}"
          + (f", detected {hit[0]}/{hit[1]} of {len(planted)}" if hit else ""))


if __name__ == "__main__":
    main()
