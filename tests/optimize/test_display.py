"""The paper's presets as the toolbox showed them: contrast-stretched around the mean pixel, and a
scale-free step (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprobe.optimize import Optimizer, get_preset, objectives
from onnxprobe.objectives import stack
from onnxprobe.optimize.presets import REFERENCE_GRADIENT_RMS
from onnxprobe.optimize.priors import PixelSpace
from onnxprobe.preprocess import PreprocessSpec


def _space(mean, channels=3):
    spec = PreprocessSpec(input_size=(4, 4), layout="NCHW", channels=channels, channel_order="RGB",
                          value_range=(0.0, 1.0), mean=mean, std=[0.25] * channels)
    return PixelSpace.from_spec(spec)


def test_stretch_keeps_the_mean_pixel_and_reaches_the_range():
    space = _space([0.5, 0.4, 0.3])
    q = np.zeros((3, 4, 4), np.float32)
    q[0, 0, 0], q[2, 1, 1] = 10.0, -5.0  # small deviations (0..255 pixel units) from the mean pixel
    out = space.to_display_stretched(q).astype(np.float64)
    mean_pixel = np.array([0.5, 0.4, 0.3]) * 255
    np.testing.assert_allclose(out[3, 3], mean_pixel, atol=0.5)  # an untouched pixel stays the mean
    # the largest factor that keeps every value in 0..255: red +10 from 127.5 reaches 255 first
    factor = (255 - mean_pixel[0]) / 10.0
    assert out[0, 0, 0] == 255
    assert out[1, 1, 2] == pytest.approx(mean_pixel[2] - 5.0 * factor, abs=0.5)


def test_stretch_of_a_full_range_image_changes_nothing():
    space = _space([0.5, 0.5, 0.5])
    q = np.random.default_rng(0).uniform(-127.5, 127.5, (3, 4, 4)).astype(np.float32)
    q[0, 0, 0] = 127.5
    pixels = space.spec.tensor_to_pixels(space.to_input(q[None])[0])
    np.testing.assert_array_equal(space.to_display_stretched(q), np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


@pytest.mark.parametrize("engine", ["numpy", "graph"])
def test_the_first_constant_step_has_the_reference_size(digits_model_path, engine):
    """set3 (constant lr 100): each row's rate is scaled by REFERENCE_GRADIENT_RMS / rms(g0), g0
    its input gradient at the start recomputed here, so the first update lr * scale * g0 has RMS
    lr * REFERENCE_GRADIENT_RMS pixel units whatever the model's gradient scale; both engines."""
    from onnxprobe.model import ProbeModel

    model = ProbeModel.load(digits_model_path, device="cpu")
    preset = get_preset("set3", 2)
    obj = stack([objectives.logit(model, c) for c in (1, 7)])
    opt = Optimizer(model, obj, preset, seed=0, batch=2, engine=engine).start()
    q0 = opt.space.clip(opt._engine.q0)
    session = model.gradient_session(list(obj.targets))
    grad = opt.space.gradient_to_q(session.run(opt.space.to_input(q0), obj.seeds(None, 2))["grad"])
    rms = np.sqrt((grad.reshape(2, -1).astype(np.float64) ** 2).mean(axis=1))
    np.testing.assert_allclose(opt._engine.lr_scale, REFERENCE_GRADIENT_RMS / rms, rtol=1e-5)
    assert (opt._engine.lr_scale > 10).all()  # the digits model's gradient is far below the reference
