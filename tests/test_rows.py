"""Row keys and the ALL-row aggregation, driven by the metric catalogue (hand-computed expectations)."""

from __future__ import annotations

import pytest

from xlt_bench.core.catalogue import METRICS, Metric
from xlt_bench.results.rows import all_rows
from xlt_bench.core.schema import ALL_LANGS, ROW_FIELDS, RowKey, row_key


def test_row_fields_are_the_results_file_contract():
    # DESIGN §4's list, spelled out here so a catalogue change that alters the file contract fails.
    assert ROW_FIELDS == (
        "task", "lang", "model", "backend", "device", "dtype", "batching",
        "n_examples", "n_batches", "real_tokens", "padded_tokens", "padding_waste",
        "wall_s", "throughput_seq_s", "throughput_tok_s",
        "latency_ms_p50", "latency_ms_p90", "latency_ms_p99",
        "flops_useful", "flops_executed", "mfu", "accuracy", "agreement",
    )


def _key(**kw) -> RowKey:
    base = dict(task="xnli", lang="en", model="m", backend="eager", device="cpu", dtype="fp32", batching="static")
    return RowKey(**{**base, **kw})


def test_offline_key_fields_carry_no_policy_and_server_keys_do():
    assert _key().fields() == dict(task="xnli", lang="en", model="m", backend="eager", device="cpu", dtype="fp32",
                                   batching="static", scenario="offline")
    server = _key(lang=ALL_LANGS, batching=None, scenario="server", policy="fifo").fields()
    assert server["policy"] == "fifo" and server["batching"] is None
    assert list(server)[-2:] == ["scenario", "policy"]


def test_key_read_back_from_a_row_and_legacy_rows():
    key = _key(batching="dynamic", scenario="train")
    assert RowKey.of({**key.fields(), "n_examples": 3}) == key
    legacy = {k: v for k, v in _key().fields().items() if k != "scenario"}   # written before scenarios existed
    assert RowKey.of(legacy).scenario == "offline"
    assert row_key(legacy) == ("offline", "xnli", "en", "eager", "fp32", "static")
    server = _key(lang=ALL_LANGS, batching=None, scenario="server", policy="fifo").fields()
    assert row_key({**server, "offered_qps": 2.5}) == ("server", "xnli", "ALL", "eager", "fp32", "fifo", "2.5qps")
    old_server = {**server, "batching": "fifo"}
    del old_server["policy"]
    assert row_key({**old_server, "offered_qps": 2.5}) == row_key({**server, "offered_qps": 2.5})


def _lang_row(lang: str, **figures) -> dict:
    row = {**_key(lang=lang).fields(), **{m.name: None for m in METRICS.values()}}
    row.update({"n_examples": 1, "n_sequences": 1, "real_tokens": 10, "padded_tokens": 10, "wall_s": 1.0,
                "flops_useful": 0, "latencies_ms": [], "pass_wall_s": [], "notes": [], **figures})
    return row


def test_all_row_combines_each_metric_as_declared():
    en = _lang_row("en", n_examples=10, n_sequences=10, real_tokens=100, padded_tokens=200, wall_s=0.5,
                   flops_useful=1000, n_repeats=3, accuracy=0.8, agreement=1.0, max_abs_diff=0.1,
                   gemm_peak_flops=1e4, latencies_ms=[1.0, 3.0], pass_wall_s=[0.5, 0.5, 0.5], energy_j=2.0)
    th = _lang_row("th", n_examples=30, n_sequences=30, real_tokens=300, padded_tokens=400, wall_s=1.5,
                   flops_useful=3000, n_repeats=2, accuracy=0.4, agreement=0.5, max_abs_diff=0.3,
                   gemm_peak_flops=1e4, latencies_ms=[2.0], pass_wall_s=[1.5, 1.5], energy_j=6.0)
    row, = all_rows([en, th])
    assert row["lang"] == ALL_LANGS and row["scenario"] == "offline" and row["batching"] == "static"
    assert row["real_tokens"] == 400 and row["wall_s"] == pytest.approx(2.0)        # sum
    assert row["max_abs_diff"] == 0.3                                              # max
    assert row["n_repeats"] == 2                                                   # min
    assert row["accuracy"] == pytest.approx(0.6)                                   # mean over languages
    assert row["agreement"] == pytest.approx((10 * 1.0 + 30 * 0.5) / 40)          # weighted by examples
    assert row["gemm_peak_flops"] == 1e4                                           # same
    # recomputed from the ALL row's totals and pooled samples
    assert row["throughput_tok_s"] == pytest.approx(200.0)
    assert row["padding_waste"] == pytest.approx(1 - 400 / 600)
    assert row["mfu"] == pytest.approx(4000 / 2.0 / 1e4)
    assert row["j_per_1k_tokens"] == pytest.approx(8.0 / 0.4)
    assert row["latency_ms_p50"] == pytest.approx(2.0) and row["latencies_ms"] == []
    assert row["pass_wall_s"] == [2.0, 2.0]                                        # passes both languages have
    assert row["langs"] == ["en", "th"]
    assert "speedup" not in row and "speedup_ci95" not in row                      # set afterwards, not aggregated


def test_a_new_catalogue_metric_is_aggregated_without_code_here(monkeypatch):
    monkeypatch.setitem(METRICS, "test_widgets", Metric("test_widgets", "widgets", "none", "sum", "test only"))
    row, = all_rows([_lang_row("en", test_widgets=2), _lang_row("th", test_widgets=5)])
    assert row["test_widgets"] == 7


def test_a_recomputed_metric_without_a_recipe_is_named(monkeypatch):
    monkeypatch.setitem(METRICS, "test_ratio", Metric("test_ratio", "x", "none", "recompute", "test only"))
    with pytest.raises(ValueError, match="test_ratio"):
        all_rows([_lang_row("en")])


def test_catalogue_declares_the_interval_fields_rows_carry():
    assert METRICS["throughput_tok_s_ci95"].kind == "interval"
    assert METRICS["speedup_ci95"].aggregation == "none"
    assert METRICS["pass_wall_s"].kind == "samples" and METRICS["pass_wall_s"].aggregation == "recompute"
    assert METRICS["n_repeats"].aggregation == "min"
    assert METRICS["attn"].kind == "label"


def test_report_frame_reads_every_catalogued_number():
    from xlt_bench.report.tables import rows_frame
    row = _lang_row("en", n_examples=1, real_tokens=5, n_repeats="3")   # a number written as text still reads
    df = rows_frame({"rows": [row]})
    assert df["n_repeats"].iloc[0] == 3.0 and df["throughput_tok_s_ci95"].iloc[0] is None
