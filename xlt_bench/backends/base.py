"""The backend contract (DESIGN §5): load, run a batch, fetch its output. Every backend runs rectangular padded
batches (rows x padded length); a backend that also runs packed batches (xlt_bench/batching/packing.py: sequences
concatenated per row, a block-diagonal 3-D mask, one output per sequence) declares `supports_packed`.

The measure stage (measure/passes.py) drives a backend in three steps so that host->device copies and output fetches stay outside the
timed region: `prepare` (inputs to device-ready form), `forward` (the timed call), `fetch` (to float32 numpy).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from xlt_bench.core.errors import InputError
from xlt_bench.backends.models import ModelBundle


class Backend(ABC):
    name: ClassVar[str]
    # (device, dtype) pairs this backend can run.
    supported: ClassVar[frozenset[tuple[str, str]]]
    # True when a new input shape triggers a recompilation (reported; warm-up covers it).
    recompiles_per_shape: ClassVar[bool] = False
    # Library whose GEMM peak the MFU of this backend is measured against ("torch" or "onnxruntime").
    gemm_library: ClassVar[str] = "torch"
    # True when the train scenario can fine-tune the model this backend runs (torch backends).
    trainable: ClassVar[bool] = False
    # True when forward also runs packed batches (inputs from PackedBatch.collate), returning one output per
    # sequence shaped as a padded batch of the same sequences would give it.
    supports_packed: ClassVar[bool] = False

    @property
    def warmup_calls(self) -> int:
        """Untimed calls per new padded shape before timing: enough for any just-in-time compilation to finish."""
        return 1

    def __init__(self, bundle: ModelBundle, device: str = "cpu", dtype: str = "fp32",
                 threads: int | None = None, cache_dir: str = ".xlt_cache"):
        self.check_supported(device, dtype)
        self.bundle, self.device, self.dtype, self.threads, self.cache_dir = bundle, device, dtype, threads, cache_dir
        self.notes: list[str] = []

    @classmethod
    def check_supported(cls, device: str, dtype: str) -> None:
        if (device, dtype) not in cls.supported:
            combos = ", ".join(f"{d}/{t}" for d, t in sorted(cls.supported))
            raise InputError(f"backend '{cls.name}' cannot run {device}/{dtype}; supported: {combos}",
                             field="dtype" if any(d == device for d, _ in cls.supported) else "device")

    def check_torch_device(self) -> None:
        """For torch-based backends: `--device cuda` needs a GPU that torch can see (exit 2 otherwise)."""
        import torch

        if self.device == "cuda" and not torch.cuda.is_available():
            combos = ", ".join(f"{d}/{t}" for d, t in sorted(self.supported) if d == "cpu")
            raise InputError(f"backend '{self.name}': --device cuda but torch sees no CUDA GPU; "
                             f"on this machine use: {combos}", field="device")

    @abstractmethod
    def load(self) -> None:
        """Build/compile/export whatever the backend needs. Not timed as inference."""

    @abstractmethod
    def prepare(self, inputs: dict[str, np.ndarray]) -> Any:
        """Turn int64 numpy arrays (input_ids, attention_mask[, token_type_ids]) into device-ready inputs."""

    @abstractmethod
    def forward(self, prepared: Any) -> Any:
        """Run one batch; this is the timed call. May return before a GPU finishes (see synchronize)."""

    @abstractmethod
    def fetch(self, output: Any) -> np.ndarray:
        """The output as a float32 numpy array (logits or embeddings)."""

    def synchronize(self) -> None:
        """Wait for queued device work (CUDA); a no-op on CPU."""

    def close(self) -> None:
        """Release sessions/models."""
