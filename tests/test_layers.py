"""Imports run downhill: product modules never reach up into the benchmark harness."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "optuna_nas"
HARNESS = "optuna_nas.benchmarks"


def _imported_modules(source: str) -> set[str]:
    """Every module a source imports, including ``importlib.import_module("...")`` calls."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


def _reaches_harness(source: str) -> list[str]:
    imported = _imported_modules(source)
    return sorted(name for name in imported if name == HARNESS or name.startswith(HARNESS + "."))


def test_the_checker_sees_every_form_of_import() -> None:
    assert _reaches_harness("import optuna_nas.benchmarks")
    assert _reaches_harness("from optuna_nas.benchmarks._samplers import make_sampler")
    assert _reaches_harness("from optuna_nas import benchmarks")
    assert _reaches_harness("import importlib\nimportlib.import_module('optuna_nas.benchmarks')")
    assert not _reaches_harness("from optuna_nas.samplers import make_sampler")
    assert not _reaches_harness("print('python -m optuna_nas.benchmarks nasbench201')")


def test_no_product_module_imports_the_benchmarks() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "benchmarks":
            continue
        reached = _reaches_harness(path.read_text())
        if reached:
            offenders[str(relative)] = reached
    assert offenders == {}, f"product modules importing {HARNESS}: {offenders}"


def test_the_worker_asks_the_samplers_for_the_registry() -> None:
    worker = PACKAGE / "worker"
    sources = [path.read_text() for path in worker.rglob("*.py")]
    assert any("optuna_nas.samplers" in _imported_modules(source) for source in sources)
