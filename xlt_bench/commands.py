"""One handler per subcommand of `xlt-bench` (cli.py parses the arguments and calls them through COMMANDS).

A handler gathers what its command needs from the stages, has the report stage build the text, prints it and
returns the exit code (DESIGN §2). Heavy stages are imported inside the handlers: `xlt-bench tasks` must not wait
for torch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from xlt_bench.cli import RUN_OPTIONS
from xlt_bench.core.config import build_config
from xlt_bench.core.errors import InputError


def cmd_run(args) -> int:
    from datetime import datetime, timezone
    overrides = {name: getattr(args, name) for name in list(RUN_OPTIONS) + ["cost_model", "cost_model_file"]}
    cfg = build_config(args.config, overrides)
    if args.print_config:
        from xlt_bench.report.command_text import config_toml
        print(config_toml(cfg.to_dict()))
        return 0
    from xlt_bench.backends.model_source import check_model_source
    check_model_source(cfg.model)   # before the heavy imports: a mistyped --model fails in about a second
    out = Path(args.out or cfg.out or f"results/run-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}")
    if args.dry_run:
        return _dry_run(cfg, out, args.force)
    from xlt_bench.run.pipeline import run
    doc = run(cfg, out, force=args.force)
    if not args.no_report:
        from xlt_bench.report import render_run
        render_run(out)
    from xlt_bench.report.console import finished_run
    print(finished_run(doc, out))
    return 0


def _dry_run(cfg, out: Path, force: bool) -> int:
    """Check everything a run would, print what it would do and its estimate; measure nothing."""
    from xlt_bench.report.console import dry_run_notes
    from xlt_bench.run.estimate import describe_estimate, estimate_run
    from xlt_bench.run.preflight import describe, preflight
    plan = preflight(cfg, out, force=force)
    estimate = estimate_run(cfg, plan.pairs, backend_classes=plan.backend_classes)
    for line in describe(cfg, plan) + describe_estimate(estimate) + dry_run_notes(cfg):
        print(line)
    return 0


def _load_measured(path: str, *, allow_incomplete: bool = False) -> dict:
    """A results document that holds at least one row (what report, compare, gate and export need)."""
    from xlt_bench.core.schema import load_results, resolve_results_path
    from xlt_bench.core.validate import check_has_rows
    doc = load_results(path, allow_incomplete=allow_incomplete)
    check_has_rows(doc, str(resolve_results_path(path, allow_incomplete=allow_incomplete)))
    return doc


def cmd_report(args) -> int:
    from xlt_bench.report import render_run
    from xlt_bench.sweep.merge import is_sweep, render_sweep
    _load_measured(args.run_dir, allow_incomplete=True)
    if is_sweep(Path(args.run_dir)):   # a sweep: one report per shard
        written = render_sweep(Path(args.run_dir))
    else:
        written = render_run(Path(args.run_dir), allow_incomplete=True)
    for path in written:
        print(path)
    return 0


def cmd_compare(args) -> int:
    from xlt_bench.report import render_compare
    from xlt_bench.report.command_text import compare_header
    _load_measured(args.run_a)
    _load_measured(args.run_b)
    out = Path(args.out) if args.out else Path(args.run_b) / "compare"
    print(compare_header(args.run_a, args.run_b), file=sys.stderr)
    for path in render_compare(Path(args.run_a), Path(args.run_b), out):
        print(path)
    return 0


def cmd_gate(args) -> int:
    from xlt_bench.ci.compat import check_compatible
    from xlt_bench.ci.gate import DEFAULT_CHECKS, checks_for_machines, compare_runs, parse_check
    from xlt_bench.report.gate_table import gate_json, gate_table
    quiet = getattr(args, "verbosity", 0) == -1   # -q: the verdict line only (errors still on stderr)
    baseline = _load_measured(args.baseline, allow_incomplete=True)
    current = [_load_measured(path, allow_incomplete=True) for path in args.current]
    warnings = list(dict.fromkeys(w for doc in current for w in check_compatible(baseline, doc)))
    checks = [parse_check(c) for c in args.check] if args.check else DEFAULT_CHECKS
    checks, machine_warnings = checks_for_machines(checks, baseline, current, args.across_machines)
    for warning in [] if quiet else warnings + machine_warnings:
        print(f"xlt-bench: warning: {warning}", file=sys.stderr)
    result = compare_runs(baseline, current, checks)
    if args.json:
        print(gate_json(result.rows, result.summary(), result.exit_code == 0, result.warnings))
    elif quiet:
        print(result.summary())
    else:
        print(gate_table(result.rows, result.summary(), result.failures, result.warnings))
    return result.exit_code


def cmd_export(args) -> int:
    from xlt_bench.ci.export import github_action_benchmark
    from xlt_bench.core.schema import atomic_write_text
    text = json.dumps(github_action_benchmark(_load_measured(args.run_dir)), indent=1) + "\n"
    if args.out:
        atomic_write_text(args.out, text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_lengths(args) -> int:
    from xlt_bench.core.config import _as_tuple
    from xlt_bench.data.lengths import build_profiles, write_profiles
    doc = build_profiles(args.data, list(_as_tuple(args.tasks)), _as_tuple(args.langs), args.tokenizer, args.limit)
    write_profiles(doc, args.out)
    print(args.out)
    return 0


def cmd_sweep(args) -> int:
    from xlt_bench.sweep.run import sweep
    if args.workers < 1:
        raise InputError("must be at least 1", field="workers")
    doc = sweep(args.config, Path(args.out), args.executor, args.address, args.workers, args.dry_run,
                say=lambda m: print(m, file=sys.stderr))
    if doc is None:
        return 0
    out = Path(args.out)
    print(out / "results.json")
    print(out / "sweep.md")
    failed = [s for s in doc["run"]["shards"] if s.get("status") == "failed"]
    return 2 if failed and len(failed) == len(doc["run"]["shards"]) else 0


def cmd_train_cost(args) -> int:
    from xlt_bench.core.schema import load_results
    from xlt_bench.report.train_cost import render_train_cost, train_cost_notes
    from xlt_bench.run.train_cost import ACCELERATORS, load_plan, project_training_cost
    plan = load_plan(args.plan)
    measured_path = args.measured or plan.measured
    measured = load_results(measured_path) if measured_path else None
    rows = project_training_cost(plan, measured)
    notes = train_cost_notes(plan, ACCELERATORS[plan.accelerator], measured_path, measured is not None)
    meta = {"plan": args.plan, "accelerator": plan.accelerator, "mfu": plan.mfu, "dtype": plan.dtype,
            "measured": measured_path, "notes": notes}
    for path in render_train_cost(rows, meta, Path(args.out)):
        print(path)
    return 0


def cmd_tasks(args) -> int:
    from xlt_bench.data.tasks import describe_tasks
    if args.json:
        print(json.dumps(describe_tasks(), indent=1, default=str))
        return 0
    from xlt_bench.report.command_text import task_listing
    for line in task_listing(describe_tasks()):
        print(line)
    return 0


def cmd_study(args) -> int:
    from xlt_bench.study.cli import run as run_study
    return run_study(args)


def cmd_langs(args) -> int:
    from xlt_bench.core.languages import metadata_frame
    frame = metadata_frame()
    if args.json:
        print(frame.to_json(orient="records", indent=1))
        return 0
    from xlt_bench.report.command_text import language_listing
    for line in language_listing(frame, args.group_by):
        print(line)
    return 0


COMMANDS = {"run": cmd_run, "report": cmd_report, "compare": cmd_compare, "gate": cmd_gate, "export": cmd_export,
            "lengths": cmd_lengths, "tasks": cmd_tasks, "langs": cmd_langs, "train-cost": cmd_train_cost,
            "sweep": cmd_sweep, "study": cmd_study}
