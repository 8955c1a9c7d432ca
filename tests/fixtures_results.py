"""Hand-made results documents for the report tests: every schema field plus the profiler's extras.

Numbers follow a simple model so tests can compute expectations by hand: each language has a mean token length,
static pads every sequence to MAX_LEN, dynamic pads 4% over the real tokens, and each backend executes padded tokens
at a fixed rate. Nothing here is measured.
"""

from __future__ import annotations

import copy
from typing import Any

from xlt_bench.core.schema import ALL_LANGS, ROW_FIELDS, SCHEMA_VERSION

MAX_LEN = 128
BATCH = 32
N_EXAMPLES = 64
DYNAMIC_OVERHEAD = 1.04  # dynamic padded tokens = real tokens × this
PEAK_FLOPS = 2e14  # the fixture machine's GEMM peak

# Mean tokens per sequence (mBERT-like, roughly realistic spread).
MEAN_TOKENS = {
    "en": 40, "ar": 52, "bg": 50, "de": 48, "el": 56, "es": 46, "fr": 49, "hi": 60, "ru": 51, "sw": 54,
    "th": 96, "tr": 47, "ur": 62, "vi": 50, "zh": 44, "ja": 90, "ko": 70,
}
XNLI_LANGS = ("en", "ar", "bg", "de", "el", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
PAWSX_LANGS = ("en", "de", "es", "fr", "ja", "ko", "zh")
# Padded tokens executed per second, by backend (the "hardware" of the fixture).
BACKEND_RATE = {"eager": 20000.0, "torchscript": 22000.0, "onnxruntime": 26000.0}
DTYPE_FACTOR = {"fp32": 1.0, "bf16": 1.6, "fp16": 1.8, "int8": 2.2}


def _padded_tokens(batching: str, real: int) -> int:
    if batching == "static":
        return N_EXAMPLES * MAX_LEN
    if batching == "static-longest":
        return int(round(real * 1.5))
    return int(round(real * DYNAMIC_OVERHEAD))


def _latencies(n_batches: int, wall_s: float) -> list[float]:
    mean_ms = wall_s * 1000.0 / n_batches
    return [round(mean_ms * (0.9 + 0.2 * i / max(n_batches - 1, 1)), 4) for i in range(n_batches)]


def make_row(task: str, lang: str, backend: str = "eager", dtype: str = "fp32", batching: str = "static",
             *, model: str = "xlmr-base", device: str = "cpu", accuracy: float | None = None,
             agreement: float | None = None, alignment: float | None = None) -> dict[str, Any]:
    mean_tokens = MEAN_TOKENS[lang]
    real = N_EXAMPLES * mean_tokens
    padded = _padded_tokens(batching, real)
    rate = BACKEND_RATE[backend] * DTYPE_FACTOR[dtype]
    forward_s = padded / rate
    wall_s = forward_s * 1.05
    n_batches = N_EXAMPLES // BATCH if batching != "dynamic" else max(1, padded // 4096 + 1)
    latencies = _latencies(n_batches, forward_s)
    flops_per_token = 2 * 85e6
    is_reference = (backend, dtype, batching) == ("eager", "fp32", "static")
    row = {
        "task": task, "lang": lang, "model": model, "backend": backend, "device": device, "dtype": dtype,
        "batching": batching, "n_examples": N_EXAMPLES, "n_batches": n_batches, "real_tokens": real,
        "padded_tokens": padded, "padding_waste": 1 - real / padded, "wall_s": wall_s,
        "throughput_seq_s": N_EXAMPLES / wall_s, "throughput_tok_s": real / wall_s,
        "latency_ms_p50": sorted(latencies)[len(latencies) // 2], "latency_ms_p90": max(latencies),
        "latency_ms_p99": max(latencies), "flops_useful": real * flops_per_token,
        "flops_executed": padded * flops_per_token, "mfu": real * flops_per_token / wall_s / PEAK_FLOPS,
        "accuracy": accuracy, "agreement": 1.0 if is_reference else agreement,
        # extras
        "n_sequences": N_EXAMPLES, "n_truncated": 1 if lang == "th" else 0, "mean_tokens_per_seq": float(mean_tokens),
        "n_repeats": 1, "latencies_ms": latencies, "tokenize_s": 0.01 * mean_tokens / 40,
        "forward_s": forward_s, "harness_overhead_s": wall_s - forward_s, "peak_rss_mb": 900.0,
        "cuda_max_allocated_mb": None, "energy_j": None, "j_per_1k_tokens": None, "gemm_peak_flops": PEAK_FLOPS,
        "accuracy_metric": "accuracy", "max_abs_diff": 0.0 if is_reference else 2e-6,
        "parity_ok": True, "is_reference": is_reference,
        "alignment_cosine": alignment, "alignment_top1": None if alignment is None else min(1.0, alignment + 0.1),
        "notes": [],
    }
    assert set(ROW_FIELDS) <= set(row)
    return row


def all_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The lang = "ALL" aggregate of one (task, backend, dtype, batching), summed like the profiler does."""
    first = rows[0]
    out = copy.deepcopy(first)
    real = sum(r["real_tokens"] for r in rows)
    padded = sum(r["padded_tokens"] for r in rows)
    wall = sum(r["wall_s"] for r in rows)
    forward = sum(r["forward_s"] for r in rows)
    latencies = [x for r in rows for x in r["latencies_ms"]]
    n = sum(r["n_examples"] for r in rows)
    accs = [r["accuracy"] for r in rows if r["accuracy"] is not None]
    agrees = [r["agreement"] for r in rows if r["agreement"] is not None]
    out.update({
        "lang": ALL_LANGS, "n_examples": n, "n_sequences": n, "n_batches": sum(r["n_batches"] for r in rows),
        "real_tokens": real, "padded_tokens": padded, "padding_waste": 1 - real / padded, "wall_s": wall,
        "forward_s": forward, "harness_overhead_s": wall - forward, "throughput_seq_s": n / wall,
        "throughput_tok_s": real / wall, "latencies_ms": latencies,
        "latency_ms_p50": sorted(latencies)[len(latencies) // 2], "latency_ms_p90": max(latencies),
        "latency_ms_p99": max(latencies), "flops_useful": sum(r["flops_useful"] for r in rows),
        "flops_executed": sum(r["flops_executed"] for r in rows), "mean_tokens_per_seq": real / n,
        "mfu": sum(r["flops_useful"] for r in rows) / wall / PEAK_FLOPS,
        "tokenize_s": sum(r["tokenize_s"] for r in rows), "n_truncated": sum(r["n_truncated"] for r in rows),
        "accuracy": sum(accs) / len(accs) if accs else None, "agreement": sum(agrees) / len(agrees) if agrees else None,
        "max_abs_diff": max(r["max_abs_diff"] for r in rows), "alignment_cosine": None, "alignment_top1": None,
    })
    return out


def make_document(tasks: dict[str, tuple[str, ...]] | None = None, backends=("eager", "onnxruntime"),
                  dtypes=("fp32",), batchings=("static", "dynamic"), *, model: str = "xlmr-base",
                  device: str = "cpu", with_accuracy: bool = False, with_alignment: bool = False,
                  parity_fail: tuple[str, str, str] | None = None, skipped: list[dict] | None = None,
                  run_id: str = "20250101-000000-abcd", git_sha: str = "abc1234") -> dict[str, Any]:
    """A complete results document (DESIGN §4). parity_fail = (backend, dtype, batching) made to fail parity."""
    tasks = tasks or {"xnli": XNLI_LANGS, "pawsx": PAWSX_LANGS}
    rows: list[dict[str, Any]] = []
    for task, langs in tasks.items():
        for backend in backends:
            for dtype in dtypes:
                for batching in batchings:
                    group = []
                    for i, lang in enumerate(langs):
                        acc = round(0.85 - 0.01 * i, 4) if with_accuracy else None
                        align = round(0.9 - 0.012 * i, 4) if with_alignment else None
                        row = make_row(task, lang, backend, dtype, batching, model=model, device=device,
                                       accuracy=acc, agreement=0.99, alignment=align)
                        if parity_fail == (backend, dtype, batching):
                            row.update(parity_ok=False, max_abs_diff=0.5, agreement=0.6)
                            row["notes"] = ["logits differ from the reference by more than the tolerance"]
                        group.append(row)
                    rows.extend(group)
                    rows.append(all_row(group))
    run = {
        "id": run_id, "created": "2025-01-01T00:00:00+00:00", "finished": "2025-01-01T00:05:00+00:00",
        "duration_s": 300.0, "git_sha": git_sha, "git_dirty": False,
        "config": {"model": model, "tokenizer": None, "data": "synthetic", "tasks": list(tasks),
                   "langs": ["all"], "limit": None, "backends": list(backends), "batching": list(batchings),
                   "batch_size": BATCH, "max_length": MAX_LEN, "max_tokens": 4096, "pad_multiple": 8,
                   "device": device, "dtype": list(dtypes), "threads": 2, "out": None, "seed": 0},
        "env": {"cpu": "Fixture CPU", "cores": 2, "threads": 2, "gpu": None,
                "versions": {"torch": "2.13.0"}, "gemm_peaks": {"torch/fp32": {"flops_per_s": PEAK_FLOPS}}},
        "skipped": skipped if skipped is not None else [{"task": "xnli", "lang": "my", "reason": "empty file"}],
        "notes": ["fixture document: numbers follow a simple model, nothing was measured"],
        "incomplete": False,
    }
    return {"schema_version": SCHEMA_VERSION, "run": run, "rows": rows}
