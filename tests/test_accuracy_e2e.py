"""End to end: a tiny BERT trained inside the test on a rule it can learn, saved as a local HF directory
(safetensors) with its own vocab.txt, then benchmarked through the whole pipeline on local JSONL files.

Checks that quality travels with speed: accuracy well above chance and the same for static and dynamic batching,
agreement 1.0 (fp32 eager dynamic vs static) and >= 0.99 for ONNX Runtime with max |Δ| <= 1e-4; and, on a parallel
Tatoeba-style set where 18 of 24 pairs are the same sentence on both sides and the other 6 are rotated (each
source's own text sits at another index), top-1 retrieval exactly 18/24 and a mean cosine below 1 by the rotated
pairs only.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

WORDS = [f"w{i}" for i in range(8)]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
LANGS = ("en", "de")
N_TEST, FLIP_EVERY = 48, 8
RULE_ACCURACY = 1 - len(range(0, N_TEST, FLIP_EVERY)) / N_TEST      # 42/48 for a model that learned the rule
N_PARALLEL, N_ALIGNED = 24, 18      # Tatoeba-style pairs; the last 6 are rotated: top-1 retrieval is 18/24


def _pair(rng: random.Random, positive: bool) -> dict:
    """Rule: label 1 exactly when text_b starts with a word from the first half of the vocabulary. text_a has 3 words
    (so the rule's position is fixed), text_b 1 to 8 (so lengths differ and dynamic batches differ from static).
    A 2-layer model learns it within a hundred steps, so its predictions are far from random."""
    half = len(WORDS) // 2
    a = [rng.choice(WORDS) for _ in range(3)]
    first_b = rng.choice(WORDS[:half] if positive else WORDS[half:])
    b = [first_b] + [rng.choice(WORDS) for _ in range(rng.randrange(8))]
    return {"text_a": " ".join(a), "text_b": " ".join(b), "label": int(positive)}


def _pairs(rng: random.Random, n: int) -> list[dict]:
    return [_pair(rng, positive=i % 2 == 0) for i in range(n)]


def _train(model, tokenizer, rng: random.Random, steps: int = 150, batch: int = 64) -> None:
    """AdamW on freshly drawn pairs, tokenized once up front; one thread (deterministic, kind to a shared CPU)."""
    import torch
    rows = _pairs(rng, steps * batch)
    enc = tokenizer([r["text_a"] for r in rows], [r["text_b"] for r in rows], return_tensors="pt", padding=True)
    labels = torch.tensor([r["label"] for r in rows])
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model.train()
        for step in range(steps):
            pick = order[step * batch:(step + 1) * batch]
            loss = model(**{k: v[pick] for k, v in enc.items()}, labels=labels[pick]).loss
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    finally:
        torch.set_num_threads(threads)
        model.eval()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A 2-layer BERT fine-tuned for a few seconds, its vocab, and local data in the DESIGN §4 layout."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast
    root = tmp_path_factory.mktemp("e2e")
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(SPECIALS + WORDS) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=False)
    config = BertConfig(vocab_size=len(SPECIALS) + len(WORDS), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64, num_labels=2,
                        pad_token_id=0, attn_implementation="eager", hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    _train(model, tokenizer, random.Random(0))
    model_dir = root / "model"
    model.save_pretrained(model_dir, safe_serialization=True)
    data = root / "data"
    rng = random.Random(1)
    for lang in LANGS:
        rows = _pairs(rng, N_TEST)
        for row in rows[::FLIP_EVERY]:       # gold disagrees with the rule here: the model must get these wrong
            row["label"] = 1 - row["label"]
        _write_jsonl(data / "pawsx" / f"{lang}.jsonl", rows)
    # Parallel sentences: the first N_ALIGNED pairs have the same text on both sides; the rest are rotated by one, so
    # each of those sources finds its own text at a neighbouring index and retrieval must count it wrong.
    sentences = sorted({" ".join(rng.choice(WORDS) for _ in range(4)) for _ in range(40)})[:N_PARALLEL]
    rotated = sentences[N_ALIGNED:]
    targets = sentences[:N_ALIGNED] + rotated[1:] + rotated[:1]
    _write_jsonl(data / "tatoeba" / "de.jsonl", [{"text": s, "en": t} for s, t in zip(sentences, targets)])
    return {"model": model_dir, "vocab": vocab, "data": data, "root": root}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture(scope="module")
def results(trained) -> dict:
    from xlt_bench.core.config import RunConfig
    from xlt_bench.run.pipeline import run
    cfg = RunConfig(model=str(trained["model"]), tokenizer=str(trained["vocab"]), data=f"local:{trained['data']}",
                    tasks=("pawsx", "tatoeba"), langs=("all",), backends=("eager", "onnxruntime"),
                    batching=("static", "dynamic"), batch_size=16, max_length=32, max_tokens=256, cost_model=False,
                    threads=1, cache_dir=str(trained["root"] / "cache"))
    # Every language of both tasks is asked for; those without a local file are skipped (pawsx en, de; tatoeba de).
    return run(cfg, trained["root"] / "out")


def _rows(results: dict, task: str, lang: str) -> dict[tuple[str, str], dict]:
    return {(r["backend"], r["batching"]): r for r in results["rows"] if r["task"] == task and r["lang"] == lang}


def test_the_model_was_loaded_from_its_directory_with_a_trained_head(trained):
    from xlt_bench.backends.models import build_model
    bundle = build_model(str(trained["model"]), "pair", 2)
    assert bundle.trained_head and not bundle.is_preset and bundle.num_labels == 2
    assert (trained["model"] / "model.safetensors").is_file()


@pytest.mark.parametrize("lang", LANGS)
def test_accuracy_well_above_chance_and_equal_across_batching(results, lang):
    rows = _rows(results, "pawsx", lang)
    static, dynamic = rows[("eager", "static")], rows[("eager", "dynamic")]
    # Chance is 0.5; a model that learned the rule misses exactly the rows whose gold label was flipped.
    assert static["accuracy"] == pytest.approx(RULE_ACCURACY), static["accuracy"]
    assert static["accuracy_metric"] == "accuracy"
    assert dynamic["accuracy"] == static["accuracy"]
    assert rows[("onnxruntime", "static")]["accuracy"] == pytest.approx(static["accuracy"], abs=1 / N_TEST)


@pytest.mark.parametrize("lang", LANGS)
def test_agreement_and_parity_against_the_reference(results, lang):
    rows = _rows(results, "pawsx", lang)
    reference = rows[("eager", "static")]
    assert reference["is_reference"] and reference["agreement"] == 1.0 and reference["max_abs_diff"] == 0.0
    dynamic = rows[("eager", "dynamic")]
    assert dynamic["agreement"] == 1.0 and dynamic["max_abs_diff"] <= 1e-4 and dynamic["parity_ok"] is True
    for batching in ("static", "dynamic"):
        ort = rows[("onnxruntime", batching)]
        assert ort["agreement"] >= 0.99 and ort["max_abs_diff"] <= 1e-4 and ort["parity_ok"] is True


def test_alignment_counts_exactly_the_rotated_pairs_wrong(results):
    rows = _rows(results, "tatoeba", "de")
    assert set(rows) == {(b, m) for b in ("eager", "onnxruntime") for m in ("static", "dynamic")}
    for row in rows.values():
        assert row["accuracy_metric"] == "retrieval_top1"
        # Each aligned pair's own target is identical text (cosine 1, its nearest); each rotated source's identical
        # text sits at another index, so retrieval misses exactly those.
        assert row["alignment_top1"] == row["accuracy"] == N_ALIGNED / N_PARALLEL
        # The aligned pairs contribute 1 each to the mean cosine; the rotated ones pair different sentences.
        rotated_mean = (row["alignment_cosine"] * N_PARALLEL - N_ALIGNED) / (N_PARALLEL - N_ALIGNED)
        assert -1.0 <= rotated_mean < 1.0 - 1e-4, row["alignment_cosine"]
        assert row["agreement"] == 1.0
    assert not any("random-weight" in n for row in rows.values() for n in row["notes"])


def test_all_rows_carry_the_mean_accuracy(results):
    all_row = next(r for r in results["rows"] if r["task"] == "pawsx" and r["lang"] == "ALL"
                   and r["backend"] == "eager" and r["batching"] == "static")
    per_lang = [_rows(results, "pawsx", lang)[("eager", "static")]["accuracy"] for lang in LANGS]
    assert all_row["accuracy"] == pytest.approx(float(np.mean(per_lang)))
