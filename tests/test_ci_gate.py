"""`.ci/run`'s gate steps, run as written in the script (CI_GATE_ONLY skips install and the test suite), on a tiny
config of the fake backend (known cost): a planted uniform slowdown must fail the gate (exit 1) after the rerun; a
clean run must pass it, and the fresh-probe plan check too on a backend whose cost did not change."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CI_RUN = ROOT / ".ci" / "run"
BIN = Path(sys.executable).parent
# Launch- and token-bound at once (2 ms a call, 20 us a token), so dynamic batching has something to win.
FAKE_COST = "fixed_ms=2,per_token_us=20"
TINY = """[run]
model = "tiny-xlmr"
data = "synthetic"
tasks = ["xnli"]
langs = ["en", "th"]
limit = 32
backends = ["fake"]
batching = ["static", "dynamic"]
batch_size = 8
max_length = 64
dtype = ["fp32"]
threads = 1
min_repeats = 3
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "XLT_FAKE_COST": FAKE_COST, "CI_GATE_ONLY": "1", "CI_CONFIG": str(tmp_path / "tiny.toml"),
           "CI_BASELINE": str(tmp_path / "baseline" / "results.json"), "CI_OUT": str(tmp_path / "out"), **extra}
    return env


@pytest.fixture(scope="module")
def ci_dir(tmp_path_factory) -> Path:
    if not (BIN / "xlt-bench").exists():
        pytest.skip(f"no xlt-bench beside {sys.executable}")
    tmp = tmp_path_factory.mktemp("ci")
    (tmp / "tiny.toml").write_text(TINY, encoding="utf-8")
    made = subprocess.run([str(BIN / "xlt-bench"), "run", "--config", str(tmp / "tiny.toml"), "--out",
                           str(tmp / "baseline"), "--no-report", "-q"], env=_env(tmp), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    return tmp


def _ci(ci_dir: Path, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(CI_RUN)], env=_env(ci_dir, **extra), cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_the_script_runs_its_gate_through_the_variables_the_test_sets():
    text = CI_RUN.read_text(encoding="utf-8")
    # The defaults are what CI gates on: the committed config and baseline.
    assert 'CONFIG="${CI_CONFIG:-benchmarks/ci.toml}"' in text
    assert 'BASELINE="${CI_BASELINE:-results/baseline/results.json}"' in text
    assert "--cost-model $BASELINE" in text and text.count("xlt-bench gate --baseline") == 3


@pytest.mark.slow
def test_a_planted_slowdown_fails_the_ci_gate(ci_dir):
    # Every timed batch twice as long: speedup (a ratio within the run) is unchanged, MFU halves (-50% against a 15%
    # allowance), in the run and in its rerun alike.
    slowed = _ci(ci_dir, CI_RUN_EXTRA="--inject-slowdown 1")
    assert slowed.returncode == 1, slowed.stdout + slowed.stderr
    assert "mfu regressed" in slowed.stdout and (ci_dir / "out" / "ci-rerun" / "results.json").exists()
    assert not (ci_dir / "out" / "ci-plan").exists()   # the plan check is opt-in


@pytest.mark.slow
def test_a_clean_run_passes_and_the_plan_check_probes_afresh(ci_dir):
    done = _ci(ci_dir, CI_PLAN_CHECK="1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("gate passed") == 2 and "predicted_speedup" in done.stdout
    import json
    fresh = json.loads((ci_dir / "out" / "ci-plan" / "results.json").read_text(encoding="utf-8"))
    assert not fresh["run"]["config"].get("cost_model_file")   # its cost model was probed, not reused
    assert fresh["run"]["cost_models"]["fake/fp32/cpu"].get("samples")
