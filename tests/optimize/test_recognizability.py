"""Class visualizations of the bundled digits model are recognized by an independently trained
digits model (tests/fixtures/digits-alt, other seed and architecture), judged in display space.

Floors come from `python tools/recognizability.py --steps 100 --restarts 3 --seed S` for S = 0, 1, 2
(9 restarts per preset), with the paper's presets' step made scale-free (issue 14) at the reference
0.1 (presets.py): lucid 10 in 9 of 9, set1 8-10, set2 8-10, set3 10 in 9 of 9, set4 7-10. At the
earlier reference 0.01 set2 got 4-5 (its decay 0.3 per step held the image near the mean; the judge
then said `8` for most) and set3 7-9; before the calibration set3 got 1-3, chance for a judge
that answers `8` or `2` for nearly everything. Each floor is the measured minimum less 2: between
restarts of one seed the count already moves by up to 3 (set4: 7, 8, 8 / 10, 9, 10), so a floor at
the minimum would fail on another machine's float rounding; chance is about 1, so every floor
stays far above it."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprobe.model import ProbeModel
from tools.recognizability import JUDGE, judged_classes

STEPS, RESTARTS, SEED = 100, 3, 0


@pytest.fixture(scope="module")
def models(digits_model_path):
    return ProbeModel.load(digits_model_path, device="cpu"), ProbeModel.load(JUDGE, device="cpu")


def _recognized_per_restart(models, preset: str, param: str | None) -> np.ndarray:
    judged = judged_classes(*models, preset, STEPS, RESTARTS, SEED, param)
    return (judged == np.arange(judged.shape[1])).sum(axis=1)


@pytest.mark.parametrize("preset, param, floor", [
    ("lucid", "fft", 8),  # measured 10 in 9 of 9 restarts
    ("set1", "pixel", 6),  # measured 8-10
    ("set2", "pixel", 6),  # measured 8-10 (4-5 at the reference 0.01)
    ("set3", "pixel", 8),  # measured 10 in 9 of 9 (7-9 at 0.01, 1-3 before the scale-free step)
    ("set4", "pixel", 5),  # measured 7-10
])
def test_class_visualizations_are_recognized(models, preset, param, floor):
    counts = _recognized_per_restart(models, preset, param)
    assert counts.min() >= floor, f"{preset}: recognized {counts.tolist()} of 10 per restart"
