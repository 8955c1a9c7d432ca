"""A backend of known cost (DESIGN §5): it sleeps for a chosen time(rows, padded_len) instead of computing.

Used by tests and by anyone who wants to see how the batcher and the scenarios behave on a machine of a given shape
(launch-bound like a GPU, linear in tokens like a CPU, or with attention's L² term) without that hardware.
Outputs are zeros of the shape the model's head gives, so order restoration and evaluation run unchanged.

Cost from the constructor (`cost=FakeCost(...)`) or, on the command line, from the environment:
`XLT_FAKE_COST="fixed_ms=5,per_token_us=0,per_token_sq_ns=0,noise=0.05,seed=0"`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from xlt_bench.core.clock import sleep_until
from xlt_bench.core.errors import InputError
from xlt_bench.backends.base import Backend


@dataclass(frozen=True)
class FakeCost:
    fixed_ms: float = 5.0           # per forward call, whatever its shape (kernel launches, a GPU's floor)
    per_token_us: float = 0.0       # per padded token (rows * L)
    per_token_sq_ns: float = 0.0    # per padded token per position (rows * L * L: attention)
    noise: float = 0.0              # each call is multiplied by uniform(1 - noise, 1 + noise)
    oom_tokens_sq: float = 0.0      # a call with rows * L * L above this runs out of memory, as attention's
                                    # scores would (0: never)
    seed: int = 0

    def seconds(self, rows: int, padded_len: int) -> float:
        tokens = rows * padded_len
        return (self.fixed_ms * 1e-3 + self.per_token_us * 1e-6 * tokens
                + self.per_token_sq_ns * 1e-9 * tokens * padded_len)

    @classmethod
    def from_env(cls, text: str | None = None) -> FakeCost:
        text = os.environ.get("XLT_FAKE_COST", "") if text is None else text
        known = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, _, value = part.partition("=")
            if key not in known:
                raise InputError(f"unknown key '{key}'; known: {', '.join(known)}", file="XLT_FAKE_COST",
                                 field=key)
            try:
                values[key] = int(value) if key == "seed" else float(value)
            except ValueError:
                raise InputError(f"'{value}' is not a number", file="XLT_FAKE_COST", field=key) from None
            if values[key] < 0:
                raise InputError("must not be negative", file="XLT_FAKE_COST", field=key)
        return cls(**values)


class FakeBackend(Backend):
    name = "fake"
    supported = frozenset({("cpu", d) for d in ("fp32", "bf16", "fp16", "int8")}
                          | {("cuda", d) for d in ("fp32", "bf16", "fp16")})
    gemm_library = "torch"

    def __init__(self, *args: Any, cost: FakeCost | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.cost = cost or FakeCost.from_env()
        self._rng = np.random.default_rng(self.cost.seed)
        self.calls: list[tuple[int, int]] = []   # shapes run, in order (tests read it)
        self.call_started: list[float] = []       # perf_counter at the start of each call (interleaving tests)

    def load(self) -> None:
        self.notes.append(f"fake backend: sleeps {self.cost}; outputs are zeros")
        crash_marker = os.environ.get("XLT_FAKE_CRASH_ONCE")
        if crash_marker and not os.path.exists(crash_marker):
            # Testing aid for sweeps: the first process to load a fake backend dies as a lost worker would.
            open(crash_marker, "w").close()
            os._exit(17)

    def prepare(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return inputs

    def forward(self, prepared: dict[str, np.ndarray]) -> np.ndarray:
        rows, plen = prepared["input_ids"].shape
        if self.cost.oom_tokens_sq and rows * plen * plen > self.cost.oom_tokens_sq:
            raise MemoryError(f"fake backend: out of memory at {rows} x {plen}")
        self.call_started.append(time.perf_counter())
        seconds = self.cost.seconds(rows, plen)
        if self.cost.noise:
            seconds *= float(self._rng.uniform(1.0 - self.cost.noise, 1.0 + self.cost.noise))
        sleep_until(time.perf_counter() + seconds)
        self.calls.append((rows, plen))
        return np.zeros(self._output_shape(rows, plen), dtype=np.float32)

    def fetch(self, output: np.ndarray) -> np.ndarray:
        return output

    def _output_shape(self, rows: int, plen: int) -> tuple[int, ...]:
        head, labels = self.bundle.head, max(self.bundle.num_labels, 1)
        if head == "sequence":
            return rows, labels
        if head == "token":
            return rows, plen, labels
        if head == "span":
            return rows, plen, 2
        return rows, int(self.bundle.config.hidden_size)
