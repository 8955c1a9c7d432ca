"""Studies: registry and options, statistics by hand, and each study's analysis on hand-made rows (no measuring).

End-to-end runs on tiny presets live in test_study_e2e.py.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest

from xlt_bench.core.errors import InputError
from xlt_bench.study import get_study, study_names
from xlt_bench.study import cli as study_cli
from xlt_bench.study.stats import correlation, geometric_mean, interval_ratio, median_ratio, spread


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    study_cli.add_arguments(parser)
    return parser.parse_args(list(argv))


# --- registry and options -----------------------------------------------------------------------------------------

def test_every_issue_study_is_registered_and_listed(capsys):
    assert set(study_names()) == {"batching", "resource", "models", "alignment", "train-cost"}
    assert study_cli.run(parse("--list")) == 0
    listing = capsys.readouterr().out
    for name in study_names():
        assert f"{name}\n    question: " in listing
    assert listing.count("    needs:    ") == 5


def test_unknown_study_suggests_the_closest_and_lists_all():
    with pytest.raises(InputError) as err:
        study_cli.run(parse("batchng", "--out", "x"))
    message = str(err.value)
    assert "did you mean 'batching'" in message and "train-cost" in message and err.value.exit_code == 2


def test_a_study_needs_a_name_and_an_out_dir():
    with pytest.raises(InputError, match="--list"):
        study_cli.run(parse())
    with pytest.raises(InputError, match="--out"):
        study_cli.run(parse("batching"))


def test_models_study_refuses_one_model_and_mismatched_tokenizers(tmp_path):
    with pytest.raises(InputError, match="two or more models; --models gave 1"):
        study_cli.run(parse("models", "--models", "tiny-xlmr", "--out", str(tmp_path)))
    with pytest.raises(InputError, match="1 tokenizers for 2 models"):
        study_cli.run(parse("models", "--models", "tiny-xlmr,tiny-mbert", "--tokenizers", "a.txt",
                            "--out", str(tmp_path)))
    assert not (tmp_path / "study.md").exists()


def test_alignment_refuses_random_weight_presets_before_running(tmp_path):
    with pytest.raises(InputError, match="no model with a trained head: tiny-xlmr, tiny-mbert are random-weight"):
        study_cli.run(parse("alignment", "--models", "tiny-xlmr,tiny-mbert", "--out", str(tmp_path)))
    with pytest.raises(InputError, match="must differ from tatoeba"):
        study_cli.run(parse("alignment", "--models", "some/dir", "--tasks", "tatoeba", "--out", str(tmp_path)))


def test_from_a_directory_without_results_names_what_is_missing(tmp_path):
    with pytest.raises(InputError, match="holds no results.json"):
        study_cli.run(parse("batching", "--from", str(tmp_path), "--out", str(tmp_path / "o")))


def test_quick_swaps_base_presets_for_tiny_twins():
    cfg = get_study("resource")().runs(parse("resource", "--quick", "--out", "x"))["resource"]
    assert cfg.model == "tiny-mbert" and cfg.backends == ("eager",) and cfg.limit == 8
    assert cfg.max_tokens == 4096 == cfg.batch_size * cfg.max_length       # static's own batch
    assert cfg.tokenizer.endswith("mbert-cased/vocab.txt") and cfg.tasks == ("panx",)
    assert len(cfg.langs) >= 5
    models = get_study("models")().runs(parse("models", "--quick", "--out", "x"))
    assert [c.model for c in models.values()] == ["tiny-xlmr", "tiny-mbert"]


# --- statistics by hand ---------------------------------------------------------------------------------------------

def test_spread_is_median_and_quartiles():
    assert spread([1, 2, 3, 4, 100]) == (3.0, 2.0, 4.0)
    assert spread([]) == (None, None, None)


def test_correlation_of_a_monotonic_relation_and_its_refusals():
    est = correlation([1, 2, 3, 4, 5, 6], [2, 4, 5, 9, 10, 30], "spearman")
    assert est.value == pytest.approx(1.0) and est.n == 6 and est.lo <= 1.0 <= est.hi + 1e-12
    pearson = correlation([1, 2, 3, 4, 5], [1, 2, 3, 4, 6], "pearson")
    assert pearson.value == pytest.approx(np.corrcoef([1, 2, 3, 4, 5], [1, 2, 3, 4, 6])[0, 1])
    assert correlation([1, 2, 3, 4], [4, 3, 2, 1]).value is None          # fewer than 5 languages
    assert correlation([1, 2, 3, 4, 5], [7, 7, 7, 7, 7]).value is None    # a constant side


def test_bootstrap_intervals_are_seeded_and_bracket_the_value():
    a = correlation([1, 3, 2, 5, 4, 7, 6], [1, 2, 3, 4, 5, 6, 7], seed=3)
    b = correlation([1, 3, 2, 5, 4, 7, 6], [1, 2, 3, 4, 5, 6, 7], seed=3)
    assert (a.lo, a.hi) == (b.lo, b.hi) and a.lo <= a.value <= a.hi


def test_geometric_mean_and_median_ratio_by_hand():
    est = geometric_mean([1.0, 4.0, 2.0, 2.0, 1.0])
    assert est.value == pytest.approx((1 * 4 * 2 * 2 * 1) ** 0.2) and est.has_interval
    assert not geometric_mean([2.0, 8.0]).has_interval                  # too few languages for an interval
    ratio = median_ratio([10, 20, 30], [5, 10, 15])
    assert ratio.value == pytest.approx(2.0)
    assert median_ratio([10], [5]).has_interval is False


def test_interval_ratio_divides_the_extremes():
    est = interval_ratio(6.0, [5.0, 7.0], 3.0, [2.0, 4.0])
    assert (est.value, est.lo, est.hi) == (2.0, 1.25, 3.5)
    assert not interval_ratio(6.0, None, 3.0, [2.0, 4.0]).has_interval


# --- analyses on hand-made rows -------------------------------------------------------------------------------------

def row(lang, batching, *, tokens, seq_s, waste, model="m", task="panx", speedup=None, ci=None, accuracy=None):
    n = 10
    return {"scenario": "offline", "task": task, "lang": lang, "model": model, "backend": "eager", "dtype": "fp32",
            "batching": batching, "n_examples": n, "n_sequences": n, "real_tokens": tokens * n,
            "throughput_seq_s": seq_s, "throughput_tok_s": seq_s * tokens, "padding_waste": waste,
            "speedup": speedup, "speedup_ci95": ci, "accuracy": accuracy, "accuracy_metric": "accuracy"}


def doc_of(rows, **config):
    return {"schema_version": 1, "run": {"config": {"model": "m", "data": "local:x", **config}}, "rows": rows}


# Joshi classes: en de ja 5; hi ko 4; bn ta 3; sw yo 2; my te 1. Tokens grow and speed falls as class drops.
RESOURCE_LANGS = {"en": 20, "de": 22, "ja": 24, "hi": 30, "ko": 28, "bn": 35, "ta": 40, "sw": 33, "yo": 45,
                  "my": 60, "te": 50}


def resource_doc():
    rows = []
    for lang, tokens in RESOURCE_LANGS.items():
        rows.append(row(lang, "static", tokens=tokens, seq_s=100.0, waste=1 - tokens / 128))
        rows.append(row(lang, "dynamic", tokens=tokens, seq_s=2000.0 / tokens, waste=0.05,
                        speedup=(2000.0 / tokens) / 100.0))
    return doc_of(rows)


def test_resource_study_groups_by_class_and_correlates_class_with_cost():
    study = get_study("resource")()
    answer = study.analyse({"r": resource_doc()}, parse("resource", "--out", "x"))
    finding = answer.data["panx"]
    # lowest class present is 1 (my 60, te 50: median 55), highest 5 (en 20, de 22, ja 24: median 22)
    assert (finding["low_class"], finding["high_class"]) == (1, 5)
    assert finding["tokens"]["value"] == pytest.approx(55 / 22)
    # cost per sentence = tokens / 2000 s: the same ratio
    assert finding["cost"]["value"] == pytest.approx(55 / 22)
    from scipy.stats import spearmanr
    classes = [5, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    expected = spearmanr(classes, [t / 2.0 for t in RESOURCE_LANGS.values()])[0]
    assert finding["rho_cost"]["value"] == pytest.approx(expected) and finding["rho_cost"]["value"] < 0
    assert answer.answer.startswith("On panx, class 1 scraping-by languages (n=2) tokenize to 2.50×")
    assert "Spearman ρ of resource class with time per sentence is -" in answer.answer
    table = answer.blocks[1].table
    assert list(table["n"]) == ["2", "2", "2", "2", "3"]
    assert table.loc[table["class"].str.startswith("5"), "× English"].iloc[0].startswith("1.10×")


def test_resource_study_flags_a_class_of_one_language():
    doc = resource_doc()
    doc["rows"] = [r for r in doc["rows"] if r["lang"] != "te"]
    answer = get_study("resource")().analyse({"r": doc}, parse("resource", "--out", "x"))
    assert answer.blocks[1].table["class"].iloc[0] == "1 scraping-by (one language)"
    assert any("holds one language" in limit for limit in answer.limits)
    assert "(no interval)" in answer.answer


def test_resource_missing_names_what_a_run_lacks():
    doc = resource_doc()
    doc["rows"] = [r for r in doc["rows"] if r["batching"] == "static" and r["lang"] in ("en", "de")]
    missing = get_study("resource")().missing({"r": doc})
    assert "offline rows with batching 'dynamic'" in missing
    assert any("two resource classes (it has 1)" in m for m in missing)


def test_batching_study_uses_row_intervals_and_says_when_they_are_missing():
    rows = []
    for i, lang in enumerate(["en", "de", "fr", "sw", "th"]):
        rows.append(row(lang, "static", tokens=20, seq_s=100.0, waste=0.8, task="xnli"))
        ci = [1.8 + 0.1 * i, 2.2 + 0.1 * i] if lang != "th" else None
        rows.append(row(lang, "dynamic", tokens=20, seq_s=200.0 + 10 * i, waste=0.1, task="xnli",
                        speedup=2.0 + 0.1 * i, ci=ci))
    answer = get_study("batching")().analyse({"b": doc_of(rows)}, parse("batching", "--out", "x"))
    expected = np.exp(np.mean(np.log([2.0, 2.1, 2.2, 2.3, 2.4])))
    assert answer.answer.startswith(f"For m (eager/fp32), on xnli, dynamic batching ran {expected:.2f}× [")
    assert "from 2.00× for en to 2.40× for th" in answer.answer
    assert "Per-language intervals are missing for 1 of 5 rows" in answer.answer
    cells = list(answer.blocks[1].table["dynamic ÷ static"])
    assert cells[0] == "2.00× [1.80, 2.20]" and cells[-1] == "2.40× (no interval)"
    assert set(answer.charts) == {"speedup_xnli_dynamic"}
    assert answer.charts["speedup_xnli_dynamic"].png[:4] == b"\x89PNG"


def models_docs(tokens_b=1.5):
    a, b = [], []
    for lang in ["en", "de", "fr", "ru", "hi", "sw"]:
        for batching in ("static", "dynamic"):
            a.append(row(lang, batching, tokens=20, seq_s=100.0, waste=0.1, model="A", task="xnli"))
            b.append(row(lang, batching, tokens=20 * tokens_b, seq_s=50.0, waste=0.1, model="B", task="xnli"))
    return {"1-A": doc_of(a, model="A", tokenizer="tokA"), "2-B": doc_of(b, model="B", tokenizer="tokB")}


def test_models_study_ratios_per_language_and_family():
    answer = get_study("models")().analyse(models_docs(), parse("models", "--out", "x"))
    assert answer.answer.startswith("Over 6 languages (xnli, eager/fp32, dynamic batching), B processes 0.50× [0.50, "
                                    "0.50] the sentences per second of A")
    assert "with 1.50× [1.50, 1.50] its tokens per sentence" in answer.answer
    assert not answer.answer.startswith("Labelled")
    family = answer.blocks[3].table
    assert family.set_index("family").loc["Indo-European", "n"] == "5"
    assert any("accuracy is not compared" in limit for limit in answer.limits)


def test_models_study_labels_a_comparison_on_one_tokenizers_lengths():
    docs = models_docs(tokens_b=1.0)
    for doc in docs.values():
        doc["run"]["config"].update(data="synthetic", profiles=None, tokenizer=None)
    answer = get_study("models")().analyse(docs, parse("models", "--out", "x"))
    assert answer.answer.startswith("Labelled: A, B ran on the same tokenizer's token lengths, so their ratios "
                                    "compare architectures only")


def test_models_missing_wants_two_models():
    docs = models_docs()
    docs.pop("2-B")
    assert get_study("models")().missing(docs) == ["runs of two or more models (found 1: A)"]


# --- alignment: never a metric with itself, never below five languages ---------------------------------------------

def _alignment(langs, top1):
    return pd.DataFrame({"lang": langs, "pairs": [50] * len(langs), "top1": top1, "cosine": [0.5] * len(langs)})


def _accuracy(langs, values, task="xnli"):
    return pd.DataFrame({"task": [task] * len(langs), "lang": langs, "accuracy": values, "metric": "accuracy"})


LANGS6 = ["de", "fr", "ru", "hi", "sw", "th"]


def test_alignment_correlation_on_another_task():
    from xlt_bench.study.alignment import correlate_alignment
    out = correlate_alignment(_alignment(LANGS6, [0.9, 0.8, 0.7, 0.5, 0.3, 0.2]),
                              _accuracy(LANGS6, [0.80, 0.78, 0.75, 0.70, 0.60, 0.65]), seed=0)
    from scipy.stats import spearmanr
    assert out["spearman"].value == pytest.approx(spearmanr([0.9, 0.8, 0.7, 0.5, 0.3, 0.2],
                                                            [0.80, 0.78, 0.75, 0.70, 0.60, 0.65])[0])
    assert out["pearson"].has_interval and "refusal" not in out


def test_alignment_refuses_tatoeba_accuracy_which_is_the_same_embeddings():
    from xlt_bench.study.alignment import correlate_alignment
    top1 = [0.9, 0.8, 0.7, 0.5, 0.3, 0.2]
    out = correlate_alignment(_alignment(LANGS6, top1), _accuracy(LANGS6, top1, task="tatoeba"), seed=0)
    assert "metric with itself" in out["refusal"] and "spearman" not in out


def test_alignment_refuses_identical_numbers_under_another_task_name():
    from xlt_bench.study.alignment import correlate_alignment
    top1 = [0.9, 0.8, 0.7, 0.5, 0.3, 0.2]
    out = correlate_alignment(_alignment(LANGS6, top1), _accuracy(LANGS6, top1, task="xnli"), seed=0)
    assert "same numbers" in out["refusal"]


def test_alignment_gives_no_coefficient_below_five_languages():
    from xlt_bench.study.alignment import _sentence, correlate_alignment
    out = correlate_alignment(_alignment(LANGS6[:4], [0.9, 0.5, 0.4, 0.1]),
                              _accuracy(LANGS6[:4], [0.8, 0.7, 0.6, 0.5]), seed=0)
    assert out["refusal"].startswith("4 languages have both alignment and accuracy; at least 5")
    assert _sentence("m", 7, out).startswith("Refused for m: 4 languages")


def test_alignment_from_a_tatoeba_only_run_is_refused_saying_why():
    rows = [row(lang, "static", tokens=10, seq_s=1.0, waste=0.0, task="tatoeba", accuracy=0.5) for lang in LANGS6]
    missing = get_study("alignment")().missing({"t": doc_of(rows)})
    assert len(missing) == 1 and "correlation with itself" in missing[0]
    rows = [row(lang, "static", tokens=10, seq_s=1.0, waste=0.0, task="xnli") for lang in LANGS6]
    assert "accuracy from a trained head" in get_study("alignment")().missing({"x": doc_of(rows)})[0]


def test_default_layer_is_the_middle_as_xtreme_pools_mbert_layer_7():
    from xlt_bench.study.embeddings import default_layer
    assert (default_layer(12), default_layer(24), default_layer(2)) == (7, 13, 2)


def test_parallel_tax_counts_tokens_of_translations_by_hand(tmp_path, tiny_vocab_file):
    import json

    from xlt_bench.study.resource import parallel_tax
    (tmp_path / "tatoeba").mkdir()
    pairs = [{"text": "the cat", "en": "a dog ."}, {"text": "dog", "en": "cats"}]   # text 4 + 3, en 5 + 4 tokens
    (tmp_path / "tatoeba" / "de.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    cfg = {"data": f"local:{tmp_path}", "tokenizer": str(tiny_vocab_file), "model": "tiny-mbert"}
    assert parallel_tax(cfg, ["de", "en", "fr"]) == {"de": pytest.approx(7 / 9)}
    assert parallel_tax({**cfg, "data": "synthetic"}, ["de"]) == {}


def test_xnli_files_give_line_by_line_translations_for_alignment(xtreme_dir):
    from xlt_bench.study.alignment import parallel_sentences
    own, english = parallel_sentences(f"local:{xtreme_dir}", "xnli", "de", 3)
    assert len(own) == len(english) == 6          # 3 premises then 3 hypotheses
    assert own[0].startswith("und er hat gesagt") and english[0].startswith("And he said")
    assert parallel_sentences(f"local:{xtreme_dir}", "xnli", "en", 3) == ([], [])


def test_alignment_on_xnli_refuses_xnli_accuracy(tmp_path):
    with pytest.raises(InputError, match="must differ from xnli"):
        study_cli.run(parse("alignment", "--models", "some/dir", "--align-on", "xnli", "--tasks", "xnli",
                            "--out", str(tmp_path)))
    with pytest.raises(InputError, match="'bucc' is not parallel text"):
        study_cli.run(parse("alignment", "--models", "some/dir", "--align-on", "bucc", "--out", str(tmp_path)))
    study = get_study("alignment")()
    study.check_args(parse("alignment", "--models", "some/dir", "--align-on", "xnli", "--out", "x"))
    rows = [row(lang, "static", tokens=10, seq_s=1.0, waste=0.0, task="xnli", accuracy=0.5) for lang in LANGS6]
    assert "accuracy on a task other than xnli" in study.missing({"x": doc_of(rows)})[0]
