"""Tokenize a language's examples once, before any timing, into flat per-sequence id arrays.

Every task kind becomes a list of sequences (special tokens included) plus `example_index`, which maps each sequence
back to its example: a pair gives one sequence, an XCOPA example two (premise+choice1, premise+choice2), a QA example
one or more overlapping windows, a retrieval pair two (its own-language side and its target side).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xlt_bench.data.dataset import hub_reachable
from xlt_bench.core.errors import InputError
from xlt_bench.data.tasks import IGNORE_LABEL, TaskSpec


# The hub tokenizer each offline preset was published with.
PRESET_TOKENIZERS = {"xlmr-base": "FacebookAI/xlm-roberta-base", "xlmr-large": "FacebookAI/xlm-roberta-large",
                     "tiny-xlmr": "FacebookAI/xlm-roberta-base", "mbert-base": "google-bert/bert-base-multilingual-cased",
                     "tiny-mbert": "google-bert/bert-base-multilingual-cased"}


@dataclass
class EncodedSet:
    task: str
    lang: str
    kind: str
    input_ids: list[np.ndarray]                 # int64 per sequence, special tokens included, truncated
    token_type_ids: list[np.ndarray] | None     # None when the model has one token type
    example_index: np.ndarray                   # int64, sequence -> example
    labels: list | None                         # gold per example (tagging: per sequence, aligned to tokens)
    n_examples: int
    n_truncated: int = 0
    tokenize_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    # Where the data itself is known to differ from XTREME-R's (dataset.source_caveats): evaluation copies these into
    # every row of the language, since they qualify its accuracy.
    caveats: list[str] = field(default_factory=list)
    # What only some tasks or sources have; None where a set has none.
    synthetic: bool = False                     # random ids (synthetic.py): nothing to score accuracy against
    fixed_shape: tuple[int, int] | None = None  # the --shape (rows, length) the set was made for
    offsets: list[np.ndarray] | None = None     # qa: per window, each token's (start, end) in the context; -1 outside
    contexts: list[str] | None = None           # qa: per example, the context text the offsets point into
    example_ids: list[str] | None = None        # qa: per example, the data set's id
    questions: list[str] | None = None          # multiple_choice: per example, XCOPA's "cause"/"effect" question
    n_words: list[int] | None = None            # tagging: per example, its words before sub-word tokenization
    side: np.ndarray | None = None              # retrieval: per sequence, its index into `sides`
    sides: tuple[str, ...] | None = None        # retrieval: the side names, e.g. ("text", "en")

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=len(self.input_ids))

    @property
    def real_tokens(self) -> int:
        return int(self.lengths.sum())

    @property
    def n_sequences(self) -> int:
        return len(self.input_ids)


def load_tokenizer(spec: str | None, model_name: str) -> Any:
    """An HF id or directory -> AutoTokenizer; a vocab.txt -> WordPiece (cased); None -> the model's own tokenizer."""
    from transformers import AutoTokenizer

    name = spec or PRESET_TOKENIZERS.get(model_name, model_name)
    path = Path(name)
    if path.is_file():
        return _wordpiece(path)
    if spec and not path.exists() and (spec.startswith((".", "/", "~")) or spec.endswith(".txt")):
        raise InputError("no such file or directory", file=str(path), field="tokenizer")
    if path.is_dir() and not any(path.iterdir()):
        raise InputError("tokenizer directory is empty", file=str(path), field="tokenizer")
    local = path.is_dir()
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=False,
                                                  local_files_only=not local and not hub_reachable())
    except (OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise InputError(f"could not load tokenizer '{name}' ({reason}). Offline, pass --tokenizer with a local "
                         f"directory or a WordPiece vocab.txt (e.g. ../shared/data/tokenizers/mbert-cased/vocab.txt), "
                         f"or use --data synthetic", field="tokenizer") from None
    if not tokenizer.is_fast:
        raise InputError(f"tokenizer '{name}' has no fast (Rust) version; word and offset alignment need one",
                         field="tokenizer")
    return tokenizer


def _wordpiece(path: Path) -> Any:
    """A WordPiece vocab.txt: UTF-8 text, one token per line, with BERT's special tokens."""
    from transformers import BertTokenizerFast
    if path.suffix != ".txt":
        raise InputError("expected a WordPiece vocab.txt, an HF tokenizer id or a directory",
                         file=str(path), field="tokenizer")
    try:
        tokens = path.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"not a vocabulary: not UTF-8 text (byte {exc.start})", file=str(path),
                         field="tokenizer") from None
    missing = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]") if t not in tokens]
    if missing:
        raise InputError(f"not a WordPiece vocabulary: lacks {', '.join(missing)}", file=str(path),
                         field="tokenizer")
    return BertTokenizerFast(vocab_file=str(path), do_lower_case=False)


def encode(task: TaskSpec, lang: str, examples: list[dict], tokenizer: Any, *, max_length: int, vocab_size: int,
           takes_token_types: bool) -> EncodedSet:
    """Tokenize once; see the module docstring for what a sequence is per task kind."""
    start = time.perf_counter()
    encoder = _ENCODERS[task.kind]
    enc = encoder(task, lang, examples, tokenizer, max_length)
    _check_vocab(enc, vocab_size, tokenizer)
    if not takes_token_types and enc.token_type_ids is not None:
        enc.token_type_ids = None
        enc.notes.append("token_type_ids dropped: the model has a single token type")
    if takes_token_types and enc.token_type_ids is None:
        enc.notes.append("the tokenizer gives no token_type_ids: the model's default (all 0) is used")
    if enc.n_truncated:
        enc.notes.append(f"{enc.n_truncated} of {enc.n_sequences} sequences truncated to {max_length} tokens")
    enc.tokenize_s = time.perf_counter() - start
    return enc


def _encodings(tokenizer: Any, first: list, second: list | None, max_length: int,
               split_words: bool = False) -> tuple[list, int]:
    """Fast-tokenizer Encoding objects; only the sequences over max_length are re-tokenized with truncation."""
    kwargs = dict(is_split_into_words=split_words, add_special_tokens=True)
    if not first:
        return [], 0
    full = list(tokenizer(first, second, truncation=False, **kwargs).encodings)
    over = [i for i, e in enumerate(full) if len(e.ids) > max_length]
    if over:
        cut = tokenizer([first[i] for i in over], [second[i] for i in over] if second is not None else None,
                        truncation=True, max_length=max_length, **kwargs).encodings
        for i, e in zip(over, cut):
            full[i] = e
    return full, len(over)


def _wants_types(tokenizer: Any) -> bool:
    return "token_type_ids" in getattr(tokenizer, "model_input_names", ())


def _build(task: TaskSpec, lang: str, encodings: list, tokenizer: Any, example_index: Any, labels: list | None,
           n_examples: int, n_truncated: int, **task_fields: Any) -> EncodedSet:
    ids = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
    types = [np.asarray(e.type_ids, dtype=np.int64) for e in encodings] if _wants_types(tokenizer) else None
    return EncodedSet(task=task.name, lang=lang, kind=task.kind, input_ids=ids, token_type_ids=types,
                      example_index=np.asarray(example_index, dtype=np.int64).reshape(-1), labels=labels,
                      n_examples=n_examples, n_truncated=n_truncated, **task_fields)


def _gold(examples: list[dict], key: str) -> list | None:
    """Per-example gold labels, or None when any example lacks one (labels hidden)."""
    values = [ex.get(key) for ex in examples]
    return None if any(v is None for v in values) else values


def _encode_pair(task: TaskSpec, lang: str, examples: list[dict], tokenizer: Any, max_length: int) -> EncodedSet:
    encs, n_cut = _encodings(tokenizer, [ex["text_a"] for ex in examples], [ex["text_b"] for ex in examples],
                             max_length)
    return _build(task, lang, encs, tokenizer, np.arange(len(examples)), _gold(examples, "label"), len(examples),
                  n_cut)


def _encode_multiple_choice(task: TaskSpec, lang: str, examples: list[dict], tokenizer: Any,
                            max_length: int) -> EncodedSet:
    premises = [ex["premise"] for ex in examples for _ in (1, 2)]
    choices = [ex[key] for ex in examples for key in ("choice1", "choice2")]
    encs, n_cut = _encodings(tokenizer, premises, choices, max_length)
    return _build(task, lang, encs, tokenizer, np.repeat(np.arange(len(examples)), 2), _gold(examples, "label"),
                  len(examples), n_cut, questions=[ex.get("question", "") for ex in examples])


def _encode_tagging(task: TaskSpec, lang: str, examples: list[dict], tokenizer: Any, max_length: int) -> EncodedSet:
    encs, n_cut = _encodings(tokenizer, [ex["tokens"] for ex in examples], None, max_length, split_words=True)
    gold = _gold(examples, "tags")
    labels, n_words_lost = None, 0
    if gold is not None:
        labels = []
        for enc, tags in zip(encs, gold):
            aligned = _first_subword_labels(enc.word_ids, tags)
            labels.append(aligned)
            n_words_lost += len(tags) - int((aligned != IGNORE_LABEL).sum())
    out = _build(task, lang, encs, tokenizer, np.arange(len(examples)), labels, len(examples), n_cut,
                 n_words=[len(ex["tokens"]) for ex in examples])
    if n_words_lost:
        out.notes.append(f"{n_words_lost} words carry no label (truncated away or tokenized to nothing)")
    return out


def _first_subword_labels(word_ids: list, tags: list[int]) -> np.ndarray:
    """The word's tag on its first sub-word; IGNORE_LABEL on special tokens and continuation sub-words."""
    labels = np.full(len(word_ids), IGNORE_LABEL, dtype=np.int64)
    previous = None
    for pos, word in enumerate(word_ids):
        if word is not None and word != previous:
            labels[pos] = tags[word]
        previous = word
    return labels


def _encode_qa(task: TaskSpec, lang: str, examples: list[dict], tokenizer: Any, max_length: int) -> EncodedSet:
    """Question + context windows of task.max_length (384; less if max_length is smaller) overlapping by
    task.stride (128), as in XTREME-R."""
    window = min(task.max_length or max_length, max_length)
    stride = task.stride or 0
    if window < (task.max_length or window):
        stride = min(stride, window // 4)       # a shorter window must still leave room for new context
    if not examples:
        return _build(task, lang, [], tokenizer, [], None, 0, 0, offsets=[], example_ids=[], contexts=[])
    questions, n_cut = _cap_questions(tokenizer, [ex["question"] for ex in examples], window // 2)
    batch = tokenizer(questions, [ex["context"] for ex in examples],
                      truncation="only_second", max_length=window, stride=stride,
                      return_overflowing_tokens=True, return_offsets_mapping=True)
    offsets = []
    for i, enc in enumerate(batch.encodings):
        # Context offsets only, so a metric can map predicted spans back to the context text.
        seq = batch.sequence_ids(i)
        offsets.append(np.asarray([o if s == 1 else (-1, -1) for o, s in zip(enc.offsets, seq)], dtype=np.int64))
    sample_map = np.asarray(batch["overflow_to_sample_mapping"], dtype=np.int64)
    out = _build(task, lang, batch.encodings, tokenizer, sample_map, _gold(examples, "answers"), len(examples), n_cut,
                 offsets=offsets, example_ids=[ex["id"] for ex in examples],
                 contexts=[ex["context"] for ex in examples])
    n_split = int((np.bincount(sample_map, minlength=len(examples)) > 1).sum())
    out.notes.append(f"qa windows of {window} tokens, stride {stride}: {out.n_sequences} features from "
                     f"{len(examples)} examples ({n_split} split)")
    return out


def _cap_questions(tokenizer: Any, questions: list[str], max_tokens: int) -> tuple[list[str], int]:
    """Cut questions longer than max_tokens word pieces (else no context fits a window); count them."""
    pieces = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    out, n_cut = list(questions), 0
    for i, offsets in enumerate(pieces["offset_mapping"]):
        if len(offsets) > max_tokens:
            out[i], n_cut = questions[i][:offsets[max_tokens - 1][1]], n_cut + 1
    return out, n_cut


def _encode_retrieval(task: TaskSpec, lang: str, examples: list[dict], tokenizer: Any,
                      max_length: int) -> EncodedSet:
    """All own-language sentences first, then all targets; `side` says which (0 = text, 1 = en)."""
    n = len(examples)
    texts = [ex["text"] for ex in examples] + [ex["en"] for ex in examples]
    encs, n_cut = _encodings(tokenizer, texts, None, max_length)
    return _build(task, lang, encs, tokenizer, np.tile(np.arange(n), 2), None, n, n_cut,
                  side=np.repeat(np.array([0, 1], dtype=np.int64), n), sides=("text", "en"))


_ENCODERS = {"pair": _encode_pair, "multiple_choice": _encode_multiple_choice, "tagging": _encode_tagging,
             "qa": _encode_qa, "retrieval": _encode_retrieval}


def _check_vocab(enc: EncodedSet, vocab_size: int, tokenizer: Any) -> None:
    top = max((int(ids.max()) for ids in enc.input_ids if len(ids)), default=-1)
    if top >= vocab_size:
        name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        raise InputError(f"the tokenizer ({name}) gives id {top}, beyond the model's vocabulary of {vocab_size}; "
                         f"use the model's own tokenizer", field="tokenizer")
