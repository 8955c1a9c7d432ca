"""Command line of xlt-bench: one subcommand per job (`xlt-bench --help` lists them all). This module parses the
arguments and maps errors to exit codes; the handlers are in xlt_bench/commands.py.

Exit codes (DESIGN §2): 0 ok, 1 the gate found a regression, 2 bad input or config, 3 an unexpected internal
error (a bug: the one-line message names the file holding the traceback), 130 interrupted (Ctrl-C), 143 SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import sys

from xlt_bench.backends import BACKENDS
from xlt_bench.core.errors import InputError
from xlt_bench.scenarios import SCENARIOS
from xlt_bench.scenarios.serving.policies import POLICIES
from xlt_bench.batching.strategies import STRATEGIES

RUN_OPTIONS = {
    # option: (type, help) — defaults live in config.RunConfig so TOML and CLI share them.
    "model": (str, "preset (xlmr-base, xlmr-large, mbert-base; mini-xlmr, tiny-xlmr, tiny-mbert for tests), HF id "
                   "or directory"),
    "tokenizer": (str, "HF tokenizer id/dir, or a WordPiece vocab.txt path [the model's own]"),
    "data": (str, "synthetic | local:DIR | hf"),
    "profiles": (str, "--data synthetic: length-profile JSON from `xlt-bench lengths` [the shipped mBERT profiles]"),
    "tasks": (str, "comma-separated tasks (see `xlt-bench tasks`)"),
    "langs": (str, "comma-separated language codes, or 'all'"),
    "limit": (int, "examples per language [all]"),
    "backends": (str, "comma-separated: " + ",".join(BACKENDS.names())),
    "batching": (str, "comma-separated: " + ",".join(STRATEGIES.names())),
    "batch_size": (int, "static batch size"),
    "max_length": (int, "maximum sequence length; static pads to it"),
    "max_tokens": (str, "dynamic token budget per batch, padding counted: 'auto' (measured per backend) or a number"),

    "pad_multiple": (int, "dynamic batches pad to a multiple of this [8 on cuda, 1 on cpu]"),
    "device": (str, "cpu | cuda"),
    "dtype": (str, "comma-separated: fp32,bf16,fp16,int8"),
    "threads": (int, "intra-op threads for every backend [torch's default: one per core]"),
    "seed": (int, "seed for random-weight presets and synthetic data"),
    "min_seconds": (float, "repeat each language until this many timed seconds"),
    "min_repeats": (int, "and at least this many timed passes"),
    "max_seconds": (float, "time box per row: stop repeating once its timed passes reach this many seconds [none]"),
    "shape": (str, "fixed-shape mode B,L: synthetic batches of one shape [off]"),
    "inject_delay_ms": (float, "testing aid: sleep this long inside every timed batch (to plant a regression)"),
    "inject_slowdown": (float, "testing aid: make every timed batch take (1 + this) times as long (a uniform "
                               "regression: 0.25 = 20% fewer tok/s)"),
    "cache_dir": (str, "where exported ONNX models are cached"),
    "scenario": (str, " | ".join(SCENARIOS.names())),
    "attn": (str, "attention implementation: sdpa | eager [what from_pretrained gives: sdpa]"),
    "ort_opt_level": (str, "optimum backend: ORTOptimizer level O1|O2|O3|O4 (O4 = fp16, cuda only) [O2]"),
    "qps": (str, "server: offered loads in requests/s, comma-separated, or 'auto' (bisection for the max "
                 "sustainable QPS)"),
    "duration": (float, "server: seconds of arrivals per offered load"),
    "slo_ms": (float, "server: latency SLO in ms; max sustainable QPS keeps p99 within it"),
    "arrival_seeds": (int, "server: arrival seeds per offered load; rows carry 95% intervals across them"),
    "policy": (str, "server: batching policies, comma-separated: " + ",".join(POLICIES.names())),
    "trace": (str, "server: replay arrival times (seconds, one per line) instead of Poisson arrivals [none]"),
}


def _add_run_parser(sub) -> None:
    p = sub.add_parser("run", help="run a benchmark and write RUN_DIR/results.json, rows.csv, report.md/html")
    p.add_argument("--config", help="TOML file with a [run] table (CLI options override it) [none]")
    p.add_argument("--out", help="run directory [results/run-<timestamp>]")
    for name, (typ, help_text) in RUN_OPTIONS.items():
        # default=None so that only options given on the command line override the TOML file
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=typ, default=None,
                       help=_with_default(help_text.replace("%", "%%"), RUN_DEFAULTS.get(name)))
    p.add_argument("--cost-model", dest="cost_model_file", metavar="FILE", default=None,
                   help="reuse a stored cost model (results.json of an earlier run, or a cost model JSON) instead "
                        "of probing: reproducible dynamic plans [none: probe at start-up]")
    p.add_argument("--no-cost-model", dest="cost_model", action="store_const", const=False, default=None,
                   help="dynamic batching: skip the start-up cost probe; plans are a greedy fill of the budget "
                        "(auto budget: batch_size x max_length)")
    p.add_argument("--no-report", action="store_true", help="write results only, no report")
    p.add_argument("--dry-run", action="store_true",
                   help="check config, data, tokenizer, model and --out, print what would run and its FLOPs; "
                        "measure nothing")
    p.add_argument("--print-config", action="store_true", help="print the resolved configuration as TOML and exit")
    p.add_argument("--force", action="store_true",
                   help="replace a finished run in --out (swapped in only when the new run completes)")


def _run_defaults() -> dict:
    from dataclasses import MISSING, fields

    from xlt_bench.core.config import RunConfig
    return {f.name: f.default for f in fields(RunConfig) if f.default is not MISSING}


RUN_DEFAULTS = _run_defaults()


def _with_default(help_text: str | None, default) -> str | None:
    """Help text ending in "[default]", unless it already says its default in brackets."""
    if (help_text is None or help_text.rstrip().endswith("]") or default is None or default is False
            or default == argparse.SUPPRESS):
        return help_text
    shown = ",".join(map(str, default)) if isinstance(default, (tuple, list)) else str(default)
    return f"{help_text} [{shown.replace('%', '%%')}]"   # argparse formats help with %


class _Parser(argparse.ArgumentParser):
    """argparse with the one error style of every command: "xlt-bench: error: ..." (exit 2)."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(2, f"xlt-bench: error: {message}\n")


def _add_verbosity(parser, default) -> None:
    """-v / -q, accepted before or after the subcommand."""
    parser.add_argument("-v", "--verbose", action="store_const", const=1, dest="verbosity", default=default,
                        help="more log output (INFO)")
    parser.add_argument("-q", "--quiet", action="store_const", const=-1, dest="verbosity", default=default,
                        help="errors only, no progress bars")


EPILOG = ("exit codes: 0 ok; 1 the gate found a regression; 2 bad input or config (the message names the option "
          "or file:line:field); 3 internal error (a bug: the message names the file holding the traceback); "
          "130 interrupted; 143 terminated (SIGTERM)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="xlt-bench", epilog=EPILOG)
    from importlib.metadata import PackageNotFoundError, version
    try:
        own_version = version("xlt-bench")
    except PackageNotFoundError:  # running from a source tree that was never installed
        own_version = "unknown"
    parser.add_argument("--version", action="version", version=f"xlt-bench {own_version}")
    _add_verbosity(parser, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_parser = sub.add_parser

    def add_with_verbosity(*a, **k):
        p = add_parser(*a, **{"epilog": EPILOG, **k})
        _add_verbosity(p, argparse.SUPPRESS)
        return p

    sub.add_parser = add_with_verbosity
    for add_command in SUBCOMMAND_PARSERS:
        add_command(sub)
    parser.description = ("Inference benchmark of multilingual encoders across languages, backends and batching "
                          "strategies. Commands: " + ", ".join(sub.choices) + " (`xlt-bench COMMAND --help`).")
    for action in (a for p in [parser, *sub.choices.values()] for a in p._actions):
        action.help = _with_default(action.help, action.default if action.option_strings else None)
    return parser


def _add_report_parser(sub) -> None:
    p = sub.add_parser("report", help="(re)render report.md/report.html from RUN_DIR/results.json")
    p.add_argument("run_dir")


def _add_compare_parser(sub) -> None:
    p = sub.add_parser("compare", help="side-by-side report of two runs; RUN_A is the baseline (ratios are B ÷ A)")
    p.add_argument("run_a", help="the baseline run (RUN_DIR or results.json)")
    p.add_argument("run_b", help="the run compared with it")
    p.add_argument("--out", help="output directory [RUN_B/compare]")


def _add_gate_parser(sub) -> None:
    p = sub.add_parser("gate", help="fail (exit 1) when the current run regressed against the baseline")
    p.add_argument("--baseline", required=True, help="baseline results.json or run directory")
    p.add_argument("--current", required=True, action="append",
                   help="current results.json or run directory; repeat it to gate on the best value of several reruns")
    p.add_argument("--check", action="append", default=None, metavar="METRIC:THRESHOLD[:SCOPE]",
                   help="replace the default checks (repeatable), e.g. speedup:30%% or padding_waste:0.01; "
                        f"METRIC: {', '.join(_gate_metrics())}; SCOPE: per-lang | aggregate (ALL rows) "
                        "[speedup, mfu, padding_waste]")
    p.add_argument("--json", action="store_true", help="print the checks as JSON instead of a table")
    p.add_argument("--across-machines", action="store_true",
                   help="also gate machine-bound metrics (mfu, absolute speed) against a baseline from another kind "
                        "of machine (CPU model/ISA flags or GPU) [off: they are skipped with a warning]")


def _add_export_parser(sub) -> None:
    p = sub.add_parser("export", help="export a run for trend tools")
    p.add_argument("run_dir")
    p.add_argument("--format", default="github-action-benchmark", choices=["github-action-benchmark"],
                   help="output format")
    p.add_argument("--out", help="output file [stdout]")


def _add_lengths_parser(sub) -> None:
    p = sub.add_parser("lengths", help="build length profiles (for --data synthetic) from real data")
    p.add_argument("--data", required=True, help="local:DIR or hf")
    p.add_argument("--tokenizer", required=True, help="HF tokenizer id/dir or a WordPiece vocab.txt")
    p.add_argument("--tasks", default="xnli,pawsx", help="comma-separated tasks")
    p.add_argument("--langs", default="all", help="comma-separated language codes, or 'all'")
    p.add_argument("--limit", type=int, default=None, help="examples per language [all]")
    p.add_argument("--out", required=True, help="profile JSON to write")


def _add_sweep_parser(sub) -> None:
    p = sub.add_parser("sweep", help="a grid of runs in shards, local or on a Ray cluster, resumable, merged")
    p.add_argument("--config", required=True, help="TOML with a [sweep] table of lists and a [run] table")
    p.add_argument("--executor", default="local", choices=["local", "ray"], help="where shards run [local]")
    p.add_argument("--address", default=None, help="Ray cluster: auto | HOST:PORT | ray://HOST:PORT "
                                                   "[a local Ray started for this sweep]")
    p.add_argument("--workers", type=int, default=1, help="local executor: parallel processes [1]")
    p.add_argument("--out", default="results/sweep", help="sweep directory (shards/ and the merged results) "
                                                          "[results/sweep]")
    p.add_argument("--dry-run", action="store_true", help="print the shards and their estimated FLOPs only")


def _add_train_cost_parser(sub) -> None:
    p = sub.add_parser("train-cost", help="training FLOPs, hours and energy of fine-tuning regimes (a plan TOML)")
    p.add_argument("--plan", required=True, help="plan TOML with [[regime]] tables")
    p.add_argument("--measured", help="a train-scenario run (RUN_DIR or results.json) whose throughput gives the "
                                      "hours on this machine [the plan's 'measured' key, else none]")
    p.add_argument("--out", default="results/train-cost", help="directory for train_cost.md/html/json")


def _add_tasks_parser(sub) -> None:
    p = sub.add_parser("tasks", help="list tasks, their languages and data sources")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _add_study_parser(sub) -> None:
    from xlt_bench.study.cli import add_arguments
    p = sub.add_parser("study", help="answer one research question (batching, resource, alignment, models, "
                                     "train-cost): runs what it needs, writes study.md/html; --list describes them")
    add_arguments(p)


def _add_langs_parser(sub) -> None:
    p = sub.add_parser("langs", help="print language metadata")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--group-by", choices=["family", "genus", "script", "resource_class"], default=None,
                   help="list the codes per group; resource_class names Joshi et al.'s classes 0-5 [no grouping]")


# One function per subcommand, in the order --help lists them; a new subcommand adds its function here and its
# handler to COMMANDS (xlt_bench/commands.py).
SUBCOMMAND_PARSERS = [_add_run_parser, _add_report_parser, _add_compare_parser, _add_gate_parser, _add_export_parser,
                      _add_lengths_parser, _add_sweep_parser, _add_train_cost_parser, _add_study_parser,
                      _add_tasks_parser, _add_langs_parser]


def _gate_metrics() -> list[str]:
    from xlt_bench.ci.gate import KNOWN_METRICS
    return list(KNOWN_METRICS)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    verbosity = getattr(args, "verbosity", 0) or 0
    level = {1: logging.INFO, -1: logging.ERROR}.get(verbosity, logging.WARNING)
    handler = logging.StreamHandler()
    handler.setFormatter(_Formatter())
    logging.basicConfig(level=level, handlers=[handler])
    from xlt_bench.core import progress
    progress.QUIET = verbosity < 0   # set on every call: an earlier `-q` in the same process must not linger
    try:
        from xlt_bench.commands import COMMANDS   # here, not at the top: the handlers import RUN_OPTIONS from here
        return COMMANDS[args.command](args)
    except InputError as exc:
        print(f"xlt-bench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # e.g. `xlt-bench tasks | head`
        sys.stderr.close()
        return 0
    except OSError as exc:  # a path the user gave cannot be written or read (a file where a directory goes, ...)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"xlt-bench: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print("xlt-bench: interrupted; results.incomplete.json in --out holds the partial run", file=sys.stderr)
        return getattr(exc, "exit_code", 130)
    except Exception as exc:  # a bug, not bad input: never exit 1 (a gate regression) with a bare traceback
        where = _save_traceback(exc)
        print(f"xlt-bench: internal error: {exc.__class__.__name__}: {_first_line(exc)} (a bug; the traceback is "
              f"in {where})", file=sys.stderr)
        return INTERNAL_ERROR


INTERNAL_ERROR = 3


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


def _save_traceback(exc: BaseException) -> str:
    """Write the traceback to a file in the temp directory and return its path (or say why it could not be)."""
    import tempfile
    import traceback
    text = "xlt-bench " + " ".join(sys.argv[1:]) + "\n\n" + "".join(traceback.format_exception(exc))
    try:
        fd, path = tempfile.mkstemp(prefix="xlt-bench-traceback-", suffix=".txt")
        with open(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        return path
    except OSError as err:
        return f"nowhere: it could not be written ({err})"


class _Formatter(logging.Formatter):
    """Log lines in the CLI's one style: "xlt-bench: warning: ...", like its errors."""

    def format(self, record: logging.LogRecord) -> str:
        return f"xlt-bench: {record.levelname.lower()}: {record.getMessage()}"


if __name__ == "__main__":
    sys.exit(main())
