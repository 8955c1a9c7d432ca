"""Per-(task, language) token-length profiles: built from real data with any tokenizer (`xlt-bench lengths`), shipped
for the offline default workload (xlt_bench/data/length_profiles.json) and reproduced by `synthetic.py`; a file
written here is read back by `--data synthetic --profiles FILE`.

Lengths belong to one tokenizer, so a profile records which: its name, class, vocabulary size and a fingerprint of its
vocabulary (a run with another --tokenizer is refused).

A profile records the UNTRUNCATED length (special tokens included) of every sequence as a histogram
{length: count} plus n, mean, p50/p90/p99 and max. Retrieval tasks keep each side apart under "sides".
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from xlt_bench import __version__
from xlt_bench.data.dataset import load_examples
from xlt_bench.core.errors import InputError
from xlt_bench.core.schema import atomic_write_text
from xlt_bench.core.stats import percentile
from xlt_bench.data.tasks import get_task, resolve_langs
from xlt_bench.data.tokenization import EncodedSet, encode, load_tokenizer

PROFILE_FORMAT = "xlt-bench-length-profiles/1"
SHIPPED_PROFILES = Path(__file__).resolve().parent / "length_profiles.json"
_UNTRUNCATED = 1 << 30
_ANY_VOCAB = 1 << 62


def length_stats(lengths: np.ndarray) -> dict[str, Any]:
    lengths = np.asarray(lengths, dtype=np.int64)
    values, counts = np.unique(lengths, return_counts=True)
    return {"n": int(lengths.size), "mean": round(float(lengths.mean()), 3) if lengths.size else None,
            **{f"p{q}": _round(percentile(lengths, q)) for q in (50, 90, 99)},
            "max": int(lengths.max()) if lengths.size else None,
            "hist": {str(int(v)): int(c) for v, c in zip(values, counts)}}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def profile_of(enc: EncodedSet) -> dict[str, Any]:
    """The profile of one encoded (task, language): all sequences, and each side apart for retrieval."""
    lengths = enc.lengths
    profile = {"kind": enc.kind, "n_examples": enc.n_examples, "n_sequences": enc.n_sequences, **length_stats(lengths)}
    if enc.side is not None:
        side = np.asarray(enc.side)
        profile["sides"] = {name: length_stats(lengths[side == i]) for i, name in enumerate(enc.sides)}
    return profile


def build_profiles(data: str, tasks: list[str], langs: tuple[str, ...], tokenizer_spec: str,
                   limit: int | None = None) -> dict[str, Any]:
    """Tokenize every (task, language) of `data` untruncated and return the profile JSON document."""
    tokenizer = load_tokenizer(tokenizer_spec, tokenizer_spec)
    profiles: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    for task_name in tasks:
        task = get_task(task_name)
        for lang in resolve_langs(task, langs):
            examples = load_examples(data, task, lang, limit)
            if not examples:
                skipped.append(f"{task.name}/{lang}")
                continue
            enc = encode(task, lang, examples, tokenizer, max_length=_UNTRUNCATED,
                         vocab_size=_ANY_VOCAB, takes_token_types=False)
            profiles.setdefault(task.name, {})[lang] = profile_of(enc)
    if not profiles:
        raise InputError(f"no examples found in {data} for tasks {', '.join(tasks)}", field="data")
    return {"format": PROFILE_FORMAT, "made_by": _provenance(data, tokenizer_spec, tokenizer, limit),
            "skipped_no_data": skipped, "profiles": profiles}


def tokenizer_identity(tokenizer_spec: str, tokenizer: Any) -> dict[str, Any]:
    """What identifies a tokenizer in a profile: its name as given, class, size, a fingerprint of its vocabulary
    (token -> id, so one tokenizer saved in two places matches) and, for a vocabulary file, the file's hash."""
    vocab = sorted(tokenizer.get_vocab().items())
    made = {"tokenizer": tokenizer_spec, "tokenizer_class": type(tokenizer).__name__,
            "tokenizer_vocab_size": len(tokenizer),
            "tokenizer_vocab_sha256": hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode()).hexdigest()}
    if Path(tokenizer_spec).is_file():
        made["tokenizer_sha256"] = hashlib.sha256(Path(tokenizer_spec).read_bytes()).hexdigest()
    return made


def _provenance(data: str, tokenizer_spec: str, tokenizer: Any, limit: int | None) -> dict[str, Any]:
    made = {"tool": f"xlt-bench {__version__} `xlt-bench lengths`",
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
            "data": data, **tokenizer_identity(tokenizer_spec, tokenizer), "limit_per_language": limit,
            "lengths": "untruncated, special tokens included (qa: windows of 384 tokens, stride 128)"}
    if data.startswith("local:"):
        root = Path(data[len("local:"):])
        provenance = next((p for p in (root / "PROVENANCE.md", root.parent / "PROVENANCE.md") if p.exists()), None)
        made["data_provenance"] = str(provenance) if provenance else None
    return made


def dumps_profiles(doc: dict[str, Any]) -> str:
    """JSON with one line per (task, language) profile: compact, yet diffs stay readable."""
    head = {k: v for k, v in doc.items() if k != "profiles"}
    chunks = []
    for task, by_lang in doc["profiles"].items():
        rows = ",\n".join(f"   {json.dumps(lang)}: {json.dumps(p, ensure_ascii=False, separators=(',', ':'))}"
                          for lang, p in by_lang.items())
        chunks.append(f"  {json.dumps(task)}: {{\n{rows}\n  }}")
    head_text = json.dumps(head, indent=1, ensure_ascii=False)
    return head_text[:-2] + ',\n "profiles": {\n' + ",\n".join(chunks) + "\n }\n}\n"


def write_profiles(doc: dict[str, Any], path: str | os.PathLike) -> None:
    atomic_write_text(path, dumps_profiles(doc))


def read_profiles(path: str | os.PathLike = SHIPPED_PROFILES) -> dict[str, Any]:
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("length profile file not found", file=str(path)) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg}", file=str(path), line=exc.lineno) from None
    if doc.get("format") != PROFILE_FORMAT:
        raise InputError(f"not a {PROFILE_FORMAT} document", file=str(path), field="format")
    return doc
