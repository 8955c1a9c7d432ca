"""Loaders: local JSONL for every task kind, FILE:LINE errors, and the `datasets` path on locally saved datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xlt_bench.data.dataset import HF_LOCAL_ENV, load_examples
from xlt_bench.core.errors import InputError
from xlt_bench.data.tasks import get_task


def write_jsonl(root: Path, task: str, lang: str, rows: list) -> Path:
    path = root / task / f"{lang}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def local(root: Path) -> str:
    return f"local:{root}"


def test_pair_labels_by_name_or_index_and_limit(tmp_path):
    write_jsonl(tmp_path, "xnli", "en", [{"text_a": "a", "text_b": "b", "label": "contradiction"},
                                         {"text_a": "c", "text_b": "d", "label": 1}, "",
                                         {"text_a": "e", "text_b": "f", "label": "entailment"}])
    rows = load_examples(local(tmp_path), get_task("xnli"), "en", None)
    assert [r["label"] for r in rows] == [2, 1, 0]      # blank line skipped
    assert rows[0] == {"text_a": "a", "text_b": "b", "label": 2}
    assert len(load_examples(local(tmp_path), get_task("xnli"), "en", 2)) == 2


def test_malformed_json_line_names_file_and_line(tmp_path):
    path = write_jsonl(tmp_path, "xnli", "en", [{"text_a": "a", "text_b": "b", "label": 0}, '{"text_a": "a",'])
    with pytest.raises(InputError) as exc:
        load_examples(local(tmp_path), get_task("xnli"), "en", None)
    assert exc.value.file == str(path) and exc.value.line == 2
    assert str(exc.value).startswith(f"{path}:2: malformed JSON")


def test_missing_field_names_field_and_line(tmp_path):
    write_jsonl(tmp_path, "pawsx", "de", [{"text_a": "a", "text_b": "b", "label": 0}, {"text_a": "a", "label": 0}])
    with pytest.raises(InputError) as exc:
        load_examples(local(tmp_path), get_task("pawsx"), "de", None)
    assert (exc.value.line, exc.value.field) == (2, "text_b")


def test_label_outside_set(tmp_path):
    write_jsonl(tmp_path, "xnli", "en", [{"text_a": "a", "text_b": "b", "label": "maybe"}])
    with pytest.raises(InputError) as exc:
        load_examples(local(tmp_path), get_task("xnli"), "en", None)
    assert (exc.value.line, exc.value.field) == (1, "label") and "maybe" in str(exc.value)


def test_tag_outside_label_set_and_length_mismatch(tmp_path):
    write_jsonl(tmp_path, "panx", "de", [{"tokens": ["Berlin"], "tags": ["B-LOC"]},
                                         {"tokens": ["Bonn", "ist"], "tags": ["B-CITY", "O"]}])
    with pytest.raises(InputError) as exc:
        load_examples(local(tmp_path), get_task("panx"), "de", None)
    assert (exc.value.line, exc.value.field) == (2, "tags") and "B-CITY" in str(exc.value)
    write_jsonl(tmp_path, "panx", "fr", [{"tokens": ["a", "b", "c"], "tags": ["O", "O"]}])
    with pytest.raises(InputError) as exc:
        load_examples(local(tmp_path), get_task("panx"), "fr", None)
    assert exc.value.line == 1 and "3 tokens but 2 tags" in str(exc.value)


def test_udpos_file_laid_out_like_panx_loads_with_its_registry_entry_only(tmp_path):
    write_jsonl(tmp_path, "udpos", "en", [{"tokens": ["The", "cat", "sleeps", "."],
                                           "tags": ["DET", "NOUN", "VERB", "PUNCT"]}])
    rows = load_examples(local(tmp_path), get_task("udpos"), "en", None)
    upos = get_task("udpos").labels
    assert rows[0]["tags"] == [upos.index("DET"), upos.index("NOUN"), upos.index("VERB"), upos.index("PUNCT")]


def test_missing_or_empty_language_file_gives_no_examples_but_missing_task_dir_is_an_error(tmp_path):
    write_jsonl(tmp_path, "xnli", "en", [])
    assert load_examples(local(tmp_path), get_task("xnli"), "en", None) == []
    assert load_examples(local(tmp_path), get_task("xnli"), "th", None) == []
    with pytest.raises(InputError) as exc:
        load_examples(local(tmp_path), get_task("pawsx"), "en", None)
    assert exc.value.field == "data" and "pawsx" in str(exc.value)


def test_multiple_choice_qa_and_retrieval_layouts(tmp_path):
    write_jsonl(tmp_path, "xcopa", "it", [{"premise": "p", "choice1": "x", "choice2": "y", "question": "cause",
                                           "label": 1}])
    assert load_examples(local(tmp_path), get_task("xcopa"), "it", None)[0]["label"] == 1
    qa = {"id": "q1", "question": "who?", "context": "Ann lives here.", "answers": {"text": ["Ann"],
                                                                                   "answer_start": [0]}}
    write_jsonl(tmp_path, "xquad", "de", [qa, {**qa, "answers": {"text": ["x"], "answer_start": [99]}}])
    with pytest.raises(InputError) as exc:
        load_examples(local(tmp_path), get_task("xquad"), "de", None)
    assert (exc.value.line, exc.value.field) == (2, "answers")
    assert load_examples(local(tmp_path), get_task("xquad"), "de", 1) == [qa]
    write_jsonl(tmp_path, "lareqa", "de", [{"text": "Wer?", "target": "Ann lives here."}])
    assert load_examples(local(tmp_path), get_task("lareqa"), "de", None) == [{"text": "Wer?", "en": "Ann lives here."}]


def test_labels_may_be_absent(tmp_path):
    write_jsonl(tmp_path, "panx", "en", [{"tokens": ["a"]}])
    write_jsonl(tmp_path, "xnli", "en", [{"text_a": "a", "text_b": "b"}])
    assert load_examples(local(tmp_path), get_task("panx"), "en", None) == [{"tokens": ["a"], "tags": None}]
    assert load_examples(local(tmp_path), get_task("xnli"), "en", None)[0]["label"] is None


# --- the `datasets` path, with datasets saved locally standing in for the hub ------------------------------------

@pytest.fixture()
def hub_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(HF_LOCAL_ENV, str(tmp_path))
    return tmp_path


def test_hf_pair_dataset_with_class_labels(hub_dir):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"])})
    ds = datasets.Dataset.from_dict({"premise": ["p1", "p2", "p3"], "hypothesis": ["h1", "h2", "h3"],
                                     "label": [2, 0, 1]}, features=features)
    datasets.DatasetDict({"test": ds}).save_to_disk(str(hub_dir / "facebook/xnli/en"))
    rows = load_examples("hf", get_task("xnli"), "en", 2)
    assert rows == [{"text_a": "p1", "text_b": "h1", "label": 2}, {"text_a": "p2", "text_b": "h2", "label": 0}]


def test_hf_tagging_dataset_maps_class_label_ints_to_tags(hub_dir):
    datasets = pytest.importorskip("datasets")
    names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names))})
    ds = datasets.Dataset.from_dict({"tokens": [["Ada", "Lovelace", "wrote"]], "ner_tags": [[1, 2, 0]]},
                                    features=features)
    datasets.DatasetDict({"test": ds}).save_to_disk(str(hub_dir / "unimelb-nlp/wikiann/de"))
    assert load_examples("hf", get_task("panx"), "de", None) == [{"tokens": ["Ada", "Lovelace", "wrote"],
                                                                  "tags": [1, 2, 0]}]


def test_hf_tydiqa_keeps_only_the_languages_rows(hub_dir):
    datasets = pytest.importorskip("datasets")
    answers = [{"text": ["Ann"], "answer_start": [0]}, {"text": ["Bo"], "answer_start": [0]}]
    ds = datasets.Dataset.from_dict({"id": ["finnish-1", "english-7"], "question": ["q1", "q2"],
                                     "context": ["Ann x", "Bo y"], "answers": answers})
    datasets.DatasetDict({"validation": ds}).save_to_disk(str(hub_dir / "google-research-datasets/tydiqa/secondary_task"))
    rows = load_examples("hf", get_task("tydiqa"), "fi", None)
    assert [r["id"] for r in rows] == ["finnish-1"] and rows[0]["answers"] == answers[0]


def test_hf_tatoeba_and_lareqa_become_text_en_pairs(hub_dir):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"source_sentence": ["Hallo"], "target_sentence": ["Hello"],
                                     "source_lang": ["deu"], "target_lang": ["eng"]})
    datasets.DatasetDict({"validation": ds}).save_to_disk(str(hub_dir / "google/xtreme/tatoeba.deu"))
    assert load_examples("hf", get_task("tatoeba"), "de", None) == [{"text": "Hallo", "en": "Hello"}]
    ctx = "Paris is big. Ann lives in London. It rains."
    ds = datasets.Dataset.from_dict({"id": ["1"], "question": ["Where?"], "context": [ctx],
                                     "answers": [{"text": ["London"], "answer_start": [ctx.index("London")]}]})
    datasets.DatasetDict({"validation": ds}).save_to_disk(str(hub_dir / "google-research-datasets/xquad_r/de"))
    assert load_examples("hf", get_task("lareqa"), "de", None) == [{"text": "Where?", "en": "Ann lives in London."}]


def test_hf_unavailable_dataset_says_how_to_run_offline(hub_dir):
    pytest.importorskip("datasets")
    with pytest.raises(InputError) as exc:
        load_examples("hf", get_task("pawsx"), "fr", None)
    assert "--data local:DIR" in str(exc.value) and "synthetic" in str(exc.value)
    with pytest.raises(InputError) as exc:
        load_examples("hf", get_task("mewslix"), "de", None)
    assert "not on the Hugging Face hub" in str(exc.value)


def test_hf_hub_offline_fails_fast_with_a_clear_message(monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.delenv(HF_LOCAL_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError) as exc:
        load_examples("hf", get_task("xnli"), "sw", 3)
    assert "--data local:DIR" in str(exc.value)


def _save_lareqa(hub_dir, lang: str, contexts: list[str], answers: list[str]) -> None:
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({
        "id": [str(i) for i in range(len(contexts))], "question": ["q?"] * len(contexts), "context": contexts,
        "answers": [{"text": [a], "answer_start": [c.index(a)]} for c, a in zip(contexts, answers)]})
    datasets.DatasetDict({"validation": ds}).save_to_disk(str(hub_dir / "google-research-datasets/xquad_r" / lang))


def test_hf_lareqa_sentence_rebuild_fails_for_hindi_so_rows_say_unreliable(hub_dir, tiny_vocab_file):
    """Hindi ends sentences with '।', which the hub path's regex does not split at: the whole context comes back
    as the 'answer sentence'. Such rows (and only hi/th/zh rows) carry the unreliability note."""
    from xlt_bench.core.config import RunConfig
    from xlt_bench.run.pipeline import run
    hindi = "राम घर गया। सीता लंदन में रहती है। बारिश हुई।"
    _save_lareqa(hub_dir, "hi", [hindi] * 2, ["लंदन"] * 2)
    _save_lareqa(hub_dir, "de", ["Paris is big. Ann lives in London. It rains."] * 2, ["London"] * 2)
    assert load_examples("hf", get_task("lareqa"), "hi", 1)[0]["en"] == hindi       # not "सीता लंदन में रहती है।"
    cfg = RunConfig(model="tiny-mbert", tokenizer=str(tiny_vocab_file), data="hf", tasks=("lareqa",),
                    langs=("hi", "de"), backends=("fake",), batching=("static",), cost_model=False, threads=1)
    doc = run(cfg, hub_dir / "run")
    notes = {r["lang"]: " ".join(r["notes"]) for r in doc["rows"]}
    assert "accuracy unreliable" in notes["hi"] and "5%" in notes["hi"] and "sentence_breaks" in notes["hi"]
    assert "unreliable" not in notes["de"]
    from xlt_bench.report import render_run
    render_run(hub_dir / "run")
    assert "accuracy unreliable" in (hub_dir / "run" / "report.md").read_text(encoding="utf-8")


def test_hf_caveats_only_for_hub_data():
    from xlt_bench.data.dataset import source_caveats
    udpos, lareqa = get_task("udpos"), get_task("lareqa")
    greek = " ".join(source_caveats("hf", udpos, "el"))
    assert "Ancient Greek" in greek and "fused" in greek and "local:DIR" in greek
    assert "Classical Chinese" in " ".join(source_caveats("hf", udpos, "zh"))
    assert len(source_caveats("hf", udpos, "de")) == 1                     # the token-splitting note only
    assert [len(source_caveats("hf", lareqa, lang)) for lang in ("hi", "th", "zh", "de")] == [1, 1, 1, 0]
    assert source_caveats("local:/x", udpos, "el") == [] and source_caveats("synthetic", lareqa, "th") == []


def test_hf_udpos_greek_rows_carry_the_ancient_greek_note(hub_dir, tiny_vocab_file):
    datasets = pytest.importorskip("datasets")
    from xlt_bench.core.config import RunConfig
    from xlt_bench.data.tasks import UPOS_TAGS
    from xlt_bench.run.pipeline import run
    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "pos_tags": datasets.Sequence(datasets.ClassLabel(names=list(UPOS_TAGS)))})
    ds = datasets.Dataset.from_dict({"tokens": [["the", "cat", "sat"]] * 2, "pos_tags": [[5, 7, 15]] * 2},
                                    features=features)
    datasets.DatasetDict({"test": ds}).save_to_disk(str(hub_dir / "google/xtreme/udpos.Greek"))
    assert load_examples("hf", get_task("udpos"), "el", None)[0]["tags"] == [5, 7, 15]
    cfg = RunConfig(model="tiny-mbert", tokenizer=str(tiny_vocab_file), data="hf", tasks=("udpos",), langs=("el",),
                    backends=("fake",), batching=("static",), cost_model=False, threads=1)
    rows = run(cfg, hub_dir / "run")["rows"]
    assert all(any("Ancient Greek" in n for n in r["notes"]) for r in rows if r["lang"] == "el")


# --- real data ---------------------------------------------------------------------------------------------------

def test_real_shared_files_load(xtreme_dir):
    data = f"local:{xtreme_dir}"
    xnli = load_examples(data, get_task("xnli"), "th", None)
    assert len(xnli) == 300 and {r["label"] for r in xnli} == {0, 1, 2}
    panx = load_examples(data, get_task("panx"), "yo", None)
    assert len(panx) == 100 and all(len(r["tokens"]) == len(r["tags"]) for r in panx)
    assert len(load_examples(data, get_task("tatoeba"), "jv", None)) == 205
    assert load_examples(data, get_task("panx"), "th", None) == []     # absent from the shared snapshot
