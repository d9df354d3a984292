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


@pytest.mark.parametrize("kind", ["accentuate", "caricature", "invert"])
def test_live_picture_is_the_picture_optimize_from_draws(tmp_path, kind):
    """Stepped live on the frame's input, the picture is `picture_from_photo`'s (the function
    optimize --from calls) with the same preset and seed; the pane shows the frame beside it."""
    from onnxprobe.optimize.photo import picture_from_photo
    from onnxprobe.viewer.optimize_live import LivePicture

    path = tmp_path / "tiny.onnx"
    make_conv_model(path, size=(20, 24))
    model = ProbeModel.load(path, device="cpu")
    raw = (np.random.default_rng(4).random((30, 40, 3)) * 255).astype(np.uint8)
    preset = get_preset("lucid", 8)
    live = LivePicture(model, model.preprocess(raw), kind, "relu1", 2, preset=preset, seed=3)
    live.start()
    assert live.image() is None and live.steps_done == 0
    live.step()
    assert live.image().shape == (20, 2 * 24 + 4, 3) and live.progress.step == STEPS_PER_UPDATE
    assert live.progress.kind == kind and (live.progress.unit == 2) == (kind == "accentuate")
    live.step()
    assert live.done and live.progress.step == 8 and "finished" in live.finished()
    drawn = picture_from_photo(model, raw, kind, layer="relu1", unit=2 if kind == "accentuate" else None,
                               preset=preset, seed=3)
    assert np.array_equal(live.run.result().image, drawn.image)
    assert np.array_equal(live.image()[:, :24], drawn.photo)  # the frame as the model sees it, on the left
