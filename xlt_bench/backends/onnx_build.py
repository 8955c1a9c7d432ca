"""Build steps for the ONNX Runtime backend: export, transformer fusions, int8 / fp16 conversion.

Exporter: `torch.onnx.export(..., dynamo=False)`, the TorchScript-based exporter. It exports `BenchEncoder` itself, so
every head (pooled mean, stacked span logits) is the same graph eager runs, with dynamic batch and sequence axes; it
needs no onnxscript, and ONNX Runtime's BERT fusion patterns are written against its output. optimum's exporter would
export the bare transformers model, whose outputs differ from BenchEncoder's for the pooled and span heads.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import torch

from ..models import ModelBundle

OPSET = 17  # first opset with LayerNormalization as one op; ORT's fusions accept it
EXPORTER = "torch.onnx.export(dynamo=False)"
MODEL_FILE = "model.onnx"
# Protobuf caps a model file at 2 GiB; larger models (xlmr-large) keep their weights in one external file.
EXTERNAL_DATA_BYTES = 1_800_000_000
# Fused operators worth counting: ORT's BERT optimiser reports these.
FUSED_OPS = ("Attention", "MultiHeadAttention", "EmbedLayerNormalization", "SkipLayerNormalization",
             "LayerNormalization", "BiasGelu", "Gelu", "FastGelu")
# int8 for AVX-512 VNNI: uint8 activations x int8 weights, full 8-bit range (reduce_range only helps CPUs without
# VNNI, whose int16 accumulation can saturate), per-channel weight scales for accuracy. onnx's shape inference
# cannot type the outputs of ORT's fused (com.microsoft) ops, so the quantiser is told they are float (TensorProto 1).
INT8_SETTINGS = {"weight_type": "QInt8", "per_channel": True, "reduce_range": False,
                 "extra_options": {"MatMulConstBOnly": True, "DefaultTensorType": 1}}


def input_names(bundle: ModelBundle) -> list[str]:
    return ["input_ids", "attention_mask"] + (["token_type_ids"] if bundle.takes_token_types else [])


def is_large(bundle: ModelBundle) -> bool:
    return sum(p.numel() * 4 for p in bundle.module.parameters()) > EXTERNAL_DATA_BYTES


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


def optimise_bert(src: Path, dst: Path, bundle: ModelBundle, use_gpu: bool) -> dict[str, int]:
    """ORT's transformer optimiser (model_type "bert" covers BERT and XLM-R); returns fused-op counts."""
    from onnxruntime.transformers import optimizer

    cfg = bundle.config
    # opt_level=0: only the Python fusions, so the stored graph stays EP-neutral; the session applies the rest.
    model = optimizer.optimize_model(str(src), model_type="bert", num_heads=cfg.num_attention_heads,
                                     hidden_size=cfg.hidden_size, opt_level=0, use_gpu=use_gpu)
    save_model(model.model, dst, is_large(bundle))
    return fused_op_counts(model.model)


def fused_op_counts(model: Any) -> dict[str, int]:
    counts = {op: 0 for op in FUSED_OPS}
    for node in model.graph.node:
        if node.op_type in counts:
            counts[node.op_type] += 1
    return counts


def quantise_int8(src: Path, dst: Path, large: bool) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    settings = dict(INT8_SETTINGS, weight_type=QuantType.QInt8)
    quantize_dynamic(str(src), str(dst), use_external_data_format=large, **settings)


def convert_fp16(src: Path, dst: Path, large: bool) -> None:
    """fp16 weights and activations for CUDA; inputs stay int64 and the output stays fp32 (keep_io_types)."""
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(src)))
    model.convert_float_to_float16(keep_io_types=True)
    save_model(model.model, dst, large)


def save_model(model: Any, path: Path, large: bool) -> None:
    """Save through ORT's OnnxModel: it declares the com.microsoft opset the fused ops need and keeps the weights
    of a large model in one external file."""
    from onnxruntime.transformers.onnx_model import OnnxModel

    wrapped = OnnxModel(model)
    wrapped.topological_sort()
    OnnxModel.save(wrapped.model, str(path), save_as_external_data=large, all_tensors_to_one_file=True)
