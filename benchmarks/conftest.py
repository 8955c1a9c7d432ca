"""Shared fixtures for the pytest-benchmark suite (`make bench-pytest`; not part of `make test`).

Models come from XLT_BENCH_MODELS (comma-separated presets, default tiny-xlmr; e.g. "tiny-xlmr,xlmr-base").
Backends whose runtime or module cannot be imported are skipped, not failed.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from xlt_bench.backends import get_backend_class
from xlt_bench.core.errors import InputError
from xlt_bench.backends.models import build_model

MODELS = tuple(m.strip() for m in os.environ.get("XLT_BENCH_MODELS", "tiny-xlmr").split(",") if m.strip())
BACKENDS = ("eager", "torchscript", "onnxruntime")
THREADS = int(os.environ["XLT_BENCH_THREADS"]) if os.environ.get("XLT_BENCH_THREADS") else None

_bundles: dict = {}
_backends: dict = {}


def bundle_for(model: str):
    if model not in _bundles:
        _bundles[model] = build_model(model, kind="pair", num_labels=3, seed=0)
    return _bundles[model]


def loaded_backend(model: str, backend: str, cache_dir: str):
    """A loaded backend, built once per session (loading/exporting is not what is measured)."""
    key = (model, backend)
    if key not in _backends:
        try:
            cls = get_backend_class(backend)
        except (InputError, ImportError) as exc:
            pytest.skip(f"backend {backend} unavailable: {exc}")
        instance = cls(bundle_for(model), device="cpu", dtype="fp32", threads=THREADS, cache_dir=cache_dir)
        instance.load()
        _backends[key] = instance
    return _backends[key]


def fixed_shape_inputs(bundle, rows: int, length: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random in-vocabulary ids, no padding: every position is a real token."""
    rng = np.random.default_rng(seed)
    inputs = {"input_ids": rng.integers(5, bundle.vocab_size, size=(rows, length), dtype=np.int64),
              "attention_mask": np.ones((rows, length), dtype=np.int64)}
    if bundle.takes_token_types:
        inputs["token_type_ids"] = np.zeros((rows, length), dtype=np.int64)
    return inputs


@pytest.fixture(scope="session")
def backend_cache_dir(tmp_path_factory) -> str:
    # Exports (ONNX, TorchScript) go to a throwaway directory so a stale export can never be measured.
    return str(tmp_path_factory.mktemp("xlt_cache"))


def pytest_sessionfinish(session, exitstatus):
    for backend in _backends.values():
        backend.close()
