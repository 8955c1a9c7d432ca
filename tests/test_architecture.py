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


PACKAGE = ROOT / "xlt_bench"


def stage_order() -> list[str]:
    line = re.search(r"^stages: (.+)$", TEXT, re.M)
    assert line, "ARCHITECTURE.md lost its 'stages:' line"
    return [name.strip() for name in line.group(1).split("->")]


def stage_of(module: str) -> str:
    """'xlt_bench.data.tasks' -> 'data'; a module at the package root ('xlt_bench.cli') belongs to the cli stage."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else "cli"


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every xlt_bench module `path` imports, at module level or inside a function."""
    import ast
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("xlt_bench."):
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("xlt_bench.")]
    return found


def test_every_folder_of_the_package_is_a_named_stage():
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert folders == set(stage_order()) - {"cli"}


def test_the_package_root_holds_at_most_three_modules():
    assert len(list(PACKAGE.glob("*.py"))) <= 3


def test_no_stage_imports_a_stage_after_it():
    order = stage_order()
    upward = []
    for path in PACKAGE.rglob("*.py"):
        source = stage_of(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for line, module in imported_modules(path):
            if order.index(stage_of(module)) > order.index(source):
                upward.append(f"{path.relative_to(ROOT)}:{line} ({source}) imports {module}")
    assert not upward, "imports against the pipeline's direction:\n" + "\n".join(upward)


def test_the_layer_check_sees_an_upward_import(tmp_path):
    # The checker itself must be able to fail: a core module importing the run stage is reported.
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from xlt_bench.run.pipeline import run\n")
    order = stage_order()
    assert [m for _, m in imported_modules(module) if order.index(stage_of(m)) > order.index("core")] == \
        ["xlt_bench.run.pipeline"]


def test_modules_and_functions_stay_small():
    # ARCHITECTURE/DESIGN §5: a module over 400 lines or a function over 50 wants a split.
    import ast
    too_long = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > 400:
            too_long.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 50:
                too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: "
                                f"{node.end_lineno - node.lineno + 1} lines")
    assert not too_long, "split these:\n" + "\n".join(too_long)
