"""What every study is: a question, the runs it needs, a check that a run holds what it needs, and an analysis
that turns the runs' rows into an answer (or a refusal with its reason).

A study never measures on its own account: it names RunConfigs, the pipeline measures them, and `analyse` reads the
results documents, so `--from RUN_DIR` and a fresh run are analysed by the same code.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from typing import Any

from xlt_bench.core.config import RunConfig, build_config
from xlt_bench.core.errors import InputError

QUICK_MODELS = {"xlmr-base": "tiny-xlmr", "xlmr-large": "tiny-xlmr", "mbert-base": "tiny-mbert",
                "mini-xlmr": "tiny-xlmr"}
# The shipped data beside the repository (XLT_SHARED overrides where it lives).
SHARED = os.environ.get("XLT_SHARED", "../shared")
MBERT_VOCAB = f"{SHARED}/data/tokenizers/mbert-cased/vocab.txt"
# Dynamic token budget of the studies: static's own batch (32 x 128 tokens), so a dynamic batch is never larger than a
# static one and the start-up probe stays within minutes on a 2-core CPU ('auto' probes up to 16k-token batches).
STUDY_MAX_TOKENS = "4096"
# Sentences per language timed by a study's default form: 16 keeps each default study within about 15 minutes on a
# 2-core CPU with a base-size model (the resource study times PAN-X's 47 languages); --limit raises it.
DEFAULT_LIMIT = 16
SHARED_XTREME = f"{SHARED}/data/xtreme"


@dataclass
class Answer:
    """A study's result. `answer` is the report's first paragraph: the answer with its interval, or the refusal."""

    title: str
    answer: str
    refused: bool = False
    blocks: list = field(default_factory=list)          # report.blocks.Block: tables and text that support it
    charts: dict = field(default_factory=dict)          # name -> report.plots.Chart
    limits: list[str] = field(default_factory=list)     # what the study could not establish, and why
    method: list[str] = field(default_factory=list)     # how the figures were computed
    data: dict[str, Any] = field(default_factory=dict)  # machine-readable figures for study.json


class Study:
    """Base class; subclasses set the class attributes and implement `runs`, `missing` and `analyse`."""

    name = ""
    question = ""
    needs = ""

    def runs(self, args: argparse.Namespace) -> dict[str, RunConfig]:
        """Run name -> config of every run the study needs (each goes to --out/runs/<name>)."""
        raise NotImplementedError

    def missing(self, docs: dict[str, dict]) -> list[str]:
        """What these results documents lack for this study (empty when they suffice)."""
        raise NotImplementedError

    def analyse(self, docs: dict[str, dict], args: argparse.Namespace) -> Answer:
        raise NotImplementedError

    def check_args(self, args: argparse.Namespace) -> None:
        """Refuse options the study cannot work with before anything runs."""


def listed(value: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated option as a tuple, or the default."""
    if value is None:
        return default
    return tuple(v.strip() for v in value.split(",") if v.strip())


def base_overrides(args: argparse.Namespace, *, tasks: str, langs: str = "all", limit: int | None = None,
                   backends: str = "eager", data: str | None = None) -> dict[str, Any]:
    """Run options every study sets the same way: the user's option when given, else the study's default; --quick
    caps examples per language and uses one eager backend."""
    quick = bool(getattr(args, "quick", False))
    chosen_limit = args.limit if args.limit is not None else (min(limit or 8, 8) if quick else limit)
    return {"data": args.data or data or f"local:{SHARED_XTREME}", "tasks": args.tasks or tasks,
            "langs": args.langs or langs, "limit": chosen_limit,
            "backends": args.backends or ("eager" if quick else backends),
            "max_length": args.max_length, "seed": args.seed, "min_repeats": args.min_repeats,
            "max_tokens": args.max_tokens or STUDY_MAX_TOKENS}


def one_run(docs: dict[str, dict]) -> tuple[dict | None, list[str]]:
    """The one results document a single-run study reads, or None and what is missing."""
    if len(docs) != 1:
        return None, [f"one run directory (found {len(docs)} runs: {', '.join(docs)})"]
    return next(iter(docs.values())), []


def quick_model(name: str, quick: bool) -> str:
    """--quick swaps a base preset for its tiny 2-layer twin (same vocabulary, so the same tokenizer fits)."""
    return QUICK_MODELS.get(name, name) if quick else name


def make_config(overrides: dict[str, Any]) -> RunConfig:
    return build_config(None, overrides)


def require(condition: bool, reason: str, field_name: str | None = None) -> None:
    if not condition:
        raise InputError(reason, field=field_name)
