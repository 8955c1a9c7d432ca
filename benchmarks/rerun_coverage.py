"""Do the speedup intervals hold up on a rerun? Runs one offline configuration twice (or reads two finished runs)
and reports the share of run 2's per-language speedups that fall inside run 1's 95% intervals, and the share of
languages whose two intervals overlap.

    python benchmarks/rerun_coverage.py --out results/rerun        # two runs of the default small config
    python benchmarks/rerun_coverage.py --model mini-xlmr --limit 64 --backends eager,onnxruntime --out results/rerun
    python benchmarks/rerun_coverage.py --runs results/a results/b  # two runs made already

How to read it: a 95% interval for run 1's speedup covers the *true* speedup 95% of the time; run 2's estimate is
itself noisy, so even perfectly calibrated intervals hold it less often (about 83% when both runs have the same
spread, since the difference of two estimates has sqrt(2) times the spread of one). A share far below that, or far
below 83% while the two runs' intervals rarely overlap, means the runs drift apart more than their passes show
(load that changed between the runs, a different budget or partition chosen by the probe).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from xlt_bench.core.schema import ALL_LANGS, load_results

# About 83% of a rerun's estimates fall in a calibrated 95% interval of equal width (P(|Z| < 1.96 / sqrt(2))).
EXPECTED_RERUN_SHARE = 0.83


def per_language_speedups(doc: dict[str, Any]) -> dict[tuple, tuple[float, list[float] | None]]:
    """(task, lang, backend, dtype, batching) -> (speedup, speedup_ci95) of every non-reference per-language row."""
    return {(r["task"], r["lang"], r["backend"], r["dtype"], r["batching"]): (r["speedup"], r.get("speedup_ci95"))
            for r in doc["rows"] if r["lang"] != ALL_LANGS and r.get("speedup") is not None}


def coverage(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    a, b = per_language_speedups(first), per_language_speedups(second)
    common = [k for k in a if k in b and a[k][1] and b[k][1]]
    inside = [k for k in common if a[k][1][0] <= b[k][0] <= a[k][1][1]]
    overlap = [k for k in common if a[k][1][0] <= b[k][1][1] and b[k][1][0] <= a[k][1][1]]
    outside = [{"key": "/".join(k), "run1": a[k], "run2": b[k]} for k in common if k not in inside]
    return {"compared": len(common), "inside_share": len(inside) / len(common) if common else None,
            "overlap_share": len(overlap) / len(common) if common else None,
            "expected_inside_share": EXPECTED_RERUN_SHARE, "outside": outside}


def _run_twice(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run 2 plans with run 1's cost models and budgets (unless --reprobe), so both time the same partitions and
    the comparison is about timing noise, not about a different plan."""
    from xlt_bench.core.config import RunConfig
    from xlt_bench.run.pipeline import run
    out = Path(args.out)
    settings = dict(model=args.model, tasks=tuple(args.tasks.split(",")), langs=tuple(args.langs.split(",")),
                    limit=args.limit, backends=tuple(args.backends.split(",")), batching=("static", "dynamic"),
                    threads=args.threads, min_repeats=args.repeats, source="rerun_coverage.py")
    first = run(RunConfig(**settings), out / "run1", force=True)
    reuse = {} if args.reprobe else {"cost_model_file": str(out / "run1" / "results.json")}
    return [first, run(RunConfig(**settings, **reuse), out / "run2", force=True)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", nargs=2, metavar="RUN_DIR", help="compare two finished runs instead of running")
    p.add_argument("--out", default="results/rerun-coverage", help="where the two runs are written")
    p.add_argument("--model", default="tiny-xlmr")
    p.add_argument("--tasks", default="xnli")
    p.add_argument("--langs", default="en,de,th,zh,ar,hi,sw,ru")
    p.add_argument("--limit", type=int, default=48)
    p.add_argument("--backends", default="eager")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--reprobe", action="store_true", help="run 2 probes its own cost model (and may plan otherwise)")
    args = p.parse_args(argv)
    docs = [load_results(Path(d)) for d in args.runs] if args.runs else _run_twice(args)
    result = coverage(*docs)
    json.dump(result, sys.stdout, indent=1, default=str)
    print()
    share = result["inside_share"]
    if share is not None:
        print(f"run 2 inside run 1's 95% intervals: {share:.0%} of {result['compared']} per-language speedups "
              f"(intervals overlap: {result['overlap_share']:.0%}; about {EXPECTED_RERUN_SHARE:.0%} expected of "
              "calibrated intervals)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
