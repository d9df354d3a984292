"""The architecture's import rules (docs/architecture.md), enforced by import-linter's contracts in
pyproject.toml: the layers, "commands do not import each other", "onnxprobe never imports PyTorch",
"Qt only in onnxprobe/viewer/qt"."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import pytest

import onnxprobe

ROOT = Path(onnxprobe.__file__).parent
PYPROJECT = ROOT.parent / "pyproject.toml"


def _contracts() -> list[dict]:
    return tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]


def test_import_contracts_are_kept(monkeypatch):
    from importlinter.cli import lint_imports

    monkeypatch.chdir(ROOT.parent)
    assert lint_imports(config_filename=str(PYPROJECT), no_cache=True) == 0, "an import contract is broken (run lint-imports)"


def test_every_package_has_a_layer():
    """A new top-level module or package must be placed in the layers contract, or nothing checks it."""
    (layers,) = [c for c in _contracts() if c["type"] == "layers"]
    placed = {name.strip() for layer in layers["layers"] for name in layer.split("|")}
    present = {f"onnxprobe.{info.name}" for info in pkgutil.iter_modules([str(ROOT)]) if info.name != "__main__"}
    assert present - placed == set(), f"not in the layers contract: {sorted(present - placed)}"


@pytest.mark.parametrize("forbidden", ["torch", "PySide6"])
def test_forbidden_contracts_cover_the_whole_package(forbidden):
    (contract,) = [c for c in _contracts() if forbidden in c.get("forbidden_modules", ())]
    assert contract["source_modules"] == ["onnxprobe"]


def test_every_command_is_in_the_independence_contract():
    from onnxprobe.cli import COMMANDS

    (contract,) = [c for c in _contracts() if c["type"] == "independence"]
    assert sorted(contract["modules"]) == sorted(f"onnxprobe.cli.{name}" for name in COMMANDS)


def _import_cycles(imports: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or through others (Tarjan's strongly
    connected components of more than one module, or a module that imports itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(imports.get(module, ())):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = stack[stack.index(module):]
            del stack[stack.index(module):]
            if len(group) > 1 or module in imports.get(module, ()):
                cycles.append(sorted(group))

    for module in sorted(imports):
        if module not in index:
            visit(module)
    return cycles


def test_the_cycle_finder_finds_cycles():
    assert _import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    """No module of onnxprobe imports itself through others: imports inside functions and under
    TYPE_CHECKING included, so a module's place in its package is never decided by what runs first
    (a rule's context lives beside its registry, not in the driver that imports the rules)."""
    import grimp

    graph = grimp.build_graph("onnxprobe", cache_dir=None)
    imports = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    cycles = _import_cycles(imports)
    assert cycles == [], "modules that import each other: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_command_line_may_import_only_the_api():
    """One path (issue 22): the contract that keeps `onnxprobe.cli` a client of `onnxprobe.api`
    forbids every other package of the library, a new one included; its exceptions are edges
    named one by one (`ignore_imports`), never a whole package left off the list."""
    (contract,) = [c for c in _contracts() if c.get("source_modules") == ["onnxprobe.cli"]]
    present = {f"onnxprobe.{info.name}" for info in pkgutil.iter_modules([str(ROOT)])
               if info.name not in ("__main__", "cli", "api", "errors")}
    assert present - set(contract["forbidden_modules"]) == set()
    assert contract["allow_indirect_imports"] is True  # the API itself imports the library
    assert all(not rule.endswith("*") for rule in contract.get("ignore_imports", ()))
