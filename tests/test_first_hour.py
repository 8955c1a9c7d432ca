"""A new user's first hour: every --help renders, --out never deletes what the harness did not write, bad options
fail at preflight with exit 2 and the option's name, unexpected errors exit 3 with the traceback in a file, and
results documents are validated on load."""

from __future__ import annotations

import argparse

import pytest

from xlt_bench.cli import build_parser, main


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_top_level_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    commands = _subcommands()
    assert {"run", "sweep", "train-cost", "report", "gate"} <= set(commands)
    description = out[out.index("Commands:"):]
    for name in commands:
        assert f" {name}," in description or f" {name} (" in description, name
    assert "3 internal error" in out


@pytest.mark.parametrize("command", sorted(_subcommands()))
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_subcommand_help_renders(command, flag, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, flag])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: xlt-bench {command}")
    assert "exit codes" in out


def test_run_help_shows_a_percent_sign_literally(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "20% fewer" in " ".join(capsys.readouterr().out.split())


# --- --out never deletes what the harness did not write -----------------------------------------------------------

FAKE_RUN = ["run", "--model", "tiny-xlmr", "--backends", "fake", "--batching", "static", "--tasks", "xnli",
            "--langs", "en", "--limit", "4", "--threads", "1", "--min-repeats", "1", "--min-seconds", "0",
            "--no-report"]


@pytest.fixture
def no_measuring(monkeypatch):
    """Any measurement fails the test: the case must be refused before it."""
    import xlt_bench.run.pipeline as pipeline
    monkeypatch.setattr(pipeline, "_measure_peaks", lambda *a: pytest.fail("measured before refusing --out"))


@pytest.fixture
def fast_fake(monkeypatch):
    monkeypatch.setenv("XLT_FAKE_COST", "fixed_ms=1")
    import xlt_bench.run.pipeline as pipeline
    monkeypatch.setattr(pipeline, "_measure_peaks", lambda *a: {})


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_out_holding_user_files_is_refused_and_kept(tmp_path, capsys, no_measuring, force):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "mynotes.txt").write_text("keep me")
    assert main(FAKE_RUN + ["--out", str(out)] + force) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "mynotes.txt" in err and "not written by xlt-bench" in err
    assert (out / "mynotes.txt").read_text() == "keep me"


def test_out_above_earlier_runs_is_refused_and_they_are_kept(tmp_path, capsys, no_measuring):
    results = tmp_path / "results"
    for name in ("baseline", "example"):
        (results / name).mkdir(parents=True)
        (results / name / "results.json").write_text("{}")
    assert main(FAKE_RUN + ["--out", str(results), "--force"]) == 2
    assert "baseline" in capsys.readouterr().err
    assert all((results / name / "results.json").exists() for name in ("baseline", "example"))


def test_dry_run_refuses_the_same_out(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "mynotes.txt").write_text("keep me")
    assert main(FAKE_RUN + ["--out", str(out), "--dry-run"]) == 2
    assert "mynotes.txt" in capsys.readouterr().err


def test_empty_out_is_used_and_marked_and_replaceable_with_force(tmp_path, fast_fake):
    from xlt_bench.run.run_dir import MARKER
    out = tmp_path / "empty"
    out.mkdir()
    assert main(FAKE_RUN + ["--out", str(out)]) == 0
    assert (out / "results.json").exists() and (out / MARKER).exists()
    assert main(FAKE_RUN + ["--out", str(out)]) == 2          # a finished run needs --force
    assert main(FAKE_RUN + ["--out", str(out), "--force"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]   # no staging or old copy left


def test_unmarked_run_of_only_run_files_is_replaceable(tmp_path, fast_fake):
    """A run directory written before runs were marked: nothing in it but what a run writes."""
    out = tmp_path / "old-run"
    (out / "plots").mkdir(parents=True)
    for name in ("results.json", "rows.csv", "report.md"):
        (out / name).write_text("x")
    assert main(FAKE_RUN + ["--out", str(out), "--force"]) == 0
    assert (out / "rows.csv").read_text() != "x"


# --- --out that encloses the working directory or a repository, and a failed swap --------------------------------

@pytest.mark.parametrize("out", [".", "..", "./"])
def test_out_enclosing_the_working_directory_is_refused(tmp_path, monkeypatch, capsys, no_measuring, out):
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("keep me")
    monkeypatch.chdir(work)
    assert main(FAKE_RUN + ["--out", out, "--force"]) == 2
    assert "working directory" in capsys.readouterr().err
    assert (work / "notes.txt").exists()


def test_out_at_a_repository_root_is_refused(tmp_path, capsys, no_measuring):
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    assert main(FAKE_RUN + ["--out", str(repo), "--force"]) == 2
    assert "repository root" in capsys.readouterr().err
    assert (repo / ".git").is_dir()


def test_failed_swap_leaves_the_finished_run_readable(tmp_path, monkeypatch, capsys, caplog, fast_fake):
    import pathlib
    out = tmp_path / "out"
    real_rename = pathlib.Path.rename

    def busy(self, target):
        if pathlib.Path(target) == out:
            raise OSError(16, "Device or resource busy")
        return real_rename(self, target)

    monkeypatch.setattr(pathlib.Path, "rename", busy)
    assert main(FAKE_RUN + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    staging = next(p for p in tmp_path.iterdir() if p.name.startswith(".out.new-"))
    assert "could not replace" in err and str(staging) in err
    assert (staging / "results.json").exists()
    assert (out / "results.incomplete.json").exists()
    monkeypatch.undo()
    assert main(["report", str(staging)]) == 0
    caplog.clear()
    assert main(["report", str(out)]) == 0              # reads results.incomplete.json ...
    assert "incomplete run" in caplog.text              # ... and says so
    assert (out / "report.md").exists()
    caplog.clear()
    assert main(["gate", "--baseline", str(staging), "--current", str(out)]) == 0
    assert "incomplete run" in caplog.text


# --- no tracebacks: limits checked at preflight, an internal error is exit 3 with its traceback in a file ----------

@pytest.mark.parametrize("model, length, usable", [("tiny-xlmr", 513, 512), ("tiny-mbert", 513, 512)])
@pytest.mark.parametrize("dry", [["--dry-run"], []])
def test_max_length_beyond_the_position_table(tmp_path, capsys, no_measuring, model, length, usable, dry):
    args = FAKE_RUN + ["--model", model, "--max-length", str(length), "--out", str(tmp_path / "o")] + dry
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "max_length" in err and f"at most {usable}" in err and model in err
    assert not (tmp_path / "o").exists()


def test_max_length_at_the_position_table_passes(tmp_path):
    assert main(FAKE_RUN + ["--max-length", "512", "--out", str(tmp_path / "o"), "--dry-run"]) == 0


def test_position_limit_reads_a_local_config(tmp_path):
    from xlt_bench.backends.models import position_limit
    (tmp_path / "config.json").write_text('{"model_type": "xlm-roberta", "max_position_embeddings": 130, '
                                          '"pad_token_id": 1}')
    assert position_limit(str(tmp_path)) == (128, 130, 2)
    assert position_limit("xlmr-base") == (512, 514, 2) and position_limit("mbert-base") == (512, 512, 0)


@pytest.mark.parametrize("limit, says", [("99999999999999999999", "beyond any count"),
                                         ("100000000000", "would not fit")])
@pytest.mark.parametrize("dry", [["--dry-run"], []])
def test_absurd_limit_is_refused_before_allocating(tmp_path, capsys, no_measuring, limit, says, dry):
    assert main(FAKE_RUN + ["--limit", limit, "--out", str(tmp_path / "o")] + dry) == 2
    err = capsys.readouterr().err
    assert "'limit'" in err and says in err and "Traceback" not in err


def test_unexpected_exception_exits_3_with_the_traceback_in_a_file(monkeypatch, capsys):
    import xlt_bench.commands as commands

    def broken(args):
        raise ValueError("Maximum allowed size exceeded")

    monkeypatch.setitem(commands.COMMANDS, "tasks", broken)
    assert main(["tasks"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error" in err and "Maximum allowed size exceeded" in err
    path = err.split("traceback is in ")[1].rstrip(")\n")
    text = open(path, encoding="utf-8").read()
    assert "Traceback" in text and "def broken" not in text and "in broken" in text


# --- results documents are validated on load ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def measured_doc(tmp_path_factory) -> dict:
    """A real two-language run on the fake backend (its ALL row sums the two languages)."""
    import json
    import os

    from xlt_bench.core.config import RunConfig
    from xlt_bench.run.pipeline import run
    os.environ["XLT_FAKE_COST"] = "fixed_ms=1"
    try:
        out = tmp_path_factory.mktemp("measured") / "run"
        run(RunConfig(model="tiny-xlmr", backends=("fake",), batching=("static",), tasks=("xnli",),
                      langs=("en", "de"), limit=4, threads=1, min_repeats=1, min_seconds=0.0), out)
    finally:
        del os.environ["XLT_FAKE_COST"]
    return json.loads((out / "results.json").read_text())


def _write_doc(path, doc) -> str:
    import json
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.json").write_text(json.dumps(doc))
    return str(path)


def _reader_args(command: str, bad: str, good: str, tmp_path) -> list[str]:
    return {"report": ["report", bad], "export": ["export", bad],
            "compare": ["compare", good, bad, "--out", str(tmp_path / "cmp")],
            "gate": ["gate", "--baseline", good, "--current", bad]}[command]


@pytest.mark.parametrize("command", ["report", "compare", "gate", "export"])
def test_a_document_without_rows_is_exit_2(tmp_path, capsys, measured_doc, command):
    bad = _write_doc(tmp_path / "empty", {**measured_doc, "rows": []})
    good = _write_doc(tmp_path / "good", measured_doc)
    assert main(_reader_args(command, bad, good, tmp_path)) == 2
    err = capsys.readouterr().err
    assert "no rows" in err and "empty/results.json" in err


def _corrupt(doc: dict, lang: str, key: str, value) -> dict:
    import copy
    doc = copy.deepcopy(doc)
    row = next(r for r in doc["rows"] if r["lang"] == lang)
    row[key] = value if not callable(value) else value(row[key])
    return doc


CORRUPTIONS = {
    "waste above 1": ("en", "padding_waste", 1.7, "outside [0, 1]"),
    "negative tokens": ("de", "real_tokens", -5, "negative"),
    "NaN throughput": ("en", "throughput_tok_s", float("nan"), "not a finite number"),
    "infinite wall": ("de", "wall_s", float("inf"), "not a finite number"),
    "ALL contradicts its languages": ("ALL", "real_tokens", lambda v: v + 1, "not the sum over its languages"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
@pytest.mark.parametrize("command", ["report", "compare", "gate", "export"])
def test_an_impossible_value_is_exit_2_naming_file_row_and_field(tmp_path, capsys, measured_doc, command, case):
    lang, key, value, says = CORRUPTIONS[case]
    doc = _corrupt(measured_doc, lang, key, value)
    index = next(i for i, r in enumerate(doc["rows"]) if r["lang"] == lang)
    bad = _write_doc(tmp_path / "bad", doc)
    good = _write_doc(tmp_path / "good", measured_doc)
    assert main(_reader_args(command, bad, good, tmp_path)) == 2
    err = capsys.readouterr().err
    assert "bad/results.json" in err and f"row {index} (xnli/{lang}/" in err and f"'{key}'" in err and says in err
    assert not (tmp_path / "bad" / "report.md").exists()


def test_the_untouched_document_is_read(tmp_path, measured_doc):
    good = _write_doc(tmp_path / "good", measured_doc)
    assert main(["export", good, "--out", str(tmp_path / "bench.json")]) == 0


# --- a language asked for by name must be readable ----------------------------------------------------------------

def _local_data(tmp_path, tiny_vocab_file) -> tuple[list[str], object]:
    data = tmp_path / "data"
    (data / "xnli").mkdir(parents=True)
    (data / "xnli" / "en.jsonl").write_text('{"text_a": "the cat", "text_b": "a dog", "label": 0}\n' * 4)
    (data / "xnli" / "de.jsonl").symlink_to(tmp_path / "gone.jsonl")
    args = ["run", "--model", "tiny-mbert", "--tokenizer", str(tiny_vocab_file), "--data", f"local:{data}",
            "--tasks", "xnli", "--backends", "fake", "--batching", "static", "--threads", "1", "--min-repeats", "1",
            "--min-seconds", "0", "--no-report", "--out", str(tmp_path / "out")]
    return args, data


@pytest.mark.parametrize("lang, says", [("de", "broken symbolic link"), ("fr", "no data file")])
def test_a_named_language_that_cannot_be_read_is_exit_2(tmp_path, tiny_vocab_file, capsys, no_measuring, lang, says):
    args, data = _local_data(tmp_path, tiny_vocab_file)
    assert main(args + ["--langs", f"en,{lang}"]) == 2
    err = capsys.readouterr().err
    assert f"language '{lang}'" in err and says in err and str(data / "xnli" / f"{lang}.jsonl") in err
    assert "empty" not in err


def test_langs_all_skips_an_unreadable_language_with_its_real_reason(tmp_path, tiny_vocab_file, fast_fake):
    import json
    args, data = _local_data(tmp_path, tiny_vocab_file)
    assert main(args + ["--langs", "all"]) == 0
    skipped = json.loads((tmp_path / "out" / "results.json").read_text())["run"]["skipped"]
    reasons = {s["lang"]: s["reason"] for s in skipped}
    assert "broken symbolic link" in reasons["de"] and "no data file" in reasons["fr"]


# --- a mistyped --model fails fast, with a did-you-mean, in run and in train-cost plans -----------------------------

@pytest.fixture
def offline_hub(monkeypatch, tmp_path):
    """No hub (HF_HUB_OFFLINE) and an empty cache: whatever is not a preset or a directory cannot be resolved."""
    import xlt_bench.backends.model_source as model_source
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    model_source.hub_online.cache_clear()
    yield
    model_source.hub_online.cache_clear()


@pytest.mark.parametrize("model, says", [("xlmr-giant", "did you mean xlmr-base or xlmr-large?"),
                                         ("tiny-xlm", "did you mean tiny-xlmr"),
                                         ("not a model!", "is not a preset, an existing model directory or a Hugging"),
                                         ("someone/xlmr-base-finetuned", "hub is unreachable")])
def test_mistyped_model_is_one_line_exit_2_without_the_hub(tmp_path, capsys, offline_hub, model, says):
    import time
    started = time.perf_counter()
    assert main(FAKE_RUN + ["--model", model, "--out", str(tmp_path / "o")]) == 2
    elapsed = time.perf_counter() - started
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'model'" in err and says in err, err
    assert elapsed < 10   # generous on a shared machine: what it guards against is a minute of hub retries
    assert not (tmp_path / "o").exists()


def test_a_model_in_the_hub_cache_passes_the_name_check_offline(tmp_path, offline_hub, monkeypatch):
    from xlt_bench.backends.model_source import _in_hub_cache
    snapshot = tmp_path / "empty-cache" / "models--someone--tiny" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    assert _in_hub_cache("someone/tiny") and not _in_hub_cache("someone/other")


def test_mistyped_model_in_a_train_cost_plan_names_file_line_and_key(tmp_path, capsys, offline_hub):
    plan = tmp_path / "plan.toml"
    plan.write_text('[[regime]]\nname = "a"\ntask = "xnli"\nlangs = ["en"]\nepochs = 1\nexamples = 100\n'
                    'model = "xlmr-giant"\n')
    assert main(["train-cost", "--plan", str(plan), "--out", str(tmp_path / "tc")]) == 2
    err = capsys.readouterr().err
    assert f"{plan}:7:" in err and "regime.model" in err and "did you mean xlmr-base" in err


# --- options that contradict each other are exit 2; options without effect are a warning --------------------------

def _toml(tmp_path, body: str) -> str:
    path = tmp_path / "run.toml"
    path.write_text(body)
    return str(path)


def test_no_cost_model_with_a_cost_model_file_is_exit_2(tmp_path, capsys, no_measuring):
    stored = tmp_path / "cost.json"
    stored.write_text("{}")
    args = FAKE_RUN + ["--no-cost-model", "--cost-model", str(stored), "--out", str(tmp_path / "o")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "'cost_model'" in err and "--no-cost-model" in err and "--cost-model FILE" in err


def test_no_cost_model_with_a_cost_model_file_in_toml_names_the_line(tmp_path, capsys, no_measuring):
    stored = tmp_path / "cost.json"
    stored.write_text("{}")
    config = _toml(tmp_path, f'[run]\nmodel = "tiny-xlmr"\ncost_model = false\ncost_model_file = "{stored}"\n')
    assert main(["run", "--config", config, "--backends", "fake", "--out", str(tmp_path / "o"), "--dry-run"]) == 2
    assert f"{config}:3: field 'cost_model'" in capsys.readouterr().err


def test_shape_with_local_data_is_exit_2(tmp_path, capsys, no_measuring, xtreme_dir):
    args = FAKE_RUN + ["--shape", "2,16", "--data", f"local:{xtreme_dir}", "--out", str(tmp_path / "o")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "'shape'" in err and f"--data local:{xtreme_dir}" in err


@pytest.mark.parametrize("extra, says", [(["--slo-ms", "50", "--qps", "3"], "--qps, --slo-ms have no effect"),
                                         (["--tokenizer", "VOCAB"], "--tokenizer tokenizes nothing")])
def test_an_option_without_effect_is_a_warning(tmp_path, caplog, mbert_vocab, extra, says):
    extra = [str(mbert_vocab) if a == "VOCAB" else a for a in extra]
    assert main(FAKE_RUN + extra + ["--model", "tiny-mbert", "--out", str(tmp_path / "o"), "--dry-run"]) == 0
    assert says in caplog.text


def test_server_option_from_toml_warns_with_its_line(tmp_path, caplog):
    config = _toml(tmp_path, '[run]\nmodel = "tiny-xlmr"\nscenario = "offline"\nduration = 5.0\n')
    assert main(["run", "--config", config, "--backends", "fake", "--tasks", "xnli", "--langs", "en",
                 "--out", str(tmp_path / "o"), "--dry-run"]) == 0
    assert f"{config}:4: field 'duration': server option(s) --duration" in caplog.text


@pytest.mark.parametrize("table, line, field, says", [
    ('[policy.fixd]\nmax_batch = 4\n', 4, "policy.fixd", "did you mean [policy.fixed]"),
    ('[policy.fixed]\nmax_batch = "eight"\n', 5, "policy.fixed.max_batch", "expected an integer, got str 'eight'"),
    ('[policy.fixed]\nmax_batch = 4\nmax_wait = 3\n', 6, "policy.fixed.max_wait", "its options: max_batch, max_delay"),
    ('[policy.length-bucketed]\nedges = [16, "x"]\n', 5, "policy.length-bucketed.edges", "a list of integers"),
])
def test_policy_tables_are_checked_with_file_line_and_key(tmp_path, capsys, table, line, field, says):
    config = _toml(tmp_path, '[run]\nmodel = "tiny-xlmr"\n\n' + table)
    assert main(["run", "--config", config, "--scenario", "server", "--out", str(tmp_path / "o"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"{config}:{line}: field '{field}'" in err and says in err
