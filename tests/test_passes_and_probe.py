"""Timing discipline and order restoration with the real eager backend on a tiny preset, and the ALL aggregation."""

from __future__ import annotations

import numpy as np
import pytest

from xlt_bench.backends.eager import EagerBackend
from xlt_bench.batching.planners import Batch, make_batches
from xlt_bench.core.flops import EncoderShape
from xlt_bench.backends.models import build_model
from xlt_bench.measure.passes import measure, prepare_batches, restore_order, timed_pass, warm_up
from xlt_bench.measure.probe import probe_cost_model
from xlt_bench.results.rows import all_rows, measurement_row
from xlt_bench.core.schema import ALL_LANGS, RowKey


@pytest.fixture(scope="module")
def backend():
    b = EagerBackend(build_model("tiny-xlmr", "pair", 3), "cpu", "fp32", threads=1)
    b.load()
    return b


def _ids(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [np.concatenate([[0], rng.integers(5, 1000, n - 2), [2]]).astype(np.int64) for n in lengths]


def test_restore_order_puts_outputs_back_in_input_order():
    batches = [Batch(np.array([2, 0]), 4), Batch(np.array([1]), 4)]
    outs = [np.array([[20.0], [0.0]]), np.array([[10.0]])]
    restored = restore_order(outs, batches, np.array([3, 3, 3]), seq_output=False)
    assert [float(r[0]) for r in restored] == [0.0, 10.0, 20.0]
    token_outs = [np.arange(2 * 4 * 1).reshape(2, 4, 1).astype(float), np.zeros((1, 4, 1))]
    restored = restore_order(token_outs, batches, np.array([2, 1, 3]), seq_output=True)
    assert restored[2].shape == (3, 1) and restored[0].shape == (2, 1)  # cut to each sequence's real length
    assert restored[0][:, 0].tolist() == [4.0, 5.0]


def test_dynamic_outputs_equal_static_outputs_in_input_order(backend):
    lengths = np.array([9, 30, 12, 5, 27, 16, 8, 21])
    ids = _ids(lengths)
    results = {}
    for strategy in ("static", "dynamic"):
        batches = make_batches(lengths, strategy, batch_size=3, max_length=32, max_tokens=64)
        prepared = prepare_batches(backend, ids, None, batches, pad_id=1)
        results[strategy] = measure(backend, prepared, batches, lengths).outputs
    diff = max(float(np.abs(a - b).max()) for a, b in zip(results["static"], results["dynamic"]))
    assert diff <= 1e-4


def test_warm_up_runs_each_new_shape_once(backend):
    lengths = np.array([5, 5, 5, 5, 9])
    batches = make_batches(lengths, "static", batch_size=2, max_length=16)  # shapes (2,16),(2,16),(1,16)
    prepared = prepare_batches(backend, _ids(lengths), None, batches, pad_id=1)
    warmed: set = set()
    assert warm_up(backend, prepared, batches, warmed) == 2
    assert warmed == {(2, 16), (1, 16)}
    assert warm_up(backend, prepared, batches, warmed) == 0  # already warm: nothing runs again


def test_repeats_until_min_seconds_and_min_repeats(backend):
    lengths = np.array([6, 7])
    batches = make_batches(lengths, "static", batch_size=2, max_length=8)
    prepared = prepare_batches(backend, _ids(lengths), None, batches, pad_id=1)
    m = measure(backend, prepared, batches, lengths, min_repeats=3)
    assert m.n_repeats == 3 and len(m.latencies_ms) == 3
    m = measure(backend, prepared, batches, lengths, min_seconds=0.05, inject_delay_ms=20)
    # Passes repeat exactly until 50 ms of timed passes (each >= 20 ms: at least 3 passes on an idle machine, but
    # a loaded one may need only 2) and at least 1.
    assert sum(m.pass_wall_s) >= 0.05 > sum(m.pass_wall_s[:-1])
    assert min(m.latencies_ms) >= 20.0
    assert m.wall_s >= m.forward_s > 0


def test_injected_delay_is_inside_the_timed_region(backend):
    lengths = np.array([6])
    batches = make_batches(lengths, "static", batch_size=1, max_length=8)
    prepared = prepare_batches(backend, _ids(lengths), None, batches, pad_id=1)
    _, fast, _ = timed_pass(backend, prepared)
    _, slow, _ = timed_pass(backend, prepared, inject_delay_ms=30)
    assert slow[0] >= 30.0 and slow[0] > fast[0]


def test_cost_probe_fits_a_positive_model(backend):
    model, samples, budget = probe_cost_model(backend, vocab_size=250002, pad_id=1, max_length=128, repeats=1,
                                              max_tokens=512)
    assert budget == 512 and all(s[2] > 0 for s in samples)
    assert max(r * l for r, l, _ in samples) == model.max_tokens_measured <= 512
    assert {l for _, l, _ in samples} >= {16, 32, 64, 128}     # every padded length up to --max-length
    assert model(8, 64) > 0 and model.source == "measured" and model.rel_error is not None


@pytest.mark.parametrize("cost,flat", [("fixed_ms=4", True), ("fixed_ms=1,per_token_us=20", False)])
def test_cost_probe_on_fake_backend_recovers_its_cost(cost, flat):
    """The fake backend sleeps a known time: the fit must find it (a launch-bound one is flat, never rejected)."""
    from xlt_bench.backends.fake import FakeBackend, FakeCost
    from xlt_bench.backends.models import build_model
    fake = FakeBackend(build_model("tiny-xlmr", "pair", 3), cost=FakeCost.from_env(cost))
    fake.load()
    model, samples, budget = probe_cost_model(fake, vocab_size=250002, pad_id=1, max_length=64, repeats=2,
                                              max_tokens="auto", floor_s=0.5)
    truth = fake.cost
    # 30%: sleeps overshoot by up to a millisecond when other processes load the 2 cores.
    for rows, plen, _ in samples:
        assert model(rows, plen) == pytest.approx(truth.seconds(rows, plen), rel=0.30)
    if flat:
        # No gain from bigger batches until the search stops on the device cap: auto takes the largest probed.
        # (load on the shared cores may leave a per-token term, but worth < 10% of a call even at the largest probed
        # batch; the other regime's is 20x the fixed cost there)
        assert model.per_token_s * model.max_tokens_measured < 0.10 * model.fixed_s
        assert model.fixed_s == pytest.approx(0.004, rel=0.3)
        assert budget >= 4096
    else:
        # 20 us per token: throughput saturates early; the budget stays where tok/s was still within 10% of best.
        assert model.per_token_s == pytest.approx(20e-6, rel=0.3)


def _row(lang, batching, real, padded, wall, lat, n=10):
    from xlt_bench.measure.passes import Measurement
    lengths = np.full(n, real // n)
    m = Measurement(batches=[Batch(np.arange(n), padded // n)], latencies_ms=lat, pass_wall_s=[wall],
                    outputs=[], warmup_shapes=1)
    key = RowKey(task="xnli", lang=lang, model="m", backend="eager", device="cpu", dtype="fp32", batching=batching)
    flops_shape = EncoderShape(hidden=8, layers=1, attn_heads=2, ffn=16, head_kind="sequence", num_labels=3)
    return measurement_row(key=key, lengths=lengths, n_examples=n, measurement=m, flops_shape=flops_shape,
                           peak_flops=1e9)


def test_all_row_sums_tokens_and_time_and_pools_latencies():
    # en: 100 real / 200 padded tokens in 0.5 s; th: 300 real / 400 padded in 1.5 s.
    en = _row("en", "static", 100, 200, 0.5, [500.0])
    th = _row("th", "static", 300, 400, 1.5, [1500.0])
    assert en["throughput_tok_s"] == pytest.approx(200.0) and en["padding_waste"] == pytest.approx(0.5)
    row, = all_rows([en, th])
    assert row["lang"] == ALL_LANGS
    assert row["real_tokens"] == 400 and row["padded_tokens"] == 600
    assert row["padding_waste"] == pytest.approx(1 - 400 / 600)
    assert row["wall_s"] == pytest.approx(2.0) and row["throughput_tok_s"] == pytest.approx(200.0)
    assert row["latency_ms_p50"] == pytest.approx(1000.0)  # median of [500, 1500]
    assert row["flops_useful"] == en["flops_useful"] + th["flops_useful"]
    # By hand (hidden 8, 1 layer, ffn 16, 3 labels): per sequence 1024 L + 32 L^2 + head 176 FLOPs.
    # en: 10 x L=10 -> 10 x 13,616; th: 10 x L=30 -> 10 x 59,696; 733,120 useful FLOPs over 2 s at a 1 GFLOP/s peak.
    assert row["flops_useful"] == 733_120
    assert row["mfu"] == pytest.approx(733_120 / 2.0 / 1e9)


def test_timed_tracker_brackets_the_timed_passes_only():
    """Energy (and any tracker given as timed_tracker) must not include warm-up: it is entered after every new shape
    has run once, and left after the last timed pass."""
    from contextlib import contextmanager

    from xlt_bench.backends.fake import FakeBackend, FakeCost
    from xlt_bench.backends.models import build_model
    fake = FakeBackend(build_model("tiny-xlmr", "pair", 3), cost=FakeCost(fixed_ms=1))
    lengths = np.array([5, 9, 12, 30])
    batches = make_batches(lengths, "static", batch_size=2, max_length=32)   # 2 batches of one shape (2, 32)
    prepared = prepare_batches(fake, _ids(lengths), None, batches, pad_id=1)
    seen = {}

    @contextmanager
    def tracker():
        seen["calls_at_enter"] = len(fake.calls)
        yield
        seen["calls_at_exit"] = len(fake.calls)

    m = measure(fake, prepared, batches, lengths, min_repeats=3, timed_tracker=tracker())
    assert m.warmup_shapes == 1 and seen["calls_at_enter"] == 1      # one warm-up call, outside the tracker
    assert seen["calls_at_exit"] - seen["calls_at_enter"] == 3 * 2    # three timed passes of two batches


def test_cost_probe_warms_each_shape_as_often_as_the_backend_asks():
    """A backend that compiles on its second call (TorchScript on CUDA) must not have that call timed by the probe."""
    from collections import Counter

    from xlt_bench.backends.fake import FakeBackend, FakeCost
    from xlt_bench.backends.models import build_model

    class CompilesOnSecondCall(FakeBackend):
        warmup_calls = 2

    fake = CompilesOnSecondCall(build_model("tiny-xlmr", "pair", 3), cost=FakeCost(fixed_ms=1.0))
    fake.load()
    _, samples, _ = probe_cost_model(fake, vocab_size=250002, pad_id=1, max_length=32, repeats=2,
                                     max_tokens=256, floor_s=0.5)
    calls = Counter(fake.calls)
    # Each probed shape: two warm-up calls, then the two timed repeats.
    assert all(calls[(rows, plen)] == 4 for rows, plen, _ in samples), calls


def test_injected_slowdown_scales_every_batch():
    """On a backend that sleeps a known 20 ms, a slowdown of 0.5 makes each timed batch take 30 ms."""
    from xlt_bench.backends.fake import FakeBackend, FakeCost
    from xlt_bench.backends.models import build_model
    fake = FakeBackend(build_model("tiny-xlmr", "pair", 3), cost=FakeCost(fixed_ms=20.0))
    lengths = np.array([6, 7])
    batches = make_batches(lengths, "static", batch_size=1, max_length=8)
    prepared = prepare_batches(fake, _ids(lengths), None, batches, pad_id=1)
    _, latencies, wall = timed_pass(fake, prepared, inject_slowdown=0.5)
    assert all(29.0 <= ms <= 40.0 for ms in latencies), latencies
    assert wall >= 0.058


def test_cost_probe_stops_at_the_memory_limit():
    """A device that runs out of memory above 1,024 tokens (or at 2 x 128 with attention's L^2 memory): the
    probe keeps what ran, never plans past it, and a real error still raises."""
    from xlt_bench.backends.fake import FakeBackend, FakeCost
    from xlt_bench.backends.models import build_model

    class SmallDevice(FakeBackend):
        def forward(self, prepared):
            rows, plen = prepared["input_ids"].shape
            if rows * plen > 1024 or (plen == 128 and rows > 1):
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return super().forward(prepared)

    fake = SmallDevice(build_model("tiny-xlmr", "pair", 3), cost=FakeCost(fixed_ms=2.0))
    model, samples, budget = probe_cost_model(fake, vocab_size=250002, pad_id=1, max_length=128, repeats=1,
                                              max_tokens="auto", floor_s=3.0)
    assert budget <= 1024 and model.max_tokens_measured <= 1024
    assert all(rows * plen <= 1024 for rows, plen, _ in samples) and (1, 128) in {(r, p) for r, p, _ in samples}

    class Broken(FakeBackend):
        def forward(self, prepared):
            raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        probe_cost_model(Broken(build_model("tiny-xlmr", "pair", 3)), vocab_size=250002, pad_id=1, max_length=64)


@pytest.mark.parametrize("cost", ["fixed_ms=5", "fixed_ms=0,per_token_us=40"])
def test_two_probes_under_ten_percent_noise_pick_the_same_budget(cost):
    """Every call of the fake is multiplied by uniform(0.9, 1.1), differently seeded in each probe: both probes
    must choose the same budget. Launch-bound: the search runs to the device's cap, and the dynamic partition
    (fewest calls, then least padding) is the same too; per-token: throughput is flat from the first shape and the
    search stops at the third. (Where plans differ by less than the fit's noise, as in the per-token regime, the
    planner's choice among them can still differ between probes.)"""
    from xlt_bench.backends.fake import FakeBackend, FakeCost
    from xlt_bench.batching.planners import plan_dynamic
    from xlt_bench.backends.models import build_model
    lengths = np.random.default_rng(0).integers(8, 120, size=200)
    found = []
    for seed in (1, 2):
        fake = FakeBackend(build_model("tiny-xlmr", "pair", 3), cost=FakeCost.from_env(f"{cost},noise=0.1,seed={seed}"))
        report = {}
        model, _, budget = probe_cost_model(fake, vocab_size=250002, pad_id=1, max_length=128, static_rows=32,
                                            seed=seed, report=report, floor_s=5.0)
        batches, _ = plan_dynamic(lengths, model, max_tokens=budget, pad_multiple=1, max_length=128, batch_size=32)
        found.append((budget, [(b.padded_len, tuple(b.indices.tolist())) for b in batches], report["search_stop"]))
        assert report["budget_tolerance"] > report["probe_noise"]     # the tolerance is above the noise measured
    assert found[0][0] == found[1][0]
    if cost == "fixed_ms=5":
        assert found[0][0] == 16384 and found[0][2] == found[1][2] == "token cap"
        assert found[0][1] == found[1][1]
    else:
        assert found[0][0] == 256 and found[0][2] == found[1][2] == "throughput flat"


def test_budget_is_chosen_on_the_smoothed_curve():
    from xlt_bench.measure.probe import choose_budget, smoothed
    # One disturbed shape (256 tokens measured at half speed) inside a rising curve: the running median ignores it.
    tokens, rates = [64, 128, 256, 512, 1024], [100.0, 180.0, 90.0, 300.0, 310.0]
    assert smoothed(rates) == [100.0, 100.0, 180.0, 300.0, 310.0]
    assert choose_budget(tokens, rates, 0.10) == 1024
    # One low point at the end is taken for noise; falling over two points in a row is a drop, and the budget is
    # the largest batch before it within the tolerance of the best.
    assert choose_budget([64, 128, 256, 512, 1024], [100.0, 200.0, 300.0, 310.0, 200.0], 0.10) == 1024
    assert choose_budget([64, 128, 256, 512, 1024, 2048], [100.0, 200.0, 300.0, 310.0, 200.0, 190.0], 0.10) == 512


def test_a_term_below_the_tolerance_everywhere_is_dropped():
    from xlt_bench.batching.planners import CostModel
    from xlt_bench.measure.probe import without_unresolved_terms
    samples = [(1, 64, 0.005), (256, 64, 0.0052)]
    # Per-token: 1e-8 x 16,384 = 0.16 ms of 5 ms at most (3%): below a 10% tolerance, dropped; the fixed cost stays.
    model = without_unresolved_terms(CostModel(fixed_s=0.005, per_token_s=1e-8), samples, 0.10)
    assert model.per_token_s == 0.0 and model.fixed_s == 0.005
    # 1e-6 per token: 16 ms of 21 ms at the largest shape, resolved and kept.
    kept = without_unresolved_terms(CostModel(fixed_s=0.005, per_token_s=1e-6), samples, 0.10)
    assert kept.per_token_s == 1e-6
