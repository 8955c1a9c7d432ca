"""The XTREME-R task registry: languages as the benchmark defines them, lookups and their error messages."""

from __future__ import annotations

import pytest

from xlt_bench.core.errors import InputError
from xlt_bench.data.tasks import KINDS, TASKS, all_languages, describe_tasks, get_task, resolve_langs

EXPECTED_COUNTS = {"xnli": 15, "pawsx": 7, "xcopa": 11, "udpos": 38, "panx": 48, "xquad": 11, "mlqa": 7,
                   "tydiqa": 9, "tatoeba": 41, "mewslix": 11, "lareqa": 11}


def test_registry_has_every_xtreme_r_task_and_pawsx_with_benchmark_language_counts():
    assert {name: len(t.languages) for name, t in TASKS.items()} == EXPECTED_COUNTS
    for task in TASKS.values():
        assert task.kind in KINDS
        assert len(set(task.languages)) == len(task.languages)


def test_fifty_languages_in_all():
    langs = all_languages()
    assert len(langs) == 50
    assert {"ht", "qu", "wo", "my", "gu", "pa", "az"} <= set(langs)   # the rarer ones, each from one task


def test_label_sets_and_num_labels():
    assert get_task("xnli").labels == ("entailment", "neutral", "contradiction")
    assert get_task("xnli").num_labels == 3
    assert get_task("pawsx").num_labels == 2
    assert get_task("panx").num_labels == 7
    assert get_task("udpos").num_labels == 17 and "PROPN" in get_task("udpos").labels
    assert get_task("xcopa").num_labels == 1      # one score per (premise, choice) sequence
    assert get_task("xquad").num_labels == 2 and get_task("xquad").max_length == 384 and get_task("xquad").stride == 128
    assert get_task("tatoeba").labels is None


def test_hf_config_uses_the_hubs_own_language_names():
    assert get_task("tatoeba").hf_config_for("fa") == "tatoeba.pes"
    assert get_task("udpos").hf_config_for("en") == "udpos.English"
    assert get_task("xnli").hf_config_for("th") == "th"
    assert get_task("mlqa").hf_config_for("de") == "MLQA.de.de"
    assert get_task("tydiqa").hf_lang("fi") == "finnish"


def test_unknown_task_lists_valid_tasks():
    with pytest.raises(InputError) as exc:
        get_task("squad")
    assert exc.value.field == "tasks"
    assert "squad" in str(exc.value) and "xnli" in str(exc.value) and "lareqa" in str(exc.value)


def test_resolve_langs_all_and_explicit():
    task = get_task("pawsx")
    assert resolve_langs(task, ("all",)) == ["de", "en", "es", "fr", "ja", "ko", "zh"]
    assert resolve_langs(task, ("zh", "en", "zh")) == ["zh", "en"]


def test_unknown_language_names_the_tasks_languages():
    with pytest.raises(InputError) as exc:
        resolve_langs(get_task("pawsx"), ("en", "th"))
    msg = str(exc.value)
    assert exc.value.field == "langs" and "'pawsx'" in msg and "th" in msg and "de, en, es, fr, ja, ko, zh" in msg


def test_describe_tasks_for_the_cli():
    rows = {row["name"]: row for row in describe_tasks()}
    assert rows["xnli"]["hf"] == "facebook/xnli [{lang}] split=test"
    assert rows["mewslix"]["hf"] is None and "local" in rows["mewslix"]["hf_note"]
    assert rows["panx"]["n_languages"] == 48


def test_shared_data_languages_are_task_languages(xtreme_dir):
    for task_dir in xtreme_dir.iterdir():
        if task_dir.is_dir():
            task = get_task(task_dir.name)
            langs = {p.stem for p in task_dir.glob("*.jsonl")}
            assert langs <= set(task.languages), (task.name, langs - set(task.languages))
