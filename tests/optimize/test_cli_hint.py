"""`optimize` notes a seed preset that barely raised the units, and the paper's presets, with their
step made scale-free, no longer barely move the digits model's images (they did before issue 14:
set3's fixed lr 100 gained 0.02 logit per step there)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from onnxprobe.cli import main
from onnxprobe.cli.optimize import _barely_moved


@pytest.mark.parametrize("preset", ["set3", "set4"])
def test_calibrated_seed_presets_move_the_images(tmp_path, capsys, digits_model_path, preset):
    argv = ["optimize", str(digits_model_path), "--objective", "logit", "--unit", "0-2", "--steps", "60",
            "--preset", preset, "--out", str(tmp_path), "--quiet", "--device", "cpu"]
    assert main(argv) == 0
    assert "barely raised" not in capsys.readouterr().err


def test_barely_moved_rule():
    """The note's rule: every unit rose by less than half the units' typical starting magnitude."""
    unit = lambda start, best: SimpleNamespace(initial_activation=[start], best_activation=[best])  # noqa: E731
    assert _barely_moved([unit(2.0, 2.5), unit(-2.0, -1.5)])
    assert not _barely_moved([unit(2.0, 2.5), unit(-2.0, 0.0)])
