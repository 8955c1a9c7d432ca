"""What the small commands print: `run --print-config` (the resolved configuration as TOML), `tasks`, `langs` and
the header `compare` writes to stderr. The commands gather the data; the text is built here."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def config_toml(config: dict[str, Any]) -> str:
    """A resolved configuration (RunConfig.to_dict()) as a TOML file `--config` accepts (unset options as
    comments, each server policy's options as its own [policy.NAME] table)."""
    lines, tables = ["[run]"], []
    for key, value in config.items():
        if key == "policy_options":
            tables += [f"\n[policy.{name}]" + "".join(f"\n{k} = {json.dumps(v)}" for k, v in opts.items())
                       for name, opts in value.items()]
        elif value is None:
            lines.append(f"# {key} = (unset)")
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines + tables)


def task_listing(tasks: Iterable[dict[str, Any]]) -> list[str]:
    """Two lines per task: name, kind, language count and source; then its language codes."""
    lines = []
    for t in tasks:
        lines.append(f"{t['name']:<9} {t['kind']:<16} {len(t['languages']):>2} langs  {t.get('source', '')}")
        lines.append(f"          {' '.join(t['languages'])}")
    return lines


def language_listing(frame, group_by: str | None) -> list[str]:
    """The language metadata table, or one line of codes per group; resource classes are named (Joshi et al.
    2020's classes: 0 left-behind ... 5 winners, by labelled resources and unlabelled text)."""
    if not group_by:
        return [frame.to_string(index=False)]
    from xlt_bench.report.tables import RESOURCE_CLASS_NAMES
    names = RESOURCE_CLASS_NAMES if group_by == "resource_class" else {}
    return [f"{names.get(str(group), group)}: {' '.join(codes)}"
            for group, codes in frame.groupby(group_by)["lang"]]


def compare_header(run_a: str, run_b: str) -> str:
    """Which run is the baseline: every ratio of the comparison is B ÷ A."""
    return f"baseline (A): {run_a}\ncompared (B): {run_b}\nratios are B ÷ A"
