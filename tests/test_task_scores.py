"""Metric functions on small hand-computed cases (arithmetic in the comments) and their edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xlt_bench.results import task_scores as m


# --- accuracy / agreement / token accuracy -------------------------------------------------------------------------

def test_accuracy_hand_case():
    # matches at positions 0, 2, 3 -> 3 / 5 = 0.6
    assert m.accuracy(np.array([1, 0, 2, 2, 1]), np.array([1, 1, 2, 2, 0])) == pytest.approx(0.6)


def test_accuracy_empty_and_mismatch():
    assert m.accuracy(np.array([]), np.array([])) is None
    with pytest.raises(ValueError, match="3 predictions but 2"):
        m.accuracy(np.array([1, 2, 3]), np.array([1, 2]))


def test_agreement_flat_and_flattened_tokens():
    # 3 of 4 equal -> 0.75
    assert m.agreement(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2])) == pytest.approx(0.75)
    # 2-D input is flattened: [[1,2],[3,4]] vs [[1,0],[3,4]] -> 3 / 4
    assert m.agreement(np.array([[1, 2], [3, 4]]), np.array([[1, 0], [3, 4]])) == pytest.approx(0.75)
    assert m.agreement([], []) is None


def test_token_accuracy_ignores_unlabelled_positions():
    pred = [np.array([5, 1, 2, 9]), np.array([3, 3])]
    gold = [np.array([-100, 1, 0, -100]), np.array([3, 4])]
    # labelled: sentence 1 -> (1==1, 2!=0), sentence 2 -> (3==3, 3!=4) -> 2 correct / 4 labelled = 0.5
    assert m.token_accuracy(pred, gold) == pytest.approx(0.5)
    assert m.token_accuracy([np.array([1])], [np.array([-100])]) is None
    assert m.token_accuracy([], []) is None


# --- entity F1 -------------------------------------------------------------------------------------------------------

def test_entity_f1_hand_case():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "B-LOC"]]
    # gold entities: PER(0-1), LOC(3), ORG(0) = 3; predicted: PER(0-1), ORG(0), LOC(1) = 3; correct: PER, ORG = 2
    # precision 2/3, recall 2/3 -> F1 2/3
    assert m.entity_f1(pred, gold) == pytest.approx(2 / 3)
    assert m.entity_f1(gold, gold) == pytest.approx(1.0)


def test_entity_f1_strict_vs_default():
    gold = [["I-PER", "I-PER", "O"]]   # ill-formed IOB2 (starts with I-)
    pred = [["B-PER", "I-PER", "O"]]
    # default (conlleval-style) reads gold I-PER I-PER as one PER span over 0-1 -> same as pred -> F1 1.0
    assert m.entity_f1(pred, gold) == pytest.approx(1.0)
    # strict IOB2 has no valid gold entity: 1 predicted, 0 gold, 0 correct -> F1 0
    assert m.entity_f1(pred, gold, strict=True) == pytest.approx(0.0)


def test_entity_f1_edges():
    assert m.entity_f1([], []) is None
    with pytest.raises(ValueError):
        m.entity_f1([["O", "O"]], [["O"]])


# --- SQuAD F1 / EM ---------------------------------------------------------------------------------------------------

def test_normalize_answer_squad():
    # lowercase, punctuation removed, article removed, whitespace collapsed
    assert m.normalize_answer("The  Eiffel Tower!") == ["eiffel", "tower"]
    assert m.normalize_answer("a, an, the") == []


def test_squad_f1_em_hand_case():
    preds = ["the Eiffel Tower", "Paris France", "blue"]
    golds = [["Eiffel Tower"], ["Paris", "France, Paris"], ["red"]]
    # ex1: tokens equal after normalisation -> F1 1, EM 1
    # ex2: vs "paris": overlap 1, P=1/2, R=1 -> F1 2/3; vs "france paris": overlap 2, P=R=1 -> F1 1 (EM 0, order)
    # ex3: no overlap -> 0, 0
    f1, em = m.squad_f1_em(preds, golds)
    assert f1 == pytest.approx((1 + 1 + 0) / 3)
    assert em == pytest.approx(1 / 3)


def test_squad_partial_overlap():
    # pred "big red car" vs gold "red car": overlap 2, P=2/3, R=1 -> F1 = 2*(2/3)/(5/3) = 0.8
    f1, em = m.squad_f1_em(["big red car"], [["red car"]])
    assert f1 == pytest.approx(0.8) and em == 0.0


def test_squad_edges():
    assert m.squad_f1_em([], []) == (None, None)
    # no gold answers: scored against the empty answer; empty prediction matches it
    assert m.squad_f1_em([""], [[]]) == (1.0, 1.0)
    assert m.squad_f1_em(["x"], [[]]) == (0.0, 0.0)


def test_mlqa_language_normalisation():
    # Spanish articles go only with lang="es"
    assert m.normalize_answer("La casa", "es") == ["casa"]
    assert m.normalize_answer("La casa") == ["la", "casa"]
    # Chinese split per character, Unicode punctuation (full-width comma) dropped
    assert m.normalize_answer("北京，中国", "zh") == ["北", "京", "中", "国"]
    # pred 北京 vs gold 北京市: overlap 2, P=1, R=2/3 -> F1 0.8
    f1, _ = m.squad_f1_em(["北京"], [["北京市"]], lang="zh")
    assert f1 == pytest.approx(0.8)


# --- embeddings -----------------------------------------------------------------------------------------------------

def test_mean_cosine_hand_case():
    a = np.array([[1.0, 0.0], [1.0, 1.0]])
    b = np.array([[2.0, 0.0], [1.0, -1.0]])
    # row 0: same direction -> 1; row 1: orthogonal -> 0; mean 0.5
    assert m.mean_cosine(a, b) == pytest.approx(0.5)


def test_mean_cosine_zero_vector_and_edges():
    a = np.array([[0.0, 0.0], [3.0, 4.0]])
    b = np.array([[1.0, 0.0], [3.0, 4.0]])
    # zero row has cosine 0 by definition; other row 1 -> mean 0.5 (and no NaN)
    assert m.mean_cosine(a, b) == pytest.approx(0.5)
    assert m.mean_cosine(np.zeros((0, 3)), np.zeros((0, 3))) is None
    with pytest.raises(ValueError):
        m.mean_cosine(np.ones((2, 3)), np.ones((3, 3)))


def test_retrieval_top1_hand_case():
    src = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    tgt = np.array([[0.9, 0.1], [1.0, 0.2], [1.0, 1.1]])
    # src0 -> cos with tgt0 ~0.994, tgt1 ~0.981, tgt2 ~0.673 -> tgt0 correct
    # src1 -> cos with tgt2 ~0.740 is largest (tgt1 ~0.196) -> wrong
    # src2 -> tgt2 ~0.998 vs tgt0 ~0.780, tgt1 ~0.832 -> correct; 2 / 3
    assert m.retrieval_top1(src, tgt) == pytest.approx(2 / 3)


def test_retrieval_top1_ties_and_edges():
    # both targets identical: tie goes to the lowest index, so row 0 is right and row 1 wrong -> 0.5
    src = np.array([[1.0, 0.0], [1.0, 0.0]])
    tgt = np.array([[1.0, 0.0], [1.0, 0.0]])
    assert m.retrieval_top1(src, tgt) == pytest.approx(0.5)
    assert m.retrieval_top1(np.zeros((0, 2)), np.zeros((0, 2))) is None
    with pytest.raises(ValueError, match="only 1 targets"):
        m.retrieval_top1(np.ones((2, 2)), np.ones((1, 2)))


def test_retrieval_map_at_k():
    src = np.array([[1.0, 0.0]])
    tgt = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.5]])
    # ranking by cosine: t0 (1.0), t2 (0.894), t1 (0.0); relevant {t0, t1}
    # hits at rank 1 (precision 1/1) and rank 3 (precision 2/3) -> AP = (1 + 2/3) / 2 = 5/6
    assert m.retrieval_map_at_k(src, tgt, [[0, 1]], k=20) == pytest.approx(5 / 6)
    # k=2 cuts rank 3: AP = 1 / min(2, 2) = 0.5
    assert m.retrieval_map_at_k(src, tgt, [[0, 1]], k=2) == pytest.approx(0.5)


# --- differences, correlation ----------------------------------------------------------------------------------------

def test_max_abs_diff_with_and_without_mask():
    a = np.array([[[1.0, 2.0], [3.0, 4.0]]])       # [B=1, L=2, C=2]
    b = np.array([[[1.5, 2.0], [3.0, 9.0]]])
    # |diff| = [[0.5, 0], [0, 5]] -> max 5
    assert m.max_abs_diff(a, b) == pytest.approx(5.0)
    # mask [B, L] keeps only token 0 -> max 0.5
    assert m.max_abs_diff(a, b, mask=np.array([[1, 0]])) == pytest.approx(0.5)
    assert m.max_abs_diff(a, b, mask=np.array([[0, 0]])) is None
    with pytest.raises(ValueError):
        m.max_abs_diff(a, b[:, :1])


def test_correlation_hand_case():
    # y = 2x: perfect linear and monotone -> both 1
    r = m.correlation([1, 2, 3, 4], [2, 4, 6, 8])
    assert r == {"pearson": pytest.approx(1.0), "spearman": pytest.approx(1.0), "n": 4}
    # x = 1,2,3 ; y = 1,3,2: ranks (1,2,3) vs (1,3,2): d^2 = 0+1+1 = 2 -> spearman 1 - 6*2/(3*8) = 0.5
    # pearson: dx = -1,0,1 ; dy = -1,1,0 -> cov 1, sx^2 = 2, sy^2 = 2 -> 0.5
    r = m.correlation([1, 2, 3], [1, 3, 2])
    assert r["pearson"] == pytest.approx(0.5) and r["spearman"] == pytest.approx(0.5)


def test_correlation_degenerate_cases():
    assert m.correlation([1, 2], [3, 4]) == {"pearson": None, "spearman": None, "n": 2}
    assert m.correlation([1, 1, 1], [1, 2, 3])["pearson"] is None          # constant x
    # None / NaN pairs are dropped before counting: of 4 pairs only (1, 1) is usable -> n 1, no coefficients
    r = m.correlation([1, None, 3, math.nan], [1, 2, None, 4])
    assert r == {"pearson": None, "spearman": None, "n": 1}


# --- decoding ------------------------------------------------------------------------------------------------------

def test_tag_predictions_first_subword_only():
    logits = [np.array([[9, 0, 0], [0, 5, 0], [0, 0, 5], [0, 5, 0], [5, 0, 0]])]   # argmax 0,1,2,1,0
    labels = [np.array([-100, 1, -100, 2, -100])]                                   # [CLS] w1 ## w2 [SEP]
    preds, golds = m.tag_predictions(logits, labels)
    assert preds[0].tolist() == [1, 1] and golds[0].tolist() == [1, 2]
    assert m.ids_to_tags(preds, ["O", "B-PER", "I-PER"]) == [["B-PER", "B-PER"]]
    with pytest.raises(ValueError, match="beyond the logits"):
        m.tag_predictions([np.zeros((2, 3))], [np.array([-100, 1, 2])])


def test_best_span():
    logits = np.array([[0.0, 0.0], [5.0, 1.0], [1.0, 4.0], [6.0, 0.0]])
    # start must not follow end: the best pair is s=1, e=2 with 5 + 4 = 9 (s=3 has only e=3: 6 + 0 = 6)
    assert m.best_span(logits) == (1, 2, 9.0)
    # max_answer_len=1 allows only s == e: candidates 0, 6, 5, 6 -> first maximum at (1, 1)
    assert m.best_span(logits, max_answer_len=1) == (1, 1, 6.0)
    # positions 1-2 are question tokens: only (0,0)=0, (0,3)=0, (3,3)=6 remain -> (3, 3)
    assert m.best_span(logits, allowed=np.array([1, 0, 0, 1])) == (3, 3, 6.0)
    assert m.best_span(logits, allowed=np.zeros(4)) is None
    with pytest.raises(ValueError):
        m.best_span(np.zeros((4, 3)))
