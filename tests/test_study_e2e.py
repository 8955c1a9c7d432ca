"""Studies end to end on tiny presets (`--quick`, few languages and examples): the runs they launch, --from reuse,
the written study.md/html/json, and every bad-input exit the studies promise."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from xlt_bench.cli import main
from xlt_bench.core.errors import InputError
from xlt_bench.study import cli as study_cli


def study(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    study_cli.add_arguments(parser)
    return study_cli.run(parser.parse_args(list(argv)))


def first_paragraph(out: Path) -> str:
    lines = (out / "study.md").read_text(encoding="utf-8").split("\n\n")
    assert lines[0].startswith("# ")
    return lines[1]


@pytest.fixture(scope="module")
def batching_out(tmp_path_factory, xtreme_dir):
    out = tmp_path_factory.mktemp("batching") / "study"
    assert study("batching", "--quick", "--langs", "en,de,th", "--limit", "6", "--out", str(out)) == 0
    return out


def test_batching_quick_writes_the_answer_first(batching_out):
    text = first_paragraph(batching_out)
    assert text.startswith("For tiny-xlmr (eager/fp32), on xnli, dynamic batching ran ")
    assert "the useful tok/s of static across 3 languages" in text
    html = (batching_out / "study.html").read_text(encoding="utf-8")
    assert "<p>For tiny-xlmr" in html and "http://" not in html and "https://" not in html
    doc = json.loads((batching_out / "study.json").read_text())
    assert doc["study"] == "batching" and doc["answer"] == text and not doc["refused"]
    rows = json.loads((batching_out / "runs" / "batching" / "results.json").read_text())["rows"]
    assert {r["batching"] for r in rows} >= {"static", "dynamic"}
    assert {r["lang"] for r in rows} == {"en", "de", "th", "ALL"}


def test_from_reuses_a_study_directory_without_measuring(batching_out, tmp_path):
    results = batching_out / "runs" / "batching" / "results.json"
    before = results.stat().st_mtime_ns
    assert study("batching", "--from", str(batching_out), "--out", str(tmp_path / "again")) == 0
    assert first_paragraph(tmp_path / "again") == first_paragraph(batching_out)
    assert results.stat().st_mtime_ns == before and not (tmp_path / "again" / "runs").exists()


def test_from_a_run_without_dynamic_rows_exits_2_saying_what_is_missing(batching_out, tmp_path, capsys):
    run_dir = tmp_path / "static-only"
    run_dir.mkdir()
    doc = json.loads((batching_out / "runs" / "batching" / "results.json").read_text())
    doc["rows"] = [r for r in doc["rows"] if r["batching"] == "static"]
    (run_dir / "results.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="lacks what the batching study needs: offline rows with batching "
                                         "'dynamic'"):
        study("batching", "--from", str(run_dir), "--out", str(tmp_path / "o"))
    assert not (tmp_path / "o" / "study.md").exists()


def test_the_resource_study_reads_a_batching_run_too(batching_out, tmp_path):
    assert study("resource", "--from", str(batching_out), "--out", str(tmp_path / "r")) == 0
    text = first_paragraph(tmp_path / "r")
    assert text.startswith("On xnli, class 3 rising star languages (n=1) tokenize to ")
    assert "no rank correlation is given (3 languages" in text


def test_resource_quick_on_real_panx(tmp_path, xtreme_dir, mbert_vocab):
    out = tmp_path / "resource"
    assert study("resource", "--quick", "--langs", "en,de,hi,ko,bn,sw,yo,my,te", "--limit", "4",
                 "--out", str(out)) == 0
    text = first_paragraph(out)
    assert text.startswith("On panx, class 1 scraping-by languages (n=2) tokenize to ")
    assert "Spearman ρ of resource class with time per sentence is " in text and " over 9 languages" in text
    assert "2 hopeful" in (out / "study.md").read_text()


# --- models: each model with its own tokenizer ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def sentencepiece_dir(tmp_path_factory, xtreme_dir):
    """A SentencePiece unigram tokenizer trained here on a few hundred Tatoeba lines, saved as an XLM-R-style
    tokenizer directory (the real XLM-R tokenizer needs the hub)."""
    spm = pytest.importorskip("sentencepiece")
    import io

    from transformers import XLMRobertaTokenizerFast
    lines = []
    for path in sorted((xtreme_dir / "tatoeba").glob("*.jsonl"))[:10]:
        for line in path.read_text(encoding="utf-8").splitlines()[:30]:
            pair = json.loads(line)
            lines += [pair["text"], pair["en"]]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=model, vocab_size=600,
                                   model_type="unigram", character_coverage=1.0, bos_id=0, pad_id=1, eos_id=2,
                                   unk_id=3, minloglevel=2)
    root = tmp_path_factory.mktemp("spm")
    (root / "spm.model").write_bytes(model.getvalue())
    XLMRobertaTokenizerFast(vocab_file=str(root / "spm.model")).save_pretrained(root / "tokenizer")
    return root / "tokenizer"


def test_models_with_their_own_tokenizers_on_real_text(tmp_path, sentencepiece_dir, mbert_vocab):
    out = tmp_path / "models"
    assert study("models", "--quick", "--tokenizers", f"{sentencepiece_dir},{mbert_vocab}", "--langs",
                 "en,de,th,sw,hi", "--limit", "4", "--out", str(out)) == 0
    text = first_paragraph(out)
    assert text.startswith("Over 5 languages (xnli, eager/fp32, dynamic batching), tiny-mbert processes ")
    doc = json.loads((out / "study.json").read_text())
    tokens = doc["data"]["tiny-mbert/tiny-xlmr"]["tokens_per_sentence"]["value"]
    assert tokens != pytest.approx(1.0, abs=0.02)           # two tokenizers, two lengths
    configs = [json.loads((p / "results.json").read_text())["run"]["config"]
               for p in sorted((out / "runs").iterdir())]
    assert [c["tokenizer"] for c in configs] == [str(sentencepiece_dir), str(mbert_vocab)]


def test_models_on_lengths_profiles_of_each_tokenizer(tmp_path, sentencepiece_dir, mbert_vocab, xtreme_dir):
    profile = tmp_path / "spm_profiles.json"
    assert main(["lengths", "--data", f"local:{xtreme_dir}", "--tokenizer", str(sentencepiece_dir), "--tasks",
                 "xnli", "--langs", "en,de,th", "--out", str(profile)]) == 0
    from xlt_bench.data.lengths import SHIPPED_PROFILES
    out = tmp_path / "models"
    assert study("models", "--quick", "--data", "synthetic", "--tokenizers", f"{sentencepiece_dir},{mbert_vocab}",
                 "--profiles", f"{profile},{SHIPPED_PROFILES}", "--langs", "en,de,th", "--limit", "4",
                 "--out", str(out)) == 0
    assert not first_paragraph(out).startswith("Labelled")
    # the same tokenizer's lengths for both models is said first
    out_same = tmp_path / "same"
    assert study("models", "--quick", "--langs", "en,de,th", "--limit", "4", "--out", str(out_same)) == 0
    assert first_paragraph(out_same).startswith("Labelled: tiny-xlmr, tiny-mbert ran on the same tokenizer's")


def test_a_profile_of_another_tokenizer_exits_2_naming_both(tmp_path, mbert_vocab, xtreme_dir, capsys):
    profile = tmp_path / "mbert.json"
    assert main(["lengths", "--data", f"local:{xtreme_dir}", "--tokenizer", str(mbert_vocab), "--tasks", "xnli",
                 "--langs", "en", "--out", str(profile)]) == 0
    other = tmp_path / "vocab.txt"
    other.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"]) + "\n")
    code = main(["run", "--model", "tiny-mbert", "--data", "synthetic", "--profiles", str(profile), "--tokenizer",
                 str(other), "--tasks", "xnli", "--langs", "en", "--limit", "2", "--backends", "eager",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and str(other) in err and str(mbert_vocab) in err and str(profile) in err


# --- alignment on a local checkpoint with a classification head ----------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, mbert_vocab):
    """A 2-layer BERT with a sequence-classification head saved to a directory (untrained weights, but the head
    is in the checkpoint, so the harness reports its accuracy)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("ckpt")
    config = BertConfig(vocab_size=119547, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=3)
    BertForSequenceClassification(config).save_pretrained(root)
    BertTokenizerFast(vocab_file=str(mbert_vocab), do_lower_case=False).save_pretrained(root)
    return root


def test_alignment_runs_on_a_checkpoint_with_a_head(tmp_path, checkpoint, xtreme_dir):
    out = tmp_path / "alignment"
    assert study("alignment", "--quick", "--models", str(checkpoint), "--langs", "de,fr,ru,hi,sw,th",
                 "--layer", "1", "--out", str(out)) == 0
    text = first_paragraph(out)
    assert text.startswith(f"For {checkpoint}, Tatoeba alignment (top-1 retrieval, layer 1) and xnli accuracy "
                           "across 6 languages") or text.startswith(f"Refused for {checkpoint}: alignment or "
                                                                    "accuracy does not vary")
    md = (out / "study.md").read_text()
    assert "alignment (layer 1) and accuracy per language" in md and "| xnli | th |" in md


def test_alignment_layer_out_of_range_is_bad_input(tmp_path, checkpoint, xtreme_dir):
    with pytest.raises(InputError, match="layer 5 does not exist: the model has layers 0 \\(embeddings\\) to 2"):
        study("alignment", "--quick", "--models", str(checkpoint), "--langs", "de,fr", "--layer", "5",
              "--out", str(tmp_path / "a"))


# --- train-cost: measured hours only from a matching run --------------------------------------------------------------

@pytest.fixture(scope="module")
def train_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "run"
    assert main(["-q", "run", "--scenario", "train", "--model", "tiny-xlmr", "--tasks", "xnli", "--langs", "en",
                 "--limit", "8", "--backends", "eager", "--batching", "static,dynamic", "--no-report",
                 "--out", str(out)]) == 0
    return out


def test_train_cost_default_plan_gives_the_english_only_ratio(tmp_path):
    out = tmp_path / "tc"
    assert study("train-cost", "--quick", "--out", str(out)) == 0
    text = first_paragraph(out)
    assert text.startswith("Projected, not measured: at the same budget of intermediate-task examples, the "
                           "multilingual arm (intermediate phase + standard fine-tuning) costs 1.00× (static)")
    assert "× English-only" in (out / "study.md").read_text()


def test_train_cost_refuses_a_run_of_another_model(tmp_path, train_run):
    with pytest.raises(InputError, match="the measured run is of model 'tiny-xlmr', the plan trains xlmr-base"):
        study("train-cost", "--measured", str(train_run), "--out", str(tmp_path / "tc"))


def test_train_cost_hours_from_a_matching_run(tmp_path, train_run):
    plan = Path(__file__).resolve().parents[1] / "benchmarks" / "train-plans" / "intermediate-task.toml"
    text = plan.read_text().replace('"xlmr-base"', '"tiny-xlmr"').replace('dtype = "bf16"', 'dtype = "fp32"')
    tiny_plan = tmp_path / "tiny.toml"
    tiny_plan.write_text(text)
    out = tmp_path / "tc"
    assert study("train-cost", "--plan", str(tiny_plan), "--from", str(train_run), "--out", str(out)) == 0
    assert "Hours on this machine are not given" not in first_paragraph(out)
    assert "hours here (measured rate)" in (out / "study.md").read_text()
    shutil.rmtree(out)
