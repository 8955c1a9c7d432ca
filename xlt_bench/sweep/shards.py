"""Running one shard (a normal run directory) and knowing whether a shard is already done (resume)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from xlt_bench.core.config import RunConfig
from xlt_bench.core.errors import InputError


def shard_dir(out: Path, shard_id: str) -> Path:
    return Path(out) / "shards" / shard_id


def is_complete(directory: Path, shard_id: str) -> bool:
    """A shard is done when its results.json loads as a finished run whose configuration hashes to its id."""
    from xlt_bench.core.schema import load_results
    from xlt_bench.sweep.grid import config_hash
    try:
        doc = load_results(directory)
        return config_hash(RunConfig(**{k: _tuple(v) for k, v in doc["run"]["config"].items()})) == shard_id
    except (InputError, KeyError, TypeError):
        return False


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def run_shard(config: dict[str, Any], directory: str, shard_id: str, threads: int | None = None) -> dict[str, Any]:
    """Run one shard into `directory` (replacing an unfinished attempt). Importable by Ray workers and process
    pools. Returns its status and its results document: a worker's disk need not be the driver's (another node, or
    another working directory), so the rows travel back with the result (Ray's object store, the pool's pipe).
    `threads` caps the worker's threads where the shard's configuration leaves them unset (its core group)."""
    from xlt_bench.run.pipeline import run
    cfg = RunConfig(**{k: _tuple(v) for k, v in config.items()})
    if threads and cfg.threads is None:
        import torch
        torch.set_num_threads(threads)
    doc = run(cfg, Path(directory), force=True)
    return {"shard": shard_id, "host": socket.gethostname(), "status": "done",
            "document": {"run": doc["run"], "rows": doc["rows"]}}


def code_version(doc: dict[str, Any]) -> str | None:
    """The git sha (and '+dirty') a results document was measured at."""
    sha = doc.get("run", {}).get("git_sha")
    return f"{sha}{'+dirty' if doc['run'].get('git_dirty') else ''}" if sha else None

