"""The run's GEMM peaks (merge, lookup, applied to rows), the run command's console text, and the workload built from
the four model facts it needs (hand-computed expectations, no model built)."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from xlt_bench.run.peaks import apply_run_peaks, gemm_libraries, merge_peaks, peak_for
from xlt_bench.run.preflight import backend_classes


def test_merge_keeps_both_measurements_and_the_best_as_the_peak():
    peaks = {"torch/fp32": {"library": "torch", "flops_per_s": 8.0, "flops_per_s_best": 10.0}}
    merge_peaks(peaks, {"torch/fp32": {"library": "torch", "flops_per_s": 11.0, "flops_per_s_best": 12.0},
                        "onnxruntime/fp32": {"flops_per_s": 5.0}})
    assert peaks["torch/fp32"]["measurements_flops_per_s"] == [10.0, 12.0]
    assert peaks["torch/fp32"]["peak_flops_per_s"] == 12.0 and peaks["torch/fp32"]["library"] == "torch"
    assert peaks["onnxruntime/fp32"]["peak_flops_per_s"] == 5.0          # measured only once: that measurement
    assert peak_for(peaks, "torch", "fp32") == 12.0
    assert peak_for(peaks, "torch", "int8") is None


def test_peak_for_falls_back_to_a_single_measurements_rates():
    assert peak_for({"torch/bf16": {"flops_per_s": 3.0}}, "torch", "bf16") == 3.0
    assert peak_for({"torch/bf16": {"flops_per_s": 3.0, "flops_per_s_best": 4.0}}, "torch", "bf16") == 4.0


def test_rows_get_their_backends_library_peak_and_mfu():
    peaks = {"torch/fp32": {"peak_flops_per_s": 1000.0}, "onnxruntime/fp32": {"peak_flops_per_s": 500.0}}
    rows = [{"backend": "eager", "dtype": "fp32", "flops_useful": 200, "wall_s": 2.0},
            {"backend": "fake", "dtype": "int8", "flops_useful": 200, "wall_s": 2.0}]
    apply_run_peaks(rows, peaks, backend_classes(["eager", "fake"]))
    assert rows[0]["gemm_peak_flops"] == 1000.0 and rows[0]["mfu"] == pytest.approx(200 / 2.0 / 1000.0)
    assert rows[1]["gemm_peak_flops"] is None and rows[1]["mfu"] is None   # no torch/int8 peak was measured


def test_gemm_libraries_are_each_backends_library_once():
    classes = backend_classes(["eager", "fake", "eager"])
    assert list(classes) == ["eager", "fake"]                          # resolved once per name
    pairs = [("eager", "fp32"), ("fake", "fp32"), ("eager", "bf16"), ("fake", "bf16")]
    assert gemm_libraries(pairs, classes) == [("torch", "bf16"), ("torch", "fp32")]   # fake declares torch


def test_finished_run_names_the_results_file_and_dry_run_notes_per_scenario(tmp_path):
    from xlt_bench.report.console import dry_run_notes, finished_run
    text = finished_run({"run": {}, "rows": []}, tmp_path)
    assert text.splitlines() == ["no result rows", f"results: {tmp_path / 'results.json'}"]
    assert dry_run_notes(SimpleNamespace(scenario="offline")) == []
    note, = dry_run_notes(SimpleNamespace(scenario="server", duration=30.0))
    assert "30 s of arrivals" in note


def test_train_cost_notes_say_where_hours_come_from():
    from xlt_bench.report.train_cost import train_cost_notes
    plan = SimpleNamespace(accelerator="a100", mfu=0.4, dtype="bf16")
    accel = {"source": "datasheet", "watts": 400}
    with_run = train_cost_notes(plan, accel, "runs/t", True)
    assert "MFU 40%" in with_run[0] and "400 W" in with_run[0]
    assert "`runs/t` (bf16)" in with_run[1]
    assert "none (give --measured" in train_cost_notes(plan, accel, None, False)[1]


def test_workload_needs_only_four_model_facts_and_no_model_library():
    from xlt_bench.data.tasks import get_task
    from xlt_bench.data.workload import load_workload
    facts = SimpleNamespace(vocab_size=50, pad_id=0, max_positions=16, takes_token_types=False)
    cfg = SimpleNamespace(max_length=128, langs=("en", "de"), shape=(3, 8), seed=0)
    workload = load_workload(cfg, get_task("xnli"), facts)
    assert workload.max_length == 16                                  # capped at the model's positions
    assert [s.lang for s in workload.sets] == ["en", "de"]
    for encoded in workload.sets:
        assert encoded.lengths.tolist() == [8, 8, 8] and encoded.token_type_ids is None
        assert all(0 <= int(i) < 50 for ids in encoded.input_ids for i in ids)


def test_workload_module_does_not_import_the_model_module():
    import subprocess
    code = "import sys, xlt_bench.data.workload; print('xlt_bench.backends.models' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
