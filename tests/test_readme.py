"""The README is a manual that stays true: short, and every target, command, option and link it names exists."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from xlt_bench.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
# Subcommands the README documents before they reach the parser (added separately); drop a name once it is there.
PENDING_SUBCOMMANDS = {"study"}
MAX_README_LINES = 300

MD_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*):(?!=)", text, flags=re.MULTILINE))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped except '-' and '_', spaces to '-'."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(markdown: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", markdown.read_text(), flags=re.DOTALL)
    return {_slug(m) for m in re.findall(r"^#{1,6}\s+(.*)$", text, flags=re.MULTILINE)}


def _relative_links(markdown: Path) -> list[str]:
    return [link for link in MD_LINK.findall(markdown.read_text()) if not re.match(r"[a-z][a-z0-9+.-]*:", link)]


def test_readme_is_at_most_300_lines():
    n = len(README.read_text().splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines; move detail to docs/"


def test_slug_matches_github_rules():
    assert _slug("Batching strategies (`--batching`)") == "batching-strategies---batching"
    assert _slug("`make bench` (the committed example)") == "make-bench-the-committed-example"
    assert _slug("ONNX Runtime vs optimum") == "onnx-runtime-vs-optimum"


def test_every_make_target_named_in_readme_exists():
    named = set(re.findall(r"\bmake ([a-z][\w-]*)", README.read_text()))
    assert {"install", "demo", "bench", "test"} <= named  # the quick start names them
    missing = named - _makefile_targets()
    assert not missing, f"README names make targets the Makefile lacks: {sorted(missing)}"


def test_every_subcommand_named_in_readme_exists():
    named = set(re.findall(r"`xlt-bench (?:-[vq] )?([a-z][\w-]*)", README.read_text()))
    assert {"run", "gate", "study"} <= named
    missing = named - set(_subparsers()) - PENDING_SUBCOMMANDS
    assert not missing, f"README names subcommands the CLI lacks: {sorted(missing)}"


def test_every_subcommand_of_the_parser_is_in_the_readme():
    text = README.read_text()
    absent = [name for name in _subparsers() if f"`xlt-bench {name}" not in text]
    assert not absent, f"README's command table lacks: {absent}"


def test_run_options_table_lists_every_run_option():
    run = _subparsers()["run"]
    options = {s for a in run._actions for s in a.option_strings if s.startswith("--")}
    options -= {"--help", "--verbose", "--quiet"}  # common to every command, named once under the table
    text = README.read_text()
    absent = sorted(o for o in options if f"`{o}" not in text)
    assert not absent, f"README's run options table lacks: {absent}"


@pytest.mark.parametrize("markdown", [README, ROOT / "results" / "README.md", *DOCS], ids=lambda p: p.name)
def test_relative_links_point_to_existing_files_and_headings(markdown):
    broken = []
    for link in _relative_links(markdown):
        path, _, anchor = link.partition("#")
        target = (markdown.parent / path).resolve() if path else markdown
        if not target.exists():
            broken.append(link)
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            broken.append(link)
    assert not broken, f"{markdown.name}: broken links {broken}"


def test_each_research_question_has_its_study_marker():
    text = README.read_text()
    for name in ("batching", "resource", "alignment", "models", "train-cost"):
        assert f"<!-- study:{name} -->" in text
        assert f"xlt-bench study {name} --out" in text
