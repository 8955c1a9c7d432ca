"""The sweep grid: a TOML `[sweep]` table of lists expanded into shards, plus a normal `[run]` table of settings.

A shard is one (model, backend, dtype, device, scenario, threads) with all the run's tasks, languages and batching
strategies, so a model is built and a backend compiled once per shard, and ratios that must be measured side by
side (dynamic / static) always come from one shard on one host. Each shard is identified by a content hash of its
resolved configuration, which is what makes a sweep resumable.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xlt_bench.core.config import RunConfig, line_of, read_toml, run_values, type_problem
from xlt_bench.core.errors import InputError

# [sweep] key -> the RunConfig field each value fills. The first group splits shards; the second is passed whole
# to every shard (a list there is the run's own list).
SHARD_AXES = {"models": "model", "backends": "backends", "dtypes": "dtype", "devices": "device",
              "scenarios": "scenario", "threads": "threads"}
SHARED_LISTS = {"tasks": "tasks", "langs": "langs", "batching": "batching"}


@dataclass(frozen=True)
class Shard:
    id: str
    config: RunConfig
    axes: dict[str, Any]          # the grid values that made this shard

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.axes.items())


def load_sweep(path: str | Path) -> list[Shard]:
    doc, text = read_toml(path)
    grid = doc.get("sweep")
    if not isinstance(grid, dict):
        raise InputError("a sweep file needs a [sweep] table of lists", file=str(path), field="sweep")
    base = run_values(doc, text, str(path), extra_sections=("sweep",))
    axes, shared = {}, {}
    for key, value in grid.items():
        line = line_of(text, key)
        if key not in SHARD_AXES and key not in SHARED_LISTS:
            raise InputError(f"unknown key in [sweep]; known: {', '.join([*SHARD_AXES, *SHARED_LISTS])}",
                             file=str(path), line=line, field=f"sweep.{key}")
        if not isinstance(value, list) or not value:
            raise InputError("expected a non-empty list", file=str(path), line=line, field=f"sweep.{key}")
        field = {**SHARD_AXES, **SHARED_LISTS}[key]
        for item in value:
            problem = type_problem(field, [item] if field in ("backends", "dtype") else item)
            if problem:
                raise InputError(problem, file=str(path), line=line, field=f"sweep.{key}")
        if key in SHARD_AXES:
            axes[SHARD_AXES[key]] = value
        else:
            shared[SHARED_LISTS[key]] = value
    return expand(base, axes, shared, source=str(path))


def expand(run_values: dict[str, Any], axes: dict[str, list], shared: dict[str, list],
           source: str = "sweep") -> list[Shard]:
    """Every combination of the shard axes, each a RunConfig (validated: a bad value names its key)."""
    names = list(axes)
    shards, seen = [], set()
    for combo in itertools.product(*(axes[n] for n in names)):
        values = {**run_values, **shared, **dict(zip(names, combo))}
        for single in ("backends", "dtype"):
            if single in dict(zip(names, combo)):
                values[single] = [values[single]]
        cfg = RunConfig(source=source, **values)
        shard_id = config_hash(cfg)
        if shard_id not in seen:
            seen.add(shard_id)
            shards.append(Shard(shard_id, cfg, dict(zip(names, combo))))
    if not shards:
        raise InputError("the grid expands to zero shards", file=source, field="sweep")
    return shards


def config_hash(cfg: RunConfig) -> str:
    """Content hash of a resolved run configuration: the shard's identity for resume."""
    text = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
