"""CLI conventions users expect: --version, -v/-q after the subcommand, --json, readable resource classes."""

from __future__ import annotations

import json

import pytest

from xlt_bench.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("xlt-bench ")


@pytest.mark.parametrize("args", [["-q", "tasks"], ["tasks", "-q"], ["tasks", "-v"], ["-v", "langs"]])
def test_verbosity_before_or_after_the_subcommand(args, capsys):
    assert main(args) == 0
    assert capsys.readouterr().out


def test_json_outputs(capsys):
    assert main(["tasks", "--json"]) == 0
    tasks = json.loads(capsys.readouterr().out)
    assert {t["name"] for t in tasks} >= {"xnli", "pawsx", "tatoeba", "panx"}
    assert main(["langs", "--json"]) == 0
    langs = json.loads(capsys.readouterr().out)
    assert len(langs) == 50 and {"lang", "family", "script", "resource_class"} <= set(langs[0])


def test_resource_classes_are_named(capsys):
    assert main(["langs", "--group-by", "resource_class"]) == 0
    out = capsys.readouterr().out
    assert "5 winner:" in out and "0 left-behind" in out or "1 scraping-by:" in out


def test_gate_json(tmp_path, capsys, monkeypatch):
    from xlt_bench.core.config import RunConfig
    from xlt_bench.run.pipeline import run
    monkeypatch.setenv("XLT_FAKE_COST", "fixed_ms=1")
    run(RunConfig(model="tiny-xlmr", tasks=("xnli",), langs=("en",), limit=8, backends=("fake",), threads=1),
        tmp_path / "r")
    capsys.readouterr()
    assert main(["gate", "--baseline", str(tmp_path / "r"), "--current", str(tmp_path / "r"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["passed"] is True and doc["checks"]


@pytest.mark.parametrize("task,lang", [("tatoeba", "az"), ("tatoeba", "uk"), ("udpos", "wo"), ("udpos", "lt")])
def test_hub_languages_xtreme_r_added_fail_before_the_hub(task, lang, monkeypatch):
    """No request is made: the error names --data local:DIR and how XTREME-R builds the data."""
    import xlt_bench.data.dataset as dataset
    from xlt_bench.core.errors import InputError
    from xlt_bench.data.tasks import get_task
    monkeypatch.setattr(dataset, "_open_hf", lambda *a, **k: pytest.fail("contacted the hub"))
    with pytest.raises(InputError, match="local:DIR") as err:
        dataset.load_hf(get_task(task), lang)
    assert "download" in str(err.value)


def test_tatoeba_lines_are_stripped(tmp_path):
    from xlt_bench.data.dataset import load_local
    from xlt_bench.data.tasks import get_task
    (tmp_path / "tatoeba").mkdir()
    (tmp_path / "tatoeba" / "de.jsonl").write_text(json.dumps({"text": "Hallo Welt\n", "en": " Hello world\n"}) + "\n")
    assert load_local(tmp_path, get_task("tatoeba"), "de") == [{"text": "Hallo Welt", "en": "Hello world"}]


def test_print_config_round_trips(tmp_path, capsys):
    assert main(["run", "--print-config", "--model", "tiny-xlmr", "--batch-size", "8", "--langs", "en,de"]) == 0
    path = tmp_path / "c.toml"
    path.write_text(capsys.readouterr().out)
    from xlt_bench.core.config import RunConfig, build_config
    cfg = build_config(str(path))
    assert cfg.model == "tiny-xlmr" and cfg.batch_size == 8 and cfg.langs == ("en", "de")
    assert cfg.to_dict() == RunConfig(model="tiny-xlmr", batch_size=8, langs=("en", "de")).to_dict()


def test_dry_run_checks_everything_and_measures_nothing(tmp_path, capsys, monkeypatch):
    import xlt_bench.run.pipeline as pipeline
    monkeypatch.setattr(pipeline, "run", lambda *a, **k: pytest.fail("a dry run measured"))
    assert main(["run", "--dry-run", "--model", "tiny-xlmr", "--tasks", "xnli", "--langs", "en,th",
                 "--backends", "eager", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "xnli: 2 language(s) en th" in out and "FLOPs" in out and not (tmp_path / "o").exists()
    assert main(["run", "--dry-run", "--model", "tiny-xlmr", "--tasks", "xnli", "--langs", "xx"]) == 2


def test_readme_lists_every_run_option():
    from pathlib import Path

    from xlt_bench.cli import build_parser
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    run = next(a for a in build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "run")[1]
    options = {s for action in run._actions for s in action.option_strings if s.startswith("--")}
    missing = sorted(o for o in options - {"--help", "--verbose", "--quiet"} if f"`{o}" not in readme)
    assert not missing, f"README does not mention {missing}"


def test_quiet_run_prints_no_progress_lines(tmp_path, capsys, monkeypatch):
    from xlt_bench.core import progress
    monkeypatch.setattr(progress, "QUIET", False)
    monkeypatch.setenv("XLT_FAKE_COST", "fixed_ms=1")
    args = ["run", "--model", "tiny-xlmr", "--tasks", "xnli", "--langs", "en", "--limit", "4", "--backends", "fake",
            "--batching", "static", "--no-report", "--force"]
    assert main(["-q", *args, "--out", str(tmp_path / "q")]) == 0
    assert "xlt-bench: xnli: loading model" not in capsys.readouterr().err
    monkeypatch.setattr(progress, "QUIET", False)
    assert main([*args, "--out", str(tmp_path / "loud")]) == 0
    assert "xlt-bench: xnli: loading model" in capsys.readouterr().err
