"""`xlt-bench study NAME`: one command per research question of DESIGN §1, each writing study.md and study.html
whose first paragraph states the answer with its interval, or why the inputs cannot answer it.

Studies are registered by name as lazy "module:Class" strings, so listing them imports nothing heavy.
"""

from __future__ import annotations

from xlt_bench.core.registry import Registry

STUDIES = Registry("study", "study", {
    "batching": "xlt_bench.study.batching:BatchingStudy",
    "resource": "xlt_bench.study.resource:ResourceStudy",
    "models": "xlt_bench.study.models:ModelsStudy",
    "alignment": "xlt_bench.study.alignment:AlignmentStudy",
    "train-cost": "xlt_bench.study.train_cost:TrainCostStudy",
}, base="xlt_bench.study.base:Study")


def study_names() -> tuple[str, ...]:
    return STUDIES.names()


def get_study(name: str):
    """The study class registered as `name`; an unknown name is bad input (exit 2) with a did-you-mean."""
    return STUDIES.get(name)
