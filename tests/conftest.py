"""Shared fixtures: the bundled model, tiny hand-built ONNX models, sample images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxprobe.preprocess  # noqa: F401  (first, as in an onnxprobe process: FFmpeg's log is off before
# this process writes or opens any video; fixtures write videos before the in-process CLI runs)

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
DIGITS_MODEL = ROOT / "models" / "digits" / "digits-cnn.onnx"
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def digits_model_path() -> Path:
    assert DIGITS_MODEL.exists(), "the bundled model is missing: run tools/train_digits.py"
    return DIGITS_MODEL


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def make_conv_model(path: Path | None = None, channels: int = 3, size=(16, 16), batch_param="N",
                    opset: int = 18, nhwc: bool = False, classes: int = 5, seed: int = 0) -> onnx.ModelProto:
    """conv(3x3,p1) -> relu -> maxpool(2) -> conv(3x3) -> relu -> flatten -> gemm -> softmax."""
    rng = np.random.default_rng(seed)
    h, w = size
    w1 = numpy_helper.from_array(rng.standard_normal((4, channels, 3, 3)).astype(np.float32) * 0.5, "w1")
    b1 = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32) * 0.1, "b1")
    w2 = numpy_helper.from_array(rng.standard_normal((6, 4, 3, 3)).astype(np.float32) * 0.5, "w2")
    flat = 6 * (h // 2 - 2) * (w // 2 - 2)
    fc = numpy_helper.from_array(rng.standard_normal((flat, classes)).astype(np.float32) * 0.1, "fc")
    nodes = []
    image = "image"
    if nhwc:
        nodes.append(helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2], name="to_nchw"))
        image = "nchw"
    nodes += [
        helper.make_node("Conv", [image, "w1", "b1"], ["conv1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["conv1"], ["relu1"], name="relu1"),
        helper.make_node("MaxPool", ["relu1"], ["pool1"], kernel_shape=[2, 2], strides=[2, 2], name="pool1"),
        helper.make_node("Conv", ["pool1", "w2"], ["conv2"], name="conv2"),
        helper.make_node("Relu", ["conv2"], ["relu2"], name="relu2"),
        helper.make_node("Flatten", ["relu2"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc"], ["logits"], name="fc"),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1, name="softmax"),
    ]
    in_shape = [batch_param, h, w, channels] if nhwc else [batch_param, channels, h, w]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [batch_param, classes])],
                              [w1, b1, w2, fc])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    if path is not None:
        onnx.save(model, str(path))
    return model


@pytest.fixture(scope="session")
def gray_model_path(tmp_path_factory) -> Path:
    """The tiny CNN on 1-channel 28x28 input (digits), random weights: relu1 has 4 units, relu2 6."""
    path = tmp_path_factory.mktemp("gray-model") / "gray.onnx"
    make_conv_model(path, channels=1, size=(28, 28), seed=3)
    return path


@pytest.fixture
def tiny_model_path(tmp_path) -> Path:
    path = tmp_path / "tiny.onnx"
    make_conv_model(path)
    return path


@pytest.fixture
def sample_image_path(tmp_path) -> Path:
    import cv2

    rng = np.random.default_rng(1)
    image = (rng.random((40, 60, 3)) * 255).astype(np.uint8)
    path = tmp_path / "sample.png"
    cv2.imwrite(str(path), image)
    return path
