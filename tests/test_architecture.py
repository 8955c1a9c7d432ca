"""ARCHITECTURE.md stays true: every path it names exists, every "module:Name" it names imports, and every registry
row names a real registry whose example entry is registered there, resolves, and is of the stated base."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from xlt_bench.core.registry import Registry, import_target

ROOT = Path(__file__).resolve().parent.parent
TEXT = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")

TARGET = r"[A-Za-z_][\w.]*:[A-Za-z_]\w*"
REGISTRY_ROW = re.compile(rf"^\| (?P<concept>[^|]+?) \| `(?P<registry>{TARGET})` \| `(?P<entry>[^`]+)`"
                          rf"(?: = `(?P<target>{TARGET})`)?[^|]* \| `(?P<base>{TARGET})` \|$", re.M)


def registry_rows() -> list[dict[str, str]]:
    return [m.groupdict() for m in REGISTRY_ROW.finditer(TEXT)]


def test_the_registry_table_is_parsed():
    concepts = {row["concept"] for row in registry_rows()}
    assert concepts == {"backend", "batching strategy", "scenario", "server policy", "task"}


@pytest.mark.parametrize("row", registry_rows(), ids=lambda row: row["concept"])
def test_every_registry_entry_named_imports_and_has_its_base(row):
    registry = import_target(row["registry"])
    assert isinstance(registry, Registry), row["registry"]
    assert row["entry"] in registry, f"{row['entry']} is not registered in {row['registry']}"
    if row["target"]:
        assert registry.target(row["entry"]) == row["target"]
    resolved = registry.get(row["entry"])
    base = import_target(row["base"])
    assert issubclass(resolved, base) if isinstance(resolved, type) else isinstance(resolved, base)


def test_every_module_name_named_imports():
    named = set(re.findall(rf"`({TARGET})`", TEXT))
    assert len(named) >= 10
    for target in named:
        import_target(target)


def test_every_path_named_exists():
    paths = set(re.findall(r"`((?:xlt_bench|tests)/[\w/.]*)`", TEXT))
    assert len(paths) >= 20
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"ARCHITECTURE.md names paths that do not exist: {missing}"


def test_it_fits_one_screen():
    assert len(TEXT.splitlines()) <= 60
