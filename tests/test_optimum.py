"""The optimum backend: ORTModelFor* outputs match eager fp32 on tiny presets (sequence, token, span heads), int8 is
really quantised, pooled heads and bad levels are refused with exit-2 errors, VNNI is read from cpuinfo flags."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xlt_bench.backends import get_backend_class
from parity_helpers import compare_outputs
from xlt_bench.core.errors import InputError
from xlt_bench.backends.models import build_model

pytest.importorskip("optimum.onnxruntime")
from xlt_bench.backends.optimum_ort import OptimumBackend, cpu_has_vnni  # noqa: E402

MODELS = {"xlmr-pair": ("tiny-xlmr", "pair", 3), "mbert-tagging": ("tiny-mbert", "tagging", 5),
          "xlmr-qa": ("tiny-xlmr", "qa", 2)}


def batch(bundle, seed=0):
    """Right-padded ragged batch: lengths 11, 6, 3 of 11."""
    rng = np.random.default_rng(seed)
    mask = (np.arange(11)[None, :] < np.array([11, 6, 3])[:, None]).astype(np.int64)
    inputs = {"input_ids": np.where(mask == 1, rng.integers(5, 3000, mask.shape), bundle.pad_id),
              "attention_mask": mask}
    if bundle.takes_token_types:
        inputs["token_type_ids"] = (np.arange(11)[None, :] >= 4).astype(np.int64) * mask
    return inputs


def run(name, bundle, inputs, cache, **kwargs):
    backend = get_backend_class(name)(bundle, "cpu", kwargs.pop("dtype", "fp32"), 1, cache, **kwargs)
    backend.load()
    out = backend.fetch(backend.forward(backend.prepare(inputs)))
    notes = list(backend.notes)
    backend.close()
    return out, notes


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("optimum_cache"))


@pytest.mark.slow
# Every head and every level once (each pair costs an export, ~15 s): a level's rewrites do not depend on the head.
@pytest.mark.parametrize("level,model", [("O1", "mbert-tagging"), ("O2", "xlmr-qa"), ("O3", "xlmr-pair")])
def test_fp32_matches_eager(cache, model, level):
    bundle = build_model(*MODELS[model], seed=4)
    inputs = batch(bundle)
    ref, _ = run("eager", bundle, inputs, cache)
    out, notes = run("optimum", bundle, inputs, cache, opt_level=level)
    assert out.shape == ref.shape and out.dtype == np.float32
    stats = compare_outputs(ref, out, inputs["attention_mask"], head=bundle.head)
    # O3 swaps GELU for its tanh approximation (error < 1e-3 of activations); O1/O2 are exact rewrites.
    assert stats["max_abs_diff"] <= (1e-3 if level == "O3" else 1e-4), stats
    assert f"ORTOptimizer {level}" in notes[0]


@pytest.mark.slow
def test_int8_is_quantised_and_close(cache):
    import onnx

    bundle = build_model("tiny-xlmr", "pair", 3, seed=4)
    inputs = batch(bundle)
    ref, _ = run("eager", bundle, inputs, cache)
    backend = OptimumBackend(bundle, "cpu", "int8", 1, cache)
    backend.load()
    out = backend.fetch(backend.forward(backend.prepare(inputs)))
    stats = compare_outputs(ref, out, inputs["attention_mask"], head=bundle.head)
    assert stats["correlation"] > 0.99 and stats["max_abs_diff"] > 0, stats
    flavour = "avx512_vnni" if cpu_has_vnni() else "avx2"
    assert f"ORTQuantizer {flavour}" in backend.notes[0]
    graph = onnx.load(str(backend.model.path), load_external_data=False).graph
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= {n.op_type for n in graph.node}
    backend.close()
    assert backend.model is None


@pytest.mark.slow
def test_second_load_comes_from_cache(cache):
    bundle = build_model("tiny-xlmr", "pair", 3, seed=5)
    inputs = batch(bundle)
    first, notes1 = run("optimum", bundle, inputs, cache)
    second, notes2 = run("optimum", bundle, inputs, cache)
    assert "built now" in notes1[0] and "from cache" in notes2[0]
    np.testing.assert_array_equal(first, second)
    entry = next(p for p in (__import__("pathlib").Path(cache) / "optimum").iterdir()
                 if json.loads((p / "manifest.json").read_text())["recipe"]["weights"])
    assert {"model.onnx", "model.onnx.data", "config.json"} <= {p.name for p in entry.iterdir()}


def test_pooled_head_points_to_onnxruntime_backend():
    bundle = build_model("tiny-mbert", "retrieval", 0, seed=1)
    with pytest.raises(InputError, match="'onnxruntime' backend") as err:
        OptimumBackend(bundle)
    assert err.value.field == "backends"


@pytest.mark.parametrize("device,dtype,level", [("cpu", "fp32", "O4"), ("cuda", "fp16", "O2"), ("cpu", "fp32", "O5")])
def test_bad_levels_are_input_errors(device, dtype, level):
    bundle = build_model("tiny-xlmr", "pair", 3, seed=1)
    with pytest.raises(InputError) as err:
        OptimumBackend(bundle, device, dtype, opt_level=level)
    assert err.value.field == "ort_opt_level"


def test_vnni_read_from_cpuinfo_flags():
    assert cpu_has_vnni("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\n")
    assert not cpu_has_vnni("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx_vnni\n")  # AVX-VNNI is not 512
    assert not cpu_has_vnni("")


def test_config_validates_level():
    from xlt_bench.core.config import RunConfig

    assert RunConfig(ort_opt_level="O3").ort_opt_level == "O3"
    with pytest.raises(InputError, match="O1, O2, O3, O4"):
        RunConfig(ort_opt_level="O9")
