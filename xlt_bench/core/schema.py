"""The results file contract (DESIGN §4): row fields, atomic writes, loading with validation."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from pathlib import Path
from dataclasses import dataclass
from typing import Any

from xlt_bench.core.errors import InputError
from xlt_bench.core.catalogue import declared

log = logging.getLogger("xlt_bench")

SCHEMA_VERSION = 1

@dataclass(frozen=True)
class RowKey:
    """What one measurement is of: built once per measurement, written into its row by `fields()`.

    A server row's policy has its own field (its `batching` is null); offline and train rows carry no `policy` key.
    """
    task: str
    lang: str
    model: str
    backend: str
    device: str
    dtype: str
    batching: str | None
    scenario: str = "offline"
    policy: str | None = None

    def fields(self) -> dict[str, Any]:
        """The row's identity fields (DESIGN §4), in file order."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if out["policy"] is None:
            del out["policy"]
        return out

    @classmethod
    def of(cls, row: dict[str, Any]) -> RowKey:
        """The key of a row read back. Rows written before scenarios existed lack "scenario" (they are offline);
        server rows written before the `policy` field hold the policy in `batching`."""
        return cls(**{f.name: row.get(f.name) for f in dataclasses.fields(cls) if f.name != "scenario"},
                   scenario=row.get("scenario") or "offline")

    @property
    def configuration(self) -> str | None:
        """What was compared within the scenario: the batching strategy, or a server row's policy."""
        return self.policy if self.policy is not None else self.batching


# Identity fields every row has; "scenario" and "policy" came later, so files without them stay readable.
IDENTITY_FIELDS = tuple(f.name for f in dataclasses.fields(RowKey) if f.name not in ("scenario", "policy"))
# Every row has at least these keys (null where a value is not meaningful, never a placeholder number): the identity
# and the catalogue's required metrics.
ROW_FIELDS = IDENTITY_FIELDS + tuple(m.name for m in declared(required=True))

# A row is identified by these; the gate and compare match rows on them. A server row's policy stands in the
# batching's place, and its offered load follows.
ROW_KEY = ("scenario", "task", "lang", "backend", "dtype", "batching")


def row_key(row: dict[str, Any]) -> tuple[str, ...]:
    key = RowKey.of(row)
    key_parts = (key.scenario, key.task, key.lang, key.backend, key.dtype, key.configuration)
    out = tuple(str(part) for part in key_parts)
    if row.get("offered_qps") is not None:
        out += (f"{row['offered_qps']:g}qps",)
    if row.get("shard"):  # a merged sweep: the shard (a hash of its configuration) tells models/devices apart
        out += (f"shard={row['shard']}",)
    return out


ALL_LANGS = "ALL"
# The reference configuration (DESIGN §3): agreement and parity are measured against its outputs.
REFERENCE = ("eager", "fp32", "static")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write via a temp file in the same directory and rename, so readers never see half a file."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    _default_mode(fd)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _default_mode(fd: int) -> None:
    # mkstemp creates 0600 files; results are meant to be shared like any file the user writes.
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)


def results_document(run: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "run": run, "rows": rows}


def write_results(path: str | os.PathLike, run: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    for i, row in enumerate(rows):
        missing = [f for f in ROW_FIELDS if f not in row]
        if missing:
            raise ValueError(f"row {i} lacks fields {missing}")
    atomic_write_text(path, json.dumps(results_document(run, rows), indent=1, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    # numpy scalars reach here; turn them into plain numbers.
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


INCOMPLETE_FILE = "results.incomplete.json"


def resolve_results_path(path: str | os.PathLike, *, allow_incomplete: bool = False) -> Path:
    """Accept a run directory or a results.json path; with `allow_incomplete`, a directory whose run did not finish
    (or was not swapped in) gives its results.incomplete.json."""
    path = Path(path)
    if not path.is_dir():
        return path
    if allow_incomplete and not (path / "results.json").exists() and (path / INCOMPLETE_FILE).exists():
        return path / INCOMPLETE_FILE
    return path / "results.json"


def load_results(path: str | os.PathLike, *, allow_incomplete: bool = False) -> dict[str, Any]:
    """Load and validate a results.json (or a run directory holding one). An incomplete run is refused unless
    `allow_incomplete` (then it is read with a warning: its rows may be partial)."""
    file = resolve_results_path(path, allow_incomplete=allow_incomplete)
    if not file.exists():
        raise InputError("no results.json here (is the run directory right, or was the run interrupted?)", file=str(file))
    try:
        doc = json.loads(file.read_bytes().decode("utf-8"))
    except (IsADirectoryError, PermissionError) as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=str(file)) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})", file=str(file)) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg}", file=str(file), line=exc.lineno) from None
    if not isinstance(doc, dict) or "schema_version" not in doc:
        raise InputError("not an xlt-bench results file", file=str(file), field="schema_version")
    if doc["schema_version"] != SCHEMA_VERSION:
        raise InputError(f"schema_version {doc['schema_version']} is not supported (expected {SCHEMA_VERSION})",
                         file=str(file), field="schema_version")
    if not isinstance(doc.get("run"), dict):
        raise InputError(f"expected an object, got {type(doc.get('run')).__name__}", file=str(file), field="run")
    if not isinstance(doc.get("rows"), list):
        raise InputError(f"expected a list, got {type(doc.get('rows')).__name__}", file=str(file), field="rows")
    if doc["run"].get("incomplete") or file.name == INCOMPLETE_FILE:
        if not allow_incomplete:
            raise InputError("this run was interrupted and is marked incomplete", file=str(file),
                             field="run.incomplete")
        notes = [n for n in doc["run"].get("notes", []) if isinstance(n, str)]
        log.warning("%s: an incomplete run (%s): read as it is", file, notes[-1] if notes else "rows may be partial")
    for i, row in enumerate(doc["rows"]):
        if not isinstance(row, dict):
            raise InputError(f"row {i} is a {type(row).__name__}, not an object", file=str(file), field="rows")
        missing = [f for f in ROW_FIELDS if f not in row]
        if missing:
            raise InputError(f"row {i} lacks {missing}", file=str(file), field="rows")
        wrong = [f for f in ("throughput_tok_s", "padding_waste", "wall_s", "mfu")
                 if row[f] is not None and (isinstance(row[f], bool) or not isinstance(row[f], (int, float)))]
        if wrong:
            raise InputError(f"row {i}: {', '.join(wrong)} must be numbers or null", file=str(file), field="rows")
    from xlt_bench.core.validate import check_rows
    check_rows(doc["rows"], str(file))
    return doc
