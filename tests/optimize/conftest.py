"""Fixtures the optimization tests share: the tiny random CNN (24x24, 3 channels) and its ProbeModel."""

from __future__ import annotations

import pytest

from onnxprobe.model import ProbeModel
from tests.conftest import make_conv_model


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    make_conv_model(path, size=(24, 24), seed=5)
    return path


@pytest.fixture(scope="module")
def tiny(tiny_path):
    return ProbeModel.load(tiny_path, device="cpu")
