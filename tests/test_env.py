"""Run metadata: fields present, git state read from a real temporary repository, CPU parsing by hand."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from datetime import datetime

import pytest

from xlt_bench.core.env import cpu_info, finish_metadata, git_state, run_metadata

ENV_FIELDS = {"cpu_model", "cpu_flags_of_interest", "cores_physical", "cores_logical", "threads", "os", "python",
              "libraries", "gpu_name", "gpu_driver", "cuda", "hostname"}
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")


def make_repo(path):
    def git(*args):
        subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True)
    git("init", "-q")
    git("config", "user.email", "t@example.org")
    git("config", "user.name", "t")
    (path / "a.txt").write_text("one\n")
    git("add", "a.txt")
    git("commit", "-qm", "first")
    return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


@needs_git
def test_metadata_fields_and_git_sha(tmp_path):
    sha = make_repo(tmp_path)
    config = {"model": "xlmr-base", "batch_size": 32}
    run = run_metadata(config, repo_dir=tmp_path)
    assert run["git_sha"] == sha and re.fullmatch(r"[0-9a-f]{40}", sha)
    assert run["git_dirty"] is False
    assert run["config"] == config
    assert ENV_FIELDS <= run["env"].keys()
    assert datetime.fromisoformat(run["created"].replace("Z", "+00:00")).tzinfo is not None
    assert run["id"].startswith(run["created"][:4])


@needs_git
def test_dirty_flag_follows_tracked_files(tmp_path):
    make_repo(tmp_path)
    (tmp_path / "untracked.txt").write_text("x")
    assert git_state(tmp_path)[1] is False  # untracked output does not dirty the tree
    (tmp_path / "a.txt").write_text("two\n")
    assert git_state(tmp_path)[1] is True


def test_outside_a_repository_git_fields_are_none(tmp_path):
    assert git_state(tmp_path) == (None, None)


def test_library_versions_and_absent_packages():
    env = run_metadata({})["env"]
    import torch
    assert env["libraries"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert env["threads"] == torch.get_num_threads()
    assert env["cores_logical"] >= 1
    if not torch.cuda.is_available():
        assert env["gpu_name"] is None and env["cuda"] is None and env["gpu_driver"] is None


def test_finish_metadata_adds_duration():
    run = run_metadata({})
    started = time.perf_counter() - 2.5
    finish_metadata(run, started, time.perf_counter)
    assert 2.5 <= run["duration_s"] < 10
    assert run["finished"] >= run["created"]
    wall_run = {}
    finish_metadata(wall_run, time.time() - 1.0)  # the default clock is time.time, as the pipeline reads it
    assert 1.0 <= wall_run["duration_s"] < 10


CPUINFO = """processor\t: 0
model name\t: Example CPU 9000
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 avx512_vnni amx_tile amx_bf16 avx_vnni

processor\t: 1
model name\t: Example CPU 9000
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 avx512_vnni amx_tile amx_bf16 avx_vnni

processor\t: 2
model name\t: Example CPU 9000
physical id\t: 0
core id\t\t: 1
flags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 avx512_vnni amx_tile amx_bf16 avx_vnni
"""


def test_cpu_info_parsing():
    info = cpu_info(CPUINFO)
    assert info["model"] == "Example CPU 9000"
    assert info["cores_physical"] == 2  # three logical processors on two cores (hyper-threads share core 0)
    assert info["flags"] == ["amx_bf16", "amx_tile", "avx2", "avx512_bf16", "avx512_vnni", "avx512f", "avx_vnni",
                             "fma"]
