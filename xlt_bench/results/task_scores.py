"""Task metrics, agreement between configurations, embedding alignment, and decoding raw head outputs.

Pure numpy/pandas (seqeval and scipy imported where used). Conventions:
- Scores are fractions in [0, 1] (not percentages).
- No input to score means no score: functions return None for empty input rather than 0 or NaN, so a report shows a
  blank instead of a made-up figure. Mismatched lengths are a ValueError (a caller bug, not user input).
"""

from __future__ import annotations

import collections
import re
import string
import unicodedata
from collections.abc import Sequence

import numpy as np

from xlt_bench.data.tasks import IGNORE_LABEL
MAX_ANSWER_TOKENS = 30


def _check_same_length(a, b, what: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"{what}: {len(a)} predictions but {len(b)} references")


# --- classification, tagging -------------------------------------------------------------------------------------

def accuracy(pred: np.ndarray, gold: np.ndarray) -> float | None:
    """Share of predictions equal to the gold label; None when there is nothing to score."""
    pred, gold = np.asarray(pred).ravel(), np.asarray(gold).ravel()
    _check_same_length(pred, gold, "accuracy")
    if pred.size == 0:
        return None
    return float(np.mean(pred == gold))


def agreement(pred: np.ndarray, reference: np.ndarray) -> float | None:
    """Share of predictions equal to the reference configuration's (DESIGN §3). For token predictions pass the
    flattened arrays of labelled positions only."""
    pred, reference = np.asarray(pred).ravel(), np.asarray(reference).ravel()
    _check_same_length(pred, reference, "agreement")
    if pred.size == 0:
        return None
    return float(np.mean(pred == reference))


def token_accuracy(pred: list[np.ndarray], gold: list[np.ndarray], ignore: int = IGNORE_LABEL) -> float | None:
    """Accuracy over all labelled tokens of all sentences (positions where gold == ignore are skipped)."""
    _check_same_length(pred, gold, "token_accuracy")
    correct = total = 0
    for p, g in zip(pred, gold):
        p, g = np.asarray(p).ravel(), np.asarray(g).ravel()
        _check_same_length(p, g, "token_accuracy (sentence)")
        keep = g != ignore
        correct += int(np.sum(p[keep] == g[keep]))
        total += int(np.sum(keep))
    return correct / total if total else None


def entity_f1(pred_tags: list[list[str]], gold_tags: list[list[str]], strict: bool = False) -> float | None:
    """Entity-level micro F1 with seqeval (IOB2 tags). Default is seqeval's conlleval-compatible mode, as XTREME's
    reference scripts score PAN-X; strict=True uses seqeval's strict IOB2 scheme (ill-formed I- spans don't count)."""
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2

    _check_same_length(pred_tags, gold_tags, "entity_f1")
    for p, g in zip(pred_tags, gold_tags):
        _check_same_length(p, g, "entity_f1 (sentence)")
    if sum(len(g) for g in gold_tags) == 0:
        return None
    if strict:
        return float(f1_score(gold_tags, pred_tags, mode="strict", scheme=IOB2, zero_division=0))
    return float(f1_score(gold_tags, pred_tags, zero_division=0))


# --- extractive QA -----------------------------------------------------------------------------------------------

# Articles removed before comparing answers: SQuAD's English ones, and MLQA's per-language lists.
_ARTICLES = {
    "en": ("a", "an", "the"),
    "es": ("un", "una", "unos", "unas", "el", "la", "los", "las"),
    "de": ("ein", "eine", "einer", "eines", "einem", "einen", "der", "die", "das", "des", "dem", "den"),
    "vi": ("của", "là", "cái", "chiếc", "những"),
}
_ASCII_PUNCT = set(string.punctuation)


def _is_punct(ch: str) -> bool:
    return ch in _ASCII_PUNCT or unicodedata.category(ch).startswith("P")


def _is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" or "\uf900" <= ch <= "\ufaff"


def normalize_answer(text: str, lang: str | None = None) -> list[str]:
    """Answer tokens after SQuAD normalisation (lowercase, drop punctuation, articles, extra whitespace).

    lang=None is SQuAD v1.1 exactly (ASCII punctuation, English articles). With a language code it is MLQA-style:
    all Unicode punctuation, that language's articles (Arabic: the ال prefix), and Chinese split per character.
    """
    text = text.lower()
    if lang is None:
        text = "".join(ch for ch in text if ch not in _ASCII_PUNCT)
        articles = _ARTICLES["en"]
    else:
        text = "".join(ch for ch in text if not _is_punct(ch))
        articles = _ARTICLES.get(lang, ())
        if lang == "ar":
            text = re.sub(r"(^|\s)ال", r"\1", text)
    if articles:
        text = re.sub(r"\b(" + "|".join(articles) + r")\b", " ", text)
    if lang == "zh":
        text = "".join(f" {ch} " if _is_cjk(ch) else ch for ch in text)
    return text.split()


def _f1_tokens(pred: list[str], gold: list[str]) -> float:
    if not pred or not gold:
        return float(pred == gold)       # both empty: a match; one empty: no overlap
    common = collections.Counter(pred) & collections.Counter(gold)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_f1_em(pred_texts: list[str], gold_answers: list[list[str]],
                lang: str | None = None) -> tuple[float | None, float | None]:
    """Mean token F1 and exact match over examples, each the max over that example's gold answers.
    Returns (None, None) for no examples. An example with no gold answers is scored against the empty answer."""
    _check_same_length(pred_texts, gold_answers, "squad_f1_em")
    if not pred_texts:
        return None, None
    f1_sum = em_sum = 0.0
    for pred, golds in zip(pred_texts, gold_answers):
        pred_tokens = normalize_answer(pred, lang)
        gold_tokens = [normalize_answer(g, lang) for g in (golds or [""])]
        f1_sum += max(_f1_tokens(pred_tokens, g) for g in gold_tokens)
        em_sum += max(float(pred_tokens == g) for g in gold_tokens)
    n = len(pred_texts)
    return f1_sum / n, em_sum / n


# --- embeddings ---------------------------------------------------------------------------------------------------

def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero rows stay zero (their cosine with anything is defined as 0)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D [rows, dim] array, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[len(a), len(b)] cosine similarities; 0 where either row is all zeros."""
    return _unit_rows(a) @ _unit_rows(b).T


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float | None:
    """Mean cosine similarity of aligned rows (row i of a with row i of b)."""
    ua, ub = _unit_rows(a), _unit_rows(b)
    if ua.shape != ub.shape:
        raise ValueError(f"mean_cosine: shapes differ, {ua.shape} vs {ub.shape}")
    if ua.shape[0] == 0:
        return None
    return float(np.mean(np.sum(ua * ub, axis=1)))


def retrieval_top1(src_emb: np.ndarray, tgt_emb: np.ndarray) -> float | None:
    """Share of source rows whose nearest target by cosine is the row with the same index (Tatoeba accuracy).
    tgt_emb may hold extra rows after the aligned ones (distractors). On a tie the lowest index wins."""
    src, tgt = np.asarray(src_emb), np.asarray(tgt_emb)
    if src.ndim != 2 or tgt.ndim != 2:
        raise ValueError("retrieval_top1: expected 2-D [rows, dim] arrays")
    if tgt.shape[0] < src.shape[0]:
        raise ValueError(f"retrieval_top1: {src.shape[0]} sources but only {tgt.shape[0]} targets")
    if src.shape[0] == 0:
        return None
    nearest = np.argmax(cosine_matrix(src, tgt), axis=1)
    return float(np.mean(nearest == np.arange(src.shape[0])))


def retrieval_map_at_k(src_emb: np.ndarray, tgt_emb: np.ndarray, relevant: Sequence[Sequence[int]],
                       k: int = 20) -> float | None:
    """Mean average precision at k (Mewsli-X, LAReQA): relevant[i] are the target rows that answer source row i.
    AP@k = sum over relevant hits in the top k of precision at that rank, divided by min(k, number relevant)."""
    src = np.asarray(src_emb)
    _check_same_length(src, relevant, "retrieval_map_at_k")
    if src.shape[0] == 0:
        return None
    ranking = np.argsort(-cosine_matrix(src, tgt_emb), axis=1, kind="stable")[:, :k]
    scores = []
    for ranked, rel in zip(ranking, relevant):
        rel = set(rel)
        if not rel:
            scores.append(0.0)
            continue
        hits, precisions = 0, 0.0
        for rank, idx in enumerate(ranked, start=1):
            if idx in rel:
                hits += 1
                precisions += hits / rank
        scores.append(precisions / min(k, len(rel)))
    return float(np.mean(scores))


# --- differences and correlation ----------------------------------------------------------------------------------

def max_abs_diff(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float | None:
    """Largest |a - b|, optionally only where mask is true. mask may cover the leading dims of a (e.g. an attention
    mask [B, L] for logits [B, L, C]). None when nothing is selected; NaN in the inputs gives NaN (worth seeing)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"max_abs_diff: shapes differ, {a.shape} vs {b.shape}")
    diff = np.abs(a - b)
    if mask is not None:
        mask = np.asarray(mask).astype(bool)
        if mask.shape != a.shape[:mask.ndim]:
            raise ValueError(f"max_abs_diff: mask shape {mask.shape} does not lead array shape {a.shape}")
        diff = diff[mask]
    if diff.size == 0:
        return None
    return float(np.max(diff))


def correlation(x: Sequence[float | None], y: Sequence[float | None]) -> dict:
    """Pearson and Spearman correlation across paired values (e.g. per-language alignment vs accuracy).
    Pairs where either value is None or NaN are dropped; n counts the rest. A coefficient is None when n < 3 or
    either side is constant (undefined)."""
    from scipy import stats

    _check_same_length(x, y, "correlation")
    pairs = [(float(u), float(v)) for u, v in zip(x, y)
             if u is not None and v is not None and not np.isnan(u) and not np.isnan(v)]
    result = {"pearson": None, "spearman": None, "n": len(pairs)}
    if len(pairs) < 3:
        return result
    xs, ys = np.array(pairs).T
    if np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return result
    result["pearson"] = float(stats.pearsonr(xs, ys)[0])
    result["spearman"] = float(stats.spearmanr(xs, ys)[0])
    return result


# --- decoding raw head outputs (results/quality.py predictions() dispatches per task kind) ----------------------------------------

def tag_predictions(logits: list[np.ndarray], labels: list[np.ndarray],
                    ignore: int = IGNORE_LABEL) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-token argmax kept only at labelled positions (first sub-word of each word).
    logits[i] is [L_i, C] (padding may be cut or not), labels[i] is [L_i'] with `ignore` elsewhere.
    Returns (predicted ids, gold ids) per sentence, both one entry per labelled word."""
    _check_same_length(logits, labels, "tag_predictions")
    preds, golds = [], []
    for sent_logits, sent_labels in zip(logits, labels):
        sent_logits, sent_labels = np.asarray(sent_logits), np.asarray(sent_labels).ravel()
        n = min(len(sent_logits), len(sent_labels))
        if np.any(sent_labels[n:] != ignore):
            raise ValueError("tag_predictions: labelled positions beyond the logits")
        keep = sent_labels[:n] != ignore
        preds.append(np.argmax(sent_logits[:n], axis=-1)[keep])
        golds.append(sent_labels[:n][keep])
    return preds, golds


def ids_to_tags(ids: list[np.ndarray], label_names: Sequence[str]) -> list[list[str]]:
    """Label ids -> tag strings (for seqeval)."""
    return [[label_names[int(i)] for i in sent] for sent in ids]


def best_span(logits: np.ndarray, allowed: np.ndarray | None = None,
              max_answer_len: int = MAX_ANSWER_TOKENS) -> tuple[int, int, float] | None:
    """Best answer span from QA logits [L, 2] (start, end): maximises start[s] + end[e] with s <= e < s + max_len,
    both inside `allowed` (e.g. the context tokens of the window). Returns (s, e, score), None if no valid span."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] != 2:
        raise ValueError(f"expected QA logits of shape [L, 2], got {logits.shape}")
    length = logits.shape[0]
    ok = np.ones(length, bool) if allowed is None else np.asarray(allowed).astype(bool)
    pos = np.arange(length)
    gap = pos[None, :] - pos[:, None]                      # e - s
    valid = (gap >= 0) & (gap < max_answer_len) & ok[:, None] & ok[None, :]
    if not valid.any():
        return None
    scores = np.where(valid, logits[:, 0][:, None] + logits[:, 1][None, :], -np.inf)
    start, end = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return int(start), int(end), float(scores[start, end])
