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
