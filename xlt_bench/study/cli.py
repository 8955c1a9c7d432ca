"""Options of `xlt-bench study` and its entry point: `add_arguments(parser)` fills a parser, `run(args)` runs the
study and returns the exit status (0; bad input raises InputError, which the CLI turns into exit 2)."""

from __future__ import annotations

import argparse
import sys

from xlt_bench.core.errors import InputError

# option: (type, help). Unset options (None) fall back to each study's own default.
STUDY_OPTIONS = {
    "models": (str, "comma-separated models (presets, HF ids or directories) [the study's default]"),
    "tokenizers": (str, "comma-separated tokenizers, one per model (HF id/dir or WordPiece vocab.txt) "
                        "[each model's own]"),
    "tokenizer": (str, "one tokenizer for every run (HF id/dir or vocab.txt) [the study's default]"),
    "data": (str, "synthetic | local:DIR | hf [local:../shared/data/xtreme]"),
    "profiles": (str, "comma-separated length-profile files for --data synthetic, one per model (from "
                      "`xlt-bench lengths`) [the shipped mBERT profiles]"),
    "tasks": (str, "comma-separated tasks [the study's default]"),
    "langs": (str, "comma-separated language codes, or 'all' [the study's default]"),
    "limit": (int, "examples per language [16; 8 with --quick]"),
    "backends": (str, "comma-separated backends [eager]"),
    "max_length": (int, "maximum sequence length [128]"),
    "max_tokens": (str, "dynamic token budget per batch, padding counted: a number or 'auto' [4096: static's batch "
                        "of 32 x 128]"),
    "min_repeats": (int, "timed passes per language [3]"),
    "seed": (int, "seed for random-weight presets, synthetic data and bootstrap resampling [0]"),
    "layer": (int, "alignment: hidden layer whose mean-pooled states are the sentence embedding (0 = embeddings) "
                   "[the middle: layers // 2 + 1]"),
    "align_on": (str, "alignment: parallel text to measure alignment on: tatoeba ({text, en} pairs) | xnli (its "
                      "language files are line-by-line translations of English's) [tatoeba]"),
    "plan": (str, "train-cost: plan TOML [benchmarks/train-plans/intermediate-task.toml]"),
    "measured": (str, "train-cost: a train-scenario run (RUN_DIR) of the plan's model, task and max length "
                     "[none: FLOPs only, no hours]"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="the study: batching, resource, models, alignment, train-cost")
    parser.add_argument("--list", action="store_true", help="describe every study and what it needs, then exit")
    parser.add_argument("--quick", action="store_true",
                        help="tiny presets, one eager backend, 8 examples per language: checks the route in under "
                             "a minute; its figures are not the answer")
    parser.add_argument("--from", dest="from_dir", metavar="RUN_DIR", default=None,
                        help="analyse this run (or a study's --out) instead of measuring; exit 2 saying what is "
                             "missing when it does not hold what the study needs [none: measure]")
    parser.add_argument("--out", default=None, help="directory for study.md, study.html and runs/ [required unless --list]")
    for name, (typ, help_text) in STUDY_OPTIONS.items():
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=typ, default=None, help=help_text)


def list_studies() -> str:
    from xlt_bench.study import get_study, study_names
    lines = []
    for name in study_names():
        cls = get_study(name)
        lines.append(f"{name}\n    question: {cls.question}\n    needs:    {cls.needs}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.list:
        print(list_studies())
        return 0
    if not args.name:
        from xlt_bench.study import study_names
        raise InputError(f"name a study ({', '.join(study_names())}) or pass --list", field="study")
    from xlt_bench.study import get_study
    study = get_study(args.name)()
    if not args.out:
        raise InputError("--out DIR is required (where study.md and study.html go)", field="out")
    args.command_line = command_line(args)
    from xlt_bench.study.runner import execute
    answer, written = execute(study, args)
    for path in written:
        print(path)
    print(("refused: " if answer.refused else "answer: ") + answer.answer, file=sys.stderr)
    return 0


def command_line(args: argparse.Namespace) -> str:
    """The study's command as typed (options in canonical form), for the report's reproduction line."""
    parts = ["xlt-bench study", args.name]
    if args.quick:
        parts.append("--quick")
    if args.from_dir:
        parts.append(f"--from {args.from_dir}")
    for name in STUDY_OPTIONS:
        value = getattr(args, name, None)
        if value is not None:
            parts.append(f"--{name.replace('_', '-')} {value}")
    parts.append(f"--out {args.out}")
    return " ".join(parts)
