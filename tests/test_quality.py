"""results/quality.py on hand-made outputs: every task kind's metric, agreement/max |Δ|/parity, alignment, null reasons."""

from __future__ import annotations

import numpy as np
import pytest

from xlt_bench.results import quality
from xlt_bench.data.tasks import get_task
from xlt_bench.data.tokenization import IGNORE_LABEL, EncodedSet

X = IGNORE_LABEL


def _set(task: str, outs_count: int, example_index, labels=None, n_examples=None, lang="de",
         **task_fields) -> EncodedSet:
    spec = get_task(task)
    ids = [np.arange(3, dtype=np.int64) for _ in range(outs_count)]
    example_index = np.asarray(example_index, dtype=np.int64)
    return EncodedSet(task=task, lang=lang, kind=spec.kind, input_ids=ids, token_type_ids=None,
                      example_index=example_index, labels=labels,
                      n_examples=n_examples if n_examples is not None else int(example_index.max()) + 1, **task_fields)


def _quality(task, encoded, outs, trained_head=True, random_weights=False):
    return quality.evaluate_outputs(get_task(task), encoded, outs, trained_head=trained_head,
                                     random_weights=random_weights)


# --- task metrics per kind -------------------------------------------------------------------------------------

def test_pair_accuracy_is_argmax_against_gold():
    outs = [np.array([2.0, 0.1, 0.0]), np.array([0.0, 1.0, 0.5]), np.array([0.0, 0.2, 0.1])]
    encoded = _set("xnli", 3, [0, 1, 2], labels=[0, 1, 2])
    assert list(quality.predictions(encoded, outs)) == [0, 1, 1]
    q = _quality("xnli", encoded, outs)
    assert q.accuracy == pytest.approx(2 / 3) and q.accuracy_metric == "accuracy"


def test_multiple_choice_picks_the_higher_scoring_sequence_per_example():
    # Example 0: choice2 scores higher; example 1: choice1. Gold says 1 and 1 -> one right of two.
    outs = [np.array([0.1]), np.array([0.9]), np.array([0.7]), np.array([-0.3])]
    encoded = _set("xcopa", 4, [0, 0, 1, 1], labels=[1, 1])
    assert list(quality.predictions(encoded, outs)) == [1, 0]
    assert _quality("xcopa", encoded, outs).accuracy == pytest.approx(0.5)


def _tag_logits(ids, n_labels):
    out = np.zeros((len(ids), n_labels))
    out[np.arange(len(ids)), ids] = 5.0
    return out


def test_panx_entity_f1_counts_whole_entities_at_first_subwords():
    # Tags: O B-PER I-PER B-ORG I-ORG B-LOC I-LOC = 0..6. Positions 0 and last are [CLS]/[SEP]; position 3 is a
    # continuation sub-word (ignored, its prediction must not matter).
    gold = np.array([X, 1, 2, X, 0, 5, X])            # PER(2 words) O LOC
    pred_ids = [0, 1, 2, 3, 0, 0, 0]                   # PER right, LOC missed, junk on the ignored sub-word
    encoded = _set("panx", 1, [0], labels=[gold])
    q = _quality("panx", encoded, [_tag_logits(pred_ids, 7)])
    # 1 predicted entity (correct), 2 gold: precision 1, recall 1/2 -> F1 2/3.
    assert q.accuracy == pytest.approx(2 / 3) and q.accuracy_metric == "f1_entity"
    assert list(quality.predictions(encoded, [_tag_logits(pred_ids, 7)])) == [1, 2, 0, 0]


def test_udpos_token_accuracy_over_labelled_tokens_only():
    gold = [np.array([X, 7, 10, X]), np.array([X, 12, X])]
    outs = [_tag_logits([3, 7, 11, 3], 17), _tag_logits([0, 12, 0], 17)]
    q = _quality("udpos", _set("udpos", 2, [0, 1], labels=gold), outs)
    assert q.accuracy == pytest.approx(2 / 3) and q.accuracy_metric == "token_accuracy"


def _qa_set():
    # One example split into two windows; context "Paris is in France". Window 0 covers "Paris is", window 1 "is in
    # France". Position 0 is [CLS] and position 1 a question token: offsets (-1, -1), never part of an answer.
    context = "Paris is in France"
    offsets = [np.array([(-1, -1), (-1, -1), (0, 5), (6, 8), (-1, -1)]),
               np.array([(-1, -1), (-1, -1), (6, 8), (9, 11), (12, 18), (-1, -1)])]
    return _set("xquad", 2, [0, 0], labels=[{"text": ["France"], "answer_start": [12]}], n_examples=1,
                offsets=offsets, contexts=[context], example_ids=["q0"])


def _span_logits(n, start, end, high=5.0, low=-5.0):
    out = np.full((n, 2), low)
    out[start, 0], out[end, 1] = high, high
    return out


def test_qa_best_span_over_windows_maps_back_to_context_text():
    encoded = _qa_set()
    # Window 0 would answer "Paris" (score 2), window 1 "France" (score 8): the better window wins.
    w0 = _span_logits(5, 2, 2, high=1.0)
    w1 = _span_logits(6, 4, 4, high=4.0)
    w1[0] = 50.0      # [CLS] scores highest but is not context: must be excluded
    assert quality.qa_answer_texts(encoded, [w0, w1]) == ["France"]
    q = _quality("xquad", encoded, [w0, w1])
    assert (q.accuracy, q.exact_match, q.accuracy_metric) == (1.0, 1.0, "f1")
    # A span over "in France": F1 = 2 * (1/2 * 1) / (1/2 + 1) = 2/3, EM 0.
    q = _quality("xquad", encoded, [w0, _span_logits(6, 3, 4, high=4.0)])
    assert q.accuracy == pytest.approx(2 / 3) and q.exact_match == 0.0
    assert q.as_row_fields("qa")["exact_match"] == 0.0


def _tatoeba_set(n=3, lang="de"):
    # Own-language sides first, then English, as tokenization stores them.
    return _set("tatoeba", 2 * n, np.tile(np.arange(n), 2), n_examples=n, lang=lang,
                side=np.repeat([0, 1], n), sides=("text", "en"))


def test_retrieval_top1_and_alignment_from_both_sides():
    src = [np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])]
    # Pair 0's English side (cosine 0.707) loses to pair 2's (cosine 1/sqrt(1.04) = 0.981): one miss of three.
    tgt = [np.array([0.7, 0.7, 0.0]), np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.2])]
    encoded = _tatoeba_set()
    q = _quality("tatoeba", encoded, src + tgt, trained_head=False)
    assert list(quality.predictions(encoded, src + tgt)) == [2, 1, 2]
    assert q.accuracy == pytest.approx(2 / 3) and q.alignment_top1 == pytest.approx(2 / 3)
    cos = [1 / np.sqrt(2), 1.0, 0.2 / np.sqrt(1.04)]
    assert q.alignment_cosine == pytest.approx(np.mean(cos))
    assert q.notes == []                       # a pretrained checkpoint needs no head for retrieval


def test_retrieval_on_random_weights_is_reported_with_a_note():
    encoded = _tatoeba_set(2)
    outs = [np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([1.0, 0.0]), np.array([0.0, 1.0])]
    q = _quality("tatoeba", encoded, outs, trained_head=False, random_weights=True)
    assert q.accuracy == 1.0 and any("random-weight" in n for n in q.notes)


def test_non_parallel_retrieval_uses_map_at_20_and_no_alignment():
    encoded = _set("lareqa", 4, [0, 1, 0, 1], n_examples=2, lang="en", side=np.array([0, 0, 1, 1]),
                   sides=("text", "en"))
    # Query 0's answer ranks second, query 1's first: MAP = (1/2 + 1) / 2.
    outs = [np.array([0.1, 1.0]), np.array([0.0, 1.0]), np.array([0.6, 0.8]), np.array([0.0, 1.0])]
    q = _quality("lareqa", encoded, outs)
    assert q.accuracy == pytest.approx(0.75) and q.accuracy_metric == "retrieval_map20"
    assert q.alignment_cosine is None and q.alignment_top1 is None


# --- null accuracy and why ---------------------------------------------------------------------------------------

def test_accuracy_null_without_trained_head_without_labels_and_on_synthetic_inputs():
    outs = [np.array([1.0, 0.0, 0.0])]
    no_head = _quality("xnli", _set("xnli", 1, [0], labels=[0]), outs, trained_head=False, random_weights=True)
    assert no_head.accuracy is None and "random weights" in no_head.notes[0]
    no_labels = _quality("xnli", _set("xnli", 1, [0]), outs)
    assert no_labels.accuracy is None and "no gold labels" in no_labels.notes[0]
    synthetic = _quality("tatoeba", _set("tatoeba", 2, [0, 0], n_examples=1, synthetic=True, side=np.array([0, 1])),
                         [np.ones(2), np.ones(2)])
    assert synthetic.accuracy is None and synthetic.alignment_cosine is None and "synthetic" in synthetic.notes[0]


# --- agreement, max |Δ|, parity through fill_quality --------------------------------------------------------------

def _row(backend, dtype, batching, lang="de"):
    return {"task": "xnli", "lang": lang, "backend": backend, "dtype": dtype, "batching": batching, "notes": []}


def test_fill_quality_agreement_max_diff_and_parity():
    ref = [np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0]), np.array([0.5, 0.4, 0.0])]
    close = [o + 5e-5 for o in ref]                                       # fp32 within tolerance
    flipped = [o.copy() for o in ref]
    flipped[3] = np.array([0.4, 0.5, 0.0])                                # one of four flips, |Δ| = 0.1
    outputs = {("de", "eager", "fp32", "static"): ref, ("de", "eager", "fp32", "dynamic"): close,
               ("de", "onnxruntime", "fp32", "static"): flipped, ("de", "eager", "bf16", "static"): flipped}
    rows = [_row(*key[1:]) for key in outputs]
    encoded = _set("xnli", 4, [0, 1, 2, 3], labels=[0, 1, 2, 1])
    quality.fill_quality(get_task("xnli"), [encoded], rows, outputs, trained_head=True, random_weights=False)
    reference, dynamic, ort, bf16 = rows
    assert (reference["agreement"], reference["max_abs_diff"], reference["parity_ok"]) == (1.0, 0.0, True)
    assert reference["is_reference"] and not dynamic["is_reference"]
    assert dynamic["agreement"] == 1.0 and dynamic["max_abs_diff"] == pytest.approx(5e-5) and dynamic["parity_ok"]
    assert ort["agreement"] == 0.75 and ort["max_abs_diff"] == pytest.approx(0.1) and ort["parity_ok"] is False
    assert bf16["parity_ok"] is None and any("not judged" in n for n in bf16["notes"])
    # Gold [0, 1, 2, 1]: the reference predicts [0, 1, 2, 0], the flipped configuration [0, 1, 2, 1].
    assert reference["accuracy"] == 0.75 and ort["accuracy"] == 1.0


def _compare(encoded, dtype, outputs, reference):
    """agreement, max |Δ| and parity of one configuration against the reference, as fill_quality computes them."""
    diff = quality.max_abs_diff(outputs, reference)
    agreement = quality.agreement(quality.predictions(encoded, outputs), quality.predictions(encoded, reference))
    return {"agreement": agreement,
            "max_abs_diff": diff, "parity_ok": quality.parity(dtype, diff)}


def test_tagging_agreement_compares_labelled_positions_only():
    labels = [np.array([X, 1, X, 0, X])]
    ref = [_tag_logits([0, 1, 0, 0, 0], 7)]
    other = [_tag_logits([3, 1, 4, 0, 6], 7)]       # differs only where there is no label
    encoded = _set("panx", 1, [0], labels=labels)
    out = _compare(encoded, "fp32", other, ref)
    assert out["agreement"] == 1.0 and out["parity_ok"] is False


def test_retrieval_agreement_compares_retrieved_indices():
    encoded = _tatoeba_set(2)
    ref = [np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([1.0, 0.1]), np.array([0.1, 1.0])]
    swapped = ref[:2] + [ref[3], ref[2]]            # both sentences now retrieve the other pair's English side
    out = _compare(encoded, "fp32", swapped, ref)
    assert out["agreement"] == 0.0


def test_qa_agreement_on_chosen_spans():
    encoded = _qa_set()
    ref = [_span_logits(5, 2, 2, high=1.0), _span_logits(6, 4, 4, high=4.0)]
    same_span = [ref[0] * 1.01, ref[1] * 1.01]
    other_span = [ref[0], _span_logits(6, 3, 4, high=4.0)]
    assert _compare(encoded, "fp32", same_span, ref)["agreement"] == 1.0
    assert _compare(encoded, "fp32", other_span, ref)["agreement"] == 0.0


def test_no_reference_in_the_run_leaves_agreement_null_with_a_note():
    outputs = {("de", "onnxruntime", "fp32", "static"): [np.array([1.0, 0.0, 0.0])]}
    rows = [_row("onnxruntime", "fp32", "static")]
    quality.fill_quality(get_task("xnli"), [_set("xnli", 1, [0], labels=[0])], rows, outputs,
                          trained_head=True, random_weights=False)
    assert rows[0]["agreement"] is None and rows[0]["parity_ok"] is None and rows[0]["accuracy"] == 1.0
    assert any("no reference" in n for n in rows[0]["notes"])


def test_max_abs_diff_rejects_mismatched_output_counts():
    with pytest.raises(ValueError):
        quality.max_abs_diff([np.zeros(2)], [np.zeros(2), np.zeros(2)])


# --- through the data side's real encodings (tiny WordPiece vocabulary from conftest) -------------------------------

def test_tagging_scores_first_subwords_of_a_real_encoding(tiny_tokenizer):
    from xlt_bench.data.tokenization import encode
    spec = get_task("panx")
    # "cats" splits into cat ##s: only "cat" carries the tag, so predicting anything on "##s" cannot hurt.
    examples = [{"tokens": ["the", "cats", "sat", "in", "paris"], "tags": [0, 1, 2, 0, 5]}]
    encoded = encode(spec, "en", examples, tiny_tokenizer, max_length=32, vocab_size=64, takes_token_types=True)
    gold = encoded.labels[0]
    pred_ids = np.where(gold == X, 6, gold)                     # I-LOC everywhere there is no label
    outs = [_tag_logits(pred_ids, 7)]
    assert _quality("panx", encoded, outs).accuracy == 1.0
    pred_ids[list(gold).index(5)] = 0                            # miss the LOC entity: P = 1, R = 1/2
    assert _quality("panx", encoded, [_tag_logits(pred_ids, 7)]).accuracy == pytest.approx(2 / 3)


def test_qa_spans_map_back_through_real_offsets_and_windows(tiny_tokenizer):
    from xlt_bench.data.tokenization import encode
    spec = get_task("xquad")
    context = "the cat sat on the mat . the dog lives in london . the cat lives in paris ."
    examples = [{"id": "q1", "question": "where lives the cat ?", "context": context,
                 "answers": {"text": ["paris"], "answer_start": [context.index("paris")]}}]
    encoded = encode(spec, "en", examples, tiny_tokenizer, max_length=16, vocab_size=64, takes_token_types=True)
    assert encoded.n_sequences > 1                                   # the context is split over several windows
    paris, london = tiny_tokenizer.convert_tokens_to_ids(["paris", "london"])
    outs = []
    for ids, offsets in zip(encoded.input_ids, encoded.offsets):
        logits = np.zeros((len(ids), 2))
        for token, score in ((paris, 3.0), (london, 2.0)):
            hit = (ids == token) & (offsets[:, 0] >= 0)
            logits[hit] = score
        outs.append(logits)
    assert quality.qa_answer_texts(encoded, outs) == ["paris"]
    q = _quality("xquad", encoded, outs)
    assert (q.accuracy, q.exact_match) == (1.0, 1.0)
