"""--attn (sdpa is what from_pretrained gives) and the torch.compile backend: parity with eager fp32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xlt_bench.backends import get_backend_class
from xlt_bench.core.config import RunConfig
from xlt_bench.core.errors import InputError
from xlt_bench.backends.models import build_model


def _inputs(rows=3, length=11, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 1000, size=(rows, length)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1, 7:] = 0        # a padded row: attention masks must agree between implementations
    ids[1, 7:] = 1
    return {"input_ids": ids, "attention_mask": mask}


def _with_types(bundle, inputs):
    if bundle.takes_token_types:
        inputs["token_type_ids"] = np.zeros_like(inputs["input_ids"])
    return inputs


def _run(backend_name, bundle, dtype="fp32"):
    backend = get_backend_class(backend_name)(bundle, "cpu", dtype, 1)
    backend.load()
    out = backend.fetch(backend.forward(backend.prepare(_with_types(bundle, _inputs()))))
    backend.close()
    return out


def test_presets_default_to_sdpa_like_from_pretrained():
    bundle = build_model("tiny-xlmr", "pair", 3)
    assert bundle.attn == "sdpa" and bundle.config._attn_implementation == "sdpa"
    assert build_model("tiny-xlmr", "pair", 3, attn="eager").config._attn_implementation == "eager"


def test_sdpa_and_eager_attention_compute_the_same_function():
    sdpa, eager = build_model("tiny-xlmr", "pair", 3), build_model("tiny-xlmr", "pair", 3, attn="eager")
    a, b = _run("eager", sdpa), _run("eager", eager)
    assert np.abs(a - b).max() <= 1e-5


def test_unknown_attn_is_refused():
    with pytest.raises(InputError, match="sdpa, eager"):
        build_model("tiny-xlmr", "pair", 3, attn="flash_attention_9")
    with pytest.raises(InputError, match="attn"):
        RunConfig(attn="flash")


@pytest.mark.slow
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_torchscript_and_compile_match_eager_fp32(attn):
    bundle = build_model("tiny-mbert", "tagging", 5, attn=attn)
    reference = _run("eager", bundle)
    assert np.abs(_run("torchscript", bundle) - reference).max() <= 1e-4
    compiled = get_backend_class("compile")(bundle, "cpu", "fp32", 1)
    compiled.load()
    for seed, shape in ((0, (3, 11)), (1, (5, 29))):  # two new shapes: dynamic shapes, no error, same maths
        inputs = _with_types(bundle, _inputs(*shape, seed=seed))
        eager_out = _run_inputs("eager", bundle, inputs)
        assert np.abs(compiled.fetch(compiled.forward(compiled.prepare(inputs))) - eager_out).max() <= 1e-4
    assert any("compiled in" in n for n in compiled.notes)


def _run_inputs(name, bundle, inputs):
    backend = get_backend_class(name)(bundle, "cpu", "fp32", 1)
    backend.load()
    return backend.fetch(backend.forward(backend.prepare(inputs)))


def test_compile_refuses_int8():
    with pytest.raises(InputError, match="compile"):
        get_backend_class("compile")(build_model("tiny-xlmr", "pair", 3), "cpu", "int8", 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
def test_compile_on_cuda_bf16_differs_from_fp32_but_agrees():
    bundle = build_model("tiny-xlmr", "pair", 3)
    outs = {}
    for dtype in ("fp32", "bf16"):
        backend = get_backend_class("compile")(bundle, "cuda", dtype, None)
        backend.load()
        outs[dtype] = backend.fetch(backend.forward(backend.prepare(_inputs())))
    assert not np.array_equal(outs["fp32"], outs["bf16"])
    assert np.corrcoef(outs["fp32"].ravel(), outs["bf16"].ravel())[0, 1] > 0.99
