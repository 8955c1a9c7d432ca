"""All rendering of results: report.md, report.html, plots/, compare reports and the console summary.

Everything is rendered in memory first and written only at the end, each file atomically, so an error never
leaves a half-written or stale-looking report behind.
"""

from __future__ import annotations

from pathlib import Path

from xlt_bench.core.schema import atomic_write_bytes, atomic_write_text, load_results

__all__ = ["render_run", "render_compare", "console_summary"]


def __getattr__(name: str):
    # Rendering pulls in pandas and matplotlib (about a second): loaded on first use, so commands that render
    # nothing (tasks, langs, gate, --print-config) start without them.
    if name == "console_summary":
        from xlt_bench.report.console import console_summary
        return console_summary
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def render_run(run_dir: Path, *, allow_incomplete: bool = False) -> list[Path]:
    """Read run_dir/results.json; write report.md, report.html and plots/*.png. Returns the written paths."""
    from xlt_bench.report.run_report import build_run_report

    run_dir = Path(run_dir)
    if run_dir.is_file():  # given results.json itself: the report goes beside it
        run_dir = run_dir.parent
    report = build_run_report(load_results(run_dir, allow_incomplete=allow_incomplete))
    written = []
    for name, chart in report.charts.items():
        path = run_dir / "plots" / f"{name}.png"
        atomic_write_bytes(path, chart.png)
        written.append(path)
    for name in report.skipped_charts:  # a chart an earlier render drew but this data no longer supports
        (run_dir / "plots" / f"{name}.png").unlink(missing_ok=True)
    atomic_write_text(run_dir / "report.md", report.markdown)
    atomic_write_text(run_dir / "report.html", report.html)
    return written + [run_dir / "report.md", run_dir / "report.html"]


def render_compare(run_a: Path, run_b: Path, out_dir: Path) -> list[Path]:
    """Side-by-side report of two runs: out_dir/compare.md and compare.html (plus plots/compare_*.png)."""
    from xlt_bench.report.compare import build_compare

    rendered = build_compare(load_results(run_a), load_results(run_b))
    out_dir = Path(out_dir)
    written = []
    for name, chart in rendered.charts.items():
        path = out_dir / "plots" / f"{name}.png"
        atomic_write_bytes(path, chart.png)
        written.append(path)
    atomic_write_text(out_dir / "compare.md", rendered.markdown)
    atomic_write_text(out_dir / "compare.html", rendered.html)
    return written + [out_dir / "compare.md", out_dir / "compare.html"]
