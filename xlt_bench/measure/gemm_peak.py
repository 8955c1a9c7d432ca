"""Measured GEMM peak per (library, dtype): the denominator of MFU (DESIGN §3).

The peak is measured on the same machine in the same run, with the kernels the backends use, because they differ a lot
(on the development CPU torch/MKL and ONNX Runtime/MLAS fp32 GEMMs differ about twofold).

- Shape: the model's own feed-forward up-projection, (m, k, n) = (2048, hidden, intermediate): 2048 tokens (a 32 x 64
  batch) through hidden -> intermediate; (2048, 768, 3072), a base model's, when the sizes are not given.
  FLOPs per call = 2 m n k.
- Figure: `flops_per_s` = 2 m n k / median seconds per call, after one untimed warm-up call; calls repeat until
  `seconds` of wall time have elapsed and at least `min_repeats` calls were timed. `flops_per_s_best` uses the
  fastest call.
- torch fp32/bf16/fp16: `torch.matmul` (fp16 on CUDA only: torch's CPU fp16 GEMM is a slow scalar fallback).
  torch int8 on CPU: a dynamically quantised `nn.Linear` (`torch.ao.quantization.quantize_dynamic`, qint8 weights,
  activations quantised per call), exactly what the eager int8 backend runs, activation quantisation included;
  on CUDA, `torch._int_mm` on int8 operands.
- onnxruntime fp32/fp16: a one-node MatMul graph (constant weight) built with `onnx.helper`. int8: that graph after
  `onnxruntime.quantization.quantize_dynamic` with the onnxruntime backend's own settings (per-channel int8 weights,
  DynamicQuantizeLinear + MatMulInteger), as that backend quantises the model. int8 "FLOP/s" are integer
  multiply-adds x 2 per second.
- CUDA: timed with CUDA events around each call, one synchronisation at the end (ONNX Runtime: IOBinding on the device,
  so no host copies are timed).
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from typing import Any

from xlt_bench.measure.timing import time_calls

DEFAULT_MKN = (2048, 768, 3072)
LIBRARIES = ("torch", "onnxruntime")


def gemm_peak(library: str, dtype: str, device: str = "cpu", seconds: float = 1.5, threads: int | None = None,
              *, m: int = DEFAULT_MKN[0], k: int = DEFAULT_MKN[1], n: int = DEFAULT_MKN[2],
              min_repeats: int = 3) -> dict[str, Any]:
    """Measure the GEMM throughput of `library` in `dtype` on `device`. Raises ValueError for an unsupported pair."""
    if library == "torch":
        call, sync, cuda_events = _torch_gemm(dtype, device, m, k, n, threads)
    elif library == "onnxruntime":
        call, sync, cuda_events = _ort_gemm(dtype, device, m, k, n, threads)
    else:
        raise ValueError(f"unknown GEMM library {library!r}; expected one of {', '.join(LIBRARIES)}")
    with _torch_threads(threads if library == "torch" else None):
        call()  # warm-up: first-call allocations, kernel selection, lazy initialisation
        sync()
        times = _time_calls(call, sync, seconds, min_repeats, cuda_events)
    flops = 2 * m * n * k
    return {"library": library, "dtype": dtype, "device": device,
            "flops_per_s": flops / statistics.median(times), "flops_per_s_best": flops / min(times),
            "m": m, "n": n, "k": k, "repeats": len(times), "seconds": sum(times), "threads": threads}


def measure_peaks(pairs: Iterable[tuple[str, str]], device: str, threads: int | None, seconds: float = 1.5, *,
                  hidden: int | None = None, intermediate: int | None = None) -> dict[str, dict[str, Any]]:
    """Peaks keyed "library/dtype", each timed on the GEMM hidden -> intermediate (the model's up-projection; a base
    model's 768 -> 3072 for a size not given). An unsupported pair gets flops_per_s None and a note instead."""
    k = hidden or DEFAULT_MKN[1]
    n = intermediate or DEFAULT_MKN[2]
    peaks: dict[str, dict[str, Any]] = {}
    for library, dtype in dict.fromkeys(pairs):  # de-duplicated, in order
        try:
            peaks[f"{library}/{dtype}"] = gemm_peak(library, dtype, device, seconds, threads, k=k, n=n)
        except (ValueError, RuntimeError, ImportError) as exc:
            peaks[f"{library}/{dtype}"] = {"library": library, "dtype": dtype, "device": device,
                                           "flops_per_s": None, "note": f"peak not measured: {exc}"}
    return peaks


def _time_calls(call: Callable[[], Any], sync: Callable[[], None], seconds: float, min_repeats: int,
                cuda_events: bool) -> list[float]:
    """Seconds per call (timing.time_calls), repeating until both `seconds` and `min_repeats` are met. On CUDA one
    call is timed first to size the run, then every call is queued between events with one synchronisation."""
    if cuda_events:
        probe = time_calls([call], cuda_events=True, synchronize=sync).latencies_s[0]
        repeats = max(min_repeats, min(int(seconds / max(probe, 1e-6)) + 1, 10_000))
        return time_calls([call] * repeats, cuda_events=True, synchronize=sync).latencies_s
    # Bounded by wall time, not by the sum of the calls: a tiny GEMM (a test model's) is dominated by the loop's own
    # overhead and would otherwise run several times `seconds`.
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_repeats or time.perf_counter() - start < seconds:
        times.extend(time_calls([call], cuda_events=False, synchronize=sync).latencies_s)
    return times


@contextmanager
def _torch_threads(threads: int | None):
    if not threads:
        yield
        return
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _torch_gemm(dtype: str, device: str, m: int, k: int, n: int, threads: int | None):
    import torch
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda requested but torch sees no CUDA GPU")
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=gen)
    b = torch.randn(k, n, generator=gen) * 0.02
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    from xlt_bench.backends.models import TORCH_DTYPES as floats
    if dtype == "fp16" and device == "cpu":
        # No backend runs fp16 on the CPU, and torch's CPU fp16 GEMM is a scalar fallback (~1 GFLOP/s measured here):
        # one call at the default shape would take tens of seconds.
        raise ValueError("torch fp16 GEMM is not measured on the CPU (no backend runs it; use bf16)")
    if dtype in floats:
        a, b = a.to(device, floats[dtype]), b.to(device, floats[dtype])
        return (lambda: torch.matmul(a, b)), sync, device == "cuda"
    if dtype != "int8":
        raise ValueError(f"torch GEMM dtype must be one of fp32, bf16, fp16, int8, got {dtype!r}")
    if device == "cuda":
        a8 = a.clamp(-127, 127).to(device, torch.int8)
        b8 = (b * 100).clamp(-127, 127).to(device, torch.int8)
        return (lambda: torch._int_mm(a8, b8)), sync, True
    linear = torch.nn.Linear(k, n, bias=False)
    with torch.no_grad():
        linear.weight.copy_(b.t())
    with warnings.catch_warnings():  # torch deprecates the quantised-tensor API this backend still uses
        warnings.simplefilter("ignore", UserWarning)
        quantised = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(linear), {torch.nn.Linear},
                                                           dtype=torch.qint8)

    def call():
        with torch.inference_mode():
            return quantised(a)
    return call, sync, False


def _ort_gemm(dtype: str, device: str, m: int, k: int, n: int, threads: int | None):
    import numpy as np
    import onnxruntime as ort
    if dtype not in ("fp32", "fp16", "int8"):
        raise ValueError(f"onnxruntime GEMM dtype must be one of fp32, fp16, int8, got {dtype!r}")
    np_dtype = np.float16 if dtype == "fp16" else np.float32
    rng = np.random.default_rng(0)
    model_bytes = _matmul_model(rng.standard_normal((k, n)).astype(np_dtype) * np_dtype(0.02), m, dtype == "int8")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ValueError("onnxruntime has no CUDAExecutionProvider in this environment")
        providers = ["CUDAExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    session = ort.InferenceSession(model_bytes, options, providers=providers)
    a = rng.standard_normal((m, k)).astype(np_dtype)
    if device != "cuda":
        return (lambda: session.run(None, {"A": a})), (lambda: None), False
    binding = session.io_binding()
    binding.bind_ortvalue_input("A", ort.OrtValue.ortvalue_from_numpy(a, "cuda", 0))
    binding.bind_output("Y", "cuda")
    return (lambda: session.run_with_iobinding(binding)), (lambda: None), False


def _matmul_model(weight, m: int, quantise: bool) -> bytes:
    """A one-node MatMul(A[m,k], W[k,n]) model; dynamically quantised to int8 when asked."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    elem = TensorProto.FLOAT16 if weight.dtype == np.float16 else TensorProto.FLOAT
    k, n = weight.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["A", "W"], ["Y"])], "gemm_peak",
        [helper.make_tensor_value_info("A", elem, [m, k])], [helper.make_tensor_value_info("Y", elem, [m, n])],
        initializer=[numpy_helper.from_array(weight, "W")])
    # IR 8 / opset 17: what onnxruntime releases from 1.14 on load (onnx's newest IR can be ahead of the runtime).
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    if not quantise:
        return model.SerializeToString()
    return _quantise_dynamic(model)


def _quantise_dynamic(model) -> bytes:
    import logging
    import tempfile
    from pathlib import Path

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from xlt_bench.backends.onnx_build import int8_settings  # the ONNX Runtime backend's own quantiser settings
    settings = dict(int8_settings(), weight_type=QuantType.QInt8)
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "gemm.onnx", Path(tmp) / "gemm_int8.onnx"
        onnx.save(model, source)
        level = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # quantize_dynamic's pre-processing advice is noise here
        try:
            quantize_dynamic(source, target, **settings)
        finally:
            logging.getLogger().setLevel(level)
        return target.read_bytes()
