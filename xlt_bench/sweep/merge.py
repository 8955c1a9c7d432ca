"""Merging a sweep's shards into one results document (DESIGN §4 layout; run.shards keeps each shard's config,
env and status) and the sweep's summary report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from xlt_bench.core.errors import InputError
from xlt_bench.core.schema import ALL_LANGS, atomic_write_text, load_results, write_results
from xlt_bench.results.speedup import speedup_of, speedups
from xlt_bench.sweep.grid import Shard
from xlt_bench.sweep.shards import shard_dir


def merge(shards: list[Shard], out: Path, status: dict[str, dict[str, Any]], sweep_file: str) -> dict[str, Any]:
    """Merge every finished shard's rows. A shard reported finished whose results neither came back with its result
    nor lie on this machine's disk is lost: the merge is written (marked incomplete) and then refused, exit 2."""
    from xlt_bench.core.env import run_metadata
    rows, entries = [], []
    for shard in shards:
        reported = status.get(shard.id, {})
        entry = {"id": shard.id, "axes": shard.axes, "config": shard.config.to_dict(),
                 **{k: v for k, v in reported.items() if k not in ("shard", "document")}}
        doc = _shard_document(out, shard.id, reported) if entry.get("status") in FINISHED else None
        if doc is not None:
            env = doc["run"].get("env", {})
            entry.update(env=env, run_id=doc["run"].get("id"))
            for row in doc["rows"]:
                rows.append({**row, "shard": shard.id, "host": env.get("hostname"), "gpu": env.get("gpu_name")})
        elif entry.get("status") in FINISHED:
            entry.update(status="lost", error="finished, but its results reached neither the driver nor its disk")
        entries.append(entry)
    meta = run_metadata({"sweep": sweep_file})
    failed = [e for e in entries if e.get("status") in ("failed", "lost")]
    lost = [e for e in entries if e.get("status") == "lost"]
    meta.update(incomplete=bool(lost), shards=entries, skipped=[],
                notes=[f"shard {e['id']} failed after {e.get('attempts', '?')} attempt(s): {e.get('error')}"
                       for e in failed] + [e["code_version_note"] for e in entries if e.get("code_version_note")],
                created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    write_results(out / "results.json", meta, rows)
    atomic_write_text(out / "sweep.md", summary_markdown(entries, rows))
    if lost:
        named = ", ".join(f"{e['id']} ({' '.join(f'{k}={v}' for k, v in e['axes'].items())})" for e in lost)
        raise InputError(f"{len(lost)} shard(s) finished but their rows were lost: {named}; run the sweep again "
                         "to measure them", file=str(out / "results.json"), field="shards")
    return {"run": meta, "rows": rows}


FINISHED = ("done", "skipped (complete)")


def _shard_document(out: Path, shard_id: str, reported: dict[str, Any]) -> dict[str, Any] | None:
    """The shard's results: as returned by its worker (then also written beside the sweep, for report and resume),
    else from this machine's disk (a shard finished by an earlier invocation); None when neither has it."""
    results = shard_dir(out, shard_id) / "results.json"
    returned = reported.get("document")
    if returned is not None:
        if not results.exists():
            write_results(results, returned["run"], returned["rows"])
        return returned
    return load_results(results) if results.exists() else None


def is_sweep(directory: Path) -> bool:
    """A merged sweep directory (its results.json lists shards)."""
    path = Path(directory)
    path = path.parent if path.is_file() else path
    return (path / "shards").is_dir() and "shards" in load_results(path)["run"]


def render_sweep(directory: Path) -> list[Path]:
    """`xlt-bench report` on a sweep: each shard's own report (rows of one model on one host, as a run report
    expects) and sweep.md again from the merged results."""
    from xlt_bench.report import render_run
    path = Path(directory)
    path = path.parent if path.is_file() else path
    doc = load_results(path)
    written = []
    for entry in doc["run"]["shards"]:
        if (shard_dir(path, entry["id"]) / "results.json").exists():
            written += render_run(shard_dir(path, entry["id"]))
    atomic_write_text(path / "sweep.md", summary_markdown(doc["run"]["shards"], doc["rows"]))
    return written + [path / "sweep.md"]


def summary_markdown(entries: list[dict[str, Any]], rows: list[dict[str, Any]]) -> str:
    """Per shard: where it ran, its status, and its ALL rows' useful tok/s, speedup over static and waste (ratios
    within the shard only: both batchings ran on the same host in the same run)."""
    lines = ["# Sweep", "", "| shard | axes | host | status | attempts |", "|---|---|---|---|---:|"]
    for e in entries:
        axes = " ".join(f"{k}={v}" for k, v in e["axes"].items())
        lines.append(f"| {e['id']} | {axes} | {(e.get('env') or {}).get('hostname', '—')} | "
                     f"{e.get('status', '—')}{': ' + e['error'] if e.get('error') else ''} | "
                     f"{e.get('attempts', '—')} |")
    all_rows = [r for r in rows if r.get("lang") == ALL_LANGS]
    if all_rows:
        lines += ["", "| shard | task | model | backend | dtype | batching | useful tok/s | ÷ static | waste |",
                  "|---|---|---|---|---|---|---:|---:|---:|"]
        table = speedups(all_rows)   # same shard, task, backend and dtype: one run on one host
        for r in all_rows:
            ratio = speedup_of(r, table)
            lines.append(f"| {r['shard']} | {r['task']} | {r['model']} | {r['backend']} | {r['dtype']} | "
                         f"{r['batching']} | {_shown(r.get('throughput_tok_s'), ',.0f')} | "
                         f"{_shown(ratio, '.2f', '×')} | {_shown(r.get('padding_waste'), '.1%')} |")
    return "\n".join(lines) + "\n"


def _shown(value: float | None, spec: str, suffix: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{suffix}"
