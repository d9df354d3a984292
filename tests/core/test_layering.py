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
