"""Nothing silent (issue 21): a map, gradient or class picture without signal gives one warning
line naming what is zero and why, is drawn as the one no-signal picture, and the demo's record says
so. The real case is torchvision's ViT, whose head starts at zero; here the digits model's last
layer is zeroed the same way."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from onnxprobe.cli import main
from onnxprobe.model import ProbeModel
from onnxprobe.objectives import is_silent, logit, silence
from onnxprobe.render.compose import NO_SIGNAL_GREY, no_signal

HEAD = "logits"  # the digits model's last Gemm: logits = relu3 @ W.T + b


@pytest.fixture(scope="module")
def zero_head(tmp_path_factory, digits_model_path):
    """The digits model with its head's weights zeroed (its bias kept: the scores stay finite)."""
    folder = tmp_path_factory.mktemp("zero-head")
    for sidecar in digits_model_path.parent.glob("digits-cnn.*"):
        if sidecar.suffix != ".onnx":
            shutil.copy(sidecar, folder / sidecar.name)
    model = onnx.load(str(digits_model_path))
    weight = next(t for t in model.graph.initializer if t.name == f"{HEAD}.weight")
    weight.CopyFrom(numpy_helper.from_array(np.zeros_like(numpy_helper.to_array(weight)), weight.name))
    path = folder / "digits-cnn.onnx"
    onnx.save(model, str(path))
    return path


def _is_no_signal(path) -> bool:
    image = cv2.imread(str(path))
    return image is not None and (image == NO_SIGNAL_GREY).mean() > 0.9 and image.min() < NO_SIGNAL_GREY


def test_is_silent_tells_zero_nan_and_signal_apart():
    assert is_silent(np.zeros((2, 3))) == "zero"
    assert is_silent(np.array([0.0, np.nan])) == "non-finite"
    assert is_silent(np.array([0.0, -1e-30])) is None


def test_a_zero_head_is_named(zero_head, digits_model_path):
    model = ProbeModel.load(zero_head, device="cpu")
    x = np.zeros((1, *model.input_shape[1:]), np.float32)
    run = model.gradient(x, logit(model, 3))
    line = silence(model, run.objective, run.input, "the gradient", run.activations)
    assert line is not None and f"layer '{HEAD}' has all-zero weights" in line and "zero-initialised head" in line
    healthy = ProbeModel.load(digits_model_path, device="cpu")
    image = cv2.imread(str(digits_model_path.parent / "samples" / "digit-3.png"))
    assert silence(healthy, logit(healthy, 3), healthy.gradient(healthy.preprocess(image), logit(healthy, 3)).input,
                   "the gradient") is None


@pytest.mark.parametrize("argv, what", [
    (["attribute", "--method", "saliency"], "the saliency map"),
    (["attribute", "--method", "integrated_gradients", "--steps", "4"], "the integrated_gradients map"),
    (["backprop", "--layer", "logits", "--unit", "3", "--mode", "guided"], "the guided map"),
])
def test_commands_warn_once_and_draw_no_signal(zero_head, digits_model_path, tmp_path, capsys, argv, what):
    sample = digits_model_path.parent / "samples" / "digit-3.png"
    out = tmp_path / "map.png"
    assert main([argv[0], str(zero_head), str(sample), *argv[1:], "--out", str(out), "--npy", str(tmp_path / "m.npy")]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith(f"onnxprobe: warning: {what} of the ") and "all-zero weights" in err[0], err
    assert _is_no_signal(out)
    assert min(cv2.imread(str(out)).shape[:2]) >= 224  # the 28 px map is shown large (the raw one is in --npy)
    assert np.load(tmp_path / "m.npy").shape[-1] == 28


def test_small_maps_are_upscaled_for_display(digits_model_path, tmp_path):
    sample = digits_model_path.parent / "samples" / "digit-3.png"
    assert main(["attribute", str(digits_model_path), str(sample), "--method", "saliency", "--out", str(tmp_path / "s.png")]) == 0
    image = cv2.imread(str(tmp_path / "s.png"))
    assert image.shape[:2] == (224, 224) and not _is_no_signal(tmp_path / "s.png")


def test_the_demo_records_and_draws_no_signal(zero_head, digits_model_path, tmp_path, capsys):
    samples = digits_model_path.parent / "samples"
    out = tmp_path / "demo"
    assert main(["demo", "--model", str(zero_head), "--images", str(samples / "digit-3.png"), str(samples / "digit-5.png"),
                 "--out", str(out), "--device", "cpu", "--steps", "2", "--classes", "1"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    index = json.loads((out / "demo.json").read_text())
    for result in index["results"]:
        assert set(result["no_signal"]) == {"gradcam", "backprop"}
        for key in ("gradcam", "backprop"):
            assert "all-zero weights" in result["no_signal"][key] and _is_no_signal(out / result[key])
    (visual,) = index["class_visualizations"]
    assert "all-zero weights" in visual["no_signal"]["image"] and _is_no_signal(out / visual["image"])
    # one line per kind of map, not one per image
    assert len(err) == 3 and all(line.startswith("onnxprobe: warning: ") for line in err), err


def test_no_signal_is_one_picture():
    image = no_signal(60, 90)
    assert image.shape == (60, 90, 3) and image.dtype == np.uint8
    assert (image == NO_SIGNAL_GREY).mean() > 0.8 and image.min() < NO_SIGNAL_GREY  # grey, with its label


def test_optimize_says_when_no_gradient_reaches_the_image(zero_head, tmp_path, capsys):
    assert main(["optimize", str(zero_head), "--objective", "logit", "--unit", "3", "--steps", "2", "--quiet",
                 "--out", str(tmp_path / "opt")]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("onnxprobe: warning: the image gradient of the class 3") and \
        "all-zero weights" in err[0], err
