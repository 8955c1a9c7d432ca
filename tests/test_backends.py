"""Backends compute what eager fp32 computes: every backend x dtype available on CPU, on tiny presets, at two padded
shapes with ragged masks, for sequence, token, span and pooled heads. CUDA cases skip without a GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xlt_bench.backends import get_backend_class
from parity_helpers import compare_outputs
from xlt_bench.core.errors import InputError
from xlt_bench.backends.models import build_model

SHAPES = [(3, 16), (5, 9)]
CPU_COMBOS = [("eager", "bf16"), ("eager", "int8"), ("torchscript", "fp32"), ("torchscript", "bf16"),
              ("torchscript", "int8"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")]
CUDA_COMBOS = [("eager", "fp32"), ("eager", "bf16"), ("eager", "fp16"), ("torchscript", "fp32"),
               ("torchscript", "bf16"), ("torchscript", "fp16"), ("onnxruntime", "fp32"), ("onnxruntime", "fp16")]
MODELS = {"xlmr-pair": ("tiny-xlmr", "pair", 3), "mbert-tagging": ("tiny-mbert", "tagging", 5),
          "xlmr-qa": ("tiny-xlmr", "qa", 2), "mbert-retrieval": ("tiny-mbert", "retrieval", 0)}


def ragged_batch(bundle, batch: int, length: int, seed: int) -> dict[str, np.ndarray]:
    """Right-padded batch: row 0 full length, the others random lengths >= 2."""
    rng = np.random.default_rng(seed)
    lengths = np.concatenate([[length], rng.integers(2, length + 1, batch - 1)])
    mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int64)
    ids = np.where(mask == 1, rng.integers(5, 2000, (batch, length)), bundle.pad_id).astype(np.int64)
    inputs = {"input_ids": ids, "attention_mask": mask}
    if bundle.takes_token_types:
        inputs["token_type_ids"] = (np.arange(length)[None, :] >= lengths[:, None] // 2).astype(np.int64) * mask
    return inputs


@pytest.fixture(scope="module", params=list(MODELS))
def case(request):
    name, kind, labels = MODELS[request.param]
    bundle = build_model(name, kind, labels, seed=1)
    batches = [ragged_batch(bundle, b, n, seed=i) for i, (b, n) in enumerate(SHAPES)]
    reference = run_backend("eager", "fp32", bundle, batches, None)
    return bundle, batches, reference


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("xlt_cache"))


def run_backend(name, dtype, bundle, batches, cache_dir, device="cpu"):
    backend = get_backend_class(name)(bundle, device=device, dtype=dtype, threads=1,
                                      cache_dir=cache_dir or ".xlt_cache")
    backend.load()
    outputs = []
    for inputs in batches:
        out = backend.forward(backend.prepare(inputs))
        backend.synchronize()
        outputs.append(backend.fetch(out))
    backend.close()
    return outputs


def check_parity(bundle, batches, reference, outputs, dtype):
    for inputs, ref, out in zip(batches, reference, outputs):
        assert out.dtype == np.float32 and out.shape == ref.shape
        stats = compare_outputs(ref, out, inputs["attention_mask"], head=bundle.head)
        if dtype == "fp32":
            assert stats["max_abs_diff"] <= 1e-4, stats
        else:
            # Random-weight logits are tiny and near-tied, so argmax agreement is not a sound bound; the correlation
            # of all real outputs is scale-free and collapses for a broken backend (see test_parity_catches_...).
            assert stats["correlation"] > 0.99, stats
            # Reduced precision must really be reduced: identical output would mean fp32 ran instead.
            assert stats["max_abs_diff"] > 0, stats


@pytest.mark.slow
@pytest.mark.parametrize("name,dtype", CPU_COMBOS)
def test_cpu_backend_matches_eager_fp32(case, cache_dir, name, dtype):
    bundle, batches, reference = case
    outputs = run_backend(name, dtype, bundle, batches, cache_dir)
    check_parity(bundle, batches, reference, outputs, dtype)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
@pytest.mark.parametrize("name,dtype", CUDA_COMBOS)
def test_cuda_backend_matches_eager_fp32(case, cache_dir, name, dtype):
    if name == "onnxruntime":
        ort = pytest.importorskip("onnxruntime")
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            pytest.skip("onnxruntime has no CUDAExecutionProvider here (CPU-only wheel, not onnxruntime-gpu)")
    bundle, batches, reference = case
    outputs = run_backend(name, dtype, bundle, batches, cache_dir, device="cuda")
    for inputs, ref, out in zip(batches, reference, outputs):
        stats = compare_outputs(ref, out, inputs["attention_mask"], head=bundle.head)
        # TF32 / fused kernels on GPU: fp32 within 1e-3, half precisions by correlation.
        assert stats["max_abs_diff"] <= 1e-3 if dtype == "fp32" else stats["correlation"] > 0.99, stats
        if dtype != "fp32":  # a half-precision run that returns fp32's exact numbers did not run in half precision
            assert stats["max_abs_diff"] > 0, stats


def test_parity_catches_a_broken_backend():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(8, 12, 5)) * 0.01
    mask = np.ones((8, 12), dtype=np.int64)
    shuffled = rng.permutation(reference.ravel()).reshape(reference.shape)
    assert compare_outputs(reference, shuffled, mask)["correlation"] < 0.5
    assert compare_outputs(reference, reference * 1.001, mask)["correlation"] > 0.999


@pytest.mark.parametrize("name,device,dtype", [("eager", "cpu", "fp16"), ("torchscript", "cpu", "fp16"),
                                               ("onnxruntime", "cpu", "bf16"), ("onnxruntime", "tpu", "fp32")])
def test_unsupported_combination_lists_supported(name, device, dtype):
    with pytest.raises(InputError) as err:
        get_backend_class(name).check_supported(device, dtype)
    assert "supported: " in str(err.value) and "cpu/fp32" in str(err.value)
    assert err.value.field == ("device" if device == "tpu" else "dtype")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
@pytest.mark.parametrize("name", ["eager", "torchscript"])
def test_cuda_without_gpu_is_input_error(name):
    bundle = build_model("tiny-mbert", "pair", 2)
    with pytest.raises(InputError, match="no CUDA GPU"):
        get_backend_class(name)(bundle, device="cuda", dtype="fp32").load()


def test_torchscript_one_graph_for_every_shape_on_cpu():
    cls = get_backend_class("torchscript")
    bundle = build_model("tiny-mbert", "pair", 2)
    backend = cls(bundle, threads=1)
    assert backend.recompiles_per_shape is False
    backend.load()
    for batch, length in [(1, 4), (6, 21), (2, 64)]:
        inputs = ragged_batch(bundle, batch, length, seed=batch)
        out = backend.fetch(backend.forward(backend.prepare(inputs)))
        with torch.inference_mode():
            ref = bundle.module(**{k: torch.from_numpy(v) for k, v in inputs.items()}).numpy()
        assert out.shape == (batch, 2) and np.abs(out - ref).max() <= 1e-5
    # Frozen graph: the weights are constants, not module attributes read at run time.
    assert not list(backend.module.parameters())


def test_compare_outputs_sequence_by_hand():
    ref = np.array([[1.0, 2.0], [3.0, 0.0]])
    cand = np.array([[1.0, 2.5], [0.0, 3.0]])
    stats = compare_outputs(ref, cand, None)
    assert stats["max_abs_diff"] == 3.0 and stats["argmax_agreement"] == 0.5


def test_compare_outputs_ignores_padded_tokens():
    ref = np.zeros((1, 3, 2))
    ref[0, :, 0] = 1.0                      # every position predicts class 0
    cand = ref.copy()
    cand[0, 2] = [0.0, 9.0]                 # the padded position is wildly different
    cand[0, 1, 0] = 1.25
    stats = compare_outputs(ref, cand, np.array([[1, 1, 0]]))
    assert stats["max_abs_diff"] == 0.25 and stats["argmax_agreement"] == 1.0
    assert compare_outputs(ref, cand, None)["argmax_agreement"] == pytest.approx(2 / 3)


def test_compare_outputs_span_and_pooled():
    ref = np.zeros((2, 4, 2))
    ref[0, 1, 0] = ref[0, 2, 1] = ref[1, 0, 0] = ref[1, 0, 1] = 5.0
    cand = ref.copy()
    cand[1, 3, 1] = 9.0                     # row 1's end moves to position 3, which is padding
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]])
    assert compare_outputs(ref, cand, mask, head="span")["argmax_agreement"] == 1.0
    assert compare_outputs(ref, cand, None, head="span")["argmax_agreement"] == 0.75
    assert compare_outputs(np.eye(3), np.eye(3), None, head="pooled")["argmax_agreement"] is None
    with pytest.raises(ValueError):
        compare_outputs(np.zeros((2, 3)), np.zeros((3, 2)), None)


def test_torchscript_load_does_not_log_transformers_training_loss_chatter(tmp_path):
    import logging

    from transformers.utils import logging as hf_logging

    class Collect(logging.Handler):
        def __init__(self):
            super().__init__()
            self.messages: list[str] = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    warn_once = logging.Logger.warning_once   # transformers' lru-cached "warn once", installed on every Logger
    collect = Collect()
    logging.getLogger("transformers").addHandler(collect)
    try:
        bundle = build_model("tiny-xlmr", "pair", 3)
        warn_once.cache_clear()
        bundle.module.model.base_model.loss_function   # what tracing reads (the encoder has no loss type set)
        assert any("loss_type=None" in m for m in collect.messages)
        collect.messages.clear()
        warn_once.cache_clear()
        backend = get_backend_class("torchscript")(bundle, "cpu", "fp32", 1, str(tmp_path))
        backend.load()
        backend.close()
        assert not any("loss_type" in m for m in collect.messages)
        assert hf_logging.get_verbosity() == hf_logging.WARNING   # the log level is given back
    finally:
        logging.getLogger("transformers").removeHandler(collect)


def test_torchscript_backend_frees_its_frozen_graph_on_close():
    """Each TorchScript load used to leave one frozen model copy in torch's global compilation unit (+270 MB per
    load of mini-xlmr): after three loads RSS must not have grown by a model's size."""
    import ctypes
    import gc
    from pathlib import Path

    def rss_mb() -> float:
        gc.collect()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            pass
        status = Path("/proc/self/status")
        if not status.exists():
            pytest.skip("needs /proc")
        return int(next(l for l in status.read_text().splitlines() if l.startswith("VmRSS")).split()[1]) / 1024

    cls = get_backend_class("torchscript")
    sizes = []
    for _ in range(3):
        backend = cls(build_model("mini-xlmr", "pair", 3), threads=1)
        backend.load()
        backend.close()
        del backend
        sizes.append(rss_mb())
    assert sizes[2] - sizes[0] < 100, sizes
