"""End-to-end runs of the pipeline and the CLI on tiny presets, synthetic data and ../shared/data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xlt_bench.cli import main
from xlt_bench.core.config import RunConfig
from xlt_bench.run.pipeline import run
from xlt_bench.core.schema import ALL_LANGS, ROW_FIELDS, load_results

pytestmark = pytest.mark.slow


def _rows(doc, **match):
    return [r for r in doc["rows"] if all(r[k] == v for k, v in match.items())]


def test_tiny_run_on_real_data_three_languages(tmp_path, xtreme_dir, mbert_vocab):
    cfg = RunConfig(model="tiny-mbert", tokenizer=str(mbert_vocab), data=f"local:{xtreme_dir}", tasks=("xnli",),
                    langs=("en", "th", "zh"), limit=40, backends=("eager",), batching=("static", "dynamic"),
                    threads=1)
    doc = run(cfg, tmp_path)
    assert (tmp_path / "results.json").exists() and (tmp_path / "rows.csv").exists()
    loaded = load_results(tmp_path)
    assert loaded["run"]["incomplete"] is False
    for row in loaded["rows"]:
        assert set(ROW_FIELDS) <= set(row)
    assert {r["lang"] for r in doc["rows"]} == {"en", "th", "zh", ALL_LANGS}
    for lang in ("en", "th", "zh"):
        static, = _rows(doc, lang=lang, batching="static")
        dynamic, = _rows(doc, lang=lang, batching="dynamic")
        assert static["n_examples"] == dynamic["n_examples"] == 40
        assert static["real_tokens"] == dynamic["real_tokens"]
        # Static pads every row to --max-length 128.
        assert static["padded_tokens"] == 40 * 128
        assert dynamic["padded_tokens"] < static["padded_tokens"]
        assert dynamic["padding_waste"] == pytest.approx(1 - dynamic["real_tokens"] / dynamic["padded_tokens"])
        # Same predictions in input order: the dynamic row agrees fully with the static reference.
        assert dynamic["agreement"] == 1.0 and dynamic["max_abs_diff"] <= 1e-4 and dynamic["parity_ok"]
        assert static["is_reference"] and static["accuracy"] is None  # random weights: no trained head
        assert static["flops_executed"] > static["flops_useful"] > 0
        # Three timed passes by default (interleaved with dynamic's), every batch's latency kept.
        assert static["n_repeats"] == dynamic["n_repeats"] == 3 == len(static["pass_wall_s"])
        assert len(static["latencies_ms"]) == 3 * static["n_batches"]
        lo, hi = static["throughput_tok_s_ci95"]
        assert lo <= static["throughput_tok_s"] <= hi
        lo, hi = dynamic["speedup_ci95"]
        assert lo <= dynamic["speedup"] <= hi
        assert dynamic["speedup"] == pytest.approx(dynamic["throughput_tok_s"] / static["throughput_tok_s"])
        assert "speedup" not in static and static["attn"] == "sdpa" and static["max_tokens"] == 32 * 128
    all_static, = _rows(doc, lang=ALL_LANGS, batching="static")
    per_lang = _rows(doc, batching="static")
    assert all_static["real_tokens"] == sum(r["real_tokens"] for r in per_lang if r["lang"] != ALL_LANGS)


def test_synthetic_run_has_every_language_and_all_rows(tmp_path):
    cfg = RunConfig(model="tiny-xlmr", tasks=("pawsx",), limit=8, backends=("eager",), threads=1)
    doc = run(cfg, tmp_path)
    langs = {r["lang"] for r in doc["rows"]}
    assert langs == {"de", "en", "es", "fr", "ja", "ko", "zh", ALL_LANGS}
    assert {r["batching"] for r in doc["rows"]} == {"static", "dynamic"}
    assert all(r["mfu"] is not None and r["mfu"] > 0 for r in doc["rows"])
    assert "torch/fp32" in doc["run"]["env"]["gemm_peaks"]
    # Memory per stage and per task; the run's peak is the largest of them (a tiny model: far below 2 GB).
    run_meta = doc["run"]
    stages, tasks = run_meta["peak_rss_mb_by_stage"], run_meta["peak_rss_mb_by_task"]
    assert {"model_build", "measure"} <= set(stages) and set(tasks) == {"pawsx"}
    assert 0 < max(stages.values()) <= run_meta["peak_rss_mb"] < 2048
    assert tasks["pawsx"] <= run_meta["peak_rss_mb"]


def test_fixed_shape_mode(tmp_path):
    cfg = RunConfig(model="tiny-xlmr", tasks=("xnli",), langs=("en",), shape="4,16", min_repeats=5,
                    backends=("eager",), threads=1)
    doc = run(cfg, tmp_path)
    row, = _rows(doc, lang="en")
    # One batch of exactly 4 x 16, timed 5 times; only static is run (every strategy would build the same batch).
    assert row["batching"] == "static" and row["n_batches"] == 1
    assert row["padded_tokens"] == row["real_tokens"] == 4 * 16 and row["padding_waste"] == 0.0
    assert row["n_repeats"] == 5 and len(row["latencies_ms"]) == 5 and row["flops_useful"] > 0


def _write(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_cli_malformed_jsonl_exits_2_with_file_and_line(tmp_path, capsys, tiny_vocab_file):
    data = tmp_path / "data"
    _write(data / "xnli" / "en.jsonl", ['{"text_a": "the cat", "text_b": "a dog", "label": "neutral"}',
                                        '{"text_a": "the cat", oops}'])
    code = main(["run", "--model", "tiny-mbert", "--tokenizer", str(tiny_vocab_file), "--data", f"local:{data}",
                 "--tasks", "xnli", "--langs", "en", "--backends", "eager", "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{data / 'xnli' / 'en.jsonl'}:2:" in err
    assert not (tmp_path / "out" / "results.json").exists()


def test_cli_unknown_task_and_language_list_valid_ones(tmp_path, capsys):
    assert main(["run", "--tasks", "nope", "--out", str(tmp_path)]) == 2
    assert "xnli" in capsys.readouterr().err
    assert main(["run", "--model", "tiny-xlmr", "--tasks", "pawsx", "--langs", "th", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "th" in err and "de, en" in err.replace("'", "")


def test_empty_language_file_is_skipped_and_named(tmp_path, tiny_vocab_file):
    data = tmp_path / "data"
    _write(data / "xnli" / "en.jsonl", ['{"text_a": "the cat sat", "text_b": "a dog", "label": "neutral"}'] * 4)
    _write(data / "xnli" / "fr.jsonl", [])
    cfg = RunConfig(model="tiny-mbert", tokenizer=str(tiny_vocab_file), data=f"local:{data}", tasks=("xnli",),
                    langs=("en", "fr"), backends=("eager",), threads=1)
    doc = run(cfg, tmp_path / "out")
    assert {r["lang"] for r in doc["rows"]} == {"en", ALL_LANGS}
    assert doc["run"]["skipped"] == [{"task": "xnli", "lang": "fr", "reason": "no examples (empty file)"}]


def test_truncation_is_counted(tmp_path, tiny_vocab_file):
    data = tmp_path / "data"
    long_text = " ".join(["cat"] * 40)
    _write(data / "xnli" / "en.jsonl", [json.dumps({"text_a": long_text, "text_b": "dog", "label": 0}),
                                        json.dumps({"text_a": "cat", "text_b": "dog", "label": 1})])
    cfg = RunConfig(model="tiny-mbert", tokenizer=str(tiny_vocab_file), data=f"local:{data}", tasks=("xnli",),
                    langs=("en",), backends=("eager",), max_length=16, max_tokens=64, threads=1)
    doc = run(cfg, tmp_path / "out")
    row, = _rows(doc, lang="en", batching="static")
    assert row["n_truncated"] == 1
    assert row["padded_tokens"] == 2 * 16


def test_a_backend_that_fails_to_load_does_not_stop_the_others(tmp_path, monkeypatch):
    """Backends of a task are loaded together; one that fails is named in run.skipped and the rest is measured.
    When every backend fails, the first failure is raised as before."""
    from xlt_bench.backends.fake import FakeBackend
    original = FakeBackend.load

    def load(self):
        if self.dtype == "bf16":
            raise RuntimeError("no bf16 kernels here")
        original(self)

    monkeypatch.setattr(FakeBackend, "load", load)
    monkeypatch.setenv("XLT_FAKE_COST", "fixed_ms=1")
    base = dict(model="tiny-xlmr", tasks=("xnli",), langs=("en",), limit=8, backends=("fake",),
                batching=("static", "dynamic"), cost_model=False, max_tokens=1024, threads=1)
    doc = run(RunConfig(**base, dtype=("bf16", "fp32")), tmp_path / "a")
    assert {r["dtype"] for r in doc["rows"]} == {"fp32"}
    skipped, = [s for s in doc["run"]["skipped"] if s.get("backend") == "fake"]
    assert skipped["dtype"] == "bf16" and "no bf16 kernels here" in skipped["reason"]
    with pytest.raises(RuntimeError, match="no bf16 kernels"):
        run(RunConfig(**base, dtype=("bf16",)), tmp_path / "b")
