"""Gate decisions on hand-made result documents; every expected number is worked out by hand in the comments."""

from __future__ import annotations

import copy
import json

import pytest

from xlt_bench.core.errors import InputError
from xlt_bench.ci.compat import check_compatible
from xlt_bench.ci.gate import DEFAULT_CHECKS, KNOWN_METRICS, Check, compare_runs, parse_check
from xlt_bench.report.gate_table import gate_table
from xlt_bench.results.speedup import speedups
from xlt_bench.core.schema import ROW_FIELDS, SCHEMA_VERSION, load_results


def table(result) -> str:
    """The gate's verdict as `xlt-bench gate` prints it."""
    return gate_table(result.rows, result.summary(), result.failures, result.warnings)


def make_row(batching: str, tok_s: float, waste: float, mfu: float | None, lang: str = "ALL",
             backend: str = "eager") -> dict:
    row = {f: None for f in ROW_FIELDS}
    row.update(task="xnli", lang=lang, model="xlmr-base", backend=backend, device="cpu", dtype="fp32",
               batching=batching, throughput_tok_s=tok_s, padding_waste=waste, mfu=mfu)
    return row


def make_doc(rows: list[dict], **config_changes) -> dict:
    config = {"model": "xlmr-base", "tokenizer": None, "data": "synthetic", "limit": 64, "tasks": ["xnli"],
              "langs": ["en", "th"], "batch_size": 32, "max_length": 128, "max_tokens": 4096, "pad_multiple": 8,
              "device": "cpu", "dtype": ["fp32"], "shape": None, "threads": 2, "min_seconds": 0.0,
              "min_repeats": 1, "cost_model": True, "inject_delay_ms": 0.0}
    config.update(config_changes)
    env = {"cpu_model": "Test CPU 3000", "threads": 2, "gpu_name": None}
    return {"schema_version": SCHEMA_VERSION, "run": {"id": "r", "config": config, "env": env}, "rows": rows}


@pytest.fixture
def baseline() -> dict:
    # speedup = 3000 / 1000 = 3.0 ; waste static 0.60, dynamic 0.05 ; mfu 0.10 / 0.25
    return make_doc([make_row("static", 1000.0, 0.60, 0.10), make_row("dynamic", 3000.0, 0.05, 0.25)])


def statuses(result) -> dict:
    return {(r["key"], r["metric"]): r["status"] for r in result.rows}


def test_identical_runs_pass_every_default_check(baseline):
    result = compare_runs(baseline, copy.deepcopy(baseline), DEFAULT_CHECKS)
    # speedup: 1 key ; padding_waste: 2 ; mfu: 2
    assert len(result.rows) == 5
    assert result.exit_code == 0 and result.failures == []
    assert "gate passed" in table(result)


def test_machine_twice_slower_everywhere_still_passes(baseline):
    # Noise scales every absolute number alike: the speedup ratio is unchanged (1500/500 = 3.0).
    # MFU also halves here, so only gate the within-run ratio and the deterministic waste.
    current = make_doc([make_row("static", 500.0, 0.60, 0.10), make_row("dynamic", 1500.0, 0.05, 0.25)])
    result = compare_runs(baseline, current, [KNOWN_METRICS["speedup"], KNOWN_METRICS["padding_waste"]])
    assert result.exit_code == 0
    # The opt-in absolute check sees the halving: -50% is worse than a 40% allowance.
    absolute = compare_runs(baseline, current, [parse_check("throughput_tok_s:0.4")])
    assert absolute.exit_code == 1
    assert {r["change"] for r in absolute.rows} == {-0.5}


def test_speedup_regression_fails_and_names_the_metric(baseline):
    # dynamic lost its edge: 2000/1000 = 2.0 vs 3.0 -> change -33.3% > 20% allowed.
    current = make_doc([make_row("static", 1000.0, 0.60, 0.10), make_row("dynamic", 2000.0, 0.05, 0.25)])
    result = compare_runs(baseline, current, [Check("speedup", 0.20, higher_is_better=True)])
    assert result.exit_code == 1
    row = result.rows[0]
    assert row["key"] == "offline/xnli/ALL/eager/fp32/dynamic/static"
    assert (row["baseline"], row["current"]) == (3.0, 2.0)
    assert row["change"] == pytest.approx(-1 / 3)
    assert row["status"] == "regression"
    assert len(result.regressions) == 1 and result.regressions[0].startswith("speedup regressed")
    assert "speedup" in table(result) and "REGRESSION" in table(result)


def test_speedup_within_threshold_passes(baseline):
    # 2500/1000 = 2.5: -16.7% is inside a 20% allowance.
    current = make_doc([make_row("static", 1000.0, 0.60, 0.10), make_row("dynamic", 2500.0, 0.05, 0.25)])
    result = compare_runs(baseline, current, [Check("speedup", 0.20, higher_is_better=True)])
    assert result.exit_code == 0
    assert result.rows[0]["change"] == pytest.approx(-1 / 6)


def test_padding_waste_is_lower_is_better_with_absolute_tolerance(baseline):
    # dynamic waste 0.05 -> 0.08: +0.03 absolute > 0.02 allowed; static 0.60 -> 0.55 is an improvement.
    current = make_doc([make_row("static", 1000.0, 0.55, 0.10), make_row("dynamic", 3000.0, 0.08, 0.25)])
    result = compare_runs(baseline, current, [parse_check("padding_waste:0.02")])
    by_key = {r["key"]: r for r in result.rows}
    assert by_key["offline/xnli/ALL/eager/fp32/dynamic"]["status"] == "regression"
    assert by_key["offline/xnli/ALL/eager/fp32/dynamic"]["change"] == pytest.approx(0.03)
    assert by_key["offline/xnli/ALL/eager/fp32/static"]["status"] == "ok"
    assert by_key["offline/xnli/ALL/eager/fp32/static"]["change"] == pytest.approx(-0.05)
    assert result.regressions[0].startswith("padding_waste regressed for offline/xnli/ALL/eager/fp32/dynamic")


def test_mfu_is_higher_is_better(baseline):
    # static mfu 0.10 -> 0.05 is -50% (fails 35%); dynamic 0.25 -> 0.50 is +100% (an improvement, ok).
    current = make_doc([make_row("static", 1000.0, 0.60, 0.05), make_row("dynamic", 3000.0, 0.05, 0.50)])
    result = compare_runs(baseline, current, [Check("mfu", 0.35, higher_is_better=True)])
    st = statuses(result)
    assert st[("offline/xnli/ALL/eager/fp32/static", "mfu")] == "regression"
    assert st[("offline/xnli/ALL/eager/fp32/dynamic", "mfu")] == "ok"
    assert "mfu" in result.summary()


def test_lower_is_better_relative_latency():
    base = make_doc([dict(make_row("static", 1000.0, 0.6, 0.1), latency_ms_p50=100.0)])
    cur = make_doc([dict(make_row("static", 1000.0, 0.6, 0.1), latency_ms_p50=130.0)])
    # +30% latency: fails a 25% allowance, passes a 35% one.
    assert compare_runs(base, cur, [parse_check("latency_ms_p50:25%")]).exit_code == 1
    assert compare_runs(base, cur, [parse_check("latency_ms_p50:35%")]).exit_code == 0


def test_missing_rows_count_as_failure(baseline):
    # "dynamic replaced by static-longest": the dynamic rows and the dynamic/static speedup disappear.
    current = make_doc([make_row("static", 1000.0, 0.60, 0.10), make_row("static-longest", 1800.0, 0.30, 0.18)])
    result = compare_runs(baseline, current, DEFAULT_CHECKS)
    st = statuses(result)
    assert st[("offline/xnli/ALL/eager/fp32/dynamic/static", "speedup")] == "missing"
    assert st[("offline/xnli/ALL/eager/fp32/dynamic", "padding_waste")] == "missing"
    assert st[("offline/xnli/ALL/eager/fp32/dynamic", "mfu")] == "missing"
    assert len(result.missing) == 3 and result.regressions == []
    assert result.exit_code == 1
    assert "speedup missing for offline/xnli/ALL/eager/fp32/dynamic/static" in table(result)
    # The new strategy is not in the baseline: reported, not gated.
    assert any("not in the baseline" in w for w in result.warnings)


def test_null_metric_in_current_is_missing_but_null_in_baseline_is_not_gated(baseline):
    current = make_doc([make_row("static", 1000.0, 0.60, None), make_row("dynamic", 3000.0, 0.05, 0.25)])
    assert statuses(compare_runs(baseline, current, DEFAULT_CHECKS))[("offline/xnli/ALL/eager/fp32/static", "mfu")] \
        == "missing"
    no_mfu = make_doc([make_row("static", 1000.0, 0.60, None), make_row("dynamic", 3000.0, 0.05, None)])
    # A baseline without the metric anywhere gates nothing: that is an error, never "gate passed: 0 checks ok".
    with pytest.raises(InputError, match="nothing to gate"):
        compare_runs(no_mfu, baseline, [KNOWN_METRICS["mfu"]])


def test_aggregate_only_checks_skip_per_language_rows():
    base = make_doc([make_row("static", 100.0, 0.7, 0.1, lang="th"), make_row("dynamic", 400.0, 0.1, 0.4, lang="th"),
                     make_row("static", 100.0, 0.7, 0.1), make_row("dynamic", 400.0, 0.1, 0.4)])
    # th's dynamic run hit a burst of load: its speedup 4.0 -> 1.0 (-75%); the aggregate is unchanged.
    cur = copy.deepcopy(base)
    cur["rows"][1]["throughput_tok_s"] = 100.0
    aggregate = compare_runs(base, cur, [Check("speedup", 0.3, True, aggregate_only=True)])
    assert [r["key"] for r in aggregate.rows] == ["offline/xnli/ALL/eager/fp32/dynamic/static"]
    assert aggregate.exit_code == 0
    per_lang = compare_runs(base, cur, [parse_check("speedup:0.3:per-lang")])
    assert statuses(per_lang)[("offline/xnli/th/eager/fp32/dynamic/static", "speedup")] == "regression"
    assert per_lang.rows[1]["change"] == pytest.approx(-0.75)
    # The defaults: timing metrics on the aggregate only, the deterministic padding waste on every language.
    gated = {(r["metric"], r["key"].split("/")[2]) for r in compare_runs(base, cur).rows}
    assert gated == {("speedup", "ALL"), ("mfu", "ALL"), ("padding_waste", "ALL"), ("padding_waste", "th")}


def test_speedup_is_per_language_and_backend():
    rows = [make_row("static", 100.0, 0.7, None, lang="th"), make_row("dynamic", 400.0, 0.1, None, lang="th"),
            make_row("static", 200.0, 0.5, None, lang="en", backend="onnxruntime"),
            make_row("static-longest", 300.0, 0.2, None, lang="en", backend="onnxruntime"),
            make_row("dynamic", 500.0, 0.1, None, lang="en", backend="onnxruntime"),
            make_row("dynamic", 999.0, 0.1, None, lang="de")]  # no static partner: no speedup
    assert speedups(rows) == {
        ("offline", "xnli", "th", "eager", "fp32", "dynamic/static"): 4.0,
        ("offline", "xnli", "en", "onnxruntime", "fp32", "static-longest/static"): 1.5,
        ("offline", "xnli", "en", "onnxruntime", "fp32", "dynamic/static"): 2.5,
    }


def test_speedup_falls_back_to_static_longest_reference():
    rows = [make_row("static-longest", 200.0, 0.3, None), make_row("dynamic", 300.0, 0.1, None)]
    assert speedups(rows) == {("offline", "xnli", "ALL", "eager", "fp32", "dynamic/static-longest"): 1.5}


def test_speedup_of_merged_sweep_rows_stays_within_each_shard():
    # A sweep's row keys end with the shard: ratios pair rows of one shard (one run, one host) and never another's.
    from xlt_bench.results.speedup import speedup_of
    rows = [{**make_row("static", 100.0, 0.5, None), "shard": "a"}, {**make_row("dynamic", 250.0, 0.1, None),
                                                                     "shard": "a"},
            {**make_row("static", 400.0, 0.5, None), "shard": "b"}, {**make_row("dynamic", 600.0, 0.1, None),
                                                                     "shard": "b"}]
    table = speedups(rows)
    assert table == {("offline", "xnli", "ALL", "eager", "fp32", "dynamic/static", "shard=a"): 2.5,
                     ("offline", "xnli", "ALL", "eager", "fp32", "dynamic/static", "shard=b"): 1.5}
    assert [speedup_of(r, table) for r in rows] == [None, 2.5, None, 1.5]


@pytest.mark.parametrize("text, expected", [
    # Timing metrics gate the lang == ALL rows by default; padding waste (deterministic) every row.
    ("mfu:0.15", Check("mfu", 0.15, True, True, aggregate_only=True)),
    ("mfu:15%", Check("mfu", 0.15, True, True, aggregate_only=True)),
    (" speedup : 0.3 ", Check("speedup", 0.3, True, True, aggregate_only=True)),
    ("padding_waste:0.01", Check("padding_waste", 0.01, False, False, aggregate_only=False)),
    ("latency_ms_p90:0.5", Check("latency_ms_p90", 0.5, False, True, aggregate_only=True)),
    ("throughput_tok_s", KNOWN_METRICS["throughput_tok_s"]),
    ("speedup:0.3:per-lang", Check("speedup", 0.3, True, True, aggregate_only=False)),
    ("padding_waste:0.01:aggregate", Check("padding_waste", 0.01, False, False, aggregate_only=True)),
])
def test_parse_check(text, expected):
    assert parse_check(text) == expected


@pytest.mark.parametrize("text", ["", "speed:0.1", "mfu:abc", "mfu:-0.1", "mfu:nan", "mfu:inf", "mfu:0.1:2", "mfu:0.1:ALL"])
def test_parse_check_rejects_bad_text(text):
    with pytest.raises(InputError) as info:
        parse_check(text)
    assert info.value.field == "check"
    assert info.value.exit_code == 2


@pytest.mark.parametrize("change, field", [
    ({"model": "mbert-base"}, "run.config.model"),
    ({"tasks": ["xnli", "pawsx"]}, "run.config.tasks"),
    ({"langs": ["en"]}, "run.config.langs"),
    ({"batch_size": 16}, "run.config.batch_size"),
    ({"max_length": 64}, "run.config.max_length"),
    ({"max_tokens": 2048}, "run.config.max_tokens"),
    ({"dtype": ["bf16"]}, "run.config.dtype"),
    ({"data": "local:/tmp/x"}, "run.config.data"),
])
def test_incompatible_runs_are_refused_with_the_reason(baseline, change, field):
    current = make_doc(copy.deepcopy(baseline["rows"]), **change)
    with pytest.raises(InputError) as info:
        check_compatible(baseline, current)
    assert info.value.field == field
    assert info.value.exit_code == 2
    assert field.split(".")[-1] + " differs" in str(info.value)


def test_schema_version_mismatch_is_refused(baseline):
    current = dict(copy.deepcopy(baseline), schema_version=SCHEMA_VERSION + 1)
    with pytest.raises(InputError, match="schema_version differs"):
        check_compatible(baseline, current)


def test_list_order_does_not_matter(baseline):
    base = make_doc([], langs=["en", "th"], dtype=["fp32", "bf16"])
    cur = make_doc([], langs=["th", "en"], dtype=["bf16", "fp32"])
    assert check_compatible(base, cur) == []
    assert check_compatible(baseline, copy.deepcopy(baseline)) == []


def test_machine_and_timing_differences_only_warn(baseline):
    current = copy.deepcopy(baseline)
    current["run"]["env"].update(cpu_model="Other CPU", threads=4)
    current["run"]["config"].update(threads=4, inject_delay_ms=20.0)
    warnings = check_compatible(baseline, current)
    assert any(w.startswith("machines differ: CPU") and "Other CPU" in w for w in warnings)
    assert any(w.startswith("machines differ: threads") for w in warnings)
    assert any(w.startswith("inject_delay_ms differs") for w in warnings)
    assert len(warnings) == 4


def test_gate_reads_documents_written_to_disk(tmp_path, baseline):
    # Round trip through load_results, as `xlt-bench gate --baseline FILE --current RUN_DIR` does.
    (tmp_path / "base.json").write_text(json.dumps(baseline))
    (tmp_path / "run").mkdir()
    current = make_doc([make_row("static", 1000.0, 0.60, 0.10), make_row("dynamic", 1500.0, 0.05, 0.25)])
    (tmp_path / "run" / "results.json").write_text(json.dumps(current))
    base_doc, cur_doc = load_results(tmp_path / "base.json"), load_results(tmp_path / "run")
    assert check_compatible(base_doc, cur_doc) == []
    result = compare_runs(base_doc, cur_doc)
    # speedup 3.0 -> 1.5 (-50%) fails; waste and mfu unchanged.
    assert [r["metric"] for r in result.rows if r["status"] == "regression"] == ["speedup"]
    assert result.exit_code == 1


def test_best_of_several_current_runs(baseline):
    # Run 1 hit a burst of load during its dynamic part (speedup 1.5, -50%); the rerun is clean (2.9, -3.3%).
    # Best of the two per metric: speedup 2.9 passes; mfu takes 0.24 (rerun) for dynamic, 0.10 for static.
    burst = make_doc([make_row("static", 1000.0, 0.60, 0.10), make_row("dynamic", 1500.0, 0.05, 0.125)])
    rerun = make_doc([make_row("static", 900.0, 0.60, 0.09), make_row("dynamic", 2610.0, 0.05, 0.24)])
    assert compare_runs(baseline, burst).exit_code == 1
    # Ratios of two passes take the median over reruns (load can inflate them as easily as deflate them): with
    # one burst and two clean reruns the median is the clean 2.9; single timings take the best.
    result = compare_runs(baseline, [burst, rerun, copy.deepcopy(rerun)])
    assert result.exit_code == 0
    values = {(r["key"], r["metric"]): r["current"] for r in result.rows}
    assert values[("offline/xnli/ALL/eager/fp32/dynamic/static", "speedup")] == pytest.approx(2.9)
    assert values[("offline/xnli/ALL/eager/fp32/dynamic", "mfu")] == 0.24
    assert values[("offline/xnli/ALL/eager/fp32/static", "mfu")] == 0.10
    assert any("over 3 runs" in w for w in result.warnings)
    # A speedup inflated by load during one run's static pass is not taken: median of 2.9, 2.9 and 9.0 is 2.9.
    inflated = make_doc([make_row("static", 300.0, 0.60, 0.03), make_row("dynamic", 2700.0, 0.05, 0.24)])
    values = {(r["key"], r["metric"]): r["current"] for r in compare_runs(baseline, [rerun, rerun, inflated]).rows}
    assert values[("offline/xnli/ALL/eager/fp32/dynamic/static", "speedup")] == pytest.approx(2.9)
    # A real regression shows in both runs and still fails: lower-is-better takes the minimum.
    worse = make_doc([make_row("static", 1000.0, 0.60, 0.10), make_row("dynamic", 3000.0, 0.30, 0.25)])
    worse2 = make_doc([make_row("static", 1000.0, 0.60, 0.10), make_row("dynamic", 3000.0, 0.28, 0.25)])
    failed = compare_runs(baseline, [worse, worse2])
    assert [(r["metric"], r["current"]) for r in failed.rows if r["status"] == "regression"] == \
        [("padding_waste", 0.28)]


def test_relative_higher_is_better_allowance_of_100_percent_is_refused():
    for text in ("mfu:100%", "speedup:1.5", "throughput_tok_s:1"):
        with pytest.raises(InputError, match="can never fail"):
            parse_check(text)
    # Lower-is-better relative allowances above 100% stay meaningful (latency may double).
    assert parse_check("latency_ms_p50:150%").threshold == 1.5


def test_nan_current_value_fails(baseline):
    current = copy.deepcopy(baseline)
    for row in current["rows"]:
        row["mfu"] = float("nan")
    result = compare_runs(baseline, current, [KNOWN_METRICS["mfu"]])
    assert result.exit_code == 1 and all(r["status"] == "regression" for r in result.rows)


def test_zero_baseline_cannot_anchor_a_relative_check(baseline):
    zero = copy.deepcopy(baseline)
    for row in zero["rows"]:
        row["mfu"] = 0.0
    result = compare_runs(zero, baseline, [KNOWN_METRICS["mfu"]])
    assert result.exit_code == 1 and "cannot anchor" in result.failures[0]


def test_shape_is_compared_in_order_and_seed_is_workload(baseline):
    a, b = copy.deepcopy(baseline), copy.deepcopy(baseline)
    a["run"]["config"]["shape"], b["run"]["config"]["shape"] = [8, 64], [64, 8]
    with pytest.raises(InputError, match="shape"):
        check_compatible(a, b)
    a, b = copy.deepcopy(baseline), copy.deepcopy(baseline)
    a["run"]["config"]["seed"], b["run"]["config"]["seed"] = 0, 1
    with pytest.raises(InputError, match="seed"):
        check_compatible(a, b)


def test_library_versions_and_cost_model_differences_are_warned(baseline):
    a, b = copy.deepcopy(baseline), copy.deepcopy(baseline)
    a["run"].setdefault("env", {})["libraries"] = {"torch": "2.13.0"}
    b["run"].setdefault("env", {})["libraries"] = {"torch": "2.14.1"}
    b["run"]["config"]["cost_model"] = not a["run"]["config"].get("cost_model", True)
    warnings = check_compatible(a, b)
    assert any("torch" in w and "2.14.1" in w for w in warnings)
    assert any(w.startswith("cost_model differs") for w in warnings)


def test_scenario_is_part_of_the_key():
    offline = make_row("dynamic", 3000.0, 0.05, 0.25)
    train = {**offline, "scenario": "train"}
    from xlt_bench.core.schema import row_key
    assert row_key(offline)[0] == "offline" and row_key(train)[0] == "train"
    assert row_key({**offline, "scenario": "server", "offered_qps": 8.0})[-1] == "8qps"


def test_gate_on_max_qps_ratio_between_policies():
    def server_row(policy, qps_max, offered):
        row = make_row("dynamic", 100.0, 0.1, None)
        row.update(scenario="server", policy=policy, batching=policy, offered_qps=offered,
                   max_sustainable_qps=qps_max)
        return row

    base = make_doc([server_row("token-budget", 10.0, 8.0), server_row("length-bucketed", 20.0, 8.0)])
    same = compare_runs(base, base, [KNOWN_METRICS["max_qps_ratio"]])
    assert [r["key"] for r in same.rows] == ["server/xnli/ALL/eager/fp32/length-bucketed/token-budget"]
    assert same.rows[0]["current"] == 2.0 and same.exit_code == 0
    worse = make_doc([server_row("token-budget", 10.0, 8.0), server_row("length-bucketed", 12.0, 8.0)])
    assert compare_runs(base, worse, [KNOWN_METRICS["max_qps_ratio"]]).exit_code == 1   # 2.0 -> 1.2: -40%


def test_machine_bound_checks_need_the_same_kind_of_machine(baseline):
    from xlt_bench.ci.gate import checks_for_machines
    same = make_doc([make_row("static", 1000.0, 0.60, 0.10), make_row("dynamic", 3000.0, 0.05, 0.25)])
    assert checks_for_machines(DEFAULT_CHECKS, baseline, [same]) == (list(DEFAULT_CHECKS), [])
    other = make_doc([make_row("static", 1000.0, 0.60, 0.02), make_row("dynamic", 3000.0, 0.05, 0.05)])
    other["run"]["env"].update(cpu_flags_of_interest=["avx512f", "amx_tile"])   # same model name, another ISA
    kept, warnings = checks_for_machines(DEFAULT_CHECKS, baseline, [other])
    assert [c.metric for c in kept] == ["speedup", "padding_waste"]
    assert "CPU flags" in warnings[0] and "mfu not gated" in warnings[0]
    assert compare_runs(baseline, other, kept).exit_code == 0      # MFU fell 80% on other hardware: not judged
    assert compare_runs(baseline, other, DEFAULT_CHECKS).exit_code == 1
    assert checks_for_machines(DEFAULT_CHECKS, baseline, [other], across_machines=True)[0] == list(DEFAULT_CHECKS)
    with pytest.raises(InputError, match="same kind of machine"):
        checks_for_machines([KNOWN_METRICS["mfu"]], baseline, [other])


def test_default_allowances_catch_a_twenty_percent_regression(baseline):
    # The calibrated defaults (15%): MFU down 20% fails, down 10% passes; speedup likewise.
    mfu_20 = make_doc([make_row("static", 1000.0, 0.60, 0.08), make_row("dynamic", 3000.0, 0.05, 0.20)])
    mfu_10 = make_doc([make_row("static", 1000.0, 0.60, 0.09), make_row("dynamic", 3000.0, 0.05, 0.225)])
    speedup_20 = make_doc([make_row("static", 1000.0, 0.60, 0.10), make_row("dynamic", 2400.0, 0.05, 0.25)])
    assert compare_runs(baseline, mfu_20).exit_code == 1
    assert compare_runs(baseline, mfu_10).exit_code == 0
    assert compare_runs(baseline, speedup_20).exit_code == 1


def test_every_non_comparable_setting_is_named(baseline):
    current = make_doc(copy.deepcopy(baseline["rows"]), model="mbert-base", langs=["en"], max_length=64)
    with pytest.raises(InputError) as info:
        check_compatible(baseline, current)
    assert info.value.field == "run.config.model,langs,max_length"
    for said in ("model differs (baseline xlmr-base, current mbert-base)", "langs differs (baseline en,th, current en)",
                 "max_length differs (baseline 128, current 64)"):
        assert said in str(info.value)


@pytest.mark.parametrize("change", [{"slo_ms": 100.0}, {"duration": 30.0}, {"policy": ["none", "fixed"]},
                                    {"qps": [1.0, 2.0]}, {"policy_options": {"fixed": {"max_batch": 4}}}])
def test_server_settings_must_match_for_server_runs(change):
    base = make_doc([], scenario="server")
    cur = make_doc([], scenario="server", **change)
    with pytest.raises(InputError) as info:
        check_compatible(base, cur)
    assert info.value.field == "run.config." + next(iter(change))


def test_server_settings_do_not_matter_between_offline_runs(baseline):
    current = make_doc(copy.deepcopy(baseline["rows"]), slo_ms=100.0, duration=30.0)
    assert check_compatible(baseline, current) == []


def _on_disk(tmp_path, name: str, doc: dict) -> str:
    (tmp_path / name).mkdir()
    (tmp_path / name / "results.json").write_text(json.dumps(doc))
    return str(tmp_path / name)


def test_quiet_gate_prints_only_the_verdict(tmp_path, capsys, baseline):
    from xlt_bench.cli import main
    slower = make_doc([make_row("static", 1000.0, 0.60, 0.10), make_row("dynamic", 1500.0, 0.05, 0.25)])
    slower["run"]["env"]["cpu_model"] = "Other CPU"      # a warning that -q must not print
    base, cur = _on_disk(tmp_path, "base", baseline), _on_disk(tmp_path, "cur", slower)
    assert main(["gate", "-q", "--baseline", base, "--current", cur, "--check", "speedup:20%"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == ["gate FAILED: 1 regression(s), 0 missing (metrics: speedup)"] and err == ""
    assert main(["gate", "--baseline", base, "--current", cur, "--check", "speedup:20%"]) == 1
    out, err = capsys.readouterr()
    assert "| key" in out and "machines differ" in err


def test_a_current_run_without_rows_is_not_comparable(tmp_path, capsys, baseline):
    from xlt_bench.cli import main
    base, cur = _on_disk(tmp_path, "base", baseline), _on_disk(tmp_path, "cur", make_doc([]))
    assert main(["gate", "--baseline", base, "--current", cur]) == 2
    assert "no rows" in capsys.readouterr().err


def _with_predicted(doc: dict, predicted: dict[str, float]) -> dict:
    for row in doc["rows"]:
        row["predicted_s"] = predicted[row["batching"]]
    return doc


def test_predicted_speedup_of_a_fresh_plan_gated_within_its_allowance(baseline):
    # Stored plan: static predicted 2.0 s, dynamic 0.8 s -> predicted speedup 2.5.
    stored = _with_predicted(baseline, {"static": 2.0, "dynamic": 0.8})
    check = [parse_check("predicted_speedup:0.2")]
    # A fresh probe on a twice-slower machine: 4.0 / 1.7 = 2.353, -5.9%: within 20%.
    fresh = _with_predicted(copy.deepcopy(baseline), {"static": 4.0, "dynamic": 1.7})
    result = compare_runs(stored, fresh, check)
    assert result.exit_code == 0 and [r["current"] for r in result.rows] == [pytest.approx(4.0 / 1.7)]
    # A planner that plans worse: 2.0 / 1.25 = 1.6, -36%: fails.
    worse = _with_predicted(copy.deepcopy(baseline), {"static": 2.0, "dynamic": 1.25})
    result = compare_runs(stored, worse, check)
    assert result.exit_code == 1 and "predicted_speedup regressed" in table(result)
    # A fresh run without predictions (no cost model) lacks the metric: a failure, not a pass.
    none = _with_predicted(copy.deepcopy(baseline), {"static": None, "dynamic": None})
    assert compare_runs(stored, none, check).exit_code == 1


def test_metric_sets_follow_the_catalogue():
    from xlt_bench.ci.gate import MACHINE_BOUND, RATIO_METRICS
    # Ratios (catalogue unit "x") combine reruns by their median; everything absolute is bound to its machine.
    assert set(RATIO_METRICS) == {"speedup", "max_qps_ratio", "predicted_speedup"}
    assert set(MACHINE_BOUND) == {"mfu", "throughput_tok_s", "throughput_seq_s", "latency_ms_p50", "latency_ms_p90",
                                  "j_per_1k_tokens"}
    lower = {m for m, check in KNOWN_METRICS.items() if not check.higher_is_better}
    assert lower == {"padding_waste", "latency_ms_p50", "latency_ms_p90", "j_per_1k_tokens"}


def test_table_lists_failures_first_then_the_summary_failures_and_warnings():
    ok = {"key": "a", "metric": "mfu", "baseline": 0.5, "current": 0.5, "change": 0.0, "relative": True,
          "threshold": "-15%", "status": "ok"}
    bad = {"key": "b", "metric": "padding_waste", "baseline": 0.1, "current": 0.15, "change": 0.05,
           "relative": False, "threshold": "+0.02 abs", "status": "regression"}
    lines = gate_table([ok, bad], "gate FAILED", ["padding_waste regressed for b"], ["w"]).splitlines()
    assert lines[2] == "| b | padding_waste | 0.1 | 0.15 | +0.0500 | +0.02 abs | REGRESSION |"
    assert lines[3] == "| a | mfu | 0.5 | 0.5 | +0.0% | -15% | ok |"
    assert lines[4:] == ["", "gate FAILED", "FAIL padding_waste regressed for b", "warning: w"]
