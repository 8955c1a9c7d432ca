"""Forward pass per backend at fixed shapes: the runtime's own speed, apart from batching and tokenization."""

from __future__ import annotations

import pytest

from conftest import BACKENDS, MODELS, bundle_for, fixed_shape_inputs, loaded_backend

SHAPES = ((1, 128), (8, 64), (32, 128))   # (rows, padded length): single request, small batch, static batch


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("model", MODELS)
def test_forward(benchmark, model, backend_name, shape, backend_cache_dir):
    backend = loaded_backend(model, backend_name, backend_cache_dir)
    rows, length = shape
    prepared = backend.prepare(fixed_shape_inputs(bundle_for(model), rows, length))

    def step():
        out = backend.forward(prepared)
        backend.synchronize()
        return out

    step()  # warm-up: first call at a shape pays allocation / graph specialisation
    benchmark.group = f"forward {model} {rows}x{length}"
    benchmark.extra_info.update(model=model, backend=backend_name, rows=rows, padded_len=length,
                                tokens=rows * length)
    output = benchmark(step)
    assert backend.fetch(output).shape[0] == rows
