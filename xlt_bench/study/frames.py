"""Per-language frames the studies analyse, read from results documents: one row per (task, lang, backend, dtype)
with each batching's useful tok/s, sentences/s, padding waste, speedup and interval side by side."""

from __future__ import annotations

from typing import Any

import pandas as pd

from xlt_bench.core.schema import ALL_LANGS

REFERENCE = "static"
KEY = ["task", "lang", "backend", "dtype"]


def offline_rows(doc: dict[str, Any], *, all_langs: bool = False) -> list[dict[str, Any]]:
    """The offline rows of a document: per language (or only the ALL rows)."""
    return [r for r in doc.get("rows", []) if r.get("scenario", "offline") == "offline"
            and (r.get("lang") == ALL_LANGS) == all_langs]


def sequences(row: dict[str, Any]) -> float | None:
    n = row.get("n_sequences") or row.get("n_examples")
    return float(n) if n else None


def batching_frame(doc: dict[str, Any], *, all_langs: bool = False) -> pd.DataFrame:
    """One row per (task, lang, backend, dtype); columns `<metric>:<batching>` for every batching that ran, plus
    tokens/sentence (the same for every batching) and the model."""
    wide: dict[tuple, dict[str, Any]] = {}
    for row in offline_rows(doc, all_langs=all_langs):
        key = tuple(row.get(k) for k in KEY)
        n_seq = sequences(row)
        entry = wide.setdefault(key, {**dict(zip(KEY, key)), "model": row.get("model"), "n_seq": n_seq,
                                      "tokens_per_seq": (row["real_tokens"] / n_seq)
                                      if n_seq and row.get("real_tokens") else None})
        b = row.get("batching")
        for name, field in METRICS.items():
            entry[f"{name}:{b}"] = row.get(field)
    return pd.DataFrame(list(wide.values())) if wide else pd.DataFrame(columns=KEY)


METRICS = {"tok_s": "throughput_tok_s", "tok_s_ci95": "throughput_tok_s_ci95", "seq_s": "throughput_seq_s",
           "waste": "padding_waste", "speedup": "speedup", "speedup_ci95": "speedup_ci95", "accuracy": "accuracy",
           "metric": "accuracy_metric", "align_cos": "alignment_cosine", "align_top1": "alignment_top1"}


def batchings(doc: dict[str, Any]) -> list[str]:
    """Batchings that ran, static first."""
    seen = list(dict.fromkeys(r.get("batching") for r in offline_rows(doc)))
    return sorted(seen, key=lambda b: (b != REFERENCE, b))


def primary(frame: pd.DataFrame) -> tuple[str, str] | None:
    """The (backend, dtype) the headline reads: eager/fp32 when it ran, else the first measured."""
    pairs = list(dict.fromkeys(zip(frame["backend"], frame["dtype"])))
    if not pairs:
        return None
    return ("eager", "fp32") if ("eager", "fp32") in pairs else pairs[0]


def missing_batchings(doc: dict[str, Any], needed: tuple[str, ...]) -> list[str]:
    ran = set(batchings(doc))
    return [b for b in needed if b not in ran]
