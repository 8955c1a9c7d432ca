"""Memory and energy trackers: context managers the measure stage wraps around a backend's timed region.

They measure; measure/passes.py owns the timing. Neither ever raises because a GPU, NVML or /proc is missing: the figure is
None and `.note` says why (DESIGN: null where a value is unknown).
"""

from __future__ import annotations

import re
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

NO_GPU = "no NVIDIA GPU / NVML unavailable"
_MB = 1024 * 1024


def _cuda_index(device: str | None) -> int | None:
    """The CUDA device index a run uses: None for CPU runs or when torch sees no CUDA GPU."""
    if device is not None and not str(device).startswith("cuda"):
        return None
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    if device and ":" in str(device):
        return int(str(device).split(":", 1)[1])
    return torch.cuda.current_device()


class RssWindow:
    """Peak resident memory of this process over a `with` block, nestable.

    On Linux the kernel's RSS high-water mark is reset on entry (writing 5 to /proc/self/clear_refs), so `peak_mb`
    is the peak of this block alone (`scope` "block"). Because a reset erases what enclosing blocks saw, the mark is
    folded into every open window before each reset and an inner window's peak is passed up on exit: a stage that
    contains per-measurement windows still reports its own true peak. `process_peak_mb()` is the largest seen by
    any window. Where the mark cannot be reset, every figure is the process's lifetime peak (`scope` "process")."""

    _open: list[RssWindow] = []
    _process_peak_mb: float = 0.0

    def __init__(self) -> None:
        self.peak_mb: float | None = None
        self.start_mb: float | None = None
        self.scope: str | None = None

    def __enter__(self) -> RssWindow:
        RssWindow._fold(_proc_status_mb("VmHWM"))
        self.scope = "block" if _reset_rss_peak() else "process"
        self.start_mb = _proc_status_mb("VmRSS")
        self.peak_mb = self.start_mb or 0.0
        RssWindow._open.append(self)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        RssWindow._open.remove(self)
        high_water = _proc_status_mb("VmHWM") if self.scope == "block" else None
        self.peak_mb = max(self.peak_mb or 0.0, high_water if high_water is not None else _rusage_peak_mb())
        RssWindow._fold(self.peak_mb)

    @classmethod
    def _fold(cls, peak_mb: float | None) -> None:
        if peak_mb is None:
            return
        for window in cls._open:
            window.peak_mb = max(window.peak_mb or 0.0, peak_mb)
        cls._process_peak_mb = max(cls._process_peak_mb, peak_mb)

    @classmethod
    def process_peak_mb(cls) -> float:
        """The largest RSS any window saw, or the lifetime peak where the mark cannot be reset."""
        current = _proc_status_mb("VmHWM")
        cls._fold(current)
        return cls._process_peak_mb or _rusage_peak_mb()


def children_peak_rss_mb() -> float | None:
    """Peak RSS of the largest finished child process (the ONNX export and fusion run in children)."""
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if not peak:
        return None
    return peak / _MB if sys.platform == "darwin" else peak / 1024


class MemoryTracker:
    """Peak resident memory of this process (an RssWindow), and CUDA max allocated, over the `with` block.

    `peak_rss_mb` is the peak of this block alone where the kernel allows it (`rss_scope` "block"), else the
    process's lifetime peak (`rss_scope` "process").
    `device`: the run's device ("cpu", "cuda", "cuda:1"); None means CUDA device 0 when there is one.
    """

    def __init__(self, device: str | None = None):
        self.device = device
        self.peak_rss_mb: float | None = None
        self.rss_start_mb: float | None = None
        self.rss_scope: str | None = None
        self.cuda_max_allocated_mb: float | None = None
        self.note: str | None = None
        self._cuda: int | None = None

    def __enter__(self) -> MemoryTracker:
        self._rss = RssWindow().__enter__()
        self.rss_scope, self.rss_start_mb = self._rss.scope, self._rss.start_mb
        self._cuda = _cuda_index(self.device)
        if self._cuda is None:
            self.note = "no CUDA device in use: cuda_max_allocated_mb is null"
        else:
            import torch
            torch.cuda.synchronize(self._cuda)
            torch.cuda.reset_peak_memory_stats(self._cuda)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._cuda is not None:
            import torch
            torch.cuda.synchronize(self._cuda)
            self.cuda_max_allocated_mb = torch.cuda.max_memory_allocated(self._cuda) / _MB
        self._rss.__exit__(*exc_info)
        self.peak_rss_mb = self._rss.peak_mb


def _reset_rss_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _proc_status_mb(field: str) -> float | None:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+)\s+kB", status, re.M)
    return int(match.group(1)) / 1024 if match else None


def _rusage_peak_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / _MB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


class EnergyTracker:
    """GPU power, utilisation and energy over the `with` block, sampled from NVML in a background thread.

    Energy comes from the driver's cumulative counter (nvmlDeviceGetTotalEnergyConsumption, Volta and newer) when
    it answers, else from integrating the sampled power over time (`energy_source` says which). `mean_power_w` is the
    energy over the block's duration; `mean_util_pct` the mean of the sampled GPU utilisation.
    """

    def __init__(self, device: str | None = None, interval_s: float = 0.05):
        self.device, self.interval_s = device, interval_s
        self.energy_j: float | None = None
        self.mean_power_w: float | None = None
        self.mean_util_pct: float | None = None
        self.duration_s: float | None = None
        self.energy_source: str | None = None
        self.samples: list[tuple[float, float, float | None]] = []  # (time s, power W, utilisation %)
        self.note: str | None = None
        self._nvml: Any = None
        self._handle: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = self._counter_start = None

    def __enter__(self) -> EnergyTracker:
        self._handle = self._open_nvml()
        if self._handle is None:
            return self
        self._counter_start = self._energy_counter_mj()
        self._start = time.perf_counter()
        self._sample()
        self._thread = threading.Thread(target=self._run, name="xlt-energy", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._handle is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        self.duration_s = time.perf_counter() - self._start
        counter_end = self._energy_counter_mj()
        if self._counter_start is not None and counter_end is not None:
            self.energy_j, self.energy_source = (counter_end - self._counter_start) / 1000, "nvml_energy_counter"
        elif len(self.samples) >= 2:
            self.energy_j = integrate_power([s[0] for s in self.samples], [s[1] for s in self.samples])
            self.energy_source = "nvml_power_samples"
        if self.energy_j is not None and self.duration_s > 0:
            self.mean_power_w = self.energy_j / self.duration_s
        utils = [s[2] for s in self.samples if s[2] is not None]
        self.mean_util_pct = sum(utils) / len(utils) if utils else None
        self._close_nvml()

    def _open_nvml(self) -> Any:
        index = _cuda_index(self.device)
        if index is None:
            self.note = f"{NO_GPU} (no CUDA device in use)"
            return None
        try:
            import pynvml
            pynvml.nvmlInit()
            self._nvml = pynvml
            return _nvml_handle(pynvml, index)
        except Exception as exc:  # missing library, driver or permission: energy is unknown, never fatal
            self.note = f"{NO_GPU} ({exc.__class__.__name__}: {exc})"
            self._close_nvml()
            return None

    def _close_nvml(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self._nvml = None

    def _energy_counter_mj(self) -> int | None:
        try:
            return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except Exception:  # not supported before Volta
            return None

    def _sample(self) -> None:
        try:
            power_w = self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000  # reported in mW
        except Exception as exc:
            self.note = f"NVML power reading failed: {exc}"
            self._stop.set()
            return
        try:
            util: float | None = float(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)
        except Exception:
            util = None
        self.samples.append((time.perf_counter(), power_w, util))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()


def _nvml_handle(pynvml: Any, cuda_index: int) -> Any:
    """NVML's handle for a CUDA device: matched by UUID, since CUDA_VISIBLE_DEVICES can renumber devices."""
    try:
        import torch
        uuid = str(torch.cuda.get_device_properties(cuda_index).uuid)
        return pynvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith("GPU-") else f"GPU-{uuid}")
    except Exception:
        return pynvml.nvmlDeviceGetHandleByIndex(cuda_index)


def integrate_power(times_s: list[float], watts: list[float]) -> float:
    """Joules from power samples by the trapezoidal rule."""
    return sum((t1 - t0) * (w0 + w1) / 2 for t0, t1, w0, w1 in zip(times_s, times_s[1:], watts, watts[1:]))


def joules_per_1k_tokens(energy_j: float | None, tokens: int | None) -> float | None:
    """Energy per 1000 (useful) tokens; None when energy is unknown or no tokens ran."""
    if energy_j is None or not tokens or tokens <= 0:
        return None
    return energy_j * 1000 / tokens
