"""MaxPool's gradient lands exactly on ONNX Runtime's switches, ties included.

The reference is independent of the rule: ONNX Runtime's own MaxPool Indices output (the
forward's argmax, first maximum in scan order) with G scatter-added there in numpy. Inputs are
tie-heavy on purpose (few distinct values, all-equal and all-zero windows), so a rule that picks
another maximum of a window, or gives a window's gradient to two of them, moves whole values of G.
It pins the tie rule for any formulation of the rule (an Indices-free one was tried: equality
masks per kernel offset, bench/bench_adjoints.py; it was slower in ONNX Runtime). Both sides add the same float32 numbers, at most kernel-size many per input cell (the overlap
count), so they agree to float32 rounding of those sums: rtol 1e-6 on values of order 1.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from onnxprobe.autodiff import build_gradient_model, grad_name, seed_name

from .helpers import finalize, run, session

CONFIGS = [
    ("k3s2p1-resnet", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, (2, 3, 12, 11)),
    ("k3s2-overlap", {"kernel_shape": [3, 3], "strides": [2, 2]}, (2, 3, 13, 9)),
    ("k2s2", {"kernel_shape": [2, 2], "strides": [2, 2]}, (2, 3, 8, 10)),
    ("k3s1p1", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, (1, 2, 7, 6)),
    ("k2s3-gaps", {"kernel_shape": [2, 2], "strides": [3, 3]}, (1, 2, 11, 9)),
    ("k3s2-dil2-asym-pads", {"kernel_shape": [3, 2], "strides": [2, 2], "dilations": [2, 2],
                             "pads": [2, 0, 1, 1]}, (1, 2, 13, 12)),
    ("same-upper", {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}, (2, 2, 9, 10)),
]


def _pool_model(attrs, shape, with_indices: bool) -> onnx.ModelProto:
    outs = ["y", "idx"] if with_indices else ["y"]
    node = helper.make_node("MaxPool", ["x"], outs, **attrs)
    vis = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if with_indices:
        vis.append(helper.make_tensor_value_info("idx", TensorProto.INT64, None))
    g = helper.make_graph([node], "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *shape[1:]])], vis)
    m = finalize(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]))
    return onnx.shape_inference.infer_shapes(m)


def _tie_heavy(shape, rng) -> np.ndarray:
    x = rng.integers(-2, 3, shape).astype(np.float32)  # five values: ties in almost every window
    x[0, 0] = 0.0  # an all-zero plane (what ReLU leaves in dead units)
    x[-1, -1, : shape[2] // 2] = 1.0  # an all-equal block
    return x


@pytest.mark.parametrize("name,attrs,shape", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_gradient_goes_to_ort_switches(name, attrs, shape):
    rng = np.random.default_rng(5)
    x = _tie_heavy(shape, rng)
    ref = run(session(_pool_model(attrs, shape, True)), {"x": x})
    g = rng.standard_normal(ref["y"].shape).astype(np.float32)
    expected = np.zeros(x.size, np.float32)
    np.add.at(expected, ref["idx"].reshape(-1), g.reshape(-1))
    expected = expected.reshape(x.shape)

    gm = build_gradient_model(_pool_model(attrs, shape, False), ["y"])
    out = run(session(gm), {"x": x, seed_name("y"): g})
    np.testing.assert_array_equal(out["y"], ref["y"])
    np.testing.assert_allclose(out[grad_name("x")], expected, rtol=1e-6, atol=1e-6)
