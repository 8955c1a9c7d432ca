"""Options checked against each other, one rule for all: two options that ask for incompatible things are an error
(exit 2); an option that has no effect on this run is a warning. Both name the option, and file:line:key when it
came from a TOML file. Also the server policies' `[policy.NAME]` tables: known policy, known keys, right types.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

from xlt_bench.core.errors import InputError
from xlt_bench.core.registry import registry_of

log = logging.getLogger("xlt_bench")

SERVER_OPTIONS = ("qps", "duration", "slo_ms", "arrival_seeds", "policy", "trace", "policy_options")


def check_options(cfg) -> None:
    """Raise InputError on contradicting options; log a warning per option that this run ignores."""
    if cfg.cost_model_file and not cfg.cost_model:
        _fail(cfg, "cost_model", "--no-cost-model (plan without a cost model) contradicts --cost-model FILE (plan "
                                 "with a stored one); give one of them")
    if cfg.shape is not None and cfg.data != "synthetic":
        _fail(cfg, "shape", f"--shape runs synthetic batches of one shape and reads no data; it contradicts --data "
                            f"{cfg.data}: drop one of them")
    for warning in ignored_options(cfg):
        log.warning("%s", warning)


def ignored_options(cfg) -> list[str]:
    """One line per option set away from its default that this run does not use."""
    from xlt_bench.core.config import RunConfig
    defaults = RunConfig()
    out = []
    if cfg.scenario != "server":
        changed = [name for name in SERVER_OPTIONS if getattr(cfg, name) != getattr(defaults, name)]
        if changed:
            out.append(f"{_where(cfg, changed[0])}server option(s) {', '.join(_flag(n) for n in changed)} have no "
                       f"effect on a {cfg.scenario} run (--scenario server uses them)")
    if cfg.tokenizer and cfg.shape is not None:
        out.append(f"{_where(cfg, 'tokenizer')}--tokenizer has no effect with --shape (token ids are random)")
    elif cfg.tokenizer and cfg.data == "synthetic":
        out.append(f"{_where(cfg, 'tokenizer')}--tokenizer tokenizes nothing with --data synthetic: lengths come from "
                   "the length profiles (it only checks that they were made with this tokenizer)")
    return out


def _flag(name: str) -> str:
    return "[policy.*] tables" if name == "policy_options" else "--" + name.replace("_", "-")


def _toml_line(cfg, key: str) -> int | None:
    """The line of `key` in the run's TOML file, if it came from there."""
    if cfg.source in ("command line", "defaults") or not Path(cfg.source).is_file():
        return None
    from xlt_bench.core.config import line_of
    text = Path(cfg.source).read_text(encoding="utf-8")
    return line_of(text, key) or line_of(text, key.replace("_", "-"))


def _where(cfg, key: str) -> str:
    line = _toml_line(cfg, key)
    return f"{cfg.source}:{line}: field '{key}': " if line else ""


def _fail(cfg, key: str, reason: str) -> None:
    line = _toml_line(cfg, key)
    raise InputError(reason, file=cfg.source if line else "command line", line=line, field=key)


def check_policy_tables(tables: dict[str, Any], text: str, path: str) -> None:
    """Each [policy.NAME] names a known policy and sets only that policy's options, each of its type."""
    from xlt_bench.core.config import line_of
    policies = registry_of("server policy")
    for name, options in tables.items():
        header = line_of(text, f"policy.{name}") or line_of(text, f'policy."{name}"')
        if name not in policies.names():
            import difflib
            close = difflib.get_close_matches(name, policies.names(), n=1)
            hint = f" (did you mean [policy.{close[0]}]?)" if close else ""
            raise InputError(f"unknown policy{hint}; policies: {', '.join(policies.names())}", file=path,
                             line=header, field=f"policy.{name}")
        if not isinstance(options, dict):
            raise InputError("expected a table of options", file=path, line=header, field=f"policy.{name}")
        params = _policy_options(policies.get(name))
        for key, value in options.items():
            line = line_of(text, key, after=header or 0)
            if key not in params:
                known = ", ".join(params) or "none"
                raise InputError(f"unknown option of policy '{name}'; its options: {known}", file=path, line=line,
                                 field=f"policy.{name}.{key}")
            problem = _type_problem(params[key], value)
            if problem:
                raise InputError(problem, file=path, line=line, field=f"policy.{name}.{key}")


def _policy_options(cls) -> dict[str, Any]:
    """A policy's options and their defaults: its constructor's keyword arguments beyond budget and pads."""
    skip = {"self", "budget", "pads"}
    return {p.name: p.default for p in inspect.signature(cls.__init__).parameters.values()
            if p.name not in skip and p.kind is p.POSITIONAL_OR_KEYWORD}


def _type_problem(default: Any, value: Any) -> str | None:
    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    def is_number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if is_int(default):
        ok, expected = is_int(value), "an integer"
    elif isinstance(default, float):
        ok, expected = is_number(value), "a number"
    elif isinstance(default, (tuple, list)):
        ok, expected = isinstance(value, list) and all(is_int(v) for v in value), "a list of integers"
    else:
        return None
    return None if ok else f"expected {expected}, got {type(value).__name__} {value!r}"
