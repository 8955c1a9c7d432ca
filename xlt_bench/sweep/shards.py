"""Running one shard (a normal run directory) and knowing whether a shard is already done (resume)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..errors import InputError


def shard_dir(out: Path, shard_id: str) -> Path:
    return Path(out) / "shards" / shard_id


def is_complete(directory: Path, shard_id: str) -> bool:
    """A shard is done when its results.json loads as a finished run whose configuration hashes to its id."""
    from ..schema import load_results
    from .grid import config_hash
    try:
        doc = load_results(directory)
        return config_hash(RunConfig(**{k: _tuple(v) for k, v in doc["run"]["config"].items()})) == shard_id
    except (InputError, KeyError, TypeError):
        return False


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def run_shard(config: dict[str, Any], directory: str, shard_id: str) -> dict[str, Any]:
    """Run one shard into `directory` (replacing an unfinished attempt). Importable by Ray workers and process
    pools; returns a small status, the rows stay on disk."""
    from ..pipeline import run
    cfg = RunConfig(**{k: _tuple(v) for k, v in config.items()})
    run(cfg, Path(directory), force=True)
    return {"shard": shard_id, "host": socket.gethostname(), "status": "done"}

