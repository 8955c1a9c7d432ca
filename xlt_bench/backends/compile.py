"""torch.compile (inductor) of the same module the eager backend runs: the modern PyTorch route (TorchScript is in
maintenance).

Compiled with dynamic shapes, so a new (rows, padded length) reuses the graph instead of recompiling per shape
(inductor still specialises sizes 0 and 1, so a run compiles a handful of graphs at most). Compilation happens in
load() on two small shapes, so it is reported in the run's `backend_load` stage, never in the timed region.
"""

from __future__ import annotations

import shutil
import time

import numpy as np
import torch

from xlt_bench.core.errors import InputError
from xlt_bench.backends.eager import EagerBackend, torch_inputs


class CompileBackend(EagerBackend):
    name = "compile"
    supported = frozenset({("cpu", "fp32"), ("cpu", "bf16"), ("cuda", "fp32"), ("cuda", "bf16"), ("cuda", "fp16")})
    trainable = True

    def load(self) -> None:
        _check_inductor(self.device)
        super().load()
        self.module = torch.compile(self.module, dynamic=True)
        start = time.perf_counter()
        for rows, length in ((2, 16), (3, 24)):   # compile now: the first calls trace and generate code
            ids = np.full((rows, length), 5, dtype=np.int64)
            inputs = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
            if self.bundle.takes_token_types:
                inputs["token_type_ids"] = np.zeros_like(ids)
            self.fetch(self.forward(self.prepare(inputs)))
        self.synchronize()
        self.notes.append(f"torch.compile (inductor, dynamic shapes): compiled in {time.perf_counter() - start:.1f} s "
                          "during load, outside the timed region")

    def build_packed_module(self) -> torch.nn.Module:
        """The packed forward compiled the same way, on two small packed calls now, so compilation stays outside
        the timed region (prepare runs before warm-up and timing)."""
        from xlt_bench.batching.packing import plan_packed
        from xlt_bench.backends.packed_forward import PackedEncoder
        compiled = torch.compile(PackedEncoder(self.module._orig_mod), dynamic=True)
        start = time.perf_counter()
        for lengths in ((5,), (7, 9, 5), (11, 6, 8, 4, 3)):   # one row and one sequence: sizes inductor specialises
            ids = [np.full(n, 5, dtype=np.int64) for n in lengths]
            types = [np.zeros(n, dtype=np.int64) for n in lengths] if self.bundle.takes_token_types else None
            for batch in plan_packed(lengths, max_tokens=64, row_len=16):
                inputs = torch_inputs(batch.collate(ids, types, self.bundle.pad_id), self.device)
                with torch.inference_mode():
                    self.fetch(compiled(**inputs))
        self.synchronize()
        self.notes.append(f"torch.compile of the packed forward: compiled in {time.perf_counter() - start:.1f} s "
                          "before timing")
        return compiled

    def compile_for_training(self, module: torch.nn.Module) -> torch.nn.Module:
        """The train scenario's copy of the model, compiled the same way."""
        return torch.compile(module, dynamic=True)


def _check_inductor(device: str) -> None:
    """Inductor needs a C++ compiler on CPU and Triton on CUDA; say so before anything is built."""
    if device == "cpu" and not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")):
        raise InputError("backend 'compile' needs a C++ compiler for inductor's CPU code (g++ or clang++); "
                         "install one or use --backends eager", field="backends")
    if device == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            raise InputError("backend 'compile' on CUDA needs Triton (it comes with CUDA builds of torch)",
                             field="backends") from None
