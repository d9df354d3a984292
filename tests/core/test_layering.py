"""The architecture's import rules: the runtime never imports PyTorch; only viewer/qt imports Qt."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import onnxprobe

ROOT = Path(onnxprobe.__file__).parent


def _modules(exclude_prefix: str) -> list[str]:
    names = []
    for info in pkgutil.walk_packages([str(ROOT)], prefix="onnxprobe."):
        if not info.name.startswith(exclude_prefix) and info.name != "onnxprobe.__main__":
            names.append(info.name)
    return names


def _imported_after(modules: list[str]) -> set[str]:
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print('\\n'.join(sorted(m.split('.')[0] for m in sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_no_module_of_onnxprobe_imports_torch():
    top = _imported_after(_modules(exclude_prefix="onnxprobe.viewer.qt"))
    assert "torch" not in top and "torchvision" not in top


def test_only_viewer_qt_imports_qt():
    modules = [m for m in _modules(exclude_prefix="onnxprobe.viewer.qt") if m != "onnxprobe.cli.view"]
    top = _imported_after(modules)
    assert "PySide6" not in top, "a module outside onnxprobe/viewer/qt imports Qt"
