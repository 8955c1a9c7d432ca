"""The ONNX cache: content-addressed entries, reuse without re-export, damaged/stale entries warned about and rebuilt,
fused operators present, a clear error when onnxruntime is missing."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from xlt_bench.backends import onnx_build
from xlt_bench.backends.onnx_cache import MANIFEST, file_sha256, get_or_build
from xlt_bench.backends.onnxrt import OnnxRuntimeBackend
from xlt_bench.core.errors import InputError
from xlt_bench.backends.models import build_model


def write_model(tmp, text="weights"):
    (tmp / "model.onnx").write_text(text)
    return {"fusions": {"Attention": 1}}


def test_get_or_build_builds_once_then_reuses(tmp_path):
    calls = []
    build = lambda tmp: calls.append(tmp) or write_model(tmp)  # noqa: E731
    entry, built = get_or_build(tmp_path, "k1", build, {"dtype": "fp32"})
    again, built_again = get_or_build(tmp_path, "k1", build, {"dtype": "fp32"})
    assert (built, built_again, len(calls)) == (True, False, 1) and again == entry
    manifest = json.loads((entry / MANIFEST).read_text())
    assert manifest["key"] == "k1" and manifest["fusions"] == {"Attention": 1}
    assert manifest["files"] == {"model.onnx": file_sha256(entry / "model.onnx")}
    assert [p.name for p in tmp_path.iterdir()] == ["k1"]  # no temporary directories left behind


@pytest.mark.parametrize("damage", ["edit", "delete", "stale_key", "no_manifest"])
def test_damaged_or_stale_entry_is_rebuilt_with_warning(tmp_path, damage):
    entry, _ = get_or_build(tmp_path, "k1", write_model, {})
    if damage == "edit":
        (entry / "model.onnx").write_text("truncated")
    elif damage == "delete":
        (entry / "model.onnx").unlink()
    elif damage == "stale_key":
        manifest = json.loads((entry / MANIFEST).read_text())
        (entry / MANIFEST).write_text(json.dumps(dict(manifest, key="other")))
    else:
        (entry / MANIFEST).unlink()
    with pytest.warns(UserWarning, match="unusable"):
        entry, built = get_or_build(tmp_path, "k1", write_model, {})
    assert built and (entry / "model.onnx").read_text() == "weights"


def test_failed_build_leaves_no_entry(tmp_path):
    def broken(tmp):
        (tmp / "model.onnx").write_text("half")
        raise RuntimeError("export failed")

    with pytest.raises(RuntimeError):
        get_or_build(tmp_path, "k1", broken, {})
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def bundle():
    return build_model("tiny-mbert", "pair", 3, seed=2)


def run_once(backend, bundle):
    rng = np.random.default_rng(0)
    mask = np.array([[1] * 7, [1] * 4 + [0] * 3], dtype=np.int64)
    inputs = {"input_ids": rng.integers(5, 900, (2, 7)) * mask, "attention_mask": mask,
              "token_type_ids": np.zeros((2, 7), dtype=np.int64)}
    return backend.fetch(backend.forward(backend.prepare(inputs)))


@pytest.mark.slow
def test_second_load_reuses_cache_and_corruption_rebuilds(tmp_path, bundle, monkeypatch):
    first = OnnxRuntimeBackend(bundle, threads=1, cache_dir=str(tmp_path))
    first.load()
    model_file = first.model_dir / onnx_build.MODEL_FILE
    reference, mtime = run_once(first, bundle), model_file.stat().st_mtime_ns
    assert first.built_now
    # Fusions happened: one Attention per layer, embedding + skip layer norms, fused GELUs.
    layers = bundle.config.num_hidden_layers
    assert first.fusions["Attention"] == layers and first.fusions["BiasGelu"] == layers
    assert first.fusions["SkipLayerNormalization"] == 2 * layers and first.fusions["EmbedLayerNormalization"] == 1

    exports = []
    real_step = onnx_build.run_step
    monkeypatch.setattr(onnx_build, "run_step", lambda step, **kw: exports.append(step) or real_step(step, **kw))
    second = OnnxRuntimeBackend(bundle, threads=1, cache_dir=str(tmp_path))
    second.load()
    assert exports == [] and not second.built_now and second.model_dir == first.model_dir
    assert model_file.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(run_once(second, bundle), reference)

    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the weights
    model_file.write_bytes(bytes(data))
    third = OnnxRuntimeBackend(bundle, threads=1, cache_dir=str(tmp_path))
    with pytest.warns(UserWarning, match="checksum"):
        third.load()
    assert exports == ["export", "optimise"] and third.built_now
    np.testing.assert_allclose(run_once(third, bundle), reference, atol=1e-6)


@pytest.mark.slow
def test_int8_entry_derives_from_fp32_and_is_quantised(tmp_path, bundle):
    import onnx

    backend = OnnxRuntimeBackend(bundle, dtype="int8", threads=1, cache_dir=str(tmp_path))
    backend.load()
    entries = sorted(p.name for p in (tmp_path / "onnx").iterdir())
    manifest = json.loads((backend.model_dir / MANIFEST).read_text())
    assert len(entries) == 2 and manifest["derived_from"] in entries  # fp32 entry + int8 entry
    ops = {n.op_type for n in onnx.load(str(backend.model_dir / onnx_build.MODEL_FILE)).graph.node}
    assert {"QAttention", "MatMulInteger", "DynamicQuantizeLinear"} & ops, ops


def test_changed_weights_change_the_key(tmp_path, bundle):
    a = OnnxRuntimeBackend(bundle, cache_dir=str(tmp_path))
    other = build_model("tiny-mbert", "pair", 3, seed=3)
    b = OnnxRuntimeBackend(other, cache_dir=str(tmp_path))
    assert a._recipe("fp32")["weights"] != b._recipe("fp32")["weights"]
    assert a._recipe("fp32") != a._recipe("int8")


def test_missing_onnxruntime_names_the_extra(monkeypatch, bundle):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` raise ImportError
    with pytest.raises(InputError, match=r"xlt-bench\[onnxruntime\]"):
        OnnxRuntimeBackend(bundle).load()


def test_cuda_without_cuda_provider_is_input_error(bundle):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed")
    with pytest.raises(InputError, match="onnxruntime-gpu") as err:
        OnnxRuntimeBackend(bundle, device="cuda").load()
    assert err.value.field == "device"


def test_export_works_with_a_relative_cache_dir(tmp_path, monkeypatch):
    """The default --cache-dir is relative (.xlt_cache) while the optimiser's child process changes directory:
    every path it is given must still resolve."""
    from xlt_bench.backends import get_backend_class
    from xlt_bench.backends.models import build_model
    monkeypatch.chdir(tmp_path)
    backend = get_backend_class("onnxruntime")(build_model("tiny-xlmr", "pair", 3), "cpu", "fp32", 1, ".xlt_cache")
    backend.load()
    ids = np.full((2, 7), 5, dtype=np.int64)
    out = backend.fetch(backend.forward(backend.prepare({"input_ids": ids, "attention_mask": np.ones_like(ids)})))
    assert out.shape == (2, 3) and np.isfinite(out).all()


@pytest.mark.parametrize("flags, reduce_range", [(["avx2", "fma"], True), (["avx2", "avx512f", "avx512_vnni"], False),
                                                 (["avx2", "avx_vnni"], False), (["amx_int8", "amx_tile"], False)])
def test_int8_weights_use_seven_bits_where_the_cpu_sums_in_int16(flags, reduce_range):
    from xlt_bench.backends.onnx_build import int8_settings
    settings = int8_settings(flags)
    assert settings["reduce_range"] is reduce_range and settings["per_channel"] is True
