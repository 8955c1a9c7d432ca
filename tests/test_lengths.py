"""Length profiles: built by hand-checkable tokenization, written compactly, and the shipped file's provenance."""

from __future__ import annotations

import json

import pytest

from xlt_bench.core.errors import InputError
from xlt_bench.data.lengths import SHIPPED_PROFILES, build_profiles, dumps_profiles, read_profiles, write_profiles


@pytest.fixture()
def tiny_data(tmp_path):
    (tmp_path / "xnli").mkdir()
    (tmp_path / "tatoeba").mkdir()
    rows = [{"text_a": "the cats", "text_b": "a dog", "label": 0},       # [CLS] the cat ##s [SEP] a dog [SEP] = 8
            {"text_a": "the cat", "text_b": "dog", "label": 1},          # [CLS] the cat [SEP] dog [SEP] = 6
            {"text_a": "the cat sat on the mat . the dog sat", "text_b": "a dog", "label": 2}]   # 10 + 2 + 3 = 15
    (tmp_path / "xnli" / "en.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    pairs = [{"text": "the cat", "en": "a dog ."}, {"text": "dog", "en": "cats"}]   # text 4, 3; en 5, 4
    (tmp_path / "tatoeba" / "de.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs), encoding="utf-8")
    return tmp_path


def test_build_profiles_by_hand(tiny_data, tiny_vocab_file):
    doc = build_profiles(f"local:{tiny_data}", ["xnli"], ("en",), str(tiny_vocab_file), None)
    p = doc["profiles"]["xnli"]["en"]
    assert p["hist"] == {"6": 1, "8": 1, "15": 1}          # untruncated, special tokens included
    assert (p["n"], p["n_examples"], p["max"], p["p50"], p["mean"]) == (3, 3, 15, 8.0, 9.667)
    assert doc["made_by"]["tokenizer"] == str(tiny_vocab_file) and len(doc["made_by"]["tokenizer_sha256"]) == 64
    assert doc["made_by"]["data"] == f"local:{tiny_data}" and doc["made_by"]["date"]


def test_retrieval_profiles_keep_both_sides_and_missing_languages_are_listed(tiny_data, tiny_vocab_file):
    doc = build_profiles(f"local:{tiny_data}", ["tatoeba"], ("de", "fr"), str(tiny_vocab_file), None)
    p = doc["profiles"]["tatoeba"]["de"]
    assert p["sides"]["text"]["hist"] == {"3": 1, "4": 1} and p["sides"]["en"]["hist"] == {"4": 1, "5": 1}
    assert p["hist"] == {"3": 1, "4": 2, "5": 1} and p["n_examples"] == 2 and p["n_sequences"] == 4
    assert doc["skipped_no_data"] == ["tatoeba/fr"]


def test_limit_and_no_data(tiny_data, tiny_vocab_file):
    doc = build_profiles(f"local:{tiny_data}", ["xnli"], ("all",), str(tiny_vocab_file), 2)
    assert doc["profiles"]["xnli"]["en"]["hist"] == {"6": 1, "8": 1}
    assert len(doc["skipped_no_data"]) == 14
    with pytest.raises(InputError):
        build_profiles(f"local:{tiny_data}", ["tatoeba"], ("fr",), str(tiny_vocab_file), None)


def test_write_is_compact_and_round_trips(tiny_data, tiny_vocab_file, tmp_path):
    doc = build_profiles(f"local:{tiny_data}", ["xnli", "tatoeba"], ("all",), str(tiny_vocab_file), None)
    path = tmp_path / "out" / "profiles.json"
    write_profiles(doc, path)
    assert read_profiles(path) == json.loads(json.dumps(doc))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert sum('"hist"' in line for line in lines) == 2          # one line per (task, language)
    assert dumps_profiles(doc) == path.read_text(encoding="utf-8")


def test_read_profiles_rejects_other_json(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"rows": []}', encoding="utf-8")
    with pytest.raises(InputError) as exc:
        read_profiles(bad)
    assert exc.value.field == "format"


def test_shipped_file_says_how_it_was_made():
    doc = read_profiles(SHIPPED_PROFILES)
    made = doc["made_by"]
    assert made["tokenizer"].endswith("mbert-cased/vocab.txt") and made["tokenizer_class"] == "BertTokenizerFast"
    assert made["data"].endswith("shared/data/xtreme") and made["data_provenance"].endswith("PROVENANCE.md")
    assert made["date"] and made["limit_per_language"] is None and "untruncated" in made["lengths"]
    assert {t: len(v) for t, v in doc["profiles"].items()} == {"xnli": 15, "pawsx": 7, "tatoeba": 41, "panx": 47}
    assert doc["skipped_no_data"] == ["panx/th"]


def test_shipped_profile_matches_a_fresh_build_from_the_real_data(xtreme_dir, mbert_vocab):
    fresh = build_profiles(f"local:{xtreme_dir}", ["xnli", "tatoeba"], ("th",), str(mbert_vocab), None)
    shipped = read_profiles(SHIPPED_PROFILES)["profiles"]
    assert fresh["profiles"]["xnli"]["th"] == shipped["xnli"]["th"]
    assert fresh["profiles"]["tatoeba"]["th"] == shipped["tatoeba"]["th"]
    assert fresh["made_by"]["tokenizer_sha256"] == read_profiles(SHIPPED_PROFILES)["made_by"]["tokenizer_sha256"]


def test_profiles_record_a_vocabulary_fingerprint_that_survives_a_move(tiny_data, tiny_vocab_file, tmp_path):
    from xlt_bench.data.lengths import tokenizer_identity
    from xlt_bench.data.tokenization import load_tokenizer
    doc = build_profiles(f"local:{tiny_data}", ["xnli"], ("en",), str(tiny_vocab_file), None)
    moved = tmp_path / "moved" / "vocab.txt"
    moved.parent.mkdir()
    moved.write_bytes(tiny_vocab_file.read_bytes())
    again = tokenizer_identity(str(moved), load_tokenizer(str(moved), str(moved)))
    assert doc["made_by"]["tokenizer_vocab_sha256"] == again["tokenizer_vocab_sha256"]
    assert doc["made_by"]["tokenizer_vocab_size"] == 24 and doc["made_by"]["tokenizer_class"] == "BertTokenizerFast"
