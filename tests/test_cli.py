"""CLI conventions: defaults in every --help, README and --help agree, one error style, compare names its baseline,
progress bars only on a terminal, and the dry run's time estimate (hand-computed)."""

from __future__ import annotations

import io
import json
import logging
import math
import re
from pathlib import Path

import pytest

from xlt_bench.cli import build_parser, main

README = Path(__file__).resolve().parents[1] / "README.md"


def _subparsers() -> dict:
    parser = build_parser()
    return {"xlt-bench": parser, **parser._subparsers._group_actions[0].choices}


def _options(parser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings if s.startswith("--")}


def test_every_option_with_a_value_shows_its_default():
    missing = []
    for name, parser in _subparsers().items():
        for action in parser._actions:
            takes_value = action.nargs != 0 and action.option_strings
            if takes_value and not action.required and "[" not in (action.help or ""):
                missing.append(f"{name} {action.option_strings[-1]}")
    assert not missing, missing
    run = _subparsers()["run"]
    helps = {a.dest: a.help for a in run._actions}
    assert helps["batch_size"].endswith("[32]") and helps["backends"].endswith("[eager,torchscript,onnxruntime]")


def _readme_run_options() -> set[str]:
    """The options named in the first column of README's run options table."""
    text = README.read_text(encoding="utf-8")
    start = text.index("## Run options")
    section = text[start:text.index("\n## ", start + 1)]
    return {m for line in section.splitlines() if line.startswith("| `--")
            for m in re.findall(r"^\| `(--[a-z][a-z-]*)", line)}


def test_readme_and_run_help_list_the_same_options():
    in_help = _options(_subparsers()["run"]) - {"--help", "--verbose", "--quiet"}
    in_readme = _readme_run_options()
    assert in_readme - in_help == set(), "README lists options run does not have"
    assert in_help - in_readme == set(), "run has options the README's table lacks"


def test_gate_metrics_and_scope_in_the_ci_guide_and_help():
    from xlt_bench.ci.gate import KNOWN_METRICS
    text = (README.parent / "docs" / "ci.md").read_text(encoding="utf-8")
    check_help = next(a.help for a in _subparsers()["gate"]._actions if a.dest == "check")
    for metric in KNOWN_METRICS:
        assert f"`{metric}`" in text and metric in check_help, metric
    assert "per-lang" in check_help and "aggregate" in check_help and "[:SCOPE]" in text


def test_one_error_prefix(capsys, tmp_path):
    with pytest.raises(SystemExit) as done:
        main(["run", "--no-such-option"])
    assert done.value.code == 2
    assert "xlt-bench: error: unrecognized arguments: --no-such-option" in capsys.readouterr().err
    assert main(["run", "--tasks", "nope", "--dry-run"]) == 2
    assert capsys.readouterr().err.startswith("xlt-bench: error: field 'tasks': unknown task 'nope'")
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith("xlt-bench: error: ")


def test_log_lines_use_the_same_prefix():
    from xlt_bench.cli import _Formatter
    record = logging.LogRecord("xlt_bench", logging.WARNING, __file__, 1, "threads %d above cores", (8,), None)
    assert _Formatter().format(record) == "xlt-bench: warning: threads 8 above cores"


def test_compare_says_which_run_is_the_baseline(tmp_path, capsys, monkeypatch):
    import xlt_bench.report as report
    import xlt_bench.commands as commands
    monkeypatch.setattr(report, "render_compare", lambda a, b, out: [out / "compare.md"])
    monkeypatch.setattr(commands, "_load_measured", lambda path, **kw: {})   # no files: only the header is tested
    assert main(["compare", "runs/old", "runs/new"]) == 0
    err = capsys.readouterr().err
    assert "baseline (A): runs/old" in err and "compared (B): runs/new" in err and "B ÷ A" in err
    compare_help = _subparsers()["compare"].format_help()
    assert "baseline" in compare_help


def test_compare_report_header_names_the_baseline():
    from xlt_bench.report.compare import _header
    doc = {"run": {"id": "r1", "config": {"model": "xlmr-base"}}}
    blocks = _header(doc, doc, ("old", "new"))
    text = json.dumps([getattr(b, "__dict__", str(b)) for b in blocks], ensure_ascii=False, default=str)
    assert "**A = old** (baseline: ratios are B ÷ A)" in text and "**B = new**:" in text


def test_resource_class_grouping_names_each_class(capsys):
    assert main(["langs", "--group-by", "resource_class"]) == 0
    lines = capsys.readouterr().out.splitlines()
    labels = [line.split(":")[0] for line in lines]
    # The 50 XTREME-R languages span classes 1-5 (none is class 0, "left-behind").
    assert labels == ["1 scraping-by", "2 hopeful", "3 rising star", "4 underdog", "5 winner"]
    assert lines[-1] == "5 winner: ar de en es fr ja zh"


def test_progress_bars_only_on_a_terminal(monkeypatch):
    from xlt_bench.core import progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert progress.bar(range(3), file=io.StringIO()).disable is True        # a CI log: no bar
    assert not progress.bar(range(3), file=Terminal()).disable               # a terminal: a bar
    monkeypatch.setattr(progress, "QUIET", True)
    assert progress.bar(range(3), file=Terminal()).disable is True           # -q


# --- the dry run's time estimate ---------------------------------------------------------------------------------

def _baseline(tmp_path: Path, rows: list[dict], peaks: dict | None = None) -> Path:
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps({"run": {"env": {"gemm_peaks": peaks or {}}}, "rows": rows}))
    return path


def _row(backend, batching, flops, wall, peak, lang="ALL"):
    return dict(lang=lang, backend=backend, dtype="fp32", batching=batching, flops_executed=flops, wall_s=wall,
                gemm_peak_flops=peak)


def test_estimate_divides_flops_by_rate_times_baseline_efficiency(tmp_path, monkeypatch):
    import xlt_bench.run.estimate as est
    import xlt_bench.measure.gemm_peak as peak
    from xlt_bench.core.config import RunConfig
    # Baseline: eager static ran 1e12 FLOPs in 20 s against a 1e11 peak -> efficiency 0.5; dynamic 0.8.
    # A per-language row must not count.
    path = _baseline(tmp_path, [_row("eager", "static", 1e12, 20.0, 1e11), _row("eager", "dynamic", 8e11, 10.0, 1e11),
                                _row("eager", "static", 1e12, 1.0, 1e11, lang="en")])
    monkeypatch.setattr(est, "workload_flops", lambda cfg: {"static": 3e12, "dynamic": 1.2e12})
    monkeypatch.setattr(peak, "measure_peaks", lambda pairs, device, threads, seconds: {
        "torch/fp32": {"flops_per_s": 1.0e11, "flops_per_s_best": 1.5e11}})
    cfg = RunConfig(model="tiny-xlmr", backends=("eager",))
    out = est.estimate_run(cfg, [("eager", "fp32")], path)
    # static: 3e12 / (1.5e11 x 0.5) = 40 s; dynamic: 1.2e12 / (1.5e11 x 0.8) = 10 s
    assert out.parts[("eager", "fp32", "static")] == pytest.approx(40.0)
    assert out.parts[("eager", "fp32", "dynamic")] == pytest.approx(10.0)
    assert out.timed_s == pytest.approx(50.0) and out.rate_source == "measured now"
    lines = est.describe_estimate(out)
    assert "~50.0 s" in lines[0] and "dynamic ≥ 10.0 s" in lines[0] and "150 GFLOP/s" in lines[1]


def test_estimate_falls_back_to_stored_peak_and_to_efficiency_one(tmp_path, monkeypatch):
    import xlt_bench.run.estimate as est
    import xlt_bench.measure.gemm_peak as peak
    from xlt_bench.core.config import RunConfig
    monkeypatch.setattr(est, "workload_flops", lambda cfg: {"static": 2e12})
    monkeypatch.setattr(peak, "measure_peaks", lambda pairs, device, threads, seconds: {
        "onnxruntime/fp32": {"flops_per_s": None, "note": "peak not measured"}})
    # Baseline with a stored peak but no ALL rows -> efficiency 1 (a lower bound).
    path = _baseline(tmp_path, [], {"onnxruntime/fp32": {"peak_flops_per_s": 4e11}})
    out = est.estimate_run(RunConfig(model="tiny-xlmr", backends=("onnxruntime",), batching=("static",)),
                       [("onnxruntime", "fp32")], path)
    assert out.timed_s == pytest.approx(5.0) and out.rate_source == "read from the baseline"
    assert "lower bound" in out.efficiency_source
    # A model that is not a preset: unknown, said as such.
    monkeypatch.setattr(est, "workload_flops", lambda cfg: None)
    unknown = est.estimate_run(RunConfig(model="tiny-xlmr"), [("eager", "fp32")], path)
    assert math.isnan(unknown.seconds) and "unknown" in est.describe_estimate(unknown)[0]


def test_workload_flops_of_static_is_padded_to_max_length():
    """Static FLOPs = min_repeats x every profiled sequence padded to max_length, by flops.py's own formula."""
    from xlt_bench.core.config import RunConfig
    from xlt_bench.run.estimate import workload_flops
    from xlt_bench.core.flops import EncoderShape, executed_flops
    from xlt_bench.backends.models import preset_config
    cfg = RunConfig(model="tiny-xlmr", tasks=("xnli",), langs=("en",), limit=10, max_length=64, min_repeats=2)
    flops_shape = EncoderShape.from_config(preset_config("tiny-xlmr"), "sequence", 3)
    flops = workload_flops(cfg)
    assert flops["static"] == 2 * executed_flops(flops_shape, [(10, 64)])
    assert 0 < flops["dynamic"] < flops["static"]


def test_dry_run_prints_an_estimate_and_writes_nothing(tmp_path, capsys, monkeypatch):
    import xlt_bench.measure.gemm_peak as peak
    monkeypatch.setattr(peak, "measure_peaks", lambda pairs, device, threads, seconds: {
        f"{lib}/{dt}": {"flops_per_s": 1e10, "flops_per_s_best": 1e10} for lib, dt in pairs})
    assert main(["run", "--dry-run", "--model", "tiny-xlmr", "--tasks", "xnli", "--langs", "en",
                 "--backends", "eager", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "estimated timed passes: ~" in out and "eager/fp32 static" in out and not (tmp_path / "o").exists()
