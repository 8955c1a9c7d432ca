"""Offline batching strategies: hand-computed plans, what each declares, and that a strategy is one class: one defined
here, registered at test time, runs end to end through `xlt-bench run` on the fake backend."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xlt_bench.batching.planners import Batch, CostModel
from xlt_bench.core.errors import InputError
from xlt_bench.batching.strategies import (STRATEGIES, colour_of, get_strategy, headline, needs_cost_model, plan,
                                  reference_order, report_order, uses_token_budget)
from xlt_bench.batching.strategies.base import BatchingStrategy, PlanRequest, SharedPlan

BUILT_IN = ("static", "static-longest", "dynamic", "dynamic-shared")
LENGTHS = np.array([5, 30, 7, 12, 3, 9])


def shapes(batches) -> list[tuple[int, int]]:
    return [b.shape for b in batches]


def test_static_pads_every_row_to_max_length():
    batches, info = plan("static", LENGTHS, PlanRequest(batch_size=4, max_length=32))
    assert shapes(batches) == [(4, 32), (2, 32)] and info is None
    assert batches[1].indices.tolist() == [4, 5]


def test_static_longest_pads_each_batch_to_its_longest():
    batches, _ = plan("static-longest", LENGTHS, PlanRequest(batch_size=4, max_length=32))
    assert shapes(batches) == [(4, 30), (2, 9)]


def test_dynamic_without_cost_model_fills_the_budget_over_sorted_lengths():
    # sorted 3,5,7,9,12,30; budget 30 tokens: [3,5,7] (3x7=21; +9 -> 4x9=36 > 30), [9,12] (2x12=24), [30]
    batches, info = plan("dynamic", LENGTHS, PlanRequest(batch_size=4, max_length=30, max_tokens=30))
    assert shapes(batches) == [(3, 7), (2, 12), (1, 30)] and info.chosen == "greedy" and info.budget == 30


def test_dynamic_budget_defaults_to_batch_size_full_rows_and_never_below_max_length():
    _, info = plan("dynamic", LENGTHS, PlanRequest(batch_size=2, max_length=32))
    assert info.budget == 64                                    # 2 x 32
    _, info = plan("dynamic", LENGTHS, PlanRequest(batch_size=2, max_length=32, max_tokens=10))
    assert info.budget == 32                                    # one sequence of max_length at least


def test_dynamic_shared_plans_with_the_first_backends_model_and_budget():
    own = PlanRequest(batch_size=4, max_length=32, max_tokens=4096, cost=CostModel(1.0, 0.0))
    shared = PlanRequest(**{**own.__dict__, "shared": SharedPlan(None, 30, "eager/fp32")})
    batches, info = plan("dynamic-shared", LENGTHS, shared)
    # The shared budget 30 is raised to one sequence of max_length (32), as every budget is: [3,5,7] [9,12] [30]
    assert shapes(batches) == [(3, 7), (2, 12), (1, 30)] and info.budget == 32 and info.chosen == "greedy"
    with pytest.raises(RuntimeError, match="first backend's cost model"):
        plan("dynamic-shared", LENGTHS, own)


def test_too_long_and_empty_inputs():
    with pytest.raises(ValueError, match="exceeds max_length"):
        plan("static", [40], PlanRequest(batch_size=4, max_length=32))
    assert plan("dynamic", [], PlanRequest(batch_size=4, max_length=32)) == ([], None)


def test_what_the_built_in_strategies_declare():
    assert reference_order()[:2] == ("static", "static-longest")
    assert [n for n in report_order() if n in BUILT_IN] == list(BUILT_IN)
    assert [get_strategy(n).is_reference for n in BUILT_IN] == [True, True, False, False]
    assert needs_cost_model(["static", "static-longest"]) is False and needs_cost_model(["static", "dynamic"])
    assert uses_token_budget(["dynamic-shared"]) and not uses_token_budget(["static-longest"])
    assert all(get_strategy(n).pads for n in BUILT_IN)
    assert all(get_strategy(n).requires_backend_feature is None for n in BUILT_IN)
    assert colour_of("dynamic") == "#2e8b57" and colour_of("not-a-strategy") is None
    assert get_strategy("dynamic-shared").not_trainable_reason and get_strategy("dynamic").not_trainable_reason is None
    assert [get_strategy(n).uses_shared_plan for n in BUILT_IN] == [False, False, False, True]
    assert headline(["static-longest", "dynamic-shared", "dynamic"]) == "dynamic"
    assert headline(["dynamic-shared", "static-longest"]) == "dynamic-shared"   # none headlines: the first given


class PairsReversed(BatchingStrategy):
    """Test-only: two sequences per batch in reverse dataset order, each batch padded to its longest."""

    name = "test-pairs-reversed"
    report_order = 5
    colour = "#123456"

    def plan(self, lengths, request):
        order = np.arange(len(lengths))[::-1]
        return [Batch(order[i:i + 2], int(lengths[order[i:i + 2]].max())) for i in range(0, len(order), 2)], None


class NeedsTraining(PairsReversed):
    name = "test-needs-trainable"
    requires_backend_feature = "trainable"


@pytest.fixture
def registered():
    names = []

    def register(cls):
        STRATEGIES.register(cls.name, cls)
        names.append(cls.name)

    yield register
    for name in names:
        STRATEGIES.unregister(name)


@pytest.mark.slow
def test_a_strategy_defined_in_one_class_runs_end_to_end(tmp_path, monkeypatch, registered):
    from xlt_bench.cli import main
    registered(PairsReversed)
    monkeypatch.setenv("XLT_FAKE_COST", "fixed_ms=1")
    out = tmp_path / "run"
    code = main(["run", "--model", "tiny-xlmr", "--backends", "fake", "--tasks", "xnli", "--langs", "en,de",
                 "--limit", "5", "--batching", "static,test-pairs-reversed", "--min-repeats", "1", "--out", str(out),
                 "--no-report"])
    assert code == 0
    rows = json.loads((out / "results.json").read_text(encoding="utf-8"))["rows"]
    mine = {r["lang"]: r for r in rows if r["batching"] == "test-pairs-reversed"}
    assert set(mine) == {"en", "de", "ALL"}
    for lang in ("en", "de"):
        assert mine[lang]["n_batches"] == -(-mine[lang]["n_sequences"] // 2)   # pairs: ceil(n / 2) calls
        static = next(r for r in rows if r["batching"] == "static" and r["lang"] == lang)
        assert mine[lang]["real_tokens"] == static["real_tokens"]            # the same sequences, other batches
        assert mine[lang]["padded_tokens"] < static["padded_tokens"]         # padded to each pair's longest
    assert report_order().index("test-pairs-reversed") < report_order().index("static-longest")


def test_a_strategy_needing_a_backend_feature_is_refused_with_those_that_have_it(registered, capsys):
    from xlt_bench.cli import main
    registered(NeedsTraining)
    assert main(["run", "--model", "tiny-xlmr", "--backends", "fake", "--tasks", "xnli", "--langs", "en",
                 "--batching", "test-needs-trainable", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "field 'batching': batching 'test-needs-trainable' needs backends with trainable; fake does not" in err
    assert "backends that can run it: eager, compile" in err


def test_the_train_scenario_refuses_a_strategy_that_says_why():
    from xlt_bench.core.config import RunConfig
    from xlt_bench.scenarios import get_scenario
    cfg = RunConfig(model="tiny-xlmr", scenario="train", backends=("eager",), batching=("dynamic-shared",))
    with pytest.raises(InputError, match="batching 'dynamic-shared' compares inference backends"):
        get_scenario("train")().check(cfg, cfg.backends)
