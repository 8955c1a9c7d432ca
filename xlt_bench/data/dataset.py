"""Load task examples from local JSONL files or from Hugging Face `datasets`, validated into one plain layout.

The local layout (`--data local:DIR`: `DIR/<task>/<lang>.jsonl`, one JSON object per line, per task kind) and the
`--data hf` behaviour (including the `XLT_HF_DATASETS_DIR` stand-in for the hub) are described once, in the README's
"Local data layout" section; the normalisers below implement it.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from xlt_bench.core.errors import InputError
from xlt_bench.data.tasks import TaskSpec

HF_LOCAL_ENV = "XLT_HF_DATASETS_DIR"


def load_examples(data: str, task: TaskSpec, lang: str, limit: int | None = None) -> list[dict]:
    """Examples of one (task, language) in the layout above, at most `limit` of them, in file order."""
    if data.startswith("local:"):
        return load_local(Path(data[len("local:"):]), task, lang, limit)
    if data == "hf":
        return load_hf(task, lang, limit, root=os.environ.get(HF_LOCAL_ENV) or None)
    raise InputError(f"'{data}' is not 'hf' or 'local:DIR'", field="data")


def local_file(root: Path, task: TaskSpec, lang: str) -> Path:
    return Path(root) / task.name / f"{lang}.jsonl"


def load_local(root: Path, task: TaskSpec, lang: str, limit: int | None = None) -> list[dict]:
    task_dir = Path(root) / task.name
    if not task_dir.is_dir():
        raise InputError(f"no directory for task '{task.name}' (expected {task_dir}/<lang>.jsonl)",
                         file=str(root), field="data")
    path = local_file(root, task, lang)
    if not path.exists():
        return []   # the caller decides: a language asked for by name is an error (missing_reason says why)
    if not path.is_file():  # a directory or a FIFO: reading would fail or block forever
        raise InputError("is not a regular file", file=str(path), field="data")
    normalise = NORMALISERS[task.kind]
    examples = []
    for line_no, raw in _jsonl_rows(path):
        if limit is not None and len(examples) >= limit:
            break
        examples.append(normalise(raw, task, str(path), line_no))
    return examples


def missing_reason(data: str, task: TaskSpec, lang: str) -> str | None:
    """Why a local language file cannot be read (absent, a broken symbolic link), or None when it can."""
    if not data.startswith("local:"):
        return None
    path = local_file(Path(data[len("local:"):]), task, lang)
    if path.is_symlink() and not path.exists():
        return f"{path} is a broken symbolic link (to {os.readlink(path)})"
    if not path.exists():
        return f"no data file {path}"
    return None


def why_no_examples(data: str, task: TaskSpec, lang: str) -> str:
    """The reason a language gave no examples, for the run's list of skipped languages."""
    return missing_reason(data, task, lang) or "no examples (empty file)"


# A line longer than this is refused before parsing: XTREME examples are at most a few kB, and tokenizing a
# multi-megabyte line untruncated costs gigabytes of memory.
MAX_LINE_BYTES = 1 << 20


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict]]:
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if len(raw) > MAX_LINE_BYTES:
                raise InputError(f"line of {len(raw):,} bytes; lines longer than {MAX_LINE_BYTES:,} bytes are "
                                 "refused (one example per line)", file=str(path), line=line_no)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"not UTF-8 text (byte {exc.start} of the line)", file=str(path),
                                 line=line_no) from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"malformed JSON line: {exc.msg} (column {exc.colno})",
                                 file=str(path), line=line_no) from None
            if not isinstance(row, dict):
                raise InputError("each line must be a JSON object", file=str(path), line=line_no)
            yield line_no, row


# --- validation: one normaliser per task kind, raw dict -> canonical dict --------------------------------------

def _text(row: dict, names: tuple[str, ...], file: str, line: int) -> str:
    for name in names:
        if name in row:
            value = row[name]
            if not isinstance(value, str):
                raise InputError(f"expected a string, got {type(value).__name__}", file=file, line=line, field=name)
            return value
    raise InputError("missing field", file=file, line=line, field=names[0])


def _label_index(value: Any, labels: tuple[str, ...], file: str, line: int, field: str) -> int:
    """A label given by name or by index -> its index in the task's label set."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int) and 0 <= value < len(labels):
        return value
    if isinstance(value, str) and value in labels:
        return labels.index(value)
    raise InputError(f"{value!r} is not in the label set {list(labels)}", file=file, line=line, field=field)


def _pair(row: dict, task: TaskSpec, file: str, line: int) -> dict:
    label = row.get("label")
    return {"text_a": _text(row, ("text_a",), file, line), "text_b": _text(row, ("text_b",), file, line),
            "label": None if label is None else _label_index(label, task.labels, file, line, "label")}


def _multiple_choice(row: dict, task: TaskSpec, file: str, line: int) -> dict:
    label = row.get("label")
    question = row.get("question", "")
    if not isinstance(question, str):
        raise InputError("expected a string", file=file, line=line, field="question")
    return {"premise": _text(row, ("premise",), file, line), "choice1": _text(row, ("choice1",), file, line),
            "choice2": _text(row, ("choice2",), file, line), "question": question,
            "label": None if label is None else _label_index(label, task.labels, file, line, "label")}


def _tagging(row: dict, task: TaskSpec, file: str, line: int) -> dict:
    tokens = row.get("tokens")
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
        raise InputError("expected a non-empty list of strings", file=file, line=line, field="tokens")
    tags = row.get("tags")
    if tags is None:
        return {"tokens": tokens, "tags": None}
    if not isinstance(tags, list):
        raise InputError("expected a list", file=file, line=line, field="tags")
    if len(tags) != len(tokens):
        raise InputError(f"{len(tokens)} tokens but {len(tags)} tags", file=file, line=line, field="tags")
    return {"tokens": tokens, "tags": [_label_index(t, task.labels, file, line, "tags") for t in tags]}


def _qa(row: dict, task: TaskSpec, file: str, line: int) -> dict:
    context = _text(row, ("context",), file, line)
    answers = row.get("answers")
    if answers is not None:
        texts, starts = (answers.get("text"), answers.get("answer_start")) if isinstance(answers, dict) else (0, 0)
        if not (isinstance(texts, list) and isinstance(starts, list) and len(texts) == len(starts)):
            raise InputError("expected {\"text\": [...], \"answer_start\": [...]} of equal length",
                             file=file, line=line, field="answers")
        for start in starts:
            if not isinstance(start, int) or not 0 <= start <= len(context):
                raise InputError(f"answer_start {start!r} is not an offset into context", file=file, line=line,
                                 field="answers")
        answers = {"text": list(texts), "answer_start": list(starts)}
    return {"id": str(row.get("id", line)), "question": _text(row, ("question",), file, line),
            "context": context, "answers": answers}


def _retrieval(row: dict, task: TaskSpec, file: str, line: int) -> dict:
    # Tatoeba's original files end lines with newlines that some copies keep: strip both sides.
    return {"text": _text(row, ("text",), file, line).strip(), "en": _text(row, ("en", "target"), file, line).strip()}


NORMALISERS: dict[str, Callable[[dict, TaskSpec, str, int], dict]] = {
    "pair": _pair, "multiple_choice": _multiple_choice, "tagging": _tagging, "qa": _qa, "retrieval": _retrieval}


# --- Hugging Face datasets -------------------------------------------------------------------------------------

def load_hf(task: TaskSpec, lang: str, limit: int | None = None, root: str | None = None) -> list[dict]:
    """Load from the hub (or a local `save_to_disk` stand-in under `root`) and validate like local files."""
    if not task.hf_path:
        raise InputError(task.hf_note or f"task '{task.name}' has no Hugging Face location", field="data")
    if lang in task.hf_missing_langs:
        raise InputError(f"{task.name}/{lang} is not in the hub copy ({task.hf_path}): XTREME-R added "
                         f"{', '.join(task.hf_missing_langs)}. Build them with XTREME-R's download scripts "
                         "(github.com/google-research/xtreme, scripts/download_data.sh) into DIR/"
                         f"{task.name}/<lang>.jsonl and use --data local:DIR", field="langs")
    try:
        import datasets
    except ImportError:
        raise InputError("--data hf needs the 'datasets' package: pip install 'xlt-bench[datasets]'",
                         field="data") from None
    config = task.hf_config_for(lang)
    source = f"hf:{task.hf_path}[{config}]/{task.hf_split}"
    ds = _open_hf(datasets, task, config, root, source)
    if task.hf_filter_column:
        prefix = task.hf_lang(lang)
        column = ds[task.hf_filter_column]
        ds = ds.select([i for i, value in enumerate(column) if str(value).startswith(prefix)])
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    names = _class_label_names(ds)
    normalise = NORMALISERS[task.kind]
    return [normalise(HF_ADAPTERS[task.kind](dict(row), names), task, source, i + 1) for i, row in enumerate(ds)]


def source_caveats(data: str, task: TaskSpec, lang: str) -> list[str]:
    """Where the data a run reads differs from XTREME-R's (today: known defects of hub copies), one note each."""
    return task.hub_caveats(lang) if data == "hf" else []


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """A quick TCP probe of the hub, so an offline machine fails in seconds instead of a minute of retries."""
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        return False
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True             # behind a proxy a direct probe proves nothing; let the libraries try
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


@contextmanager
def offline_hub() -> Iterator[None]:
    """Make huggingface_hub and datasets read only their caches for the duration (no network retries)."""
    import huggingface_hub.constants as hub_constants
    patched = [(hub_constants, "HF_HUB_OFFLINE")]
    try:
        import datasets.config as ds_config
        patched.append((ds_config, "HF_HUB_OFFLINE"))
    except ImportError:
        pass
    saved = [(mod, name, getattr(mod, name)) for mod, name in patched]
    try:
        for mod, name in patched:
            setattr(mod, name, True)
        yield
    finally:
        for mod, name, value in saved:
            setattr(mod, name, value)


def _open_hf(datasets: Any, task: TaskSpec, config: str, root: str | None, source: str) -> Any:
    try:
        if root:
            ds = datasets.load_from_disk(str(Path(root) / task.hf_path / config))
            return ds[task.hf_split] if isinstance(ds, datasets.DatasetDict) else ds
        if hub_reachable():
            return datasets.load_dataset(task.hf_path, config, split=task.hf_split)
        with offline_hub():     # the cache may still hold it
            return datasets.load_dataset(task.hf_path, config, split=task.hf_split)
    except Exception as exc:  # the hub and datasets raise many kinds; the user needs one clear message
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise InputError(f"could not load {source} ({type(exc).__name__}: {reason}). Offline? Run with "
                         f"--data local:DIR (JSONL files, layout in the README) or --data synthetic",
                         file=source, field="data") from None


def _class_label_names(ds: Any) -> dict[str, list[str]]:
    """Column -> label names for ClassLabel columns (and sequences of them), so hub ints become names."""
    names = {}
    for column, feature in ds.features.items():
        inner = getattr(feature, "feature", feature)
        if hasattr(inner, "names"):
            names[column] = list(inner.names)
    return names


def _first(row: dict, names: tuple[str, ...]) -> Any:
    return next((row[n] for n in names if n in row), None)


def _hf_label(row: dict, names: dict, column: str = "label") -> Any:
    value = row.get(column)
    if value is None or (isinstance(value, int) and value < 0):   # -1 marks an unlabelled hub row
        return None
    return names[column][value] if column in names and isinstance(value, int) else value


def _hf_pair(row: dict, names: dict) -> dict:
    return {"text_a": _first(row, ("text_a", "premise", "sentence1")),
            "text_b": _first(row, ("text_b", "hypothesis", "sentence2")), "label": _hf_label(row, names)}


def _hf_multiple_choice(row: dict, names: dict) -> dict:
    return {**row, "label": _hf_label(row, names)}


def _hf_tagging(row: dict, names: dict) -> dict:
    column = next((c for c in ("tags", "ner_tags", "pos_tags", "upos") if c in row), None)
    tags = row.get(column) if column else None
    if tags is not None and column in names:
        tags = [names[column][t] if isinstance(t, int) else t for t in tags]
    return {"tokens": row.get("tokens"), "tags": tags}


def _hf_qa(row: dict, names: dict) -> dict:
    answers = row.get("answers")
    if isinstance(answers, dict):
        answers = {"text": list(answers.get("text", [])), "answer_start": [int(s) for s in answers.get(
            "answer_start", [])]}
    return {"id": row.get("id"), "question": row.get("question"), "context": row.get("context"), "answers": answers}


def _hf_retrieval(row: dict, names: dict) -> dict:
    if "question" in row and "context" in row:      # LAReQA (XQuAD-R): the target is the answer's sentence
        return {"text": row["question"], "en": _answer_sentence(row)}
    return {"text": _first(row, ("text", "source_sentence")), "en": _first(row, ("en", "target", "target_sentence"))}


def _answer_sentence(row: dict) -> str:
    context, answers = row["context"], row.get("answers") or {}
    starts = answers.get("answer_start") or [0]
    start = int(starts[0])
    bounds = [0] + [m.end() for m in re.finditer(r"(?<=[.!?。！？])\s+", context)] + [len(context) + 1]
    for begin, end in zip(bounds, bounds[1:]):
        if begin <= start < end:
            return context[begin:end].strip()
    return context


HF_ADAPTERS: dict[str, Callable[[dict, dict], dict]] = {
    "pair": _hf_pair, "multiple_choice": _hf_multiple_choice, "tagging": _hf_tagging, "qa": _hf_qa,
    "retrieval": _hf_retrieval}
