"""`xlt-bench sweep`: expand, skip finished shards (resume), execute, merge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xlt_bench.core.errors import InputError
from xlt_bench.run.preflight import estimate_flops
from xlt_bench.core.schema import load_results
from xlt_bench.sweep.grid import Shard, load_sweep
from xlt_bench.sweep.merge import merge
from xlt_bench.sweep.shards import code_version, is_complete, shard_dir


def sweep(config: str, out: Path, executor: str = "local", address: str | None = None, workers: int = 1,
          dry_run: bool = False, say=print) -> dict[str, Any] | None:
    shards = load_sweep(config)
    if executor not in ("local", "ray"):
        raise InputError(f"'{executor}' is not local or ray", field="executor")
    if dry_run:
        for line in dry_run_lines(shards):
            say(line)
        return None
    out = Path(out)
    status: dict[str, dict[str, Any]] = {}
    todo = []
    now = _code_version()
    for shard in shards:
        if is_complete(shard_dir(out, shard.id), shard.id):
            status[shard.id] = {"status": "skipped (complete)"}
            then = code_version(load_results(shard_dir(out, shard.id)))
            if then != now:
                note = (f"shard {shard.id} ({shard.label}) was measured at code version {then or 'unknown'}, this "
                        f"is {now or 'unknown'}: kept; delete {shard_dir(out, shard.id)} to measure it again")
                status[shard.id]["code_version_note"] = note
                say(f"sweep: {note}")
        else:
            todo.append(shard)
    say(f"sweep: {len(shards)} shards, {len(shards) - len(todo)} already complete, {len(todo)} to run "
        f"({executor})")

    def report(shard: Shard, result: dict[str, Any]) -> None:
        status[shard.id] = result
        if result.get("status") == "failed":
            say(f"sweep: shard {shard.id} ({shard.label}) failed: {result.get('error')}")

    if todo:
        if executor == "ray":
            from xlt_bench.sweep.executors import run_ray
            run_ray(todo, out, report, address)
        else:
            from xlt_bench.sweep.executors import run_local
            run_local(todo, out, report, workers)
    return merge(shards, out, status, str(config))


def _code_version() -> str | None:
    from xlt_bench.core.env import git_state
    sha, dirty = git_state(Path(__file__).resolve().parents[2])
    return f"{sha}{'+dirty' if dirty else ''}" if sha else None


def dry_run_lines(shards: list[Shard]) -> list[str]:
    """The shards and an estimate of their cost: analytic FLOPs of every pass over the shipped length profiles, and
    the whole run `run --dry-run` would predict for each (timed passes and start-up: model build, export, probes)."""
    from xlt_bench.run.estimate import estimate_run
    from xlt_bench.run.preflight import backend_dtype_pairs
    lines = [f"{len(shards)} shard(s):"]
    flops_total = seconds_total = 0.0
    for shard in shards:
        flops = estimate_flops(shard.config)
        seconds = estimate_run(shard.config, backend_dtype_pairs(shard.config)).seconds
        flops_total, seconds_total = flops_total + flops, seconds_total + seconds
        lines.append(f"  {shard.id}  {shard.label:<60} ~{flops:.2e} FLOP  ~{seconds:.0f} s")
    lines.append(f"total ~{flops_total:.2e} FLOP, ~{seconds_total:.0f} s one shard after another (each shard's "
                 "timed passes, from analytic forward FLOPs over the shipped length profiles / (GEMM rate measured "
                 "now x the baseline's efficiency), plus its start-up: GEMM peaks, model build, export, probe, "
                 "warm-up)")
    return lines
