"""Preprocessing: any image to the model's input, back to display, and where the spec comes from."""

from __future__ import annotations

import json

import numpy as np
import pytest

from onnxprobe.errors import UsageError
from onnxprobe.preprocess import PreprocessSpec, fit_to_size, resolve_spec

GRAY_MNIST = PreprocessSpec(input_size=(28, 28), channels=1, mean=(0.1307,), std=(0.3081,))
IMAGENET = PreprocessSpec(input_size=(32, 48), channels=3, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
CAFFE_BGR = PreprocessSpec(input_size=(20, 20), channels=3, channel_order="BGR", value_range=(0, 255),
                           mean=(104.0, 117.0, 123.0), std=(1.0,))
NHWC = PreprocessSpec(input_size=(24, 24), layout="NHWC", channels=3, value_range=(-1, 1))

RNG = np.random.default_rng(0)
IMAGES = {
    "gray2d": (RNG.random((50, 70)) * 255).astype(np.uint8),
    "gray1": (RNG.random((30, 30, 1)) * 255).astype(np.uint8),
    "bgr": (RNG.random((64, 40, 3)) * 255).astype(np.uint8),
    "bgra": (RNG.random((33, 77, 4)) * 255).astype(np.uint8),
    "uint16": (RNG.random((40, 40, 3)) * 65535).astype(np.uint16),
    "float01": RNG.random((28, 28)).astype(np.float32),
}


@pytest.mark.parametrize("spec", [GRAY_MNIST, IMAGENET, CAFFE_BGR, NHWC], ids=["gray", "imagenet", "caffe", "nhwc"])
@pytest.mark.parametrize("image_name", sorted(IMAGES))
def test_any_image_becomes_the_model_input(spec, image_name):
    x = spec.to_tensor(IMAGES[image_name])
    assert x.shape == spec.input_shape()
    assert x.dtype == np.float32 and np.isfinite(x).all()
    low, high = spec.valid_range()
    assert (x[0] >= low - 1e-4).all() and (x[0] <= high + 1e-4).all()


def test_mnist_normalisation_matches_hand_computation():
    image = np.zeros((28, 28), np.uint8)
    image[3, 4] = 255
    x = GRAY_MNIST.to_tensor(image)
    assert x[0, 0, 3, 4] == pytest.approx((1.0 - 0.1307) / 0.3081, rel=1e-6)
    assert x[0, 0, 0, 0] == pytest.approx((0.0 - 0.1307) / 0.3081, rel=1e-6)


def test_bgr_and_rgb_models_see_the_same_colour():
    image = np.zeros((20, 20, 3), np.uint8)
    image[..., 2] = 200  # red in OpenCV's BGR
    rgb_model = PreprocessSpec(input_size=(20, 20), channels=3, mean=(0,), std=(1,))
    assert rgb_model.to_tensor(image)[0, 0].mean() == pytest.approx(200 / 255)  # R is channel 0
    assert CAFFE_BGR.to_tensor(image)[0, 2].mean() == pytest.approx(200 - 123.0)  # R is channel 2 in BGR


@pytest.mark.parametrize("spec", [GRAY_MNIST, IMAGENET, CAFFE_BGR, NHWC], ids=["gray", "imagenet", "caffe", "nhwc"])
def test_display_undoes_preprocessing(spec):
    h, w = spec.input_size
    image = (RNG.random((h, w, 3)) * 255).astype(np.uint8)
    if spec.channels == 1:
        image = image[..., :1].repeat(3, axis=2)
    shown = spec.to_display(spec.to_tensor(image)[0])
    rgb = image[:, :, ::-1]
    assert shown.shape == (h, w, 3)
    assert np.abs(shown.astype(int) - rgb.astype(int)).max() <= 1


@pytest.mark.parametrize("mode, source, expected_crop", [
    ("crop", (40, 80), (0, 20, 40, 40)),   # wide image: centre square
    ("crop", (90, 30), (30, 0, 30, 30)),   # tall image
])
def test_centre_crop_takes_the_middle(mode, source, expected_crop):
    pixels = np.zeros((*source, 1), np.float32)
    y, x, h, w = expected_crop
    pixels[y:y + h, x:x + w] = 255
    out = fit_to_size(pixels, (10, 10), mode)
    assert out.shape == (10, 10, 1) and out.min() == 255


def test_stretch_keeps_everything():
    pixels = np.zeros((40, 80, 1), np.float32)
    pixels[:, :40] = 255
    out = fit_to_size(pixels, (10, 10), "stretch")
    assert out[:, :4].min() == 255 and out[:, 6:].max() == 0


def test_spec_sources_flags_beat_sidecar_beat_metadata_beat_defaults(tmp_path):
    model = tmp_path / "m.onnx"
    (tmp_path / "m.onnxprobe.json").write_text(json.dumps({"mean": [0.5], "std": [0.25], "labels": "labels.txt"}))
    (tmp_path / "labels.txt").write_text("zero\none\n")
    metadata = {"onnxprobe.std": "[0.1]", "onnxprobe.resize": "\"stretch\"", "onnxprobe.mean": "[0.9]"}
    spec = resolve_spec(model, (1, 1, 28, 28), metadata, {"mean": (0.1,), "std": None})
    assert spec.mean == (0.1,) and spec.sources["mean"] == "flags"
    assert spec.std == (0.25,) and spec.sources["std"].startswith("sidecar")
    assert spec.resize == "stretch" and spec.sources["resize"] == "metadata"
    assert spec.value_range == (0.0, 1.0) and spec.sources["value_range"] == "defaults"
    assert spec.labels == ("zero", "one")


@pytest.mark.parametrize("sidecar, fragment", [
    ({"layout": "NCWH"}, "layout"),
    ({"channels": 2}, "channels"),
    ({"std": [0]}, "std"),
    ({"mean": [1, 2]}, "mean"),
    ({"colour": "RGB"}, "unknown keys"),
    ({"input_size": [32, 32]}, "does not fit"),
])
def test_bad_sidecar_is_a_clear_error(tmp_path, sidecar, fragment):
    (tmp_path / "m.onnxprobe.json").write_text(json.dumps(sidecar))
    with pytest.raises(Exception) as info:
        resolve_spec(tmp_path / "m.onnx", (1, 1, 28, 28), {}, None)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_layout_default_guess():
    assert resolve_spec("x.onnx", (1, 224, 224, 3), {}, None).layout == "NHWC"
    assert resolve_spec("x.onnx", (1, 3, 224, 224), {}, None).layout == "NCHW"
    assert resolve_spec("x.onnx", (1, 1, 28, 28), {}, None).mean == (0.0,)


def test_overrides_must_fit_the_input():
    with pytest.raises(UsageError):
        resolve_spec("x.onnx", (1, 3, 8, 8), {}, {"layout": "NHWC"})
