"""A run never destroys a previous result and never loses what it measured (issue 11, "Nothing lost").

Uses the fake backend (sleeps a known time, no model compute) on tiny presets so every case takes about a second.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xlt_bench.cli import main
from xlt_bench.core.config import RunConfig
from xlt_bench.core.errors import InputError
from xlt_bench.run.pipeline import run
from xlt_bench.core.schema import load_results

FAST = dict(model="tiny-xlmr", backends=("fake",), batching=("static",), threads=1, limit=8)


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


@pytest.fixture
def finished_run(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XLT_FAKE_COST", "fixed_ms=1")
    out = tmp_path / "run"
    run(RunConfig(tasks=("xnli",), langs=("en",), **FAST), out)
    return out


def _snapshot(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def test_existing_run_is_refused_without_force_and_kept(finished_run):
    before = _snapshot(finished_run)
    with pytest.raises(InputError, match="--force"):
        run(RunConfig(tasks=("xnli",), langs=("en",), **FAST), finished_run)
    assert _snapshot(finished_run) == before


def test_bad_language_into_existing_run_keeps_it(finished_run):
    before = _snapshot(finished_run)
    with pytest.raises(InputError, match="xx"):
        run(RunConfig(tasks=("xnli",), langs=("xx",), **FAST), finished_run, force=True)
    assert _snapshot(finished_run) == before


def test_force_replaces_only_when_complete(finished_run):
    old_id = load_results(finished_run)["run"]["id"]
    doc = run(RunConfig(tasks=("xnli",), langs=("en", "de"), **FAST), finished_run, force=True)
    loaded = load_results(finished_run)
    assert loaded["run"]["id"] == doc["run"]["id"] != old_id
    assert {r["lang"] for r in loaded["rows"]} == {"en", "de", "ALL"}
    # No staging or old copies left beside it.
    assert [p.name for p in finished_run.parent.iterdir()] == ["run"]


def test_second_task_bad_data_fails_before_measuring(tmp_path, tiny_vocab_file, monkeypatch):
    """Bad data in any task is found before the first task is measured (nothing measured, nothing lost)."""
    import xlt_bench.run.pipeline as pipeline
    data = tmp_path / "data"
    _write(data / "xnli" / "en.jsonl", ['{"text_a": "the cat", "text_b": "a dog", "label": 0}'] * 4)
    _write(data / "pawsx" / "en.jsonl", ['{"text_a": "the cat", "text_b": "a dog", "label": 0}', "{not json"])
    measured = []
    monkeypatch.setattr(pipeline, "_measure_peaks", lambda *a: measured.append(a) or {})
    cfg = RunConfig(model="tiny-mbert", tokenizer=str(tiny_vocab_file), data=f"local:{data}", tasks=("xnli", "pawsx"),
                    langs=("en",), backends=("fake",), threads=1)
    with pytest.raises(InputError) as err:
        run(cfg, tmp_path / "out")
    assert "pawsx/en.jsonl:2" in str(err.value)
    assert measured == []
    assert not (tmp_path / "out" / "results.json").exists()


def test_failure_after_first_task_keeps_its_rows(tmp_path, monkeypatch):
    import xlt_bench.run.pipeline as pipeline
    monkeypatch.setenv("XLT_FAKE_COST", "fixed_ms=1")
    real = pipeline._run_task

    def fail_on_second(cfg, spec, *args):
        if spec.name == "pawsx":
            raise RuntimeError("backend crashed")
        return real(cfg, spec, *args)

    monkeypatch.setattr(pipeline, "_run_task", fail_on_second)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        run(RunConfig(tasks=("xnli", "pawsx"), langs=("en",), **FAST), out)
    assert not (out / "results.json").exists()
    partial = json.loads((out / "results.incomplete.json").read_text())
    assert partial["run"]["incomplete"] is True
    assert {(r["task"], r["lang"]) for r in partial["rows"]} == {("xnli", "en")}
    assert any("backend crashed" in n for n in partial["run"]["notes"])
    with pytest.raises(InputError, match="incomplete"):
        load_results(out / "results.incomplete.json")


def test_interrupt_keeps_old_results_and_writes_incomplete(finished_run, monkeypatch):
    import xlt_bench.run.pipeline as pipeline
    before = _snapshot(finished_run)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "_run_task", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run(RunConfig(tasks=("xnli",), langs=("en",), **FAST), finished_run, force=True)
    after = _snapshot(finished_run)
    assert after.pop("results.incomplete.json")
    assert after == before


@pytest.mark.parametrize("target", ["file", "proc"])
def test_unwritable_out_fails_at_start(tmp_path, target, monkeypatch):
    import xlt_bench.run.pipeline as pipeline
    monkeypatch.setattr(pipeline, "_measure_peaks", lambda *a: pytest.fail("measured before checking --out"))
    out = tmp_path / "a-file" if target == "file" else Path("/proc/xlt-bench-cannot-write/run")
    if target == "file":
        out.write_text("not a directory")
    with pytest.raises(InputError, match="out"):
        run(RunConfig(tasks=("xnli",), langs=("en",), **FAST), out)


def test_zero_measured_rows_is_exit_2(tmp_path, tiny_vocab_file, capsys):
    data = tmp_path / "data"
    _write(data / "xnli" / "en.jsonl", [])
    code = main(["run", "--model", "tiny-mbert", "--tokenizer", str(tiny_vocab_file), "--data", f"local:{data}",
                 "--tasks", "xnli", "--langs", "en", "--backends", "fake", "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert "nothing was measured" in err and "xnli/en" in err and "empty" in err
    assert not (tmp_path / "out" / "results.json").exists()


def test_sigterm_leaves_incomplete_file(tmp_path):
    """`timeout` and CI cancellation send SIGTERM: the run must stop like Ctrl-C and keep its partial rows."""
    out = tmp_path / "out"
    env = {**os.environ, "XLT_FAKE_COST": "fixed_ms=40"}
    cmd = [sys.executable, "-m", "xlt_bench.cli", "run", "--model", "tiny-xlmr", "--tasks", "xnli", "--langs", "all",
           "--backends", "fake", "--batching", "static", "--min-seconds", "1", "--threads", "1",
           "--out", str(out), "--no-report"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(8)  # start-up (imports, GEMM peak) then a few languages measured; the whole run needs ~20 s
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err.decode()[-2000:]
    partial = json.loads((out / "results.incomplete.json").read_text())
    assert partial["run"]["incomplete"] is True
    assert any("SIGTERM" in n for n in partial["run"]["notes"])
    assert not (out / "results.json").exists()


def test_agreement_without_the_reference_configuration(tmp_path):
    """An int8-only, dynamic-only run still reports agreement: the reference is computed untimed."""
    doc = run(RunConfig(model="tiny-xlmr", tasks=("xnli",), langs=("en",), limit=16, backends=("eager",),
                        dtype=("int8",), batching=("dynamic",), threads=1), tmp_path / "out")
    row = next(r for r in doc["rows"] if r["lang"] == "en")
    assert row["agreement"] is not None and 0.0 <= row["agreement"] <= 1.0
    assert row["max_abs_diff"] > 0            # int8 differs from fp32 (so the reference was really fp32)
    assert not any(r["dtype"] == "fp32" for r in doc["rows"])   # no reference row was added to the results
    assert any("computed untimed" in n for n in doc["run"]["notes"])
