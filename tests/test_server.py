"""Server scenario: arrivals, policies, the open-loop loop against queueing theory, and end-to-end rows."""

from __future__ import annotations

import numpy as np
import pytest

from xlt_bench.backends.fake import FakeBackend, FakeCost
from xlt_bench.core.config import RunConfig
from xlt_bench.core.errors import InputError
from xlt_bench.backends.models import build_model
from xlt_bench.scenarios.serving.arrivals import load_trace, poisson_arrivals
from xlt_bench.scenarios.serving.loop import serve, summarise
from xlt_bench.scenarios.serving.policies import Request, make_policy


@pytest.fixture(scope="module")
def bundle():
    return build_model("tiny-xlmr", "pair", 3)


def _fake(bundle, fixed_ms: float) -> FakeBackend:
    backend = FakeBackend(bundle, cost=FakeCost(fixed_ms=fixed_ms))
    backend.load()
    return backend


def _pool(n: int = 50, length: int = 12):
    ids = [np.arange(5, 5 + length, dtype=np.int64) for _ in range(n)]
    return ids, ["en"] * n


def _requests(arrivals, length=12, n_pool=50):
    return [Request(i, float(t), length, i % n_pool) for i, t in enumerate(arrivals)]


def test_poisson_arrivals_rate_and_seed():
    times = poisson_arrivals(200.0, 20.0, seed=1)
    assert np.all(np.diff(times) > 0) and times[-1] < 20.0
    assert len(times) == pytest.approx(4000, rel=0.05)
    assert np.array_equal(times, poisson_arrivals(200.0, 20.0, seed=1))


def _lindley_waits(arrivals, services):
    """FIFO single-server queue replayed exactly: wait_i = start_i - arrival_i, start_i = max(arrival_i, free)."""
    free, waits = 0.0, []
    for arrival, service in zip(arrivals, services):
        start = max(arrival, free)
        waits.append(start - arrival)
        free = start + service
    return np.array(waits)


def test_md1_formula_holds_for_the_arrival_process():
    """The arrival process is Poisson: on a long run, a deterministic server's mean wait from the Lindley recursion
    matches M/D/1's W = rho / (2 mu (1 - rho)) (pure computation, 200k requests)."""
    service = 0.003
    for rho in (0.5, 0.8):
        arrivals = poisson_arrivals(rho / service, 200_000 * service / rho, seed=3)
        waits = _lindley_waits(arrivals, np.full(len(arrivals), service))
        assert waits.mean() == pytest.approx(rho / (2 * (1 / service) * (1 - rho)), rel=0.03)


# Wall-clock tests on a shared machine: foreign load can deschedule the server loop for tens of milliseconds, which
# the loop rightly measures as queueing. Such a test tries up to ATTEMPTS fresh arrival seeds and passes when one
# attempt meets every tolerance; each has a positive control showing the same check fails on a harness that is
# really slow, so retrying cannot turn it into a check that always passes.
ATTEMPTS = 3


def _first_passing(check, seeds):
    """Run `check(seed) -> (ok, detail)` until one passes or the seeds run out; (ok, details of every attempt)."""
    details = []
    for seed in seeds:
        ok, detail = check(seed)
        details.append(detail)
        if ok:
            return True, details
    return False, details


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_mean_queue_wait_of_none_matches_md1(bundle, rho):
    """No batching + near-deterministic service (the fake sleeps 10 ms) is M/D/1. Checked per request against the
    exact FIFO replay of the same arrivals with the service times the harness measured: the harness's own lateness
    (start - max(arrival, previous completion)) has a median under 0.5 ms, and a request's measured wait exceeds its
    replayed wait by a median of at most 10% of the mean replayed wait. Medians, because foreign load on a shared
    machine deschedules the loop in bursts that inflate the mean wait of everyone behind them (9.25 ms measured vs
    8.36 ms replayed was seen at load average 7 on 2 cores) while most requests are served on time; a harness that
    is late on every dispatch moves the median (positive control below). The Pollaczek-Khinchine mean wait from the
    measured service times' first two moments (M/G/1; M/D/1 when they do not vary) must match the replay within 30%:
    one 12 s sample's mean wait at rho = 0.8 moves +-15% with the seed, and the long pure computation above pins the
    formula tightly. Load lengthens service times, which both references take from the measurement."""
    ok, details = _first_passing(lambda seed: _md1_check(bundle, rho, seed), range(7, 7 + ATTEMPTS))
    assert ok, details


def test_md1_check_fails_on_a_slow_harness(bundle):
    """Positive control of the check above: a 4 ms pause after every batch (harness time that is not service)
    must fail it, through the harness's lateness and the excess over the replay."""
    ok, detail = _md1_check(bundle, 0.5, 7, harness_delay_s=0.004, duration=6.0)
    assert not ok, detail
    assert detail["median_lateness_ms"] > 2.0 and detail["median_excess_ms"] > detail["excess_tolerance_ms"], detail


def _md1_check(bundle, rho: float, seed: int, harness_delay_s: float = 0.0, duration: float = 12.0):
    backend = _fake(bundle, 10.0)   # 10 ms: the loop's own sub-millisecond jitter stays small beside it
    ids, langs = _pool()
    arrivals = poisson_arrivals(rho / 0.0101, duration, seed=seed)
    run = serve(backend, make_policy("none", 4096, True), _requests(arrivals), ids, None, pad_id=1, stop_at=60.0,
                harness_delay_s=harness_delay_s)
    stats = summarise(run, duration, 1000.0, langs)
    assert stats["n_unfinished"] == 0 and stats["mean_batch_rows"] == 1.0
    lateness = _fifo_lateness(run)
    services = np.array([b.end - b.start for b in run.batches])
    replay = _lindley_waits(arrivals, services)
    measured = np.array([run.start[r.id] - r.arrival for r in run.requests])
    rate = len(arrivals) / duration
    rho_measured = rate * services.mean()
    detail = dict(seed=seed, mean_measured_ms=stats["mean_queue_wait_ms"], mean_replay_ms=replay.mean() * 1000,
                  pollaczek_khinchine_ms=rate * np.mean(services ** 2) / (2 * (1 - rho_measured)) * 1000.0,
                  median_lateness_ms=float(np.median(lateness)) * 1000,
                  median_excess_ms=float(np.median(measured - replay)) * 1000,
                  excess_tolerance_ms=0.10 * replay.mean() * 1000)
    ok = (detail["median_lateness_ms"] < 0.5 and detail["median_excess_ms"] <= detail["excess_tolerance_ms"]
          and detail["mean_replay_ms"] == pytest.approx(detail["pollaczek_khinchine_ms"], rel=0.30))
    return ok, detail


def _fifo_lateness(run) -> np.ndarray:
    """Per request, start - max(arrival, previous completion). What the loop controls whatever the machine's load:
    FIFO order, no service before a request's arrival or before the previous batch ended (never negative)."""
    free, lateness = 0.0, []
    for request in run.requests:
        start = run.start[request.id]
        assert start >= request.arrival and start >= free - 1e-9, (request, start, free)
        lateness.append(start - max(request.arrival, free))
        free = run.end[request.id]
    return np.array(lateness)


def test_percentiles_do_not_depend_on_a_slow_harness(bundle):
    """Open loop: a harness that pauses after each batch delays later requests, and that delay is measured as
    latency (it would vanish under coordinated omission). With idle time between arrivals, a pause shorter than the
    gaps leaves the latency percentiles unchanged (within 2 / 4 ms: service is 5 ms, gaps 50 ms)."""
    backend = _fake(bundle, 5.0)
    ids, langs = _pool()
    arrivals = np.arange(1, 61) * 0.05                       # one request every 50 ms, 5 ms service
    policy = make_policy("none", 4096, True)

    def served(delay_s):
        return summarise(serve(backend, policy, _requests(arrivals), ids, None, 1, stop_at=30.0,
                               harness_delay_s=delay_s), 3.0, 1000.0, langs)

    last_quick = {}

    def check(_attempt):
        quick, slow = served(0.0), served(0.02)
        last_quick.update(quick)
        ok = (slow["latency_ms_p50"] == pytest.approx(quick["latency_ms_p50"], abs=2.0)
              and slow["latency_ms_p90"] == pytest.approx(quick["latency_ms_p90"], abs=4.0))
        return ok, {k: (quick[k], slow[k]) for k in ("latency_ms_p50", "latency_ms_p90")}

    ok, details = _first_passing(check, range(ATTEMPTS))
    assert ok, details
    # Positive control, and the open-loop property itself: a harness slower than the arrival gaps must show up as
    # queueing (and fail the comparison above), not as fewer requests offered.
    slower = served(0.08)
    assert slower["n_requests"] == 60 and slower["latency_ms_p90"] > 5 * last_quick["latency_ms_p90"]
    assert slower["latency_ms_p50"] - last_quick["latency_ms_p50"] > 2.0


def test_overload_is_reported_and_unfinished_count_as_misses(bundle):
    backend = _fake(bundle, 5.0)
    ids, langs = _pool()
    arrivals = np.linspace(0, 0.5, 400)                      # 800 req/s against ~200 req/s of service
    run = serve(backend, make_policy("none", 4096, True), _requests(arrivals), ids, None, 1, stop_at=0.7)
    stats = summarise(run, 0.5, 100.0, langs)
    assert stats["overloaded"] and stats["n_unfinished"] > 100
    assert stats["within_slo"] <= stats["n_completed"] / stats["n_requests"]


def _queue(lengths, arrival=0.0):
    return [Request(i, arrival + i * 1e-3, n, i) for i, n in enumerate(lengths)]


def test_policies_by_hand():
    queue = _queue([10, 50, 12, 48, 11])
    # token-budget: FIFO while rows x longest <= 120: [10, 50] -> 100, + 12 -> 150 > 120: stop.
    assert [r.length for r in make_policy("token-budget", 120, True).select(queue, 1.0)[0]] == [10, 50]
    # length-bucketed with edges 16 / 64: the oldest request's bucket (<= 16): 10, 12, 11 -> 3 x 12 = 36.
    bucketed = make_policy("length-bucketed", 120, True, {"edges": [16, 64]})
    assert [r.length for r in bucketed.select(queue, 1.0)[0]] == [10, 12, 11]
    # fixed: 5 queued < max_batch 8 and the oldest has waited 1 ms < 50 ms: wait until its deadline.
    fixed = make_policy("fixed", 4096, True, {"max_batch": 8, "max_delay_ms": 50})
    assert fixed.select(queue, 0.001) == (None, pytest.approx(0.05))
    assert len(fixed.select(queue, 0.06)[0]) == 5
    assert [r.length for r in make_policy("none", 4096, True).select(queue, 1.0)[0]] == [10]


def test_policy_names_and_options_are_checked():
    with pytest.raises(InputError, match="did you mean 'token-budget'"):
        make_policy("token-budgte", 4096, True)
    with pytest.raises(InputError, match="policy.fixed"):
        make_policy("fixed", 4096, True, {"max_batch": 0})


def test_trace_errors_name_file_and_line(tmp_path):
    trace = tmp_path / "trace.txt"
    trace.write_text("# seconds\n0.0\n0.5\n0.25\n")
    with pytest.raises(InputError) as err:
        load_trace(trace)
    assert err.value.line == 4 and "sorted" in str(err.value)
    trace.write_text("0.1\n-2\n")
    with pytest.raises(InputError, match=":2:"):
        load_trace(trace)


@pytest.mark.parametrize("options,field", [(dict(qps="0"), "qps"), (dict(qps="-3,4"), "qps"),
                                           (dict(slo_ms=0), "slo_ms"), (dict(duration=-1), "duration"),
                                           (dict(policy="fifo"), "policy")])
def test_bad_server_options(options, field):
    with pytest.raises(InputError) as err:
        RunConfig(scenario="server", **options)
    assert err.value.field == field


def test_too_short_to_issue_a_request():
    with pytest.raises(InputError, match="no request"):
        poisson_arrivals(0.5, 0.01, seed=0)


@pytest.mark.slow
def test_server_run_rows(tmp_path, monkeypatch):
    from xlt_bench.run.pipeline import run
    monkeypatch.setenv("XLT_FAKE_COST", "fixed_ms=4,per_token_us=2")
    cfg = RunConfig(model="tiny-xlmr", tasks=("xnli",), langs=("en", "th"), limit=64, backends=("fake",),
                    scenario="server", qps="20,2000", duration=1.5, slo_ms=200, threads=1,
                    policy=("none", "length-bucketed"))
    doc = run(cfg, tmp_path / "out")
    rows = doc["rows"]
    assert {(r["policy"], r["offered_qps"]) for r in rows} == {(p, q) for p in ("none", "length-bucketed")
                                                              for q in (20.0, 2000.0)}
    light = {r["policy"]: r for r in rows if r["offered_qps"] == 20.0}
    heavy = {r["policy"]: r for r in rows if r["offered_qps"] == 2000.0}
    assert all(not r["overloaded"] and r["within_slo"] == 1.0 for r in light.values())
    assert heavy["none"]["overloaded"]                        # 2000 req/s >> 1 / 4 ms
    assert heavy["length-bucketed"]["mean_batch_rows"] > 2
    assert light["none"]["max_sustainable_qps"] == 20.0
    for r in rows:
        assert set(r["latency_ms_p99_by_lang"]) == {"en", "th"}
        assert len(r["requests"]) == r["n_requests"] and r["scenario"] == "server"
    assert doc["run"]["server"]["fake/fp32"]["bucket_edges"]
    from xlt_bench.report import render_run
    written = render_run(tmp_path / "out")
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Max sustainable QPS per policy" in report and "| length-bucketed |" in report
    assert any(p.name == "server_latency_vs_load.png" for p in written)


def test_bucket_edges_merge_to_the_cheapest_few():
    from xlt_bench.batching.planners import CostModel
    from xlt_bench.scenarios.serving.policies import bucket_edges
    # Three tight clusters of lengths; a cost model with little per-call cost cuts every cluster apart.
    lengths = np.array([10] * 20 + [11] * 20 + [40] * 20 + [41] * 20 + [100] * 5)
    edges = bucket_edges(lengths, CostModel(1e-6, 1e-3), 4096, 128, max_buckets=3)
    assert len(edges) == 3 and edges[-1] == 128
    # The merges that add least padding keep 10/11 together and 40/41 together.
    assert edges[0] == 11 and edges[1] == 41
