"""Executors: `local` (in this process, or a process pool with --workers) and `ray` (a Ray cluster: each shard a
task asking for its threads as CPUs, or a GPU; retried when a worker dies).

A shard whose configuration leaves `threads` unset gets a core group of its own instead of every core: the
machine's cores divided by the pool's workers, or one Ray node's CPUs, so that shards never oversubscribe cores.
Every shard's results document comes back with its result, never through the driver's filesystem."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from xlt_bench.core.errors import InputError
from xlt_bench.core.progress import bar as progress_bar
from xlt_bench.sweep.grid import Shard
from xlt_bench.sweep.shards import is_complete, run_shard, shard_dir

Report = Callable[[Shard, dict[str, Any]], None]
RETRIES = 2


def run_local(shards: Sequence[Shard], out: Path, report: Report, workers: int = 1,
              worker_cwd: str | None = None) -> None:
    """`worker_cwd`: each pool worker runs in a fresh directory of its own under it (as a cluster's nodes, which
    share no working directory with the driver)."""
    bar = progress_bar(total=len(shards), desc="sweep shards", unit="shard")
    if workers <= 1:
        for shard in shards:
            report(shard, _attempt(shard, out))
            bar.update()
        return
    todo = list(shards)
    for round_ in range(RETRIES + 1):   # a worker that dies breaks the pool: its lost shards go to a fresh one
        todo = _pool_round(todo, out, report, workers, bar, last=round_ == RETRIES, worker_cwd=worker_cwd)
        if not todo:
            return


def _pool_round(shards: Sequence[Shard], out: Path, report: Report, workers: int, bar, last: bool,
                worker_cwd: str | None = None) -> list[Shard]:
    """Run shards in a process pool; returns those lost to a dead worker (reported as failed on the last round)."""
    lost = []
    group = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                             initializer=_enter_own_directory if worker_cwd else None,
                             initargs=(worker_cwd,) if worker_cwd else ()) as pool:
        futures = {pool.submit(_attempt, shard, out, threads=group): shard for shard in shards}
        for future in as_completed(futures):
            shard = futures[future]
            try:
                result = future.result()
            except BrokenProcessPool as exc:
                if is_complete(shard_dir(out, shard.id), shard.id):   # finished before the pool broke
                    result = {"shard": shard.id, "status": "done"}
                elif not last:
                    lost.append(shard)
                    continue
                else:
                    result = {"shard": shard.id, "status": "failed", "error": f"worker died: {exc}"}
            report(shard, result)
            bar.update()
    return lost


def _enter_own_directory(base: str) -> None:
    os.chdir(tempfile.mkdtemp(prefix="worker-", dir=base))


def _attempt(shard: Shard, out: Path, tries: int = RETRIES + 1, threads: int | None = None) -> dict[str, Any]:
    """Run a shard, retrying a failure (bounded); a shard with bad input is not retried."""
    error = None
    group = {"threads": threads} if threads and shard.config.threads is None else {}
    for attempt in range(1, tries + 1):
        try:
            result = run_shard(shard.config.to_dict(), str(shard_dir(out, shard.id)), shard.id, **group)
            return {**result, "attempts": attempt}
        except InputError as exc:
            return {"shard": shard.id, "status": "failed", "error": f"InputError: {exc}", "attempts": attempt}
        except Exception as exc:  # noqa: BLE001 - a shard's failure is recorded, the sweep goes on
            error = f"{exc.__class__.__name__}: {exc}"
    return {"shard": shard.id, "status": "failed", "error": error, "attempts": tries}


def run_ray(shards: Sequence[Shard], out: Path, report: Report, address: str | None) -> None:
    ray = _import_ray()
    _check_address(address)
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    remote = ray.remote(_ray_shard)
    pending = {}
    group = _node_cpus(ray)
    for shard in shards:
        threads = shard.config.threads or group
        resources = ({"num_gpus": 1, "num_cpus": 1} if shard.config.device == "cuda" else {"num_cpus": threads})
        # max_retries: Ray reruns the task when its worker process dies (OOM kill, crash, lost node).
        ref = remote.options(max_retries=RETRIES, retry_exceptions=False, **resources).remote(
            shard.config.to_dict(), str(shard_dir(out, shard.id)), shard.id, threads)
        pending[ref] = shard
    bar = progress_bar(total=len(shards), desc="sweep shards (ray)", unit="shard")
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        shard = pending.pop(done[0])
        try:
            result = ray.get(done[0])
        except Exception as exc:  # noqa: BLE001 - e.g. WorkerCrashedError after the retries
            result = {"shard": shard.id, "status": "failed", "error": f"{exc.__class__.__name__}: {exc}"}
        report(shard, result)
        bar.update()


def _node_cpus(ray) -> int:
    """The CPUs of the smallest live node: a shard without a thread count takes a whole node's cores."""
    cpus = [int(node.get("Resources", {}).get("CPU", 0)) for node in ray.nodes() if node.get("Alive")]
    return max(1, min((c for c in cpus if c), default=1))


def _ray_shard(config: dict[str, Any], directory: str, shard_id: str, threads: int | None = None) -> dict[str, Any]:
    try:
        return run_shard(config, directory, shard_id, threads)
    except InputError as exc:   # bad input: no retry, report it
        return {"shard": shard_id, "status": "failed", "error": f"InputError: {exc}"}


def _import_ray():
    try:
        import ray
    except ImportError:
        raise InputError("--executor ray needs Ray; install it with: pip install 'xlt-bench[ray]'",
                         field="executor") from None
    return ray


def _check_address(address: str | None, timeout_s: float = 3.0) -> None:
    """An unreachable HOST:PORT is an error within seconds (ray.init would wait much longer)."""
    if address in (None, "auto", "local") or ":" not in address:
        return
    host, _, port = address.replace("ray://", "").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot reach a Ray cluster at {address} ({exc})", field="address") from None
