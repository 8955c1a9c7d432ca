"""The run directory's life cycle: which --out may be written, staging, the swap, the incomplete file.

A run directory is written into a staging directory beside --out and swapped in only when complete. Every directory
the harness creates carries a marker file; only a marked directory (or an empty one) is ever replaced, so nothing the
user wrote is deleted. A directory that holds nothing but the files a run writes (results.json, rows.csv, reports,
plots) counts as a run directory too: runs written before the marker existed look like that.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from xlt_bench.core.errors import InputError, RunTerminated
from xlt_bench.core.schema import atomic_write_text, write_results

log = logging.getLogger("xlt_bench")

MARKER = ".xlt-bench-run"
INCOMPLETE = "results.incomplete.json"
# What a run and `report`/`compare` write into a run directory (and nothing else).
RUN_ENTRIES = frozenset({MARKER, "results.json", INCOMPLETE, "rows.csv", "report.md", "report.html", "plots",
                         "compare"})
PROJECT_ROOT = Path(__file__).resolve().parents[1]


class SwapFailed(InputError):
    """The run finished but could not be moved into --out; it stays readable in the staging directory."""


def is_run_dir(path: Path) -> bool:
    """A directory the harness wrote: marked, or holding a results file and only what a run writes."""
    if (path / MARKER).is_file():
        return True
    names = {p.name for p in path.iterdir()}
    return bool(names & {"results.json", INCOMPLETE}) and names <= RUN_ENTRIES


def check_out_dir(out_dir: Path, *, force: bool = False) -> None:
    """--out must be a new directory, an empty one, or a run directory (a finished run only with `force`), must not
    contain the working directory or the project, and must be writable. Nothing is written here."""
    _refuse_enclosing(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("exists and is not a directory", file=str(out_dir), field="out")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not is_run_dir(out_dir):
            theirs = sorted(p.name for p in out_dir.iterdir() if p.name not in RUN_ENTRIES)
            raise InputError(f"is not empty and was not written by xlt-bench (it holds {_some(theirs)}); nothing "
                             "there is replaced: choose a new or empty directory", file=str(out_dir), field="out")
        if (out_dir / "results.json").exists() and not force:
            raise InputError("holds a finished run; pass --force to replace it (it is replaced only when the new "
                             "run completes) or choose another --out", file=str(out_dir), field="out")
    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(dir=parent, prefix=f".{out_dir.name}.probe-")
        os.rmdir(probe)
    except OSError as exc:
        raise InputError(f"cannot write here ({exc.strerror or exc})", file=str(out_dir), field="out") from None


def _refuse_enclosing(out_dir: Path) -> None:
    """The working directory, any directory above it, the project's own tree root or a repository root can never
    be swapped out (and replacing one would take everything in it)."""
    target = out_dir.resolve()
    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        what = "the working directory" if target == cwd else "a directory that contains the working directory"
    elif target == PROJECT_ROOT or (target / ".git").exists():
        what = "a repository root"
    else:
        return
    raise InputError(f"is {what}; a run directory is replaced as a whole: give a subdirectory such as "
                     f"{out_dir / 'run'}", file=str(out_dir), field="out")


def _some(names: list[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def mark(directory: Path) -> None:
    atomic_write_text(directory / MARKER, "written by xlt-bench run: replaced as a whole by `run --force`\n")


def staging_dir(out_dir: Path) -> Path:
    """A fresh, marked directory beside --out that the new run is written into."""
    staging = out_dir.parent / f".{out_dir.name}.new-{os.getpid()}"
    if staging.exists() and is_run_dir(staging):  # left by an earlier process with this pid
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    mark(staging)
    return staging


def discard(staging: Path) -> None:
    if staging.is_dir() and (staging / MARKER).is_file():
        shutil.rmtree(staging, ignore_errors=True)


def swap_in(staging: Path, out_dir: Path) -> None:
    """Replace --out by the finished staging directory: two renames, so --out is never a half-written run. --out is
    checked again: it may have changed while the run measured."""
    try:
        if not out_dir.exists():
            staging.rename(out_dir)
            return
        if any(out_dir.iterdir()) and not is_run_dir(out_dir):
            raise OSError(f"{out_dir} now holds files xlt-bench did not write")
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        discard(old)
        out_dir.rename(old)
        try:
            staging.rename(out_dir)
        except OSError:
            old.rename(out_dir)
            raise
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise SwapFailed(f"the run finished but could not replace {out_dir} ({exc.strerror or exc}); the finished "
                         f"run is in {staging} (`xlt-bench report {staging}` reads it)", field="out") from None


def write_incomplete(out_dir: Path, run_meta: dict, rows: list[dict[str, Any]], exc: BaseException) -> None:
    """Keep what was measured, in a file no reader takes for a finished run; the previous run in --out stays."""
    if isinstance(exc, KeyboardInterrupt):
        reason = "terminated (SIGTERM)" if isinstance(exc, RunTerminated) else "interrupted by the user (Ctrl-C)"
    elif isinstance(exc, SwapFailed):
        reason = "finished, but not swapped into --out"
    else:
        reason = f"failed: {exc.__class__.__name__}: {exc}"
    run_meta["notes"].append(f"{reason}; rows are partial" if run_meta.get("incomplete") else reason)
    try:
        if out_dir.is_dir() and any(out_dir.iterdir()) and not is_run_dir(out_dir):
            raise OSError("it holds files xlt-bench did not write")
        new = not out_dir.is_dir() or not any(out_dir.iterdir())
        write_results(out_dir / INCOMPLETE, run_meta, rows)
        if new:
            mark(out_dir)
    except OSError as err:  # never hide the original failure behind this one
        log.warning("could not write %s: %s", out_dir / INCOMPLETE, err)
