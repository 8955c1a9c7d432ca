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
    import xlt_bench.pipeline as pipeline
    monkeypatch.setattr(pipeline, "_measure_peaks", lambda *a: pytest.fail("measured before refusing --out"))


@pytest.fixture
def fast_fake(monkeypatch):
    monkeypatch.setenv("XLT_FAKE_COST", "fixed_ms=1")
    import xlt_bench.pipeline as pipeline
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
    from xlt_bench.run_dir import MARKER
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
