"""The package's shape, checked: sizes that fit in a head, no reaching for private names.

The rules of the architecture (docs/architecture.md): no module over
MAX_MODULE_LINES lines, no function over MAX_FUNCTION_LINES, and no module
using another module's private (underscore) names, whether imported or
reached through an attribute.  Private names of coverage.py are allowed in
one module only, ``inserver/coverage_private.py``, which checks them against
the running coverage version.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nose2_servercov"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50
MODULES = sorted(PACKAGE.rglob("*.py"))
COVERAGE_PRIVATE = PACKAGE / "inserver" / "coverage_private.py"
# Underscore names of other libraries that are their public way (os._exit), or that
# nothing public replaces; each is used where the comment beside it says why.
OTHER_LIBRARIES_PRIVATE = {"_exit", "_DummyThread", "_resource_closers"}


def _name(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_no_module_is_longer_than_the_limit(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{_name(path)} has {lines} lines"


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_no_function_is_longer_than_the_limit(path: Path) -> None:
    tree = ast.parse(path.read_text())
    long = [f"{node.name} (line {node.lineno}): {node.end_lineno - node.lineno + 1} lines"
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno is not None
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{_name(path)}: " + "; ".join(long)


def _imported_modules(tree: ast.AST) -> dict[str, str]:
    """Return {local name: module} for every module bound by an import statement."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound[(alias.asname or alias.name).split(".")[0]] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return bound


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_no_module_uses_another_modules_private_names(path: Path) -> None:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found += [f"from {node.module} import {alias.name}" for alias in node.names
                      if _is_private(alias.name) and node.module.startswith("nose2_servercov")]
    modules = _imported_modules(tree)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and _is_private(node.attr)
                and isinstance(node.value, ast.Name) and node.value.id in modules):
            module = modules[node.value.id]
            ours = module.startswith("nose2_servercov")
            if ours or (module.startswith("coverage") and path != COVERAGE_PRIVATE):
                found.append(f"{node.value.id}.{node.attr} (line {node.lineno})")
    assert not found, f"{_name(path)}: " + ", ".join(found)


@pytest.mark.parametrize("path", [path for path in MODULES if path != COVERAGE_PRIVATE],
                         ids=_name)
def test_private_names_of_objects_are_used_in_one_module_only(path: Path) -> None:
    """``cov._collector`` and the like live in inserver/coverage_private.py, checked there."""
    tree = ast.parse(path.read_text())
    found = [f"{node.value.id}.{node.attr} (line {node.lineno})" for node in ast.walk(tree)
             if isinstance(node, ast.Attribute) and _is_private(node.attr)
             and isinstance(node.value, ast.Name) and node.value.id not in ("self", "cls")
             and node.attr not in OTHER_LIBRARIES_PRIVATE]
    assert not found, f"{_name(path)}: " + ", ".join(found)
