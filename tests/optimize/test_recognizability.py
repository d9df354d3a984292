"""Class visualizations of the bundled digits model are recognized by an independently trained
digits model (tests/fixtures/digits-alt, other seed and architecture), judged in display space.

Floors come from `python tools/recognizability.py --steps 100 --restarts 3 --seed S` for S = 0, 1, 2
(table in models/README.md): at 100 steps lucid recognized 10 of 10 in all 9 restarts, set4 7 to 10
(min 7), set3 1 to 3 with a judge that answers `8` or `2` for nearly every image, i.e. chance."""

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
    ("set4", "pixel", 6),  # measured 7-10
    # The default preset's constant lr 100 gains lr * ||g||^2 = 100 * 0.014^2 = 0.02 logit per step
    # on this 28x28 model, so the images stay near the start (best logits 0-1 after 300 steps) and
    # the judge is at chance. Strict: when set3 gets a scale that fits the model this starts
    # passing and must become a plain floor.
    pytest.param("set3", "pixel", 6, marks=pytest.mark.xfail(strict=True, reason="set3's lr 100 is too small for the digits model")),
])
def test_class_visualizations_are_recognized(models, preset, param, floor):
    counts = _recognized_per_restart(models, preset, param)
    assert counts.min() >= floor, f"{preset}: recognized {counts.tolist()} of 10 per restart"
