"""Backend registry: names map to "module:Class" strings imported lazily, so the package imports without
optional runtimes (onnxruntime) installed."""

from __future__ import annotations

from xlt_bench.core.registry import Registry

BACKENDS = Registry("backend", "backends", {
    "eager": "xlt_bench.backends.eager:EagerBackend",
    "torchscript": "xlt_bench.backends.torchscript:TorchScriptBackend",
    "onnxruntime": "xlt_bench.backends.onnxrt:OnnxRuntimeBackend",
    "compile": "xlt_bench.backends.compile:CompileBackend",
    # What optimum's ORTModelFor* classes give (export, ORTOptimizer level, ORTQuantizer), for comparison.
    "optimum": "xlt_bench.backends.optimum_ort:OptimumBackend",
    # Known cost, no compute: for tests and for studying the batcher on hardware one does not have.
    "fake": "xlt_bench.backends.fake:FakeBackend",
}, base="xlt_bench.backends.base:Backend",
    # The pip extra that installs each optional runtime.
    extras={"onnxruntime": "xlt-bench[onnxruntime]", "optimum": "xlt-bench[optimum]"})


def get_backend_class(name: str):
    return BACKENDS.get(name)
