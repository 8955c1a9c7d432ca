"""Server scenario intervals: the per-seed max-QPS search, rows combined across arrival seeds, tuning on held-out data
with the same budget per policy, the report's intervals, and rows identified by their own `policy` field."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from xlt_bench.core.config import RunConfig
from xlt_bench.core.errors import InputError
from xlt_bench.core.schema import row_key
from xlt_bench.scenarios.serving.combine import combine_seeds
from xlt_bench.scenarios.serving.policies import POLICIES, TRIALS
from xlt_bench.scenarios.serving.search import (MAX_LOADS, REL_WIDTH, Bracket, geometric_mean, max_qps_estimate, next_load,
                                      search, seed_brackets)
from xlt_bench.scenarios.serving.tuning import FIT_SHARE, choose, held_out_split
from xlt_bench.core.stats import log_t_interval, paired_ratio_interval

ROOT = Path(__file__).resolve().parents[1]


# --- the search ------------------------------------------------------------------------------------------------------

def test_brackets_by_hand():
    outcomes = {10.0: [True, True], 20.0: [True, False], 40.0: [False, False]}
    assert seed_brackets(outcomes, 2) == [Bracket(20.0, 40.0), Bracket(10.0, 20.0)]
    # A pass above the lowest failure is noise: the bracket stays below the failure (conservative).
    assert seed_brackets({10.0: [True], 20.0: [False], 30.0: [True]}, 1) == [Bracket(10.0, 20.0)]
    assert seed_brackets({10.0: [True]}, 1)[0].width == math.inf
    assert Bracket(20.0, 21.0).width == pytest.approx(0.05)


def test_next_load_doubles_halves_bisects_and_stops():
    assert next_load({}, 2, 8.0) == 8.0
    assert next_load({8.0: [True, False]}, 2, 8.0) == 16.0              # seed 0 has not failed yet
    assert next_load({8.0: [False, False]}, 2, 8.0) == 4.0              # no seed has passed yet
    assert next_load({8.0: [False, False]}, 2, 8.0, min_qps=5.0) is None  # too few requests below 5 req/s
    # Both bracketed: bisect the widest, seed 1's [8, 16] (100%) before seed 0's [16, 20] (25%).
    assert next_load({8.0: [True, True], 16.0: [True, False], 20.0: [False, False]}, 2, 8.0) == 12.0
    assert next_load({20.0: [True], 20.9: [False]}, 1, 20.0) is None    # 4.5% <= 5%: done
    # Seed 0 failed at the lowest load allowed: the other seed's bracket is still narrowed.
    assert next_load({8.0: [False, True], 16.0: [False, False]}, 2, 8.0, min_qps=5.0) == 12.0


@pytest.mark.parametrize("thresholds", [[30.0, 33.0, 36.0], [5.0, 80.0, 81.0]])
def test_search_brackets_every_seed_within_five_percent(thresholds):
    visited = []

    def sustained_at(load):
        visited.append(load)
        return [load <= t for t in thresholds]

    outcomes = search(sustained_at, len(thresholds), start=10.0)
    assert len(visited) == len(set(visited)) == len(outcomes) <= MAX_LOADS   # every load once, for every seed
    for bracket, threshold in zip(seed_brackets(outcomes, len(thresholds)), thresholds):
        assert bracket.passed <= threshold < bracket.failed and bracket.width <= REL_WIDTH


def test_max_qps_estimate_is_the_log_t_interval_of_the_lower_ends():
    brackets = [Bracket(30.0, 31.0), Bracket(32.0, 33.0), Bracket(36.0, 37.0)]
    est = max_qps_estimate(brackets)
    assert est["max_sustainable_qps_by_seed"] == [30.0, 32.0, 36.0]
    assert est["max_sustainable_qps"] == pytest.approx((30.0 * 32.0 * 36.0) ** (1 / 3))
    assert est["max_sustainable_qps_ci95"] == pytest.approx(list(log_t_interval([30.0, 32.0, 36.0])))
    assert est["max_qps_resolved"] is True
    # A seed that sustained nothing: no estimate and no interval, and the bracket says why.
    none_passed = max_qps_estimate([Bracket(30.0, 31.0), Bracket(0.0, 5.0)])
    assert none_passed["max_sustainable_qps"] is None and none_passed["max_sustainable_qps_ci95"] is None
    assert max_qps_estimate([Bracket(10.0, 20.0)] * 3, rel_width=None)["max_qps_resolved"] is None
    assert max_qps_estimate([Bracket(10.0, 20.0)] * 3)["max_qps_resolved"] is False


def test_geometric_mean_is_exact_for_equal_values():
    assert geometric_mean([20.0, 20.0, 20.0]) == 20.0
    assert geometric_mean([2.0, 8.0]) == pytest.approx(4.0)
    assert geometric_mean([0.0, 4.0]) == 2.0        # not all positive: arithmetic mean
    assert geometric_mean([]) is None


def test_max_qps_interval_covers_the_true_threshold_about_95_percent():
    """Seeds whose true max QPS scatters log-normally (sd 10%) around 40 req/s: the search's per-seed lower ends are
    at most 5% low, so the interval across 5 seeds must still cover 40 close to 95% of the time."""
    rng = np.random.default_rng(0)
    covered, trials = 0, 300
    for _ in range(trials):
        thresholds = 40.0 * np.exp(rng.normal(0.0, 0.10, size=5))
        outcomes = search(lambda q: [q <= t for t in thresholds], 5, start=8.0)
        low, high = max_qps_estimate(seed_brackets(outcomes, 5))["max_sustainable_qps_ci95"]
        covered += low <= 40.0 <= high
    assert 0.88 <= covered / trials <= 0.99, covered / trials


# --- one row from several seeds ----------------------------------------------------------------------------------------

def _summary(qps, p99, overloaded=False, completed=10, batches=4, real=100, padded=125, lang_p99=None):
    return dict(achieved_qps=qps, throughput_seq_s=qps, throughput_tok_s=10 * qps, latency_ms_p50=p99 / 2,
                latency_ms_p90=p99 * 0.9, latency_ms_p99=p99, latency_ms_max=p99 * 1.1, n_requests=completed,
                n_completed=completed, n_unfinished=0, real_tokens=real, padded_tokens=padded, n_batches=batches,
                within_slo=1.0, mean_queue_wait_ms=1.0, mean_service_ms=2.0, overloaded=overloaded,
                latency_ms_p99_by_lang=lang_p99 or {"en": p99}, batch_rows_histogram={"2": 3, "4": 1},
                requests=[[0.1, 0.1, 0.2, 0, 12, "en"]])


def test_combine_seeds_by_hand():
    row = combine_seeds([_summary(10.0, 40.0), _summary(20.0, 90.0, overloaded=True),
                         _summary(40.0, 60.0, lang_p99={"en": 60.0, "th": 70.0})])
    assert row["n_seeds"] == 3
    assert row["achieved_qps"] == pytest.approx(20.0)                       # (10 x 20 x 40)^(1/3)
    assert row["achieved_qps_by_seed"] == [10.0, 20.0, 40.0]
    assert row["achieved_qps_ci95"] == pytest.approx(list(log_t_interval([10.0, 20.0, 40.0])))
    assert row["latency_ms_p99_ci95"] == pytest.approx(list(log_t_interval([40.0, 90.0, 60.0])))
    assert row["n_completed"] == 30 and row["n_batches"] == 12 and row["real_tokens"] == 300
    assert row["padding_waste"] == pytest.approx(1 - 300 / 375)
    assert row["mean_batch_rows"] == pytest.approx(30 / 12)
    assert row["overloaded"] and row["overloaded_by_seed"] == [False, True, False]
    assert row["batch_rows_histogram"] == {"2": 9, "4": 3}
    assert row["latency_ms_p99_by_lang"] == {"en": pytest.approx((40 * 90 * 60) ** (1 / 3)), "th": 70.0}
    assert [r[-1] for r in row["requests"]] == [0, 1, 2]                    # each record names its seed
    single = combine_seeds([_summary(10.0, 40.0)])
    assert single["achieved_qps"] == 10.0 and single["achieved_qps_ci95"] is None


# --- tuning ------------------------------------------------------------------------------------------------------------

def test_held_out_split_per_language():
    langs = ["en"] * 9 + ["th"] * 6 + ["zh"] * 2
    fit, serve = held_out_split(langs, seed=0)
    assert set(fit).isdisjoint(serve) and sorted([*fit, *serve]) == list(range(len(langs)))
    by_lang = {lang: sum(langs[i] == lang for i in fit) for lang in ("en", "th", "zh")}
    # ceil(9/3) = 3, ceil(6/3) = 2; zh would keep one to serve after holding one out: kept whole.
    assert by_lang == {"en": math.ceil(9 * FIT_SHARE), "th": 2, "zh": 0}
    assert np.array_equal(fit, held_out_split(langs, seed=0)[0])
    assert not np.array_equal(fit, held_out_split(langs, seed=1)[0])


def test_every_tunable_policy_gets_the_same_number_of_trials():
    from xlt_bench.batching.planners import CostModel
    lengths = np.array([10] * 20 + [40] * 20 + [100] * 5)
    counts = {name: len(POLICIES.get(name).trial_settings(512, 128, lengths, CostModel(1e-3, 1e-5)))
              for name in POLICIES.names()}
    assert counts == {"none": 1, "fixed": TRIALS, "token-budget": TRIALS, "length-bucketed": TRIALS}


def test_choose_keeps_fewest_unfinished_then_lowest_p99():
    results = [dict(n_unfinished=u, latency_ms_p99=p99, achieved_qps=1.0)
               for u, p99 in ((0, 80.0), (0, 50.0), (4, 10.0))]
    record = choose("fixed", [{"max_batch": b} for b in (1, 2, 3)], results, load=5.0)
    assert record["chosen"] == {"max_batch": 2} and len(record["trials"]) == 3 and record["load_qps"] == 5.0


def test_arrival_seeds_option_is_checked():
    with pytest.raises(InputError) as err:
        RunConfig(scenario="server", arrival_seeds=0)
    assert err.value.field == "arrival_seeds"


# --- report and row identity -------------------------------------------------------------------------------------------

def _row(policy, qps, ci, by_seed, **extra):
    row = dict(scenario="server", task="xnli", lang="ALL", backend="eager", dtype="fp32", batching=None,
               policy=policy, offered_qps=10.0, max_sustainable_qps=qps, max_sustainable_qps_ci95=ci,
               max_sustainable_qps_by_seed=by_seed, achieved_qps=9.0, achieved_qps_ci95=[8.0, 10.0],
               latency_ms_p50=20.0, latency_ms_p99=50.0, latency_ms_p99_ci95=[40.0, 60.0], within_slo=1.0,
               padding_waste=0.1, mean_batch_rows=2.0, overloaded=False, slo_ms=200.0)
    row.update(extra)
    return row


def test_report_shows_intervals_and_says_which_policies_overlap():
    from xlt_bench.report.server_report import indistinguishable, max_qps_table, qps_ratio, server_frame
    rows = [_row("none", 10.0, [9.0, 11.0], [9.5, 10.0, 10.5]),
            _row("token-budget", 20.0, [18.0, 22.0], [19.0, 20.0, 21.0]),
            _row("length-bucketed", 21.0, [19.0, 23.0], [20.0, 21.0, 22.0])]
    df = server_frame({"rows": rows})
    table = max_qps_table(df).set_index("policy")
    assert table.at["token-budget", "max sustainable QPS"] == "20 [18, 22]"
    assert table.at["token-budget", "÷ token-budget"] == "—"
    found = indistinguishable(df)
    assert len(found) == 1 and "token-budget" in found[0] and "length-bucketed" in found[0]
    assert "seed-paired ratio length-bucketed ÷ token-budget 1.05×" in found[0] and "excludes 1" in found[0]
    ratio, ci = qps_ratio({"qps": 21.0, "by_seed": [20.0, 21.0, 22.0]}, {"qps": 20.0, "by_seed": [19.0, 20.0, 21.0]})
    assert ratio == pytest.approx(1.05)
    assert ci == pytest.approx(list(paired_ratio_interval([20.0, 21.0, 22.0], [19.0, 20.0, 21.0])))


def test_report_reads_rows_that_keep_the_policy_in_batching():
    from xlt_bench.report.server_report import max_qps_table, server_frame
    old = [{k: v for k, v in _row(p, q, None, None, batching=p).items()
            if k not in ("policy", "max_sustainable_qps_ci95", "max_sustainable_qps_by_seed")}
           for p, q in (("token-budget", 20.0), ("length-bucketed", 30.0))]
    table = max_qps_table(server_frame({"rows": old})).set_index("policy")
    assert table.at["length-bucketed", "max sustainable QPS"] == "30"
    assert table.at["length-bucketed", "÷ token-budget"] == "1.50×"


def test_row_key_reads_the_policy_field_and_old_rows_alike():
    new = _row("length-bucketed", 21.0, None, None)
    old = {**new, "batching": "length-bucketed"}
    del old["policy"]
    assert row_key(new) == row_key(old) == ("server", "xnli", "ALL", "eager", "fp32", "length-bucketed", "10qps")
    assert row_key(new) != row_key(_row("token-budget", 20.0, None, None))


def test_gate_baseline_rows_keep_their_keys():
    """results/baseline is offline only: its keys are exactly the batching-based ones."""
    doc = json.loads((ROOT / "results" / "baseline" / "results.json").read_text())
    assert doc["rows"]
    for row in doc["rows"]:
        assert "policy" not in row
        assert row_key(row)[:6] == tuple(str(row.get(k) if row.get(k) is not None else
                                             ("offline" if k == "scenario" else None))
                                         for k in ("scenario", "task", "lang", "backend", "dtype", "batching"))


# --- end to end on the fake backend ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_server_auto_search_rows_carry_intervals(tmp_path, monkeypatch):
    import xlt_bench.scenarios.server as server
    from xlt_bench.run.pipeline import run
    monkeypatch.setenv("XLT_FAKE_COST", "fixed_ms=4,per_token_us=20")
    split, served_seqs, served_policies = {}, [], []
    real_split, real_serve = server.held_out_split, server.serve

    def spy_split(langs, seed):
        split["fit"], split["serve"] = real_split(langs, seed)
        return split["fit"], split["serve"]

    def spy_serve(backend, policy, requests, *args, **kwargs):
        served_seqs.extend(r.seq for r in requests)
        served_policies.append(policy.name)
        return real_serve(backend, policy, requests, *args, **kwargs)

    monkeypatch.setattr(server, "held_out_split", spy_split)
    monkeypatch.setattr(server, "serve", spy_serve)
    cfg = RunConfig(model="tiny-xlmr", tasks=("xnli",), langs=("en", "th"), limit=32, backends=("fake",),
                    scenario="server", qps="auto", duration=0.5, slo_ms=150, threads=1,
                    policy=("none", "token-budget"))
    doc = run(cfg, tmp_path / "out")
    rows = doc["rows"]
    assert {r["policy"] for r in rows} == {"none", "token-budget"} and all(r["batching"] is None for r in rows)
    assert len({row_key(r) for r in rows}) == len(rows)
    for r in rows:
        assert r["n_seeds"] == 3 and len(r["achieved_qps_by_seed"]) == 3
        low, high = r["achieved_qps_ci95"]
        assert low <= r["achieved_qps"] <= high
        assert r["latency_ms_p99_ci95"][0] <= r["latency_ms_p99"] <= r["latency_ms_p99_ci95"][1]
    for policy in ("none", "token-budget"):
        mine = [r for r in rows if r["policy"] == policy]
        first = mine[0]
        assert all(r["max_sustainable_qps"] == first["max_sustainable_qps"] for r in mine)
        assert first["max_qps_resolved"] and len(first["max_sustainable_qps_by_seed"]) == 3
        for (passed, failed), value in zip(first["max_qps_bracket_by_seed"], first["max_sustainable_qps_by_seed"]):
            assert value == passed and (failed - passed) / passed <= REL_WIDTH
            assert passed in {r["offered_qps"] for r in mine} and failed in {r["offered_qps"] for r in mine}
        low, high = first["max_sustainable_qps_ci95"]
        assert low <= first["max_sustainable_qps"] <= high
    meta = doc["run"]["server"]["fake/fp32"]
    assert len(meta["tuning"]["token-budget"]["trials"]) == TRIALS and meta["tuning"]["none"]["trials"] == []
    # Requests (for tuning and measuring) come only from the sequences not held out for fitting.
    assert len(split["fit"]) and set(served_seqs) <= set(split["serve"].tolist())
    # Policies take turns (tuning trial by trial, then search step by step), not one policy's runs then another's.
    switches = sum(a != b for a, b in zip(served_policies, served_policies[1:]))
    assert switches >= 4, served_policies
    from xlt_bench.report import render_run
    render_run(tmp_path / "out")
    report = (tmp_path / "out" / "report.md").read_text()
    assert "95% interval across arrival seeds" in report and " [" in report


@pytest.mark.slow
def test_trace_repeats_replay_the_same_requests(tmp_path, monkeypatch):
    from xlt_bench.run.pipeline import run
    monkeypatch.setenv("XLT_FAKE_COST", "fixed_ms=2")
    trace = tmp_path / "trace.txt"
    trace.write_text("\n".join(f"{0.02 * i:.2f}" for i in range(40)) + "\n")
    cfg = RunConfig(model="tiny-xlmr", tasks=("xnli",), langs=("en",), limit=16, backends=("fake",),
                    scenario="server", trace=str(trace), slo_ms=500, threads=1, policy=("length-bucketed",),
                    arrival_seeds=2)
    (row,) = run(cfg, tmp_path / "out")["rows"]
    assert row["n_seeds"] == 2 and "service noise only" in row["max_qps_method"]
    per_seed = [[(r[0], r[4]) for r in row["requests"] if r[-1] == s] for s in (0, 1)]
    assert per_seed[0] == per_seed[1] and len(per_seed[0]) == 40


def test_report_says_why_a_policy_has_no_max_qps():
    from xlt_bench.report.server_report import search_notes, server_frame
    rows = [_row("token-budget", None, None, [None, 9.0], max_qps_bracket_by_seed=[[0.0, 8.0], [9.0, 9.4]],
                 max_qps_resolved=True),
            _row("length-bucketed", 15.0, None, [15.0, 16.0], max_qps_bracket_by_seed=[[15.0, 15.5], [16.0, 20.0]],
                 max_qps_resolved=False)]
    notes = search_notes(server_frame({"rows": rows}))
    assert len(notes) == 2
    assert "token-budget: seed 0 sustained no load served (lowest failed: 8 QPS)" in notes[0]
    assert "length-bucketed" in notes[1] and "wider than the 5% target" in notes[1]
