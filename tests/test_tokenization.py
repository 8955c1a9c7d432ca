"""Encoding per task kind, checked by hand on a tiny WordPiece vocabulary (ids = positions in conftest.TINY_VOCAB:
[PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 the=5 cat=6 sat=7 on=8 mat=9 ##s=10 dog=11 play=12 ##ing=13 .=14 a=15 ...)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from xlt_bench.data.dataset import load_examples
from xlt_bench.core.errors import InputError
from xlt_bench.data.tasks import get_task
from xlt_bench.data.tokenization import IGNORE_LABEL, encode, load_tokenizer

CLS, SEP = 2, 3


def enc(task, examples, tok, max_length=32, vocab_size=1000, types=True, lang="en"):
    return encode(task, lang, examples, tok, max_length=max_length, vocab_size=vocab_size,
                  takes_token_types=types)


def test_pair_ids_token_types_and_labels(tiny_tokenizer):
    out = enc(get_task("xnli"), [{"text_a": "the cats", "text_b": "a dog", "label": 2}], tiny_tokenizer)
    assert out.input_ids[0].tolist() == [CLS, 5, 6, 10, SEP, 15, 11, SEP]
    assert out.input_ids[0].dtype == np.int64
    assert out.token_type_ids[0].tolist() == [0, 0, 0, 0, 0, 1, 1, 1]
    assert out.labels == [2] and out.example_index.tolist() == [0]
    assert (out.n_examples, out.n_sequences, out.real_tokens, out.n_truncated) == (1, 1, 8, 0)
    assert out.lengths.tolist() == [8] and out.tokenize_s > 0


def test_token_types_dropped_with_a_note_for_single_type_models(tiny_tokenizer):
    out = enc(get_task("pawsx"), [{"text_a": "the cat", "text_b": "a dog", "label": 1}], tiny_tokenizer, types=False)
    assert out.token_type_ids is None
    assert any("token_type_ids dropped" in n for n in out.notes)


def test_truncation_is_counted(tiny_tokenizer):
    examples = [{"text_a": "the cat sat on the mat", "text_b": "a dog", "label": 0},
                {"text_a": "the cat", "text_b": "a dog", "label": 1}]
    out = enc(get_task("xnli"), examples, tiny_tokenizer, max_length=8)
    # 6 + 2 words + 3 specials = 11 > 8: longest_first cuts the first segment to 3 words.
    assert out.input_ids[0].tolist() == [CLS, 5, 6, 7, SEP, 15, 11, SEP]
    assert out.lengths.tolist() == [8, 7] and out.n_truncated == 1
    assert any("1 of 2 sequences truncated" in n for n in out.notes)


def test_ids_beyond_the_model_vocabulary_are_an_input_error(tiny_tokenizer):
    with pytest.raises(InputError) as exc:
        enc(get_task("xnli"), [{"text_a": "the dog", "text_b": "a", "label": 0}], tiny_tokenizer, vocab_size=11)
    assert exc.value.field == "tokenizer" and "id 15" in str(exc.value)


def test_tagging_labels_on_first_subword_only(tiny_tokenizer):
    # cats -> cat ##s ; playing -> play ##ing
    examples = [{"tokens": ["cats", "playing", "."], "tags": [1, 2, 0]}]
    out = enc(get_task("panx"), examples, tiny_tokenizer)
    assert out.input_ids[0].tolist() == [CLS, 6, 10, 12, 13, 14, SEP]
    assert out.labels[0].tolist() == [IGNORE_LABEL, 1, IGNORE_LABEL, 2, IGNORE_LABEL, 0, IGNORE_LABEL]
    assert out.n_words == [3]


def test_tagging_truncation_drops_labels_of_cut_words(tiny_tokenizer):
    out = enc(get_task("udpos"), [{"tokens": ["cats", "playing", "."], "tags": [7, 15, 12]}], tiny_tokenizer,
              max_length=5)
    assert out.input_ids[0].tolist() == [CLS, 6, 10, 12, SEP]
    assert out.labels[0].tolist() == [IGNORE_LABEL, 7, IGNORE_LABEL, 15, IGNORE_LABEL]
    assert out.n_truncated == 1 and any("1 words carry no label" in n for n in out.notes)


def test_tagging_without_tags_has_no_labels(tiny_tokenizer):
    assert enc(get_task("panx"), [{"tokens": ["cat"], "tags": None}], tiny_tokenizer).labels is None


def test_udpos_file_runs_through_loader_and_encoder_with_only_its_registry_entry(tmp_path, tiny_tokenizer):
    (tmp_path / "udpos").mkdir()
    (tmp_path / "udpos" / "en.jsonl").write_text('{"tokens": ["the", "cats", "sat"], "tags": ["DET", "NOUN", '
                                                 '"VERB"]}\n', encoding="utf-8")
    task = get_task("udpos")
    out = enc(task, load_examples(f"local:{tmp_path}", task, "en", None), tiny_tokenizer)
    det, noun, verb = (task.labels.index(t) for t in ("DET", "NOUN", "VERB"))
    assert out.labels[0].tolist() == [IGNORE_LABEL, det, noun, IGNORE_LABEL, verb, IGNORE_LABEL]


def test_xcopa_gives_two_sequences_per_example(tiny_tokenizer):
    examples = [{"premise": "the cat sat", "choice1": "a dog", "choice2": "the mat", "question": "effect",
                 "label": 1},
                {"premise": "a dog", "choice1": "the cat", "choice2": "a mat", "question": "cause", "label": 0}]
    out = enc(get_task("xcopa"), examples, tiny_tokenizer)
    assert out.n_sequences == 4 and out.n_examples == 2
    assert out.example_index.tolist() == [0, 0, 1, 1]
    assert out.input_ids[0].tolist() == [CLS, 5, 6, 7, SEP, 15, 11, SEP]
    assert out.input_ids[1].tolist() == [CLS, 5, 6, 7, SEP, 5, 9, SEP]
    assert out.input_ids[3].tolist() == [CLS, 15, 11, SEP, 15, 9, SEP]
    assert out.labels == [1, 0] and out.questions == ["effect", "cause"]


def test_qa_windows_overlap_by_stride_and_offsets_point_into_context(tiny_tokenizer):
    task = dataclasses.replace(get_task("xquad"), max_length=16, stride=2)
    context = "the cat sat on the mat . the dog lives in paris ."    # 13 word pieces
    examples = [{"id": "q1", "question": "where is the cat ?", "context": context,
                 "answers": {"text": ["paris"], "answer_start": [context.index("paris")]}},
                {"id": "q2", "question": "who ?", "context": "a dog", "answers": None}]
    out = enc(task, examples, tiny_tokenizer, max_length=128)
    # 16 - 3 specials - 5 question pieces = 8 context pieces per window; the 2nd window restarts 2 pieces back.
    assert out.example_index.tolist() == [0, 0, 1]
    assert out.lengths.tolist() == [16, 15, 7]
    second = out.input_ids[1].tolist()
    assert second[:7] == [CLS, 17, 18, 5, 6, 19, SEP] and second[7:] == [14, 5, 11, 23, 20, 21, 14, SEP]
    paris = second.index(21)
    start, end = out.offsets[1][paris]
    assert context[start:end] == "paris"
    assert out.offsets[1][0].tolist() == [-1, -1]          # [CLS] is not context
    assert out.labels is None                                       # q2 has no answers
    assert out.n_truncated == 0 and out.example_ids == ["q1", "q2"]


def test_qa_windows_are_384_unless_max_length_is_smaller(tiny_tokenizer):
    examples = [{"id": "x", "question": "who ?", "context": " ".join(["the cat"] * 300),
                 "answers": {"text": ["cat"], "answer_start": [4]}}]
    out = enc(get_task("mlqa"), examples, tiny_tokenizer, max_length=512)
    # 600 context pieces, 384 - 5 = 379 per window, next window starts 128 back: 379 + 251 >= 600 -> 2 windows
    assert out.lengths.tolist() == [384, 5 + 600 - 379 + 128] and out.n_sequences == 2
    short = enc(get_task("mlqa"), examples, tiny_tokenizer, max_length=128)
    assert short.lengths.max() == 128 and any("stride 32" in n for n in short.notes)


def test_qa_overlong_question_is_cut_and_counted(tiny_tokenizer):
    task = dataclasses.replace(get_task("xquad"), max_length=16, stride=2)
    out = enc(task, [{"id": "x", "question": "the cat sat on the mat . a dog sat on the mat", "context": "paris",
                      "answers": None}], tiny_tokenizer, max_length=16)
    # the question keeps 16 // 2 = 8 pieces: [CLS] 8 [SEP] paris [SEP]
    assert out.input_ids[0].tolist() == [CLS, 5, 6, 7, 8, 5, 9, 14, 15, SEP, 21, SEP] and out.n_truncated == 1


def test_retrieval_encodes_both_sides_as_single_sentences(tiny_tokenizer):
    out = enc(get_task("tatoeba"), [{"text": "the cat", "en": "a dog ."}, {"text": "dog", "en": "cats"}],
              tiny_tokenizer, lang="de")
    assert [ids.tolist() for ids in out.input_ids] == [[CLS, 5, 6, SEP], [CLS, 11, SEP],
                                                       [CLS, 15, 11, 14, SEP], [CLS, 6, 10, SEP]]
    assert out.example_index.tolist() == [0, 1, 0, 1] and out.side.tolist() == [0, 0, 1, 1]
    assert out.labels is None and out.n_examples == 2


def test_empty_examples_encode_to_an_empty_set(tiny_tokenizer):
    out = enc(get_task("xnli"), [], tiny_tokenizer)
    assert out.n_sequences == 0 and out.real_tokens == 0 and out.lengths.tolist() == []


@pytest.mark.slow
def test_load_tokenizer_from_vocab_txt_and_local_directory(tiny_vocab_file, tmp_path):
    tok = load_tokenizer(str(tiny_vocab_file), "xlmr-base")
    assert tok("the cat")["input_ids"] == [CLS, 5, 6, SEP]
    tok.save_pretrained(tmp_path / "tok")
    again = load_tokenizer(str(tmp_path / "tok"), "xlmr-base")
    assert again("the cats")["input_ids"] == [CLS, 5, 6, 10, SEP]


def test_load_tokenizer_offline_hub_id_says_to_pass_a_vocab(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError) as exc:
        load_tokenizer(None, "xlmr-base")
    assert "FacebookAI/xlm-roberta-base" in str(exc.value) and "vocab.txt" in str(exc.value)
    with pytest.raises(InputError):
        load_tokenizer("/no/such/place/vocab.json", "mbert-base")


def test_mbert_vocab_known_ids(mbert_tokenizer):
    out = enc(get_task("tatoeba"), [{"text": "Hello world", "en": "the"}], mbert_tokenizer, vocab_size=119547)
    assert out.input_ids[0].tolist() == [101, 31178, 11356, 102]
    assert out.input_ids[1].tolist() == [101, 10105, 102]


def test_real_xnli_thai_is_longer_than_english(xtreme_dir, mbert_tokenizer):
    task = get_task("xnli")
    means = {}
    for lang in ("en", "th"):
        examples = load_examples(f"local:{xtreme_dir}", task, lang, 40)
        out = enc(task, examples, mbert_tokenizer, max_length=512, vocab_size=119547, types=False, lang=lang)
        assert out.n_sequences == 40 and out.lengths.min() >= 5 and out.labels == [e["label"] for e in examples]
        means[lang] = out.lengths.mean()
    assert means["th"] > 1.5 * means["en"]


def test_real_panx_label_alignment(xtreme_dir, mbert_tokenizer):
    task = get_task("panx")
    examples = load_examples(f"local:{xtreme_dir}", task, "en", 20)
    out = enc(task, examples, mbert_tokenizer, max_length=512, vocab_size=119547)
    for ex, labels in zip(examples, out.labels):
        kept = labels[labels != IGNORE_LABEL].tolist()
        assert kept == ex["tags"]          # every word labelled once, in order
