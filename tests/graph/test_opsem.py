"""graph/opsem's window pads against ONNX Runtime: a Conv / pool / ConvTranspose with auto_pad or
output_shape must compute exactly what the same op computes with the explicit pads opsem derives.
Values are small integers in float32 (sums of at most 27 products of integers below 8), so both
runs are exact and compared for equality."""

from __future__ import annotations

import itertools
from functools import partial

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprobe.graph.geometry.registry import attr
from onnxprobe.graph.loading import finalize_model
from onnxprobe.graph.opsem import SAME, transposed_window, window


def _run(op: str, x: np.ndarray, w: np.ndarray | None, **attrs) -> np.ndarray:
    inputs = ["x"] + (["w"] if w is not None else [])
    node = helper.make_node(op, inputs, ["y"], **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [] if w is None else [numpy_helper.from_array(w, "w")])
    model = finalize_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def _node_attr(op: str, **attrs):
    return partial(attr, helper.make_node(op, ["x"], ["y"], **attrs))


RNG = np.random.default_rng(0)
# ONNX Runtime refuses SAME with dilations > 1 (the spec's formula, used by opsem, includes them), and
# its MaxPool turns SAME with a kernel smaller than the stride into negative pads: neither is in the grid
FORWARD = [(op, auto, k, s, 1, h) for op, auto, (k, s), h in itertools.product(
    ["Conv", "MaxPool"], SAME, [(3, 2), (2, 2), (3, 3), (4, 3), (5, 2), (3, 1), (4, 1)], [7, 8, 9])]
FORWARD += [("Conv", auto, 1, 2, 1, h) for auto, h in itertools.product(SAME, [7, 8])]


@pytest.mark.parametrize("op, auto, k, s, d, h", FORWARD, ids=[f"{c[0]}-{c[1]}-k{c[2]}s{c[3]}d{c[4]}-h{c[5]}"
                                                                for c in FORWARD])
def test_same_pads_match_the_runtime(op, auto, k, s, d, h):
    x = RNG.integers(0, 8, (1, 3, h, h + 1)).astype(np.float32)
    w = RNG.integers(0, 8, (2, 3, k, k)).astype(np.float32) if op == "Conv" else None
    kw = {"kernel_shape": [k, k], "strides": [s, s], "dilations": [d, d]}
    win = window(_node_attr(op, auto_pad=auto, **kw), [k, k], [h, h + 1])
    explicit = _run(op, x, w, pads=list(win.begins) + list(win.ends), **kw)
    np.testing.assert_array_equal(_run(op, x, w, auto_pad=auto, **kw), explicit)


TRANSPOSED = [(mode, k, s, h, op) for mode, (k, s, h, op) in itertools.product(
    ["SAME_UPPER", "SAME_LOWER", "output_shape"], [(3, 2, 5, 0), (4, 2, 5, 0), (3, 3, 4, 1), (2, 1, 6, 0), (5, 2, 4, 1)])]


@pytest.mark.parametrize("mode, k, s, h, out_pad", TRANSPOSED,
                         ids=[f"{c[0]}-k{c[1]}s{c[2]}-h{c[3]}-op{c[4]}" for c in TRANSPOSED])
def test_transposed_pads_match_the_runtime(mode, k, s, h, out_pad):
    x = RNG.integers(0, 8, (1, 3, h, h)).astype(np.float32)
    w = RNG.integers(0, 8, (3, 2, k, k)).astype(np.float32)
    kw = {"kernel_shape": [k, k], "strides": [s, s], "output_padding": [out_pad, out_pad]}
    implicit = {"auto_pad": mode} if mode in SAME else {"output_shape": [h * s - 1, h * s - 1]}
    win = transposed_window(_node_attr("ConvTranspose", **kw, **implicit), [k, k], [h, h])
    assert all(b >= 0 and e >= 0 for b, e in zip(win.begins, win.ends))  # the grid keeps totals >= 0
    explicit = _run("ConvTranspose", x, w, pads=list(win.begins) + list(win.ends), **kw)
    np.testing.assert_array_equal(_run("ConvTranspose", x, w, **kw, **implicit), explicit)
