"""Shared test fixtures: where ../shared lives, and small tokenizers with hand-known ids."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("XLT_SHARED") or Path(__file__).resolve().parents[2] / "shared")
XTREME_DIR = SHARED / "data" / "xtreme"
MBERT_VOCAB = SHARED / "data" / "tokenizers" / "mbert-cased" / "vocab.txt"

# A WordPiece vocabulary small enough to compute ids by hand: the id of a token is its index here.
TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "##s", "dog",
              "play", "##ing", ".", "a", "who", "where", "is", "?", "in", "paris", "london", "lives"]


@pytest.fixture(scope="session")
def tiny_vocab_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny_vocab") / "vocab.txt"
    path.write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_vocab_file):
    from transformers import BertTokenizerFast
    return BertTokenizerFast(vocab_file=str(tiny_vocab_file), do_lower_case=False)


@pytest.fixture(scope="session")
def xtreme_dir() -> Path:
    if not XTREME_DIR.is_dir():
        pytest.skip(f"real data not found at {XTREME_DIR} (set XLT_SHARED)")
    return XTREME_DIR


@pytest.fixture(scope="session")
def mbert_vocab() -> Path:
    if not MBERT_VOCAB.is_file():
        pytest.skip(f"mBERT vocab not found at {MBERT_VOCAB} (set XLT_SHARED)")
    return MBERT_VOCAB


@pytest.fixture(scope="session")
def mbert_tokenizer(mbert_vocab):
    from transformers import BertTokenizerFast
    return BertTokenizerFast(vocab_file=str(mbert_vocab), do_lower_case=False)
