"""The library's layout holds its rules: imports point down the pipeline's layers, one import style, small
modules, and every short import a package promises resolves to what its module defines."""

from __future__ import annotations

import ast
import importlib
import types
from pathlib import Path

import pytest

from tests.conftest import REPO

#: The library's units, lowest first: a unit may import from its own package and from units of lower layers only.
LAYERS = (
    ("zooscope", "zooscope._lazy", "zooscope._checks", "zooscope.io", "zooscope.vocab"),
    ("zooscope.config",),
    ("zooscope.data",),
    ("zooscope.artifacts", "zooscope.paircache"),
    ("zooscope.zoo",),
    ("zooscope.models",),
    ("zooscope.ensemble", "zooscope.similarity"),
    ("zooscope.mistakes", "zooscope.shift", "zooscope.compression"),
    ("zooscope.summary", "zooscope.diff"),
    ("zooscope.report",),
    ("zooscope.cli", "zooscope.stagecli"),
)
LAYER = {unit: i for i, units in enumerate(LAYERS) for unit in units}
MODULES = sorted((REPO / "zooscope").rglob("*.py"))
PACKAGES = ("zooscope.config", "zooscope.models", "zooscope.ensemble", "zooscope.similarity", "zooscope.mistakes",
            "zooscope.shift", "zooscope.compression")


def _name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str:
    """The layer unit of a module: its package below ``zooscope``, or the module itself."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def _imports(path: Path) -> list[tuple[int, str, int]]:
    """(line, imported module, relative level) of every import statement, those inside functions included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, node.module or "", node.level))
    return found


def test_every_module_has_a_layer():
    assert {_unit(_name(p)) for p in MODULES} <= set(LAYER), "a new package or module needs a place in LAYERS"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(REPO)))
def test_imports_point_down_and_are_absolute(path):
    unit = _unit(_name(path))
    for line, module, level in _imports(path):
        assert level == 0, f"{path.name}:{line}: relative import; the library imports absolutely"
        if module == "zooscope" or not module.startswith("zooscope."):
            continue
        target = _unit(module)
        assert target == unit or LAYER[target] < LAYER[unit], (
            f"{path.relative_to(REPO)}:{line} imports {module}: layer {LAYER[target]} ({target}) is not below "
            f"layer {LAYER[unit]} ({unit})")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(REPO)))
def test_modules_stay_small(path):
    assert len(path.read_text().splitlines()) <= 400, f"{path.relative_to(REPO)}: split it by concern"


@pytest.mark.parametrize("package", PACKAGES)
def test_package_exports_resolve_to_what_their_modules_define(package):
    pkg = importlib.import_module(package)
    assert pkg.__all__ and sorted(pkg.__all__) == sorted(set(pkg.__all__))
    for name in pkg.__all__:
        value = getattr(pkg, name)
        assert not isinstance(value, types.ModuleType), f"{package}.{name} is shadowed by a submodule of that name"
        if isinstance(value, (types.FunctionType, type)):  # not a constant or a type alias
            assert value.__module__.startswith(package + "."), f"{package}.{name} comes from {value.__module__}"


def test_recipe_and_architecture_names_have_one_implementation_each():
    from zooscope.config import ARCH_KINDS, RECIPES
    from zooscope.zoo import arch, recipes

    assert tuple(recipes._RECIPES) + tuple(recipes._COMPRESSIONS) == RECIPES
    assert tuple(arch._BUILDERS) == ARCH_KINDS
