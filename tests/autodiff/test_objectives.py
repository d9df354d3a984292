"""Seed builders and the pre-softmax lookup."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from onnxprobe.autodiff.objectives import (channel_mean_seed, channel_mean_seeds, pre_softmax_tensor, unit_seed,
                                           unit_seeds, weighted_channels_seed)
from onnxprobe.errors import UsageError


def test_unit_seed_default_centre_and_position():
    s = unit_seed((2, 3, 5, 4), 1)
    assert s.dtype == np.float32 and s.sum() == 2 and s[0, 1, 2, 2] == 1 and s[1, 1, 2, 2] == 1
    s = unit_seed((1, 3, 5, 4), 2, position=(0, 3))
    assert s[0, 2, 0, 3] == 1 and s.sum() == 1
    s = unit_seed((2, 10), 7)
    assert s[:, 7].tolist() == [1, 1] and s.sum() == 2
    s = unit_seed((1, 5, 8), 3, channel_axis=-1)  # tokens x features
    assert s[0, 2, 3] == 1 and s.sum() == 1
    with pytest.raises(UsageError):
        unit_seed((1, 3, 5, 4), 3)
    with pytest.raises(UsageError):
        unit_seed((1, 3, 5, 4), 0, position=(5, 0))


def test_channel_mean_and_weighted_seeds():
    s = channel_mean_seed((2, 3, 2, 5), 2)
    np.testing.assert_allclose(s[:, 2], 0.1)
    assert s[:, :2].sum() == 0
    w = weighted_channels_seed((1, 3, 2, 2), [1.0, 0.0, -2.0])
    np.testing.assert_allclose(w[0, :, 0, 0], [0.25, 0, -0.5])
    w = weighted_channels_seed((1, 3, 2, 2), [1.0, 0.0, -2.0], mean=False)
    np.testing.assert_allclose(w[0, :, 1, 1], [1, 0, -2])
    with pytest.raises(UsageError):
        weighted_channels_seed((1, 3, 2, 2), [1.0])


def test_batched_seeds_one_unit_per_row():
    s = unit_seeds((3, 4, 3, 3), [0, (2, (0, 1)), 3])
    assert s[0, 0, 1, 1] == 1 and s[1, 2, 0, 1] == 1 and s[2, 3, 1, 1] == 1 and s.sum() == 3
    m = channel_mean_seeds((2, 4, 2, 2), [1, 3])
    np.testing.assert_allclose(m[0, 1], 0.25)
    np.testing.assert_allclose(m[1, 3], 0.25)
    assert m.sum() == pytest.approx(2)
    with pytest.raises(UsageError):
        unit_seeds((2, 4), [1])


def test_pre_softmax_tensor():
    nodes = [helper.make_node("Gemm", ["x", "w"], ["logits"]), helper.make_node("Softmax", ["logits"], ["sm"]),
             helper.make_node("Identity", ["sm"], ["prob"]), helper.make_node("Relu", ["logits"], ["r"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor("w", TensorProto.FLOAT, [2, 2], [1, 0, 0, 1])])
    m = helper.make_model(g)
    assert pre_softmax_tensor(m, "prob") == "logits"
    assert pre_softmax_tensor(m, "sm") == "logits"
    assert pre_softmax_tensor(m, "r") == "r"
    assert pre_softmax_tensor(m, "logits") == "logits"
