"""Run metadata (DESIGN §4 `run`): enough to rerun the same measurement on the same kind of machine.

Everything here is read, never assumed: a value that cannot be read is None. The measured GEMM peaks are added to
`env` by measure/gemm_peak.py; this module only describes the machine, the software and the code version.
"""

from __future__ import annotations

import os
import platform
import re
import secrets
import socket
import subprocess
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

# Distributions whose versions change what is measured.
LIBRARIES = ("torch", "transformers", "tokenizers", "onnxruntime", "onnx", "optimum", "optimum-onnx", "numpy",
             "pandas", "datasets")
# CPU features that decide which GEMM kernels run (AVX-512, VNNI for int8, BF16/AMX for bf16).
_FLAG_PATTERN = re.compile(r"^(avx2|fma|avx512.*|amx.*|.*bf16.*|.*vnni.*)$")
_PACKAGE_DIR = Path(__file__).resolve().parent


def run_metadata(config_dict: dict[str, Any], repo_dir: Path | None = None) -> dict[str, Any]:
    """The `run` object of results.json, minus `finished`/`duration_s` (see finish_metadata)."""
    created = datetime.now(timezone.utc)
    sha, dirty = git_state(repo_dir if repo_dir is not None else _PACKAGE_DIR.parent)
    return {"id": f"{created:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}", "created": _iso(created),
            "git_sha": sha, "git_dirty": dirty, "config": config_dict, "env": machine_env()}


def finish_metadata(run: dict[str, Any], started: float, clock: Callable[[], float] = time.time) -> None:
    """Add `finished` (ISO UTC) and `duration_s` = clock() - started, where `started` is a reading of the same
    `clock` taken when the run began (pass time.perf_counter for a monotonic one)."""
    run["finished"] = _iso(datetime.now(timezone.utc))
    run["duration_s"] = round(clock() - started, 3)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def git_state(repo_dir: Path) -> tuple[str | None, bool | None]:
    """(HEAD sha, whether tracked files differ from it); (None, None) outside a git work tree or without git.

    Untracked files do not make a tree dirty (as `git describe --dirty`): results/ and caches are untracked.
    """
    sha = _git(repo_dir, "rev-parse", "HEAD")
    if sha is None:
        return None, None
    status = _git(repo_dir, "status", "--porcelain", "--untracked-files=no")
    return sha, (None if status is None else bool(status))


def _git(repo_dir: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(repo_dir), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def machine_env() -> dict[str, Any]:
    cpu = cpu_info()
    gpu = gpu_info()
    return {"cpu_model": cpu["model"], "cpu_flags_of_interest": cpu["flags"],
            "cores_physical": cpu["cores_physical"], "cores_logical": os.cpu_count(),
            "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "threads": _torch_threads(), "os": platform.platform(), "python": platform.python_version(),
            "libraries": library_versions(), **gpu, "hostname": socket.gethostname()}


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_info(cpuinfo: str | None = None) -> dict[str, Any]:
    """CPU model, flags of interest and physical core count from /proc/cpuinfo (Linux); platform fallbacks elsewhere."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    flags = re.search(r"^(?:flags|Features)\s*:\s*(.*)$", cpuinfo, re.M)
    cores = {(block.get("physical id"), block.get("core id")) for block in _cpuinfo_blocks(cpuinfo)
             if "core id" in block}
    return {"model": model.group(1).strip() if model else (platform.processor() or None),
            "flags": sorted(f for f in flags.group(1).split() if _FLAG_PATTERN.match(f)) if flags else [],
            "cores_physical": len(cores) or None}


def _cpuinfo_blocks(cpuinfo: str) -> list[dict[str, str]]:
    """One dict per logical processor."""
    blocks = []
    for chunk in cpuinfo.strip().split("\n\n"):
        pairs = (line.split(":", 1) for line in chunk.splitlines() if ":" in line)
        blocks.append({key.strip(): value.strip() for key, value in pairs})
    return blocks


def _torch_threads() -> int | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.get_num_threads()


def gpu_info() -> dict[str, Any]:
    """GPU name, driver and CUDA version of device 0 as torch sees it; None each without a CUDA GPU."""
    info: dict[str, Any] = {"gpu_name": None, "gpu_driver": None, "cuda": None}
    try:
        import torch
    except ImportError:
        return info
    if not torch.cuda.is_available():
        return info
    info["gpu_name"] = torch.cuda.get_device_name(0)
    info["cuda"] = torch.version.cuda
    info["gpu_driver"] = _nvml_driver()
    return info


def _nvml_driver() -> str | None:
    try:
        import pynvml
        pynvml.nvmlInit()
        try:
            driver = pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # NVML absent or failing: the driver version is simply unknown
        return None
    return driver.decode() if isinstance(driver, bytes) else str(driver)
