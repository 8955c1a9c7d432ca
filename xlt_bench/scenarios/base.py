"""The scenario contract: what every scenario is given and what it returns.

A scenario decides when inputs arrive and how they are grouped and timed (offline: everything known up front;
server: requests arriving at an offered load; train: optimisation steps). It drives a loaded backend through the
backend contract (prepare / forward / fetch / synchronize) and returns rows; it never loads models or writes files.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from xlt_bench.backends.base import Backend
from xlt_bench.batching.planners import CostModel
from xlt_bench.core.config import RunConfig
from xlt_bench.core.flops import EncoderShape
from xlt_bench.backends.models import ModelBundle
from xlt_bench.measure.trackers import RssWindow
from xlt_bench.data.workload import Workload


class StageClock:
    """Wall seconds per stage of the whole run, so the report can show where a run's time went beyond the timed
    region (model build, export, peaks, cost probes, warm-up), and the peak RSS within each stage (the largest over
    its occurrences: which stage sets the run's memory high-water mark)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.rss_mb: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        window = RssWindow()
        try:
            with window:
                yield
        finally:
            self.seconds[stage] += time.perf_counter() - start
            if window.peak_mb:
                self.rss_mb[stage] = max(self.rss_mb.get(stage, 0.0), window.peak_mb)


@dataclass
class ScenarioContext:
    cfg: RunConfig
    bundle: ModelBundle
    flops_shape: EncoderShape    # analytic FLOPs of this model and head
    workload: Workload           # the task's encoded languages
    clock: StageClock
    cost: CostModel | None       # the backend's measured batch cost model (None when nothing needs it)
    run_meta: dict[str, Any]     # results.json "run" section
    budget: int | None = None    # dynamic token budget, padding counted (--max-tokens or the probe's 'auto')
    say: Callable[[str], None] = print
    warmed: set[tuple[int, int]] = field(default_factory=set)  # padded shapes this backend has run already
    # The cost model, budget and "backend/dtype" of the run's first backend: what batching 'dynamic-shared' plans with.
    shared_plan: tuple[CostModel | None, int | None, str] | None = None


Outputs = dict[tuple, list[np.ndarray]]


class Scenario(ABC):
    name: ClassVar[str]
    # Backends must declare `trainable = True` to be driven by a scenario that sets this.
    trainable: ClassVar[bool] = False
    # Whether rows of this scenario feed accuracy/agreement (outputs returned from run()).
    evaluates: ClassVar[bool] = False
    # Whether the task's backends are loaded together and handed to run_together() (their passes interleaved),
    # instead of loaded one at a time and handed to run().
    interleaves_backends: ClassVar[bool] = False

    def check(self, cfg: RunConfig, backend_names: Sequence[str]) -> None:
        """Refuse bad option combinations (InputError) before anything is measured."""

    def needs_cost_model(self, cfg: RunConfig) -> bool:
        """Whether run() wants ctx.cost (a start-up probe of the backend)."""
        from xlt_bench.batching.strategies import needs_cost_model
        return needs_cost_model(cfg.batching)

    @abstractmethod
    def run(self, ctx: ScenarioContext, backend: Backend) -> tuple[list[dict[str, Any]], Outputs]:
        """Rows (each with row["scenario"] = self.name) and per-configuration outputs for evaluation."""

    def aggregate(self, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The lang = "ALL" rows of this scenario's per-language rows."""
        from xlt_bench.results.rows import all_rows
        return all_rows(rows)
