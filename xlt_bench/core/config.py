"""Run configuration: one frozen dataclass, validated at construction, filled from TOML and/or the CLI.

Option names are the DESIGN §2 contract. List options accept a comma-separated string or a list.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from xlt_bench.core.errors import InputError
from xlt_bench.core.registry import registry_of
from xlt_bench.core.stats import is_number

log = logging.getLogger("xlt_bench")

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Batching strategies, backends, scenarios and server policies are validated against their registries
# (core/registry.py REGISTRY_HOMES), which import nothing until a name is used.
DEVICES = ("cpu", "cuda")
DTYPES = ("fp32", "bf16", "fp16", "int8")
# optimum backend: ORTOptimizer level (O4 = fp16 on CUDA only).
ORT_OPT_LEVELS = ("O1", "O2", "O3", "O4")


def _as_tuple(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(str(v).strip() for v in value)


@dataclass(frozen=True)
class RunConfig:
    model: str = "xlmr-base"
    tokenizer: str | None = None
    data: str = "synthetic"
    profiles: str | None = None   # --data synthetic: length profiles from `xlt-bench lengths` [shipped]
    tasks: tuple[str, ...] = ("xnli", "pawsx")
    langs: tuple[str, ...] = ("all",)
    limit: int | None = None
    backends: tuple[str, ...] = ("eager", "torchscript", "onnxruntime")
    batching: tuple[str, ...] = ("static", "dynamic")
    batch_size: int = 32
    max_length: int = 128
    # Dynamic token budget per batch, padding counted: "auto" = chosen per backend/dtype/device by the start-up
    # probe (largest batch still gaining throughput), or a positive integer.
    max_tokens: int | str = "auto"
    # A stored cost model to reuse instead of probing (a results.json or a CostModel JSON): reproducible plans.
    cost_model_file: str | None = None
    # Dynamic batches pad to a multiple of this. None: 8 on CUDA (tensor-core friendly shapes), 1 on CPU, where
    # rounding buys no speed and only adds padding.
    pad_multiple: int | None = None
    device: str = "cpu"
    dtype: tuple[str, ...] = ("fp32",)
    threads: int | None = None
    out: str | None = None
    seed: int = 0
    # Timing discipline: a short language is repeated until both are met.
    min_seconds: float = 0.0
    min_repeats: int = 3
    max_seconds: float | None = None   # time box per row: stop repeating once its passes reach this
    # Fixed-shape mode "B,L": synthetic batches of one shape, for comparison with other tools.
    shape: tuple[int, int] | None = None
    # Testing aid for the gate: sleep this long inside every timed batch.
    inject_delay_ms: float = 0.0
    # Testing aid: every timed batch takes (1 + this) times as long (a uniform slowdown, to plant a regression).
    inject_slowdown: float = 0.0
    # Choose dynamic batch boundaries with a cost model measured per backend at start-up.
    cost_model: bool = True
    # offline | server | train (xlt_bench/scenarios): who owns time and the arrival of inputs.
    scenario: str = "offline"
    # Attention implementation: None = what from_pretrained gives (sdpa); "eager" = the explicit softmax(QK^T)V.
    attn: str | None = None
    # Server scenario: offered loads in requests/s ("auto": bisection for the max sustainable QPS), seconds of
    # arrivals per load, the latency SLO, the batching policies compared, an optional arrival trace, and options per
    # policy (TOML [policy.<name>] tables).
    qps: tuple[float, ...] | str = "auto"
    duration: float = 60.0
    slo_ms: float = 200.0
    arrival_seeds: int = 3   # server: each offered load is served once per arrival seed (intervals across them)
    policy: tuple[str, ...] = ("none", "fixed", "token-budget", "length-bucketed")
    trace: str | None = None
    policy_options: dict = field(default_factory=dict)
    cache_dir: str = ".xlt_cache"
    # optimum backend: ORTOptimizer level (O1..O4); O2 is the fusion set our onnxruntime backend applies.
    ort_opt_level: str = "O2"
    source: str = field(default="defaults", compare=False)

    def __post_init__(self) -> None:
        for name in ("tasks", "langs", "backends", "batching", "dtype", "policy"):
            values = _as_tuple(getattr(self, name))
            unique = tuple(dict.fromkeys(values))
            if len(unique) < len(values):
                # Duplicates would measure a configuration twice and double-count it in the ALL rows.
                log.warning("%s lists a value more than once (%s); each is run once", name, ",".join(values))
            object.__setattr__(self, name, unique)
        if isinstance(self.shape, str):
            object.__setattr__(self, "shape", _parse_shape(self.shape, self.source))
        elif self.shape is not None:
            object.__setattr__(self, "shape", tuple(int(v) for v in self.shape))
        self._validate()

    def _fail(self, field_name: str, reason: str) -> None:
        raise InputError(reason, file=self.source, field=field_name)

    def _validate(self) -> None:
        registry_of("batching strategy").check(self.batching, file=self.source)
        self._check_choices("dtype", self.dtype, DTYPES)
        registry_of("backend").check(self.backends, file=self.source)
        registry_of("scenario").check((self.scenario,), file=self.source)
        self._validate_server()
        if self.ort_opt_level not in ORT_OPT_LEVELS:
            self._fail("ort_opt_level", f"'{self.ort_opt_level}' is not one of {', '.join(ORT_OPT_LEVELS)}")
        if self.attn is not None and self.attn not in ("sdpa", "eager"):
            self._fail("attn", f"'{self.attn}' is not sdpa or eager")
        if self.device not in DEVICES:
            self._fail("device", f"'{self.device}' is not one of {', '.join(DEVICES)}")
        if self.pad_multiple is None:
            object.__setattr__(self, "pad_multiple", 8 if self.device == "cuda" else 1)
        if isinstance(self.max_tokens, str) and self.max_tokens != "auto":
            try:
                object.__setattr__(self, "max_tokens", int(self.max_tokens))
            except ValueError:
                self._fail("max_tokens", f"'{self.max_tokens}' is neither 'auto' nor a positive integer")
        numbers = ("batch_size", "max_length", "pad_multiple", "min_repeats")
        for name in numbers + (("max_tokens",) if self.max_tokens != "auto" else ()):
            if int(getattr(self, name)) < 1:
                self._fail(name, "must be a positive integer")
        if self.max_tokens != "auto" and self.max_tokens < self.max_length:
            self._fail("max_tokens", f"must be at least max_length ({self.max_length}) so every sequence fits a batch")
        if self.limit is not None and self.limit < 1:
            self._fail("limit", "must be a positive integer")
        if self.threads is not None and self.threads < 1:
            self._fail("threads", "must be a positive integer")
        if self.threads is not None and self.threads > (os.cpu_count() or 1):
            log.warning("--threads %d is more than this machine's %d cores: threads will share cores and timings "
                        "will suffer", self.threads, os.cpu_count() or 1)
        if self.seed < 0:
            self._fail("seed", "must be a non-negative integer")
        for name in ("min_seconds", "inject_delay_ms", "inject_slowdown"):
            if getattr(self, name) < 0:
                self._fail(name, "must not be negative")
        if self.max_seconds is not None and not (self.max_seconds > 0 and self.max_seconds >= self.min_seconds):
            self._fail("max_seconds", f"must be > 0 and at least min_seconds ({self.min_seconds})")
        if not self.tasks:
            self._fail("tasks", "at least one task is required")
        if not (self.data in ("synthetic", "hf") or self.data.startswith("local:")):
            self._fail("data", f"'{self.data}' is not 'synthetic', 'hf' or 'local:DIR'")
        if self.shape is not None and (len(self.shape) != 2 or min(self.shape) < 1):
            self._fail("shape", "expected B,L with two positive integers")

    def _validate_server(self) -> None:
        registry_of("server policy").check(self.policy, file=self.source)
        if self.qps != "auto":
            try:
                loads = tuple(float(q) for q in _as_tuple(self.qps) if q) if not isinstance(self.qps, (int, float)) \
                    else (float(self.qps),)
            except ValueError:
                self._fail("qps", f"'{self.qps}' is neither 'auto' nor a list of request rates")
            if not loads or any(not q > 0 for q in loads):
                self._fail("qps", "offered loads must be > 0 requests/s")
            object.__setattr__(self, "qps", loads)
        if not self.duration > 0:
            self._fail("duration", "must be > 0 seconds")
        if not self.slo_ms > 0:
            self._fail("slo_ms", "must be > 0 milliseconds")
        if not 1 <= self.arrival_seeds <= 1000:
            self._fail("arrival_seeds", "must be an integer from 1 to 1000 (an interval needs at least 2)")

    def _check_choices(self, name: str, values: tuple[str, ...], allowed: tuple[str, ...]) -> None:
        if not values:
            self._fail(name, f"at least one of {', '.join(allowed)} is required")
        for v in values:
            if v not in allowed:
                self._fail(name, f"'{v}' is not one of {', '.join(allowed)}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("source")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _parse_shape(text: str, source: str) -> tuple[int, int]:
    try:
        b, l = (int(p) for p in text.split(","))
    except ValueError:
        raise InputError(f"'{text}' is not B,L (e.g. 8,64)", file=source, field="shape") from None
    return b, l


FIELD_NAMES = {f.name for f in fields(RunConfig)} - {"source"}
_FIELD_TYPES = {f.name: f.type for f in fields(RunConfig)}


# Top-level TOML tables a config may hold: [run] (the options) and [policy.<name>] (server policy options).
TOML_SECTIONS = ("run", "policy")


def load_toml(path: str | Path, extra_sections: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read the [run] table (or top-level keys) from TOML; option names may use '-' or '_'. Every value is checked
    against the option's type here, where the key's line is known, so a wrong type names file, line and key.
    `extra_sections` are tables another command reads from the same file (a sweep's [sweep])."""
    doc, text = read_toml(path)
    return run_values(doc, text, str(path), extra_sections)


def read_toml(path: str | Path) -> tuple[dict[str, Any], str]:
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
        return tomllib.loads(text), text
    except FileNotFoundError:
        raise InputError("config file not found", file=str(path)) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a TOML file", file=str(path)) from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise InputError(f"not UTF-8 text (byte {exc.start})", file=str(path), line=line) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"invalid TOML: {exc}", file=str(path)) from None


def run_values(doc: dict[str, Any], text: str, path: str, extra_sections: tuple[str, ...] = ()) -> dict[str, Any]:
    doc = {k: v for k, v in doc.items() if k not in extra_sections}
    # [policy.<name>] tables hold the server policies' options; `policy = [...]` inside [run] names the policies.
    policy_options = doc.pop("policy") if isinstance(doc.get("policy"), dict) else None
    if "run" in doc:
        extra = [k for k in doc if k not in TOML_SECTIONS]
        if extra:
            kind = "section" if isinstance(doc[extra[0]], dict) else "key outside [run]"
            raise InputError(f"unknown {kind}; a config holds [run] and [policy.<name>] tables",
                             file=path, line=line_of(text, extra[0]), field=extra[0])
        table = doc["run"]
    else:
        table = doc
    values: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        line = line_of(text, key)
        if name not in FIELD_NAMES:
            raise InputError(f"unknown option; known: {', '.join(sorted(FIELD_NAMES))}", file=path, line=line,
                             field=key)
        problem = type_problem(name, value)
        if problem:
            raise InputError(problem, file=path, line=line, field=key)
        values[name] = value
    if isinstance(policy_options, dict):
        from xlt_bench.core.option_checks import check_policy_tables
        check_policy_tables(policy_options, text, path)
        values["policy_options"] = policy_options
    return values


def line_of(text: str, key: str, after: int = 0) -> int | None:
    """1-based line after line `after` where `key = ...`, `[key...]` or `[[key]]` starts (tomllib reports no
    positions for values)."""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if number > after and (stripped.startswith((f"{key} ", f"{key}=", f'"{key}"'))
                               or stripped.lstrip("[").startswith((f"{key}]", f"{key}."))):
            return number
    return None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_str_list(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))


# What a TOML value of each option's annotation may be (the dataclass then validates ranges and names).
_TYPE_CHECKS: dict[str, tuple[Any, str]] = {
    "str": (lambda v: isinstance(v, str), "a string"),
    "str | None": (lambda v: isinstance(v, str), "a string"),
    "int": (_is_int, "an integer"),
    "int | None": (_is_int, "an integer"),
    "float": (is_number, "a number"),
    "float | None": (is_number, "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "tuple[str, ...]": (_is_str_list, "a list of strings (or one comma-separated string)"),
    "int | None | str": (lambda v: _is_int(v) or v == "auto", "'auto' or an integer"),
    "int | str": (lambda v: _is_int(v) or v == "auto", "'auto' or an integer"),
    "tuple[int, int] | None": (lambda v: isinstance(v, str) or (isinstance(v, list) and len(v) == 2
                                                                and all(_is_int(x) for x in v)),
                               "[B, L] or 'B,L'"),
    "tuple[float, ...] | str": (lambda v: isinstance(v, str) or is_number(v) or (
        isinstance(v, list) and all(is_number(x) for x in v)), "'auto' or a list of numbers"),
    "dict": (lambda v: isinstance(v, dict), "a table"),
}


def type_problem(name: str, value: Any) -> str | None:
    """Why `value` cannot fill option `name` (by the RunConfig annotation), or None."""
    annotation = str(_FIELD_TYPES[name])
    check, expected = _TYPE_CHECKS.get(annotation, (lambda v: True, ""))
    if check(value):
        return None
    return f"expected {expected}, got {type(value).__name__} {value!r}"


def build_config(toml_path: str | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """TOML first, then CLI overrides (None means 'not given'); both fill the same dataclass."""
    values: dict[str, Any] = {}
    source = "command line"
    if toml_path:
        values.update(load_toml(toml_path))
        source = str(toml_path)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    try:
        return RunConfig(source=source, **values)
    except TypeError as exc:
        raise InputError(str(exc), file=source) from None
