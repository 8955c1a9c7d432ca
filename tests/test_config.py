"""Config from TOML and the CLI: every wrong value a clear InputError naming file, line and key (issue 11)."""

from __future__ import annotations

import pytest

from xlt_bench.cli import main
from xlt_bench.core.config import RunConfig, build_config, load_toml
from xlt_bench.core.errors import InputError


def _toml(tmp_path, text: str, name: str = "c.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("line,key", [
    ('batch_size = "eight"', "batch_size"), ("batch_size = 8.7", "batch_size"), ("tasks = 5", "tasks"),
    ('cost_model = "no"', "cost_model"), ("batch_size = true", "batch_size"), ("max_tokens = 1.5", "max_tokens"),
    ('shape = [8]', "shape"), ("min_seconds = \"x\"", "min_seconds"),
])
def test_wrong_types_name_file_line_and_key(tmp_path, line, key):
    path = _toml(tmp_path, f"# config\n[run]\nmodel = \"tiny-xlmr\"\n{line}\n")
    with pytest.raises(InputError) as err:
        load_toml(path)
    assert (err.value.file, err.value.line, err.value.field) == (str(path), 4, key)
    assert "expected" in err.value.reason


def test_right_types_pass(tmp_path):
    path = _toml(tmp_path, '[run]\nbatch_size = 8\ntasks = ["xnli"]\nlangs = "en,de"\nmax_tokens = "auto"\n'
                           'shape = [8, 64]\nmin_seconds = 1\ncost_model = false\nqps = [2, 4.5]\n')
    cfg = build_config(str(path))
    assert cfg.batch_size == 8 and cfg.langs == ("en", "de") and cfg.shape == (8, 64) and cfg.qps == (2.0, 4.5)


def test_keys_beside_run_and_unknown_sections_are_refused(tmp_path):
    with pytest.raises(InputError) as err:
        load_toml(_toml(tmp_path, 'model = "x"\n[run]\nbatch_size = 8\n'))
    assert err.value.line == 1 and err.value.field == "model"
    with pytest.raises(InputError) as err:
        load_toml(_toml(tmp_path, '[run]\nbatch_size = 8\n[extra]\nx = 1\n'))
    assert err.value.line == 3 and err.value.field == "extra"
    # [policy.<name>] tables are known: the server policies' options.
    values = load_toml(_toml(tmp_path, '[run]\nscenario = "server"\n[policy.fixed]\nmax_batch = 4\n'))
    assert values["policy_options"] == {"fixed": {"max_batch": 4}}


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_bytes(b'[run]\nmodel = "tiny"\ndata = "\xff"\n')
    with pytest.raises(InputError) as err:
        load_toml(path)
    assert err.value.line == 3 and "UTF-8" in err.value.reason


@pytest.mark.parametrize("options,field", [(dict(seed=-1), "seed"), (dict(inject_delay_ms=-5), "inject_delay_ms"),
                                           (dict(min_seconds=-1), "min_seconds")])
def test_negative_values_name_their_own_field(options, field):
    with pytest.raises(InputError) as err:
        RunConfig(**options)
    assert err.value.field == field


def test_duplicates_are_run_once(caplog):
    cfg = RunConfig(backends="eager,eager", batching=("static", "static", "dynamic"), tasks="xnli,xnli")
    assert cfg.backends == ("eager",) and cfg.batching == ("static", "dynamic") and cfg.tasks == ("xnli",)
    assert "more than once" in caplog.text


def test_cli_exit_2_on_bad_toml(tmp_path, capsys):
    path = _toml(tmp_path, '[run]\nbatch_size = "eight"\n')
    assert main(["run", "--config", str(path), "--out", str(tmp_path / "o")]) == 2
    assert f"{path}:2: field 'batch_size'" in capsys.readouterr().err


# --- data files and tokenizers (issue 11) -------------------------------------------------------------------------

def _run_local(tmp_path, data, **extra):
    args = ["run", "--model", "tiny-mbert", "--data", f"local:{data}", "--tasks", "xnli", "--langs", "en",
            "--backends", "fake", "--out", str(tmp_path / "out")]
    for key, value in extra.items():
        args += [f"--{key}", value]
    return main(args)


@pytest.mark.parametrize("kind", ["directory", "fifo", "utf8", "huge"])
def test_bad_data_files_exit_2_with_file_and_line(tmp_path, capsys, tiny_vocab_file, kind):
    import os
    path = tmp_path / "data" / "xnli" / "en.jsonl"
    path.parent.mkdir(parents=True)
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "utf8":
        path.write_bytes(b'{"text_a": "ok", "text_b": "ok", "label": 0}\n{"text_a": "\xff", "text_b": "x", "label": 0}\n')
    else:
        path.write_text('{"text_a": "' + "word " * 300_000 + '", "text_b": "x", "label": 0}\n')
    assert _run_local(tmp_path, tmp_path / "data", tokenizer=str(tiny_vocab_file)) == 2
    err = capsys.readouterr().err
    assert "en.jsonl" in err and "Traceback" not in err
    if kind in ("utf8", "huge"):
        assert f"en.jsonl:{2 if kind == 'utf8' else 1}:" in err


@pytest.mark.parametrize("kind", ["binary", "not-vocab", "empty-dir", "missing"])
def test_bad_tokenizers_exit_2(tmp_path, capsys, kind):
    path = tmp_path / "data" / "xnli" / "en.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text('{"text_a": "a", "text_b": "b", "label": 0}\n')
    tok = tmp_path / "vocab.txt"
    if kind == "binary":
        tok.write_bytes(bytes(range(256)))
    elif kind == "not-vocab":
        tok.write_text("hello\nworld\n")
    elif kind == "empty-dir":
        tok = tmp_path / "tokdir"
        tok.mkdir()
    else:
        tok = tmp_path / "nope" / "vocab.txt"
    assert _run_local(tmp_path, tmp_path / "data", tokenizer=str(tok)) == 2
    err = capsys.readouterr().err
    assert "tokenizer" in err and "Traceback" not in err


@pytest.mark.parametrize("kind", ["no-weights", "unknown-type"])
def test_bad_model_directories_exit_2(tmp_path, capsys, kind):
    import json
    model = tmp_path / "model"
    model.mkdir()
    config = {"model_type": "bert" if kind == "no-weights" else "no-such-architecture", "vocab_size": 10}
    (model / "config.json").write_text(json.dumps(config))
    code = main(["run", "--model", str(model), "--tasks", "xnli", "--langs", "en", "--backends", "fake",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "model" in err and "Traceback" not in err


# --- results documents and output paths ---------------------------------------------------------------------------

@pytest.mark.parametrize("content", [b'{"schema_version": 1, "run": [], "rows": []}',
                                     b'{"schema_version": 1, "run": {}, "rows": [1, 2]}',
                                     b'{"schema_version": 1, "run": {}, "rows": {}}',
                                     b'\xff\xfe{}'])
def test_malformed_results_documents_are_input_errors(tmp_path, content):
    from xlt_bench.core.schema import load_results
    path = tmp_path / "results.json"
    path.write_bytes(content)
    with pytest.raises(InputError):
        load_results(path)


def test_report_accepts_a_results_json_path_and_outputs_into_files_fail_cleanly(tmp_path, capsys, monkeypatch):
    from xlt_bench.run.pipeline import run
    monkeypatch.setenv("XLT_FAKE_COST", "fixed_ms=1")
    run(RunConfig(model="tiny-xlmr", tasks=("xnli",), langs=("en",), limit=8, backends=("fake",), threads=1),
        tmp_path / "r")
    assert main(["report", str(tmp_path / "r" / "results.json")]) == 0
    assert (tmp_path / "r" / "report.md").exists()
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for args in (["compare", str(tmp_path / "r"), str(tmp_path / "r"), "--out", str(blocker)],
                 ["export", str(tmp_path / "r"), "--out", str(blocker / "x.json")]):
        assert main(args) == 2
        assert "Traceback" not in capsys.readouterr().err
