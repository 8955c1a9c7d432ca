"""Memory and energy trackers: real measurements on this machine; GPU paths skipped cleanly without a GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xlt_bench.measure.trackers import (NO_GPU, EnergyTracker, MemoryTracker, integrate_power, joules_per_1k_tokens)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")


def test_peak_rss_sees_an_allocation_inside_the_block():
    with MemoryTracker("cpu") as mem:
        block = np.ones(200 * 1024 * 1024 // 8)  # 200 MB, touched so it is resident
        del block
    assert mem.peak_rss_mb is not None
    assert mem.peak_rss_mb >= mem.rss_start_mb + 150
    assert mem.cuda_max_allocated_mb is None and "no CUDA device" in mem.note


def test_peak_rss_is_per_block_on_linux():
    with MemoryTracker("cpu"):
        big = np.ones(200 * 1024 * 1024 // 8)
        del big
    with MemoryTracker("cpu") as second:
        small = np.ones(1024)
        del small
    if second.rss_scope != "block":
        pytest.skip("the kernel's RSS high-water mark cannot be reset here (/proc/self/clear_refs)")
    # The first block's 200 MB peak must not leak into the second block's figure.
    assert second.peak_rss_mb < second.rss_start_mb + 100


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU path")
def test_trackers_are_null_with_a_note_without_gpu():
    with MemoryTracker() as mem, EnergyTracker() as energy:
        sum(range(1000))
    assert mem.cuda_max_allocated_mb is None
    assert energy.energy_j is None and energy.mean_power_w is None and energy.mean_util_pct is None
    assert energy.note.startswith(NO_GPU)


def test_energy_tracker_on_cpu_device_never_touches_nvml():
    with EnergyTracker("cpu") as energy:
        pass
    assert energy.energy_j is None and energy.note.startswith(NO_GPU) and energy.samples == []


def test_energy_tracker_does_not_swallow_errors_of_the_block():
    with pytest.raises(KeyError):
        with EnergyTracker():
            raise KeyError("from the timed code")


def test_integrate_power_by_hand():
    # 100 W for 1 s, then a ramp 100 -> 200 W over 2 s: 100 + (100 + 200) / 2 * 2 = 400 J.
    assert integrate_power([0.0, 1.0, 3.0], [100.0, 100.0, 200.0]) == pytest.approx(400.0)
    assert integrate_power([0.0], [100.0]) == 0


def test_joules_per_1k_tokens():
    assert joules_per_1k_tokens(12.0, 4000) == pytest.approx(3.0)
    assert joules_per_1k_tokens(None, 4000) is None
    assert joules_per_1k_tokens(12.0, 0) is None


@needs_cuda
def test_cuda_max_allocated():
    with MemoryTracker("cuda") as mem:
        block = torch.empty(64 * 1024 * 1024, dtype=torch.uint8, device="cuda")
        del block
    assert mem.cuda_max_allocated_mb >= 64


@needs_cuda
def test_energy_on_gpu():
    a = torch.randn(4096, 4096, device="cuda")
    with EnergyTracker("cuda", interval_s=0.02) as energy:
        for _ in range(50):
            a @ a
        torch.cuda.synchronize()
    if energy.energy_j is None:
        pytest.skip(f"NVML gives no power here: {energy.note}")
    assert energy.energy_j > 0 and energy.mean_power_w > 0 and len(energy.samples) >= 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without the NVIDIA driver")
def test_missing_nvml_library_gives_a_note_not_an_error(monkeypatch):
    # Pretend torch found a GPU, so the tracker really calls pynvml.nvmlInit, which fails here (no driver library).
    monkeypatch.setattr("xlt_bench.measure.trackers._cuda_index", lambda device: 0)
    with EnergyTracker("cuda") as energy:
        pass
    assert energy.energy_j is None and energy.mean_util_pct is None
    assert energy.note.startswith(NO_GPU) and "NVML" in energy.note


def test_nested_rss_windows_keep_the_outer_peak():
    from xlt_bench.measure.trackers import RssWindow
    with RssWindow() as outer:
        big = np.ones(300 * 1024 * 1024 // 8)   # 300 MB resident, then freed before the inner window resets
        del big
        with RssWindow() as inner:
            small = np.ones(1024)
            del small
    if outer.scope != "block":
        pytest.skip("the kernel's RSS high-water mark cannot be reset here (/proc/self/clear_refs)")
    assert inner.peak_mb < inner.start_mb + 100          # the inner window starts after the 300 MB were freed
    assert outer.peak_mb >= outer.start_mb + 250         # the inner reset did not erase the outer block's peak
    assert RssWindow.process_peak_mb() >= outer.peak_mb


def test_stage_clock_reports_each_stages_own_peak():
    from xlt_bench.scenarios.base import StageClock
    clock = StageClock()
    with clock("big"):
        big = np.ones(300 * 1024 * 1024 // 8)
        del big
    with clock("small"):
        sum(range(1000))
    from xlt_bench.measure.trackers import RssWindow
    with RssWindow() as probe:
        pass
    if probe.scope != "block":
        pytest.skip("the kernel's RSS high-water mark cannot be reset here (/proc/self/clear_refs)")
    assert clock.rss_mb["big"] >= clock.rss_mb["small"] + 250
