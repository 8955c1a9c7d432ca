"""optimum backend: benchmarks exactly what optimum's `ORTModelFor*` classes give for standard transformers heads.

Route (each build step in a child process, see onnx_build.run_step; cached like the onnxruntime backend):
  a local `save_pretrained`-style copy of the bundle's transformers model -> optimum's exporter (`main_export`, the
  call `ORTModelFor*.from_pretrained(..., export=True)` makes) -> fp32/fp16: `ORTOptimizer` at `--ort-opt-level`
  O1..O4; int8: `ORTQuantizer` on the export with dynamic `AutoQuantizationConfig.avx512_vnni` (avx2 on CPUs
  without VNNI), the level not applying (see _optimum_chain).
The timed call is `ORTModelFor*.__call__`, optimum's Python wrapper included. The stored graph is re-saved with its
weights in an external data file (memory-mapped by ONNX Runtime, as for our own backend); the graph is unchanged.
Pooled retrieval embeddings have no ORTModelFor* head: those tasks must use the `onnxruntime` backend.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from xlt_bench.core.errors import InputError
from xlt_bench.backends.models import ModelBundle
from xlt_bench.backends import onnx_build
from xlt_bench.backends.base import Backend
from xlt_bench.backends.onnx_cache import digest_json, get_or_build, read_manifest, weights_digest

EXTRA = "xlt-bench[optimum]"
RECIPE_VERSION = 1
OPT_LEVELS = ("O1", "O2", "O3", "O4")
# O2 = ORT's transformer fusions without approximations: what the onnxruntime backend applies too.
DEFAULT_OPT_LEVEL = "O2"
# head -> (optimum class, exporter task)
HEADS: dict[str, tuple[str, str]] = {
    "sequence": ("ORTModelForSequenceClassification", "text-classification"),
    "token": ("ORTModelForTokenClassification", "token-classification"),
    "span": ("ORTModelForQuestionAnswering", "question-answering"),
}


def cpu_has_vnni(cpuinfo: str | None = None) -> bool:
    """AVX-512 VNNI in /proc/cpuinfo's flags (the int8 dot product AutoQuantizationConfig.avx512_vnni targets)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return "avx512_vnni" in flags


def _require():
    try:
        import optimum.onnxruntime as ortopt
    except ImportError as exc:
        raise InputError(f"backend 'optimum' needs '{exc.name}', which is not installed; install it with: "
                         f"pip install '{EXTRA}'", field="backends") from None
    return ortopt


class OptimumBackend(Backend):
    name = "optimum"
    supported = frozenset({("cpu", "fp32"), ("cpu", "int8"), ("cuda", "fp32"), ("cuda", "fp16")})
    gemm_library = "onnxruntime"
    heads: ClassVar[frozenset[str]] = frozenset(HEADS)

    def __init__(self, bundle: ModelBundle, device: str = "cpu", dtype: str = "fp32", threads: int | None = None,
                 cache_dir: str = ".xlt_cache", opt_level: str | None = None):
        super().__init__(bundle, device, dtype, threads, cache_dir)
        self.opt_level = opt_level or DEFAULT_OPT_LEVEL
        check_options(bundle.head, device, dtype, self.opt_level)

    def load(self) -> None:
        ortopt = _require()
        import onnxruntime as ort
        if self.device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise InputError("backend 'optimum' on cuda needs onnxruntime-gpu (CUDAExecutionProvider is not "
                             "available)", field="device")
        self.recipe = recipe = self._recipe()
        entry, built = get_or_build(Path(self.cache_dir) / "optimum", digest_json(recipe), self._build, recipe)
        manifest = read_manifest(entry)
        route = f"ORTQuantizer {recipe['int8']} dynamic" if recipe["int8"] else f"ORTOptimizer {self.opt_level}"
        self.notes.append(f"optimum {HEADS[self.bundle.head][0]} {route}: model {entry.name[:12]} "
                          f"({'built now' if built else 'from cache'}; build peak RSS "
                          f"{manifest.get('build_peak_rss_bytes', 0) / 2**30:.1f} GiB in a subprocess)")
        if self.device == "cuda":
            self.notes.append("optimum on cuda: ORTModel synchronises after every batch (its I/O binding); "
                              "TF32 off for fp32 (use_tf32=0)")
        model_class = getattr(ortopt, HEADS[self.bundle.head][0])
        self.model = model_class.from_pretrained(entry, file_name=onnx_build.MODEL_FILE, local_files_only=True,
                                                 session_options=self._options(ort), **self._provider())
        self.input_names = [i.name for i in self.model.session.get_inputs()]

    def _recipe(self) -> dict[str, Any]:
        from importlib.metadata import version

        bundle = self.bundle
        int8 = None if self.dtype != "int8" else ("avx512_vnni" if cpu_has_vnni() else "avx2")
        return {"recipe_version": RECIPE_VERSION, "config": bundle.config.to_dict(), "head": bundle.head,
                "num_labels": bundle.num_labels, "weights": weights_digest(bundle.module),
                "opt_level": None if int8 else self.opt_level, "for_gpu": self.device == "cuda", "int8": int8,
                "versions": {p: version(p) for p in ("optimum", "optimum-onnx", "onnxruntime", "onnx", "torch",
                                                     "transformers")}}

    def _build(self, tmp: Path) -> dict[str, Any]:
        recipe = self.recipe
        with tempfile.TemporaryDirectory(dir=tmp.parent) as work:
            onnx_build.save_for_export(self.bundle, Path(work) / "hf")
            facts = onnx_build.run_step("optimum", model_dir=str(Path(work) / "hf"), head=self.bundle.head,
                                        opt_level=self.opt_level, for_gpu=recipe["for_gpu"], int8=recipe["int8"],
                                        dst=str(tmp))
        return {"build_peak_rss_bytes": facts["peak_rss_bytes"], "fusions": facts["fusions"]}

    def _options(self, ort):
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # ORTModel's default too
        if self.threads:
            options.intra_op_num_threads = int(self.threads)
        options.inter_op_num_threads = 1
        return options

    def _provider(self) -> dict[str, Any]:
        if self.device == "cuda":
            # TF32 off so fp32 means fp32 (ONNX Runtime enables TF32 by default where torch does not).
            return {"provider": "CUDAExecutionProvider", "provider_options": {"device_id": 0, "use_tf32": 0},
                    "use_io_binding": True}
        return {"provider": "CPUExecutionProvider", "use_io_binding": False}

    def prepare(self, inputs: dict[str, np.ndarray]) -> Any:
        feed = {n: np.ascontiguousarray(inputs[n], dtype=np.int64) for n in self.input_names}
        if self.device != "cuda":
            return feed
        import torch  # ORTModel's CUDA I/O binding takes torch tensors on the GPU
        return {n: torch.from_numpy(a).to("cuda") for n, a in feed.items()}

    def forward(self, prepared: Any) -> Any:
        return self.model(**prepared)

    def fetch(self, output: Any) -> np.ndarray:
        if self.bundle.head == "span":
            return np.stack((_numpy(output.start_logits), _numpy(output.end_logits)), axis=-1)
        return _numpy(output.logits)

    def synchronize(self) -> None:
        if self.device == "cuda":
            import torch
            torch.cuda.synchronize()

    def close(self) -> None:
        """Drop the ORTModel and its InferenceSession (weights, prepacked buffers, arena, mapped weight file)."""
        self.model = None


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().float().cpu().numpy()
    return np.asarray(value, dtype=np.float32)


def check_options(head: str, device: str, dtype: str, opt_level: str) -> None:
    if head not in HEADS:
        raise InputError(f"backend 'optimum' runs optimum's ORTModelFor* heads ({', '.join(HEADS)}); the {head} "
                         "head (mean-pooled retrieval embeddings) has none: use the 'onnxruntime' backend for it",
                         field="backends")
    if opt_level not in OPT_LEVELS:
        raise InputError(f"--ort-opt-level '{opt_level}' is not one of {', '.join(OPT_LEVELS)}", field="ort_opt_level")
    if (opt_level == "O4") != (device == "cuda" and dtype == "fp16"):
        raise InputError("--ort-opt-level O4 is optimum's fp16 (mixed precision, GPU) level: it goes with --device "
                         f"cuda --dtype fp16 and only there (got {device}/{dtype} at {opt_level})",
                         field="ort_opt_level")


# ---- the build step, run in a child process ---------------------------------------------------------------------
def step_build(model_dir: str, head: str, opt_level: str, for_gpu: bool, int8: str | None, dst: str) -> dict:
    with tempfile.TemporaryDirectory(dir=Path(dst).parent) as work:
        return _optimum_chain(model_dir, head, opt_level, for_gpu, int8, Path(dst), Path(work))


def _optimum_chain(model_dir: str, head: str, opt_level: str, for_gpu: bool, int8: str | None, dst: Path,
                   work: Path) -> dict:
    import shutil

    import onnx
    from optimum.exporters.onnx import main_export
    from optimum.onnxruntime import ORTOptimizer, ORTQuantizer
    from optimum.onnxruntime.configuration import AutoOptimizationConfig, AutoQuantizationConfig

    exported, optimised, quantised = work / "export", work / "optimised", work / "quantised"
    # The export ORTModelFor*.from_pretrained(export=True) runs (optimum's defaults: opset, axes, output names).
    main_export(model_name_or_path=model_dir, output=exported, task=HEADS[head][1], do_validation=False,
                no_post_process=True, device="cpu", library_name="transformers")
    if int8:
        # On the export, as optimum's quantisation guide does: ORTQuantizer cannot quantise ORTOptimizer's output
        # (onnx shape inference cannot type the fused com.microsoft ops, and ORTQuantizer takes no
        # DefaultTensorType); the session's own graph optimisations then fuse the quantised graph.
        config = getattr(AutoQuantizationConfig, int8)(is_static=False, per_channel=True)
        ORTQuantizer.from_pretrained(exported, file_name="model.onnx").quantize(config, save_dir=quantised)
        final = quantised / "model_quantized.onnx"
    else:
        level = AutoOptimizationConfig.with_optimization_level(opt_level, for_gpu=for_gpu)
        ORTOptimizer.from_pretrained(exported, file_names=["model.onnx"]).optimize(level, save_dir=optimised)
        final = optimised / "model_optimized.onnx"
    model = onnx.load(str(final))
    fusions = onnx_build.fused_op_counts(model)
    onnx_build.save_model(model, dst / onnx_build.MODEL_FILE)
    shutil.copy(exported / "config.json", dst / "config.json")  # ORTModel.from_pretrained reads it
    return {"fusions": {k: v for k, v in fusions.items() if v}}
