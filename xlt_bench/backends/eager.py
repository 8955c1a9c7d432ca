"""Eager PyTorch: the reference backend (fp32 on CPU is what agreement is measured against)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from xlt_bench.backends.models import TORCH_DTYPES
from xlt_bench.backends.base import Backend


def torch_inputs(inputs: dict[str, np.ndarray], device: str) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device, non_blocking=True) for k, v in inputs.items()}


class TorchModuleBackend(Backend):
    """Running a torch module (eager or TorchScript): inputs as tensors on the device, one output tensor."""

    def forward(self, prepared: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode():
            return self.module(**prepared)

    def fetch(self, output: Any) -> np.ndarray:
        return output.detach().float().cpu().numpy()

    def synchronize(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def close(self) -> None:
        self.module = None


class EagerBackend(TorchModuleBackend):
    name = "eager"
    trainable = True    # the train scenario can fine-tune this backend's model
    supports_packed = True
    packed_module: torch.nn.Module | None = None
    supported = frozenset({("cpu", "fp32"), ("cpu", "bf16"), ("cpu", "int8"),
                           ("cuda", "fp32"), ("cuda", "bf16"), ("cuda", "fp16")})

    def load(self) -> None:
        self.check_torch_device()
        if self.threads:
            torch.set_num_threads(self.threads)
        module = self.bundle.module.eval()
        if self.dtype == "int8":
            # Dynamic quantisation of the Linear layers: int8 weights, activations quantised per batch.
            module = torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)
        elif self.dtype in ("bf16", "fp16"):
            module = _copy_module(module).to(TORCH_DTYPES[self.dtype])
        self.module = module.to(self.device)

    def prepare(self, inputs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        if is_packed(inputs) and self.packed_module is None:
            self.packed_module = self.build_packed_module()   # once, before any packed batch is timed
        return torch_inputs(inputs, self.device)

    def forward(self, prepared: dict[str, torch.Tensor]) -> torch.Tensor:
        if is_packed(prepared):
            with torch.inference_mode():
                return self.packed_module(**prepared)
        return super().forward(prepared)

    def build_packed_module(self) -> torch.nn.Module:
        """The packed forward over the module this backend runs (its dtype or quantisation, the same weights)."""
        from xlt_bench.backends.packed_forward import PackedEncoder
        return PackedEncoder(self.module)


def is_packed(inputs: dict) -> bool:
    """Inputs built by PackedBatch.collate (they carry each sequence's first-token index)."""
    return "seq_first" in inputs


def _copy_module(module: torch.nn.Module) -> torch.nn.Module:
    import copy
    return copy.deepcopy(module)
