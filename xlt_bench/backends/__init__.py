"""Backend registry: names map to "module:Class" strings imported lazily, so the package imports without
optional runtimes (onnxruntime) installed."""

from __future__ import annotations

import importlib

from ..errors import InputError

REGISTRY: dict[str, str] = {
    "eager": "xlt_bench.backends.eager:EagerBackend",
    "torchscript": "xlt_bench.backends.torchscript:TorchScriptBackend",
    "onnxruntime": "xlt_bench.backends.onnxrt:OnnxRuntimeBackend",
    "compile": "xlt_bench.backends.compile:CompileBackend",
    # What optimum's ORTModelFor* classes give (export, ORTOptimizer level, ORTQuantizer), for comparison.
    "optimum": "xlt_bench.backends.optimum_ort:OptimumBackend",
    # Known cost, no compute: for tests and for studying the batcher on hardware one does not have.
    "fake": "xlt_bench.backends.fake:FakeBackend",
}

# Optional dependency behind each backend, and the extra that installs it.
EXTRAS = {"onnxruntime": ("onnxruntime", "xlt-bench[onnxruntime]"), "optimum": ("optimum", "xlt-bench[optimum]")}


def get_backend_class(name: str):
    if name not in REGISTRY:
        raise InputError(f"unknown backend '{name}'; known: {', '.join(REGISTRY)}", field="backends")
    module_name, class_name = REGISTRY[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = EXTRAS.get(name)
        hint = f"; install it with: pip install '{extra[1]}'" if extra else ""
        raise InputError(f"backend '{name}' needs a package that is not installed ({exc.name}){hint}",
                         field="backends") from None
    return getattr(module, class_name)
