"""The viewer's live optimization is a thin adapter over optimize's step-at-a-time Optimizer."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprobe.model import ProbeModel
from onnxprobe.optimize import get_preset
from onnxprobe.viewer.optimize_live import STEPS_PER_UPDATE, LiveOptimization
from tests.conftest import make_conv_model


@pytest.mark.parametrize("preset", ["lucid", "maco"])  # every engine of the one preset table shows its steps
def test_live_optimization_steps_and_shows_the_current_image(tmp_path, preset):
    path = tmp_path / "tiny.onnx"
    make_conv_model(path, size=(20, 24))  # not square: the image keeps the model's (H, W)
    live = LiveOptimization(ProbeModel.load(path, device="cpu"), "relu1", 2, preset=get_preset(preset))
    live.start()
    assert live.image() is None and np.isnan(live.activation)  # nothing to show before the first step
    live.step()
    first = live.image()
    assert live.steps_done == STEPS_PER_UPDATE and not live.done
    assert first.shape == (20, 24, 3) and first.dtype == np.uint8  # what the pane draws as is
    assert np.isfinite(live.activation)
    live.step()
    assert live.steps_done == 2 * STEPS_PER_UPDATE and not np.array_equal(live.image(), first)
