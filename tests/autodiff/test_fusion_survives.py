"""The gradient graph leaves ONNX Runtime's forward fusions intact: Conv+Relu, Conv+Add+Relu and
Conv+Clip (ReLU6) still become one fused kernel in the forward half (the backward rules read a
ReLU's or Clip's output, not its input, so the convolution's raw output has no second consumer). Checked on the graph ONNX
Runtime itself writes after optimising (optimized_model_filepath), against the plain forward's."""

from __future__ import annotations

import collections

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprobe.autodiff import build_gradient_model

from .helpers import finalize


def _residual_block() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = [numpy_helper.from_array(rng.standard_normal((4, c, 3, 3)).astype(np.float32), f"w{i}")
         for i, c in enumerate((3, 4, 4))]
    nodes = [helper.make_node("Conv", ["x", "w0"], ["c0"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c0"], ["r0"]),
             helper.make_node("Conv", ["r0", "w1"], ["c1"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]), helper.make_node("Add", ["c2", "r0"], ["s"]),
             helper.make_node("Relu", ["s"], ["y"])]
    g = helper.make_graph(nodes, "block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 16, 16])], w)
    return finalize(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]))


def _relu6_block() -> onnx.ModelProto:
    """MobileNetV2's pattern: Conv -> Clip(0, 6), twice."""
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.standard_normal((4, c, 3, 3)).astype(np.float32), f"w{i}")
             for i, c in enumerate((3, 4))]
    inits += [numpy_helper.from_array(np.array(0, np.float32), "lo"), numpy_helper.from_array(np.array(6, np.float32), "hi")]
    nodes = [helper.make_node("Conv", ["x", "w0"], ["c0"], pads=[1, 1, 1, 1]), helper.make_node("Clip", ["c0", "lo", "hi"], ["r0"]),
             helper.make_node("Conv", ["r0", "w1"], ["c1"], pads=[1, 1, 1, 1]), helper.make_node("Clip", ["c1", "lo", "hi"], ["y"])]
    g = helper.make_graph(nodes, "relu6", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 16, 16])], inits)
    return finalize(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]))


def _fused(model: onnx.ModelProto, tmp_path, name: str, level) -> tuple[int, int]:
    """(convolutions with a fused activation, convolutions with a fused residual Add) in the graph
    ONNX Runtime runs at `level`."""
    so = ort.SessionOptions()
    so.graph_optimization_level = level
    so.optimized_model_filepath = str(tmp_path / f"{name}.onnx")
    ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    convs = [n for n in onnx.load(str(tmp_path / f"{name}.onnx")).graph.node if n.op_type in ("Conv", "FusedConv")]
    with_act = sum(any(a.name == "activation" for a in n.attribute) for n in convs)
    with_sum = sum(len(n.input) == 4 and bool(n.input[3]) for n in convs)  # FusedConv's / NCHWc Conv's Z / Sum
    return with_act, with_sum


@pytest.mark.parametrize("block", [_residual_block, _relu6_block])
def test_conv_activation_fusions_survive(tmp_path, block):
    model = block()
    grad = build_gradient_model(model, ["y"])
    levels = {"extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all (NCHWc)": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    for label, level in levels.items():
        forward = _fused(model, tmp_path, f"forward-{label[:3]}", level)
        assert forward[0] >= 2, (label, forward)  # ORT fuses the plain block (else this test tests nothing)
        assert _fused(grad, tmp_path, f"gradient-{label[:3]}", level) == forward, label
