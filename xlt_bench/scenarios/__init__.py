"""Scenario registry: a scenario owns time and the arrival process; backends stay scenario-agnostic (DESIGN §5).

Names map to "module:Class" strings imported lazily, like the backend registry.
"""

from __future__ import annotations

import difflib
import importlib

from ..errors import InputError

SCENARIOS: dict[str, str] = {
    "offline": "xlt_bench.scenarios.offline:OfflineScenario",
    "server": "xlt_bench.scenarios.server:ServerScenario",
    "train": "xlt_bench.scenarios.train:TrainScenario",
}


def did_you_mean(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def get_scenario(name: str):
    if name not in SCENARIOS:
        raise InputError(f"unknown scenario '{name}'{did_you_mean(name, SCENARIOS)}; known: {', '.join(SCENARIOS)}",
                         field="scenario")
    module_name, class_name = SCENARIOS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise InputError(f"scenario '{name}' is not available in this build", field="scenario") from None
    return getattr(module, class_name)
