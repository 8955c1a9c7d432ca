"""`run --dry-run`: it checks what can be checked in seconds and estimates the whole run (start-up included)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xlt_bench.core.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
XLT = Path(sys.executable).parent / "xlt-bench"
FAKE_COST = "fixed_ms=2,per_token_us=20"
SMALL = ["run", "--model", "tiny-xlmr", "--data", "synthetic", "--tasks", "xnli", "--langs", "en,th", "--limit", "32",
         "--backends", "fake", "--batching", "static,dynamic", "--threads", "1"]


def _xlt(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(XLT), *args], cwd=cwd, env={**os.environ, "XLT_FAKE_COST": FAKE_COST},
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("content,reason", [(None, "No such file"), ("garbage", "cannot read a cost model"),
                                            ('{"run": {"cost_models": {"eager/fp32/cpu": {"fixed_s": 0.1}}}}',
                                             "no cost model for fake/fp32/cpu (it has: eager/fp32/cpu)")])
def test_dry_run_refuses_an_unusable_cost_model_file(tmp_path, content, reason):
    path = tmp_path / "cost.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    done = _xlt([*SMALL, "--cost-model", str(path), "--dry-run", "--out", str(tmp_path / "out")], tmp_path)
    assert done.returncode == 2 and reason in done.stderr and str(path) in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_estimate_does_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    from xlt_bench.run import estimate as est
    monkeypatch.setenv("XLT_FAKE_COST", FAKE_COST)
    cfg = RunConfig(model="tiny-xlmr", tasks=("xnli",), langs=("en",), backends=("fake",), limit=32)
    monkeypatch.setattr(est, "gemm_rates", lambda cfg, pairs, baseline: ({"torch/fp32": 1e10}, "test"))
    here = est.estimate_run(cfg, [("fake", "fp32")])
    monkeypatch.chdir(tmp_path)
    there = est.estimate_run(cfg, [("fake", "fp32")])
    assert here.seconds == there.seconds and here.efficiency_source == there.efficiency_source


@pytest.mark.slow
def test_estimate_of_a_small_fake_run_is_within_3x_of_its_duration(tmp_path):
    dry = _xlt([*SMALL, "--dry-run", "--out", str(tmp_path / "out")], tmp_path)
    assert dry.returncode == 0, dry.stderr
    line = next(x for x in dry.stdout.splitlines() if x.startswith("estimated run:"))
    estimated = float(line.split("~")[1].split(" s")[0])
    assert "model build ~" in line and "cost probe ~" in line     # start-up is part of it
    startup = [float(p.split("~")[1].split(" s")[0]) for p in line.split("(")[1].split(",")]
    assert sum(startup) > 0
    began = time.perf_counter()
    run = _xlt([*SMALL, "--out", str(tmp_path / "out"), "--no-report", "-q"], tmp_path)
    took = time.perf_counter() - began
    assert run.returncode == 0, run.stderr
    assert took / 3 <= estimated <= took * 3, (estimated, took)


def test_repeat_rule_follows_min_and_max_seconds():
    from xlt_bench.run.estimate import repeat_rule
    # Two rows (xnli en, th), 3 passes of 0.1 s each per row = 0.6 s in all.
    base = dict(model="tiny-xlmr", tasks=("xnli",), langs=("en", "th"), min_repeats=3)
    assert repeat_rule(RunConfig(**base), 0.6) == pytest.approx(0.6)
    # --min-seconds 1: each row passes 10 times (1.0 s) -> 2.0 s.
    assert repeat_rule(RunConfig(**base, min_seconds=1.0), 0.6) == pytest.approx(2.0)
    # --max-seconds 0.5 stops each row at 0.5 s -> 1.0 s.
    assert repeat_rule(RunConfig(**base, min_seconds=0.5, max_seconds=0.5), 0.6) == pytest.approx(1.0)


def test_estimate_leaves_out_a_strategy_a_backend_cannot_run(tmp_path):
    # packed needs supports_packed: eager has it, onnxruntime does not, so the run times packed on eager only.
    from xlt_bench.core.config import RunConfig
    from xlt_bench.run import estimate as est
    pytest.importorskip("onnxruntime")
    cfg = RunConfig(model="tiny-xlmr", tasks=("xnli",), langs=("en",), backends=("eager", "onnxruntime"),
                    batching=("static", "packed"), limit=8)
    parts = est.estimate_run(cfg, [("eager", "fp32"), ("onnxruntime", "fp32")], tmp_path / "none.json").parts
    assert set(parts) == {("eager", "fp32", "static"), ("eager", "fp32", "packed"),
                          ("onnxruntime", "fp32", "static")}
