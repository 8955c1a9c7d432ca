"""95% intervals of repeated, interleaved passes: hand-computed values, calibration (about 95% of intervals cover the
true value under known multiplicative noise, simulated and through the fake backend), the ALL row's own passes, the
repeat rule and the interleaving of backends in a run."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xlt_bench.core.stats import excludes_one, log_t_interval, paired_ratio_interval, per_pass_rates

# ---- by hand -----------------------------------------------------------------------------------------------------


def test_log_t_interval_by_hand():
    # logs 0, 0.2, 0.4: mean 0.2, sd 0.2; t(0.975, 2 dof) = 4.302653; half-width 4.302653 x 0.2 / sqrt(3) = 0.496828.
    lo, hi = log_t_interval([1.0, math.exp(0.2), math.exp(0.4)])
    assert lo == pytest.approx(math.exp(0.2 - 0.496828), rel=1e-5)
    assert hi == pytest.approx(math.exp(0.2 + 0.496828), rel=1e-5)


def test_interval_needs_two_positive_values():
    assert log_t_interval([2.0]) is None and log_t_interval([]) is None
    assert log_t_interval([1.0, 0.0, 2.0]) is None
    assert paired_ratio_interval([2.0], [1.0]) is None


def test_paired_ratio_cancels_what_both_passes_share():
    # Pass 2 ran under load that slowed both configurations 3x: every paired ratio is exactly 2, so the interval
    # has no width, where unpaired throughputs would spread 3x.
    dynamic, static = [10.0, 30.0, 10.0], [5.0, 15.0, 5.0]
    assert paired_ratio_interval(dynamic, static) == pytest.approx((2.0, 2.0))
    assert log_t_interval(dynamic)[1] / log_t_interval(dynamic)[0] > 3


def test_excludes_one():
    assert excludes_one([1.1, 1.3]) and excludes_one([0.5, 0.9])
    assert excludes_one([0.9, 1.2]) is False and excludes_one(None) is None


# ---- calibration on simulated passes -----------------------------------------------------------------------------

def _simulate(rng, n_experiments: int, n_passes: int, true_ratio: float):
    """Pass times of a static and a dynamic configuration timed in the same rounds: per round a load factor both
    share (lognormal, sd 0.3 of log) and each its own noise (sd 0.08)."""
    shared = rng.normal(0.0, 0.3, size=(n_experiments, n_passes))
    static = 2.0 * np.exp(shared + rng.normal(0.0, 0.08, size=shared.shape))
    dynamic = 2.0 / true_ratio * np.exp(shared + rng.normal(0.0, 0.08, size=shared.shape))
    return static, dynamic


@pytest.mark.parametrize("n_passes", [3, 5])
def test_paired_speedup_intervals_cover_the_true_ratio_95_percent(n_passes):
    rng = np.random.default_rng(20)
    static, dynamic = _simulate(rng, 400, n_passes, true_ratio=1.9)
    tokens = 1000.0
    covered = 0
    for s, d in zip(static, dynamic):
        lo, hi = paired_ratio_interval(per_pass_rates(tokens, d), per_pass_rates(tokens, s))
        covered += lo <= 1.9 <= hi
    assert 0.92 <= covered / 400 <= 0.98


def test_throughput_intervals_cover_the_true_rate_95_percent():
    # tok/s with lognormal noise around a median of 500 tok/s (the geometric mean the interval estimates).
    rng = np.random.default_rng(21)
    walls = 2.0 * np.exp(rng.normal(0.0, 0.2, size=(400, 3)))
    covered = sum(lo <= 500.0 <= hi for lo, hi in (log_t_interval(per_pass_rates(1000.0, w)) for w in walls))
    assert 0.92 <= covered / 400 <= 0.98


def test_percentile_bootstrap_undercovers_at_three_passes():
    """Why the harness uses a t interval: a percentile bootstrap of 3 paired log ratios can only span their range,
    which holds the true ratio about 75% of the time, far from the 95% it claims."""
    rng = np.random.default_rng(22)
    static, dynamic = _simulate(rng, 400, 3, true_ratio=1.9)
    logs = np.log(static / dynamic)                                   # (400, 3) paired log ratios
    picks = rng.integers(0, 3, size=(400, 2000, 3))
    means = np.take_along_axis(logs[:, None, :].repeat(2000, axis=1), picks, axis=2).mean(axis=2)
    lo, hi = np.percentile(means, [2.5, 97.5], axis=1)
    bootstrap = np.mean((lo <= math.log(1.9)) & (math.log(1.9) <= hi))
    t_cover = np.mean([paired_ratio_interval(list(1 / d), list(1 / s))[0] <= 1.9
                       <= paired_ratio_interval(list(1 / d), list(1 / s))[1] for s, d in zip(static, dynamic)])
    assert bootstrap < 0.85 and t_cover >= 0.92


# ---- rows: speedups and the ALL row's own passes ------------------------------------------------------------------

def _row(lang, batching, tokens, walls):
    from xlt_bench.batching.planners import Batch
    from xlt_bench.core.flops import EncoderShape
    from xlt_bench.measure.passes import Measurement
    from xlt_bench.results.rows import measurement_row
    from xlt_bench.core.schema import RowKey
    lengths = np.full(10, tokens // 10)
    m = Measurement(batches=[Batch(np.arange(10), 64)], latencies_ms=[1.0] * len(walls), pass_wall_s=walls,
                    outputs=[], warmup_shapes=1)
    key = RowKey(task="xnli", lang=lang, model="m", backend="eager", device="cpu", dtype="fp32", batching=batching,
                 scenario="offline")
    shape = EncoderShape(hidden=8, layers=1, attn_heads=2, ffn=16, head_kind="sequence", num_labels=3)
    return measurement_row(key=key, lengths=lengths, n_examples=10, measurement=m, flops_shape=shape)


def test_all_row_interval_comes_from_its_own_summed_passes():
    from xlt_bench.results.rows import add_intervals, all_rows
    rows = [_row("en", "static", 100, [1.0, 1.2, 1.1]), _row("th", "static", 300, [2.0, 1.9, 2.3]),
            _row("en", "dynamic", 100, [0.5, 0.6, 0.5]), _row("th", "dynamic", 300, [1.0, 0.9, 1.2])]
    everything = rows + all_rows(rows)
    add_intervals(everything)
    all_static = next(r for r in everything if r["lang"] == "ALL" and r["batching"] == "static")
    all_dynamic = next(r for r in everything if r["lang"] == "ALL" and r["batching"] == "dynamic")
    # Pass r of ALL: the sum of the languages' pass r (3.0, 3.1, 3.4 s for 400 tokens).
    assert all_static["pass_wall_s"] == pytest.approx([3.0, 3.1, 3.4])
    assert all_static["throughput_tok_s_ci95"] == pytest.approx(list(log_t_interval([400 / 3.0, 400 / 3.1,
                                                                                      400 / 3.4])))
    # Paired by round: 3.0/1.5, 3.1/1.5, 3.4/1.7 = 2, 2.0667, 2.
    assert all_dynamic["speedup_ci95"] == pytest.approx(list(paired_ratio_interval([2.0, 3.1 / 1.5, 2.0],
                                                                                   [1.0, 1.0, 1.0])))
    assert all_dynamic["speedup"] == pytest.approx((400 / np.mean([1.5, 1.5, 1.7])) / (400 / np.mean([3.0, 3.1, 3.4])))
    assert "speedup" not in all_static                    # the reference row has no speedup
    en_dynamic = next(r for r in everything if r["lang"] == "en" and r["batching"] == "dynamic")
    assert en_dynamic["speedup_ci95"] == pytest.approx(list(paired_ratio_interval([2.0, 2.0, 2.2], [1, 1, 1])))
    assert en_dynamic["interval_method"].startswith("student-t on log")


def test_repeat_rule():
    from xlt_bench.measure.passes import wants_another_pass
    assert wants_another_pass(0, 0.0, min_repeats=3)
    assert wants_another_pass(2, 9.0, min_repeats=3) and not wants_another_pass(3, 0.1, min_repeats=3)
    assert wants_another_pass(3, 0.5, min_repeats=3, min_seconds=1.0)
    # The time box wins over both minimums (a row left with one pass has no interval).
    assert not wants_another_pass(1, 2.0, min_repeats=3, min_seconds=5.0, max_seconds=2.0)


@pytest.mark.parametrize("option, value", [("--min-repeats", "0"), ("--min-seconds", "-1"), ("--max-seconds", "-1"),
                                           ("--max-seconds", "0")])
def test_bad_repeat_options_exit_2_naming_the_option(option, value, tmp_path, capsys):
    from xlt_bench.cli import main
    assert main(["run", option, value, "--out", str(tmp_path / "out")]) == 2
    assert option.lstrip("-").replace("-", "_") in capsys.readouterr().err


# ---- through the fake backend -------------------------------------------------------------------------------------

def test_fake_backend_intervals_cover_the_true_speedup():
    """Interleaved passes of two configurations on a backend of known cost (one forward call per pass, each call
    multiplied by uniform(0.8, 1.2) noise): the paired interval holds the true ratio of their costs about 95% of the
    time. 200 experiments of 3 passes (sleep-based, ~10 s)."""
    from xlt_bench.backends.fake import FakeBackend, FakeCost
    from xlt_bench.batching.planners import Batch
    from xlt_bench.backends.models import build_model
    from xlt_bench.measure.passes import TimedSeries, prepare_batches
    from xlt_bench.results.rows import add_intervals
    bundle = build_model("tiny-xlmr", "pair", 3)
    cost = dict(fixed_ms=1.0, per_token_us=20.0, noise=0.2)
    lengths = np.full(8, 30)
    slow, fast = [Batch(np.arange(8), 64)], [Batch(np.arange(8), 32)]   # 512 and 256 padded tokens
    true_ratio = FakeCost(**cost).seconds(8, 64) / FakeCost(**cost).seconds(8, 32)
    ids = [np.arange(30) + 5 for _ in range(8)]
    covered, n = 0, 200
    for seed in range(n):
        fake = FakeBackend(bundle, cost=FakeCost(**cost, seed=seed))
        series = {name: TimedSeries(fake, prepare_batches(fake, ids, None, batches, 1), batches, lengths)
                  for name, batches in (("static", slow), ("dynamic", fast))}
        for s in series.values():
            s.warm()
        for _ in range(3):
            for s in series.values():
                s.run_pass()
        rows = [_row("en", name, 240, s.pass_wall_s) for name, s in series.items()]
        add_intervals(rows)
        lo, hi = rows[1]["speedup_ci95"]
        covered += lo <= true_ratio <= hi
    assert 0.90 <= covered / n <= 0.995


@pytest.mark.slow
def test_backends_of_one_run_alternate_per_language(tmp_path, monkeypatch):
    """Two backends (fake fp32 and bf16) in one run are loaded together and their passes alternate: for a language,
    warm-ups of both, then per round one pass of each (static, dynamic) of the first backend and then of the
    second. Run one after another, the first backend's calls would all come before the second's."""
    from xlt_bench.backends.fake import FakeBackend
    from xlt_bench.core.config import RunConfig
    from xlt_bench.run.pipeline import run
    made = []
    original = FakeBackend.__init__

    def recording(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(FakeBackend, "__init__", recording)
    monkeypatch.setenv("XLT_FAKE_COST", "fixed_ms=1")
    cfg = RunConfig(model="tiny-xlmr", tasks=("xnli",), langs=("en",), limit=8, backends=("fake",),
                    dtype=("fp32", "bf16"), batching=("static", "dynamic"), cost_model=False, max_tokens=1024,
                    batch_size=8, threads=1)
    doc = run(cfg, tmp_path / "out")
    fp32, bf16 = [b for b in made if b.dtype in ("fp32", "bf16")][:2]
    timeline = sorted([(t, "fp32") for t in fp32.call_started] + [(t, "bf16") for t in bf16.call_started])
    switches = sum(a[1] != b[1] for a, b in zip(timeline, timeline[1:]))
    # warm-up fp32 | warm-up bf16 | round 1 fp32 | bf16 | round 2 ... : 2 x 3 rounds + 1 switches at least.
    assert switches >= 2 * 3 - 1
    per_lang = [r for r in doc["rows"] if r["lang"] == "en"]
    assert {r["n_repeats"] for r in per_lang} == {3}
    assert all(r["throughput_tok_s_ci95"] and r["attn"] and r["max_tokens"] for r in per_lang)
    assert [r["dtype"] for r in per_lang] == ["fp32", "fp32", "bf16", "bf16"]   # rows grouped by backend


def test_report_shows_intervals_and_names_languages_it_cannot_tell_apart():
    """Tables write '2.00× [lo, hi]'; the summary line names the languages whose speedup interval contains 1."""
    from xlt_bench.report import tables
    from xlt_bench.report.sections import language_table_display, summary_line
    from xlt_bench.results.rows import add_intervals, all_rows
    rows = [_row("en", "static", 100, [1.0, 1.1, 1.05]), _row("en", "dynamic", 100, [0.5, 0.56, 0.52]),
            # th: dynamic as fast as static within noise (paired ratios 1.1, 0.9, 1.0: the interval holds 1)
            _row("th", "static", 300, [2.0, 2.0, 2.0]), _row("th", "dynamic", 300, [1.818, 2.222, 2.0])]
    everything = rows + all_rows(rows)
    add_intervals(everything)
    for row in everything:
        row.update(predicted_s=None, packing_bound_s=None)
    df = tables.rows_frame({"rows": everything})
    table = tables.language_table(df, "xnli", "eager", "fp32")
    shown = language_table_display(table)
    en_dynamic = next(r for r in everything if r["lang"] == "en" and r["batching"] == "dynamic")
    lo, hi = en_dynamic["speedup_ci95"]
    assert shown["speedup dynamic÷static [95% CI]"][0] == f"{en_dynamic['speedup']:.2f}× [{lo:.2f}, {hi:.2f}]"
    summary = tables.task_summary(table)
    assert summary["not_significant"] == ["th"]
    line = summary_line("xnli", "eager", "fp32", summary)
    assert "Not significant (95% interval contains 1): th." in line and "×  [" not in line


def test_rounds_of_a_language_stop_together():
    """Every configuration of a language gets the same number of passes: rounds go on while any still needs one
    (--min-repeats, --min-seconds), and all stop once one reaches the --max-seconds time box."""
    from types import SimpleNamespace

    from xlt_bench.core.config import RunConfig
    from xlt_bench.scenarios.offline import _another_round

    def configs(*walls):
        return [SimpleNamespace(series=SimpleNamespace(pass_wall_s=list(w), timed_s=sum(w))) for w in walls]

    cfg = RunConfig(min_repeats=3, min_seconds=1.0, max_seconds=2.0)
    assert _another_round(configs([], []), cfg)
    assert _another_round(configs([0.1] * 3, [0.5] * 3), cfg)           # the first still lacks its 1 s
    assert not _another_round(configs([0.4] * 3, [0.5] * 3), cfg)       # both have 3 passes and 1 s
    assert not _another_round(configs([0.1] * 3, [0.7] * 3), cfg)       # the second reached the 2 s box
