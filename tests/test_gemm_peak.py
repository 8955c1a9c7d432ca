"""GEMM peak: real kernels, tiny time budgets. Figures are never compared with a fixed speed (shared, noisy machine)."""

from __future__ import annotations

import math
import time

import pytest
import torch

from xlt_bench.backends.models import ffn_sizes
from xlt_bench.measure.gemm_peak import gemm_peak, measure_peaks

SMALL = dict(m=256, k=768, n=768)  # 0.3 GFLOP per call: a few ms, so the tests stay fast on a loaded machine


def assert_sane(result: dict, library: str, dtype: str) -> None:
    assert result["library"] == library and result["dtype"] == dtype and result["device"] == "cpu"
    assert math.isfinite(result["flops_per_s"]) and result["flops_per_s"] > 0
    # Independent of the rates themselves: the run's mean call rate (repeats calls of 2mnk FLOPs in `seconds`) lies
    # between the median rate and the fastest one only if both were computed from the same calls correctly.
    mean_rate = result["repeats"] * 2 * result["m"] * result["n"] * result["k"] / result["seconds"]
    assert mean_rate <= result["flops_per_s_best"] * 1.05
    assert result["repeats"] >= 3 and result["seconds"] > 0
    assert {"m", "n", "k"} <= result.keys()


@pytest.mark.parametrize("library,dtype", [("torch", "fp32"), ("torch", "bf16"), ("torch", "int8"),
                                           ("onnxruntime", "fp32"), ("onnxruntime", "int8")])
def test_peak_is_positive_and_quick(library, dtype):
    start = time.perf_counter()
    result = gemm_peak(library, dtype, seconds=0.05, threads=1, **SMALL)
    assert time.perf_counter() - start < 3.0
    assert_sane(result, library, dtype)
    assert (result["m"], result["k"], result["n"]) == (256, 768, 768)


def test_figure_is_flops_over_median_call_time():
    result = gemm_peak("torch", "fp32", seconds=0.05, **SMALL)
    flops_per_call = 2 * 256 * 768 * 768
    mean_call = result["seconds"] / result["repeats"]
    # The median call lies within the range of call times, so flops/median is near flops/mean.
    assert 0.2 < result["flops_per_s"] * mean_call / flops_per_call < 5


def test_default_shape_is_an_encoder_ffn_gemm():
    result = gemm_peak("onnxruntime", "fp32", seconds=0.01, min_repeats=1)
    assert (result["m"], result["k"], result["n"]) == (2048, 768, 3072)
    assert result["flops_per_s"] > 0


def test_threads_setting_is_restored():
    before = torch.get_num_threads()
    gemm_peak("torch", "fp32", seconds=0.01, threads=1, **SMALL)
    assert torch.get_num_threads() == before


def test_unsupported_pairs_raise():
    with pytest.raises(ValueError):
        gemm_peak("onnxruntime", "bf16")
    with pytest.raises(ValueError):
        gemm_peak("torch", "fp16", device="cpu")
    with pytest.raises(ValueError):
        gemm_peak("tensorflow", "fp32")


def test_measure_peaks_keys_and_nulls():
    peaks = measure_peaks([("torch", "fp32"), ("onnxruntime", "bf16"), ("torch", "fp32")], "cpu", 1, seconds=0.01)
    assert list(peaks) == ["torch/fp32", "onnxruntime/bf16"]
    assert peaks["torch/fp32"]["flops_per_s"] > 0
    assert (peaks["torch/fp32"]["m"], peaks["torch/fp32"]["k"], peaks["torch/fp32"]["n"]) == (2048, 768, 3072)
    assert peaks["onnxruntime/bf16"]["flops_per_s"] is None and "not measured" in peaks["onnxruntime/bf16"]["note"]


def test_measure_peaks_times_the_models_own_up_projection():
    # xlmr-large: hidden 1024 -> intermediate 4096, not the base model's 768 -> 3072.
    assert ffn_sizes("xlmr-large") == (1024, 4096)
    # Timed on mini-xlmr's smaller 256 -> 1024 (the same code path, a fraction of the seconds).
    hidden, intermediate = ffn_sizes("mini-xlmr")
    peak = measure_peaks([("torch", "fp32")], "cpu", 1, seconds=0.01, hidden=hidden,
                         intermediate=intermediate)["torch/fp32"]
    assert (peak["m"], peak["k"], peak["n"]) == (2048, 256, 1024) and peak["flops_per_s"] > 0


def test_ffn_sizes_of_an_unloadable_model_is_none(monkeypatch):
    import transformers

    def offline(*args, **kwargs):   # what the hub gives without a network, without waiting for its timeout
        raise OSError("We couldn't connect to 'https://huggingface.co'")
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", offline)
    assert ffn_sizes("some-org/not-a-preset") is None


def test_ffn_sizes_of_a_local_model_directory(tmp_path):
    from transformers import XLMRobertaConfig
    XLMRobertaConfig(hidden_size=96, intermediate_size=384, num_attention_heads=4).save_pretrained(tmp_path)
    assert ffn_sizes(str(tmp_path)) == (96, 384)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16", "int8"])
def test_cuda_peak(dtype):
    result = gemm_peak("torch", dtype, device="cuda", seconds=0.05)
    assert result["device"] == "cuda" and result["flops_per_s"] > 0 and result["repeats"] >= 3


def test_a_tiny_gemm_runs_for_the_wall_time_asked_not_a_multiple_of_it():
    # An 8x8x8 product takes microseconds, less than the timing loop around it: summing only call times made the
    # peak of a test-sized model run several times `seconds` (about 6x for this shape).
    start = time.perf_counter()
    result = gemm_peak("torch", "fp32", seconds=0.25, threads=1, m=8, k=8, n=8)
    assert time.perf_counter() - start < 0.75
    assert result["repeats"] >= 3 and result["seconds"] < 0.25
