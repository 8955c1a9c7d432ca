"""Build steps for the ONNX Runtime backends: export, transformer fusions, int8 / fp16 conversion.

Exporter: `torch.onnx.export(..., dynamo=False)`, the TorchScript-based exporter. It exports `BenchEncoder` itself, so
every head (pooled mean, stacked span logits) is the same graph eager runs, with dynamic batch and sequence axes; it
needs no onnxscript, and ONNX Runtime's BERT fusion patterns are written against its output. (The `optimum` backend
exports the bare transformers model instead: optimum_ort.py.)

Memory: each step runs in a fresh Python process (`run_step`). Exporting and optimising hold several copies of the
weights (traced graph, serialised protobuf, the optimiser's model), ~5 GB for xlmr-base; in a child process that
memory goes back to the OS when the step ends instead of staying in the benchmark's heap. The child gets the model
as a `save_pretrained` copy (safetensors) in the cache directory. Models are stored with their weights in one external
data file, which ONNX Runtime memory-maps: pages of the 768 MB XLM-R embedding table that no token touches are never
read, so a session of xlmr-base holds ~0.6 GB instead of ~1.9 GB (measured, README "ONNX Runtime and optimum").
"""

from __future__ import annotations

import copy
import importlib
import json
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from xlt_bench.backends.models import ModelBundle

OPSET = 17  # first opset with LayerNormalization as one op; ORT's fusions accept it
EXPORTER = "torch.onnx.export(dynamo=False)"
MODEL_FILE = "model.onnx"
# Weights live beside the graph in this file (memory-mapped by ONNX Runtime; no 2 GiB protobuf limit).
DATA_FILE = "model.onnx.data"
# Fused operators worth counting: ORT's BERT optimiser reports these.
FUSED_OPS = ("Attention", "MultiHeadAttention", "EmbedLayerNormalization", "SkipLayerNormalization",
             "LayerNormalization", "BiasGelu", "Gelu", "FastGelu")
# int8: uint8 activations x int8 weights, per-channel weight scales for accuracy. onnx's shape inference cannot type
# the outputs of ORT's fused (com.microsoft) ops, so the quantiser is told they are float (TensorProto 1).
INT8_SETTINGS = {"weight_type": "QInt8", "per_channel": True, "reduce_range": False,
                 "extra_options": {"MatMulConstBOnly": True, "DefaultTensorType": 1}}
# CPU flags of an 8-bit dot product that accumulates in int32 (AVX-512 VNNI, AVX-VNNI, AMX).
_INT32_DOT_FLAGS = ("avx512_vnni", "avx512vnni", "avx_vnni", "amx_int8")


def int8_settings(cpu_flags: list[str] | None = None) -> dict[str, Any]:
    """The quantiser settings for this CPU: full 8-bit weights where it has an int32-accumulating 8-bit dot product;
    7-bit weights (reduce_range) where it has not, since there (AVX2's vpmaddubsw) pairs of u8 x s8 products are
    summed in int16 and saturate at the full range (ONNX Runtime's quantization guide recommends reduce_range on
    non-VNNI machines)."""
    if cpu_flags is None:
        from xlt_bench.core.env import cpu_info
        cpu_flags = cpu_info()["flags"]
    has_int32_dot = any(flag in cpu_flags for flag in _INT32_DOT_FLAGS)
    return {**INT8_SETTINGS, "reduce_range": not has_int32_dot}
# Steps a child process may run (python -m xlt_bench.backends.onnx_build JOB.json): nothing else is importable.
STEPS = {"export": "xlt_bench.backends.onnx_build:step_export",
         "optimise": "xlt_bench.backends.onnx_build:step_optimise",
         "int8": "xlt_bench.backends.onnx_build:step_int8",
         "fp16": "xlt_bench.backends.onnx_build:step_fp16",
         "optimum": "xlt_bench.backends.optimum_ort:step_build"}


def input_names(bundle: ModelBundle) -> list[str]:
    return bundle.input_names


# ---- running a step in a child process ---------------------------------------------------------------------------
def run_step(step: str, **kwargs: Any) -> dict[str, Any]:
    """Run one build step in a fresh interpreter; returns the step's facts plus the child's peak RSS (bytes)."""
    if step not in STEPS:
        raise ValueError(f"unknown ONNX build step '{step}'")
    with tempfile.TemporaryDirectory(prefix="xlt-onnx-step-") as work:
        job, result = Path(work) / "job.json", Path(work) / "result.json"
        job.write_text(json.dumps({"step": step, "kwargs": kwargs, "result": str(result)}))
        proc = subprocess.run([sys.executable, "-m", "xlt_bench.backends.onnx_build", str(job)],
                              capture_output=True, text=True)
        if proc.returncode != 0 or not result.is_file():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise RuntimeError(f"ONNX build step '{step}' failed in its subprocess (exit {proc.returncode}):\n{tail}")
        return json.loads(result.read_text())


def peak_rss_bytes() -> int:
    """VmHWM of this process: the most resident memory it ever held."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _child_main(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    module_name, func_name = STEPS[job["step"]].split(":")
    facts = getattr(importlib.import_module(module_name), func_name)(**job["kwargs"]) or {}
    facts["peak_rss_bytes"] = peak_rss_bytes()
    Path(job["result"]).write_text(json.dumps(facts))


def save_for_export(bundle: ModelBundle, directory: Path) -> None:
    """The bundle's transformers model as a local copy (config + safetensors) a child process can load."""
    from safetensors.torch import save_model

    model = bundle.module.model
    directory.mkdir(parents=True, exist_ok=True)
    # Not model.save_pretrained: it writes architectures/dtype into the live config, which is the cache key.
    config = copy.deepcopy(model.config)
    config.architectures = [type(model).__name__]
    config.save_pretrained(str(directory))
    save_model(model, str(directory / "model.safetensors"), metadata={"format": "pt"})


def load_saved(model_dir: str, head: str, num_labels: int, attn: str | None) -> ModelBundle:
    from xlt_bench.backends.models import load_pretrained
    bundle = load_pretrained(model_dir, head, num_labels, attn)
    bundle.module.to(torch.float32)
    return bundle


# ---- steps (run in the child) ------------------------------------------------------------------------------------
def step_export(model_dir: str, head: str, num_labels: int, attn: str | None, dst: str) -> dict[str, Any]:
    export_onnx(load_saved(model_dir, head, num_labels, attn), Path(dst))
    return {}


def step_optimise(src: str, dst: str, num_heads: int, hidden_size: int, use_gpu: bool) -> dict[str, Any]:
    return {"fusions": optimise_bert(Path(src), Path(dst), num_heads, hidden_size, use_gpu)}


def step_int8(src: str, dst: str) -> dict[str, Any]:
    quantise_int8(Path(src), Path(dst))
    return {}


def step_fp16(src: str, dst: str) -> dict[str, Any]:
    convert_fp16(Path(src), Path(dst))
    return {}


def export_onnx(bundle: ModelBundle, path: Path) -> None:
    """Export the fp32 BenchEncoder on CPU with dynamic batch and sequence axes."""
    module = bundle.module
    first = next(module.parameters())
    if first.device.type != "cpu" or first.dtype != torch.float32:
        module = copy.deepcopy(module).to("cpu", torch.float32)
    names = input_names(bundle)
    dummy = tuple(torch.ones((2, 8), dtype=torch.long) for _ in names)
    out_axes = {0: "batch"} if bundle.head in ("sequence", "pooled") else {0: "batch", 1: "sequence"}
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"output": out_axes}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter about the legacy exporter
        torch.onnx.export(module.eval(), dummy, str(path), input_names=names, output_names=["output"],
                          dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True, dynamo=False)


def optimise_bert(src: Path, dst: Path, num_heads: int, hidden_size: int, use_gpu: bool) -> dict[str, int]:
    """ORT's transformer optimiser (model_type "bert" covers BERT and XLM-R); returns fused-op counts.

    The optimiser's symbolic shape inference copies the whole model several times (6.7 GB for xlmr-base), so it
    runs on a model whose large weights stay on disk: the export is first rewritten with its weights in an external
    file, loaded without them, and the fusions that read a weight load that one tensor (resolved from the working
    directory, which is this child process's own). All weights are loaded back just before saving."""
    import os

    import onnx
    from onnx.external_data_helper import load_external_data_for_model
    from onnxruntime.transformers import optimizer

    # Absolute: the optimiser runs with this directory as the working directory, and the cache dir may be relative.
    src, dst = Path(src).resolve(), Path(dst).resolve()
    lazy_dir = dst.parent / "lazy"
    lazy_dir.mkdir()
    model = onnx.load(str(src))
    onnx.save_model(model, str(lazy_dir / MODEL_FILE), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=DATA_FILE, size_threshold=1024)
    del model
    cwd = os.getcwd()
    os.chdir(lazy_dir)  # relative external-data locations resolve from here
    try:
        model = onnx.load(MODEL_FILE, load_external_data=False)
        # opt_level=0: only the Python fusions, so the stored graph stays EP-neutral; the session applies the rest.
        optimised = optimizer.optimize_model(model, model_type="bert", num_heads=num_heads, hidden_size=hidden_size,
                                             opt_level=0, use_gpu=use_gpu)
        load_external_data_for_model(optimised.model, str(lazy_dir))
    finally:
        os.chdir(cwd)
    save_model(optimised.model, dst)
    for leftover in lazy_dir.iterdir():
        leftover.unlink()
    lazy_dir.rmdir()
    return fused_op_counts(optimised.model)


def fused_op_counts(model: Any) -> dict[str, int]:
    counts = {op: 0 for op in FUSED_OPS}
    for node in model.graph.node:
        if node.op_type in counts:
            counts[node.op_type] += 1
    return counts


def quantise_int8(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    settings = dict(int8_settings(), weight_type=QuantType.QInt8)
    tmp = dst.with_name("int8-" + dst.name)
    quantize_dynamic(str(src), str(tmp), use_external_data_format=True, **settings)
    save_model(onnx.load(str(tmp)), dst)  # its weights into DATA_FILE, as every entry names them
    for leftover in (tmp, tmp.with_name(tmp.name + ".data")):
        leftover.unlink(missing_ok=True)


def convert_fp16(src: Path, dst: Path) -> None:
    """fp16 weights and activations for CUDA; inputs stay int64 and the output stays fp32 (keep_io_types)."""
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(src)))
    model.convert_float_to_float16(keep_io_types=True)
    save_model(model.model, dst)


def save_model(model: Any, path: Path) -> None:
    """Save through ORT's OnnxModel (it declares the com.microsoft opset the fused ops need), weights in DATA_FILE
    beside the graph."""
    from onnxruntime.transformers.onnx_model import OnnxModel

    wrapped = OnnxModel(model)
    wrapped.topological_sort()
    assert path.name + ".data" == DATA_FILE  # OnnxModel names the external file after the graph file
    OnnxModel.save(wrapped.model, str(path), save_as_external_data=True, all_tensors_to_one_file=True)


if __name__ == "__main__":
    _child_main(sys.argv[1])
