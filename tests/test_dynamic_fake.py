"""Dynamic batching on backends of known cost (the fake backend): never slower than static or static-longest,
whatever the hardware looks like — launch-bound (a GPU at these sizes), linear in tokens (a CPU), or with attention's
L^2 term. Timings are sleeps of known length, so the comparison holds on a loaded machine too."""

from __future__ import annotations

import pytest

from xlt_bench.core.config import RunConfig
from xlt_bench.run.pipeline import run

COSTS = {"launch-bound": "fixed_ms=5", "linear": "fixed_ms=1,per_token_us=3",
         "quadratic": "fixed_ms=1,per_token_us=2,per_token_sq_ns=20"}


@pytest.mark.slow
@pytest.mark.parametrize("regime", COSTS)
def test_dynamic_at_least_as_fast_as_both_static_forms(tmp_path, monkeypatch, regime):
    monkeypatch.setenv("XLT_FAKE_COST", COSTS[regime])
    cfg = RunConfig(model="tiny-xlmr", tasks=("xnli",), langs=("en", "th", "zh"), limit=96, backends=("fake",),
                    batching=("static", "static-longest", "dynamic"), threads=1)
    doc = run(cfg, tmp_path / "out")
    every = {(r["lang"], r["batching"]): r for r in doc["rows"]}
    for lang in ("en", "th", "zh", "ALL"):
        dynamic = every[(lang, "dynamic")]["throughput_tok_s"]
        # 3% for sleep jitter: the plans themselves are predicted no slower.
        assert dynamic >= 0.97 * every[(lang, "static-longest")]["throughput_tok_s"], lang
        assert dynamic >= 0.97 * every[(lang, "static")]["throughput_tok_s"], lang
    for lang in ("en", "th", "zh"):
        row = every[(lang, "dynamic")]
        assert row["plan_predicted_s"][row["plan_chosen"]] == min(row["plan_predicted_s"].values())
    if regime == "launch-bound":
        # Fewest batches: the budget the probe found holds a language in a single forward call.
        assert all(every[(lang, "dynamic")]["n_batches"] == 1 for lang in ("en", "th", "zh"))
    model = doc["run"]["cost_models"]["fake/fp32/cpu"]
    assert model["source"] == "measured" and model["samples"]


@pytest.mark.slow
def test_stored_cost_model_reproduces_partitions(tmp_path, monkeypatch):
    monkeypatch.setenv("XLT_FAKE_COST", "fixed_ms=1,per_token_us=3,noise=0.05")
    base = dict(model="tiny-xlmr", tasks=("xnli",), langs=("en", "th"), limit=64, backends=("fake",),
                batching=("dynamic",), threads=1)
    first = run(RunConfig(**base), tmp_path / "a")
    again = run(RunConfig(**base, cost_model_file=str(tmp_path / "a" / "results.json")), tmp_path / "b")
    assert again["run"]["cost_models"]["fake/fp32/cpu"]["source"].startswith("file:")
    key = ("lang", "n_batches", "padded_tokens", "max_tokens")
    per_lang = [[tuple(r[k] for k in key) for r in doc["rows"] if r["lang"] != "ALL"] for doc in (first, again)]
    assert first["run"]["cost_models"]["fake/fp32/cpu"]["budget"] == again["run"]["cost_models"]["fake/fp32/cpu"][
        "budget"]
    assert per_lang[0] == per_lang[1] and len(per_lang[0]) == 2


def test_stored_cost_model_of_another_backend_is_refused(tmp_path):
    import json

    from xlt_bench.batching.planners import CostModel
    from xlt_bench.core.errors import InputError
    from xlt_bench.run.pipeline import load_cost_model
    path = tmp_path / "cost.json"
    path.write_text(json.dumps(CostModel(1e-3, 1e-6, key="onnxruntime/int8/cpu").to_dict()))
    with pytest.raises(InputError, match="onnxruntime/int8/cpu"):
        load_cost_model(str(path), "eager/fp32/cpu")
    assert load_cost_model(str(path), "onnxruntime/int8/cpu")[0].fixed_s == 1e-3


def test_budget_below_a_tasks_sequence_length_is_refused(tmp_path):
    from xlt_bench.core.errors import InputError
    cfg = RunConfig(model="tiny-xlmr", tasks=("xquad",), langs=("en",), backends=("fake",), batching=("dynamic",),
                    max_tokens=256, data="local:" + str(tmp_path))
    with pytest.raises(InputError, match="256.*384"):
        run(cfg, tmp_path / "out")


@pytest.mark.parametrize("value,ok", [("auto", True), ("4096", True), (2048, True), ("lots", False), (0, False)])
def test_max_tokens_values(value, ok):
    from xlt_bench.core.errors import InputError
    if ok:
        assert RunConfig(max_tokens=value).max_tokens in ("auto", 4096, 2048)
    else:
        with pytest.raises(InputError, match="max_tokens"):
            RunConfig(max_tokens=value)


@pytest.mark.slow
def test_dynamic_shared_runs_the_first_backends_partition_on_every_backend(tmp_path, monkeypatch):
    # Launch-bound fake first: its plan holds each language in one batch, which the eager backend (linear in
    # tokens on a CPU) would not choose for itself; dynamic-shared must still run exactly those batches.
    monkeypatch.setenv("XLT_FAKE_COST", "fixed_ms=5")
    cfg = RunConfig(model="tiny-xlmr", tasks=("xnli",), langs=("en", "th"), limit=48, backends=("fake", "eager"),
                    batching=("static", "dynamic", "dynamic-shared"), threads=1)
    doc = run(cfg, tmp_path / "out")
    every = {(r["lang"], r["backend"], r["batching"]): r for r in doc["rows"]}
    for lang in ("en", "th"):
        fake_own = every[(lang, "fake", "dynamic")]
        assert fake_own["n_batches"] == 1
        for backend in ("fake", "eager"):
            shared = every[(lang, backend, "dynamic-shared")]
            assert shared["partition_of"] == "fake/fp32"
            assert (shared["n_batches"], shared["padded_tokens"]) == (1, fake_own["padded_tokens"])
        # On the first backend the shared plan is its own: the measurement is reused, not timed twice.
        reused = every[(lang, "fake", "dynamic-shared")]
        assert reused["wall_s"] == fake_own["wall_s"] and any("reused" in n for n in reused["notes"])
        # On the second backend it is timed anew unless eager's own plan happens to be the same single batch.
        eager_own, eager_shared = every[(lang, "eager", "dynamic")], every[(lang, "eager", "dynamic-shared")]
        same_plan = (eager_own["n_batches"], eager_own["padded_tokens"]) == (1, fake_own["padded_tokens"])
        assert any("reused" in n for n in eager_shared["notes"]) == same_plan
    assert every[("ALL", "eager", "dynamic-shared")]["n_batches"] == 2
    # Every row carries its backend's prediction; for the dynamic plan it is the planner's figure of the chosen one.
    fake_en = every[("en", "fake", "dynamic")]
    assert fake_en["predicted_s"] == pytest.approx(fake_en["plan_predicted_s"][fake_en["plan_chosen"]])
    assert every[("ALL", "fake", "static")]["predicted_s"] == pytest.approx(
        sum(every[(lang, "fake", "static")]["predicted_s"] for lang in ("en", "th")))
    # ...and its floor: one per language and backend whatever the batching, never above any prediction. The
    # launch-bound fake's plan is one budget-full call with the padding tie-break: it meets the floor's call count.
    for (lang, backend, batching), row in every.items():
        same_lang = every[(lang, backend, "static")]
        assert row["packing_bound_s"] == pytest.approx(same_lang["packing_bound_s"])
        # (the fake's shared plan may exceed eager's own budget, which the floor is computed within)
        if (backend, batching) != ("eager", "dynamic-shared"):
            assert row["packing_bound_s"] <= row["predicted_s"] + 1e-12, (lang, backend, batching)
    assert fake_en["predicted_s"] == pytest.approx(fake_en["packing_bound_s"], rel=1e-3)
    assert every[("ALL", "eager", "static")]["packing_bound_s"] == pytest.approx(
        sum(every[(lang, "eager", "static")]["packing_bound_s"] for lang in ("en", "th")))


def test_dynamic_shared_is_refused_by_the_train_scenario():
    from xlt_bench.core.errors import InputError
    from xlt_bench.scenarios import get_scenario
    cfg = RunConfig(model="tiny-xlmr", scenario="train", backends=("eager",), batching=("static", "dynamic-shared"))
    with pytest.raises(InputError, match="dynamic-shared"):
        get_scenario("train")().check(cfg, cfg.backends)


def test_shared_partition_table_by_hand():
    import pandas as pd

    from xlt_bench.report.shared_partition import shared_partition_frame, shared_partition_section

    def row(backend, batching, tok_s, batches, waste):
        return dict(task="xnli", lang="ALL", backend=backend, dtype="fp32", batching=batching, throughput_tok_s=tok_s,
                    n_batches=batches, padding_waste=waste,
                    partition_of="eager/fp32" if batching == "dynamic-shared" else None)
    df = pd.DataFrame([row("eager", "dynamic", 1000.0, 10, 0.05), row("eager", "dynamic-shared", 1000.0, 10, 0.05),
                       row("onnxruntime", "dynamic", 3000.0, 20, 0.02),
                       row("onnxruntime", "dynamic-shared", 2500.0, 10, 0.05)])
    t = shared_partition_frame(df, "xnli").set_index("backend")
    assert t.loc["onnxruntime", "vs_first"] == 2.5 and t.loc["eager", "vs_first"] == 1.0
    assert t.loc["onnxruntime", "own_vs_shared"] == 1.2
    assert t.attrs["partition_of"] == "eager/fp32"
    from xlt_bench.report.markdown import render_markdown
    markdown = render_markdown(shared_partition_section(df))
    assert "Backends on one partition" in markdown and "2.50×" in markdown and "1.20×" in markdown
    assert shared_partition_section(df[df["batching"] == "dynamic"]) == []
