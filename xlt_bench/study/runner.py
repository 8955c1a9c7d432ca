"""Runs a study: the runs it names (or the documents under --from), the analysis, and the written report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xlt_bench.core.errors import InputError
from xlt_bench.core.schema import load_results
from xlt_bench.study.base import Answer, Study

RUNS_DIR = "runs"


def _say(message: str) -> None:
    print(f"xlt-bench: {message}", file=sys.stderr)


def load_from(path: Path) -> dict[str, dict]:
    """The results documents under --from: a run directory (or its results.json), or a directory of runs (a study's
    --out, whose runs/<name>/ hold them, or any directory whose subdirectories are runs). Keyed by run name."""
    if not path.exists():
        raise InputError("no such file or directory", file=str(path), field="from")
    if path.is_file() or (path / "results.json").exists():
        run_dir = path.parent if path.is_file() else path
        return {run_dir.name: load_results(path)}
    parent = path / RUNS_DIR if (path / RUNS_DIR).is_dir() else path
    found = sorted(p for p in parent.iterdir() if (p / "results.json").is_file())
    if not found:
        raise InputError(f"holds no results.json (neither a run directory nor a study's --out with {RUNS_DIR}/)",
                         file=str(path), field="from")
    return {p.name: load_results(p) for p in found}


def gather(study: Study, args: argparse.Namespace) -> dict[str, dict]:
    """Reuse --from when it holds what the study needs (exit 2 naming what is missing otherwise); else measure."""
    if args.from_dir:
        docs = load_from(Path(args.from_dir))
        missing = study.missing(docs)
        if missing:
            raise InputError(f"lacks what the {study.name} study needs: {'; '.join(missing)}",
                             file=str(args.from_dir), field="from")
        return docs
    from xlt_bench.run.pipeline import run
    docs: dict[str, dict] = {}
    for name, cfg in study.runs(args).items():
        run_dir = Path(args.out) / RUNS_DIR / name
        _say(f"study {study.name}: run '{name}' ({cfg.model}, {','.join(cfg.tasks)}, {cfg.data}) -> {run_dir}")
        docs[name] = run(cfg, run_dir, force=(run_dir / "results.json").exists())
    missing = study.missing(docs) if docs else []
    if missing:
        raise InputError(f"the runs did not measure what the {study.name} study needs: {'; '.join(missing)}",
                         field="study")
    return docs


def execute(study: Study, args: argparse.Namespace) -> tuple[Answer, list[Path]]:
    """Gather, analyse, render: returns the answer and the written files."""
    from xlt_bench.report.study import write_study
    study.check_args(args)
    docs = gather(study, args)
    answer = study.analyse(docs, args)
    sources = {name: doc["run"].get("config", {}) for name, doc in docs.items()}
    return answer, write_study(answer, Path(args.out), study=study.name, command=_command(args), sources=sources)


def _command(args: argparse.Namespace) -> str:
    return getattr(args, "command_line", None) or f"xlt-bench study {args.name}"
