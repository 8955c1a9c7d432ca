"""Train scenario and training FLOPs (issue 15)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from xlt_bench.config import RunConfig
from xlt_bench.errors import InputError
from xlt_bench.flops import (EncoderShape, forward_flops, optimizer_flops, train_executed_flops, train_step_flops,
                             train_useful_flops)
from xlt_bench.models import build_model
from xlt_bench.pipeline import run
from xlt_bench.scenarios.train import _loss

TINY = EncoderShape(hidden=4, layers=2, heads=2, ffn=8, head="sequence", num_labels=3)


def test_training_flops_by_hand():
    # forward_flops(TINY, 5) = 3416 (tests/test_flops.py); forward + backward = 3x; K = 2 PGD steps -> 3 passes.
    assert train_step_flops(TINY, 5) == 3 * 3416
    assert train_step_flops(TINY, 5, rows=2, passes=3) == 3 * 3 * 2 * 3416
    assert train_useful_flops(TINY, [5, 5]) == 6 * 3416
    assert train_executed_flops(TINY, [(2, 5)]) == 6 * 3416
    assert optimizer_flops(1000, steps=2) == 2 * 14 * 1000


@pytest.mark.parametrize("model,kind,labels", [("tiny-xlmr", "pair", 3), ("tiny-mbert", "pair", 2),
                                               ("tiny-mbert", "tagging", 7), ("tiny-xlmr", "qa", 2)])
@pytest.mark.parametrize("rows,length", [(2, 9), (3, 16)])
def test_training_flops_match_flop_counter(model, kind, labels, rows, length):
    """Forward + backward as torch counts it, within 1%, for every trainable head."""
    bundle = build_model(model, kind, labels)
    module = bundle.module.train()
    ids = torch.randint(5, 1000, (rows, length))
    mask = torch.ones_like(ids)
    with FlopCounterMode(display=False) as counter:
        logits = module(input_ids=ids, attention_mask=mask)
        if bundle.head == "sequence":
            target = torch.zeros(rows, dtype=torch.long)
        elif bundle.head == "token":
            target = torch.zeros(rows, length, dtype=torch.long)
        else:
            target = torch.zeros(rows, 2, dtype=torch.long)
        _loss(torch, bundle.head, logits.float(), target).backward()
    shape = EncoderShape.from_config(bundle.config, bundle.head, max(bundle.num_labels, 1))
    analytic = train_step_flops(shape, length, rows)
    assert abs(counter.get_total_flops() - analytic) / analytic < 0.01
    assert analytic == 3 * forward_flops(shape, length, rows)


@pytest.mark.slow
def test_train_scenario_rows(tmp_path):
    cfg = RunConfig(model="tiny-xlmr", tasks=("xnli",), langs=("en", "th"), limit=24, backends=("eager",),
                    batching=("static", "dynamic"), scenario="train", threads=1, max_tokens=1024)
    doc = run(cfg, tmp_path / "out")
    per_lang = [r for r in doc["rows"] if r["lang"] != "ALL"]
    assert {(r["lang"], r["batching"]) for r in per_lang} == {("en", "static"), ("en", "dynamic"),
                                                              ("th", "static"), ("th", "dynamic")}
    for r in doc["rows"]:
        assert r["scenario"] == "train"
        assert r["throughput_tok_s"] > 0 and r["flops_useful"] > 0
        assert r["flops_executed"] >= r["flops_useful"]
    static_en = next(r for r in per_lang if r["lang"] == "en" and r["batching"] == "static")
    # Static pads 24 sequences to 128 in one batch of 24 (batch size 32).
    assert static_en["padded_tokens"] == 24 * 128 and static_en["n_batches"] == 1
    shape = EncoderShape(hidden=32, layers=2, heads=2, ffn=64, head="sequence", num_labels=3)
    assert static_en["flops_executed"] == train_executed_flops(shape, [(24, 128)])
    dynamic_en = next(r for r in per_lang if r["lang"] == "en" and r["batching"] == "dynamic")
    assert dynamic_en["padding_waste"] < static_en["padding_waste"]
    assert any(r["lang"] == "ALL" and r["scenario"] == "train" for r in doc["rows"])


def test_train_refuses_backends_that_cannot_train(tmp_path):
    cfg = RunConfig(model="tiny-xlmr", tasks=("xnli",), langs=("en",), backends=("torchscript",),
                    scenario="train")
    with pytest.raises(InputError, match="cannot train.*eager"):
        run(cfg, tmp_path / "out")


def test_train_refuses_int8(tmp_path):
    cfg = RunConfig(model="tiny-xlmr", tasks=("xnli",), langs=("en",), backends=("eager",), dtype=("int8",),
                    scenario="train")
    with pytest.raises(InputError, match="int8"):
        run(cfg, tmp_path / "out")
