"""Scenario registry: a scenario owns time and the arrival process; backends stay scenario-agnostic (DESIGN §5).

Names map to "module:Class" strings imported lazily, like the backend registry.
"""

from __future__ import annotations

from xlt_bench.core.registry import Registry

SCENARIOS = Registry("scenario", "scenario", {
    "offline": "xlt_bench.scenarios.offline:OfflineScenario",
    "server": "xlt_bench.scenarios.server:ServerScenario",
    "train": "xlt_bench.scenarios.train:TrainScenario",
}, base="xlt_bench.scenarios.base:Scenario")


def get_scenario(name: str):
    return SCENARIOS.get(name)
