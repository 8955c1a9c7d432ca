"""ONNX Runtime backend: exported once, fused by ORT's BERT optimiser, cached on disk (see onnx_cache).

Build chain, each step its own cache entry so int8 / fp16 reuse the fp32 model:
  fp32: torch.onnx export -> ORT transformer fusions (Attention, EmbedLayerNormalization, SkipLayerNormalization,
        BiasGelu) -> session with ORT_ENABLE_ALL.
  int8 (CPU): dynamic quantisation of the fused fp32 model (int8 weights, uint8 activations, per channel).
  fp16 (CUDA): float16 conversion of the fused fp32 model, int64 inputs and fp32 output kept.
Fused attention takes the padding mask as per-row lengths, so batches must be right-padded (tokenizers' default).
On CUDA, inputs are copied to the GPU in prepare() and bound with I/O binding; forward() only runs the graph.
"""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xlt_bench.core.errors import InputError
from xlt_bench.backends import onnx_build
from xlt_bench.backends.base import Backend
from xlt_bench.backends.onnx_cache import digest_json, get_or_build, read_manifest, weights_digest

EXTRA = "xlt-bench[onnxruntime]"
# Bump when the build recipe changes in a way the versions below do not capture.
RECIPE_VERSION = 2  # 2: weights in an external data file, built in child processes


def require(module_name: str):
    """Import an optional dependency, turning its absence into exit 2 that names the extra to install."""
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"backend 'onnxruntime' needs '{exc.name or module_name}', which is not installed; "
                         f"install it with: pip install '{EXTRA}'", field="backends") from None


def build_text(manifest: dict[str, Any]) -> str:
    peaks = manifest.get("build_peak_rss_bytes", {})
    return "built now" + ("" if not peaks else ", in subprocesses peaking at " + ", ".join(
        f"{step} {value / 2**30:.1f} GiB" for step, value in peaks.items()))


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    supported = frozenset({("cpu", "fp32"), ("cpu", "int8"), ("cuda", "fp32"), ("cuda", "fp16")})
    gemm_library = "onnxruntime"

    def load(self) -> None:
        ort = require("onnxruntime")
        for dep in ("onnx", "onnxruntime.transformers.optimizer", "onnxruntime.quantization"):
            require(dep)
        if self.device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise InputError("backend 'onnxruntime' on cuda needs onnxruntime-gpu (CUDAExecutionProvider is not "
                             f"available); supported here: {', '.join(sorted(ort.get_available_providers()))}",
                             field="device")
        self.model_dir = self._build(self.dtype)
        manifest = read_manifest(self.model_dir)
        self.fusions = manifest.get("fusions", {})
        self.notes.append(f"onnxruntime {self.dtype}: model {self.model_dir.name[:12]} "
                          f"({build_text(manifest) if self.built_now else 'from cache'}); "
                          f"fused ops {self._fusion_text()}")
        self.session = ort.InferenceSession(str(self.model_dir / onnx_build.MODEL_FILE), self._options(ort),
                                            providers=self._providers())
        self.input_names = [i.name for i in self.session.get_inputs()]

    # ---- build and cache -------------------------------------------------------------------------------------
    def _recipe(self, dtype: str) -> dict[str, Any]:
        import onnx
        import onnxruntime

        bundle = self.bundle
        return {"recipe_version": RECIPE_VERSION, "config": bundle.config.to_dict(), "head": bundle.head,
                "attn": getattr(bundle, "attn", None),
                "num_labels": bundle.num_labels, "inputs": onnx_build.input_names(bundle),
                "weights": self._weights_digest(), "opset": onnx_build.OPSET, "dtype": dtype,
                "gpu_fusions": self.device == "cuda", "exporter": onnx_build.EXPORTER,
                "int8": onnx_build.int8_settings() if dtype == "int8" else None,
                "versions": {"torch": torch.__version__, "onnx": onnx.__version__,
                             "onnxruntime": onnxruntime.__version__}}

    def _weights_digest(self) -> str:
        if not hasattr(self, "_weights"):
            self._weights = weights_digest(self.bundle.module)  # hashing ~1 GB takes about a second
        return self._weights

    def _build(self, dtype: str) -> Path:
        recipe = self._recipe(dtype)
        key = digest_json(recipe)
        root = Path(self.cache_dir) / "onnx"
        if dtype == "fp32":
            entry, built = get_or_build(root, key, self._build_fp32, recipe)
        else:
            base = self._build("fp32") / onnx_build.MODEL_FILE
            entry, built = get_or_build(root, key, lambda tmp: self._derive(dtype, base, tmp), recipe)
        self.built_now = built
        return entry

    def _build_fp32(self, tmp: Path) -> dict[str, Any]:
        """Export and fuse, each in a child process (onnx_build.run_step): their memory dies with the child."""
        cfg = self.bundle.config
        with tempfile.TemporaryDirectory(dir=tmp.parent) as work:
            work = Path(work)
            onnx_build.save_for_export(self.bundle, work / "hf")
            exported = work / "export" / onnx_build.MODEL_FILE
            exported.parent.mkdir()
            export = onnx_build.run_step("export", model_dir=str(work / "hf"), head=self.bundle.head,
                                         num_labels=self.bundle.num_labels, attn=getattr(self.bundle, "attn", None),
                                         dst=str(exported))
            fused = onnx_build.run_step("optimise", src=str(exported), dst=str(tmp / onnx_build.MODEL_FILE),
                                        num_heads=cfg.num_attention_heads, hidden_size=cfg.hidden_size,
                                        use_gpu=self.device == "cuda")
        peaks = {"export": export["peak_rss_bytes"], "optimise": fused["peak_rss_bytes"]}
        return {"fusions": fused["fusions"], "build_peak_rss_bytes": peaks}

    def _derive(self, dtype: str, base: Path, tmp: Path) -> dict[str, Any]:
        facts = onnx_build.run_step(dtype, src=str(base), dst=str(tmp / onnx_build.MODEL_FILE))
        return {"fusions": read_manifest(base.parent).get("fusions", {}), "derived_from": base.parent.name,
                "build_peak_rss_bytes": {dtype: facts["peak_rss_bytes"]}}

    def _fusion_text(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.fusions.items() if v) or "none"

    # ---- session -----------------------------------------------------------------------------------------
    def _options(self, ort):
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if self.threads:
            options.intra_op_num_threads = int(self.threads)
        options.inter_op_num_threads = 1
        return options

    def _providers(self) -> list:
        if self.device == "cuda":
            # TF32 off: ONNX Runtime enables it by default where torch does not; fp32 must mean fp32 on both.
            return [("CUDAExecutionProvider", {"device_id": 0, "use_tf32": 0}), "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]

    def prepare(self, inputs: dict[str, np.ndarray]) -> Any:
        feed = {n: np.ascontiguousarray(inputs[n], dtype=np.int64) for n in self.input_names}
        if self.device != "cuda":
            return feed
        import onnxruntime as ort

        binding = self.session.io_binding()
        for name, array in feed.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, "cuda", 0))
        binding.bind_output("output", "cuda", 0)
        return binding

    def forward(self, prepared: Any) -> Any:
        if self.device == "cuda":
            # No host synchronisation per batch (GPU-true throughput): the pass synchronises once at its end.
            self.session.run_with_iobinding(prepared, self._async_run())
            self._last_binding = prepared
            return prepared
        return self.session.run(["output"], prepared)[0]

    def _async_run(self):
        if getattr(self, "_run_options", None) is None:
            import onnxruntime as ort
            self._run_options = ort.RunOptions()
            self._run_options.add_run_config_entry("disable_synchronize_execution_providers", "1")
        return self._run_options

    def fetch(self, output: Any) -> np.ndarray:
        if self.device == "cuda":
            output.synchronize_outputs()
            output = output.copy_outputs_to_cpu()[0]
        return np.asarray(output, dtype=np.float32)

    def synchronize(self) -> None:
        # Runs are queued without synchronising (see forward): wait for the last one's outputs.
        binding = getattr(self, "_last_binding", None)
        if self.device == "cuda" and binding is not None:
            binding.synchronize_outputs()

    def close(self) -> None:
        """Drop the session (its weights, prepacked GEMM buffers and arena) and anything bound to it; the mapped
        weight file is unmapped with it."""
        self.session = None
        self._last_binding = None
        self._run_options = None
