"""Every registered backward rule, every attribute variant: one table, one parameterized test.

Each case builds a one-node float32 model, its gradient model (checked by onnx.checker), and
checks <t, vjp(c)> against a central difference of sum(c * f(x + e t)) in one random direction.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from onnxprobe.autodiff import REGISTRY, differentiable_tensors

from .helpers import C, W, X, check_vjp, one_op_model

I64 = np.int64
F32 = np.float32


class Case:
    def __init__(self, op, ins, attrs=None, *, id=None, n_out=1, targets=1, eps=1e-2, rtol=3e-3, opset=18):
        self.op, self.ins, self.attrs = op, ins, attrs or {}
        self.id = id or op
        self.n_out, self.targets, self.eps, self.rtol, self.opset = n_out, targets, eps, rtol, opset


IMG = (2, 3, 7, 6)
SMALL = (2, 3, 4)
T = []


def case(*a, **k):
    T.append(Case(*a, **k))


# ---- elementwise binary, broadcasting --------------------------------------------------------------
for op in ("Add", "Sub", "Mul", "Div"):
    b_dom = "pos" if op == "Div" else "normal"
    case(op, [X(SMALL), X(SMALL, b_dom)], id=f"{op}-same")
    case(op, [X(SMALL), X((3, 1), b_dom)], id=f"{op}-bcast-b")
    case(op, [X((1, 4), "normal", "none"), X(SMALL, b_dom)], id=f"{op}-bcast-a")
    case(op, [X(SMALL), W((4,), b_dom)], id=f"{op}-const-b")
    case(op, [X((2, 1, 4), "normal", "all"), X((3, 1), b_dom, "all")], id=f"{op}-bcast-dynamic")
case("Pow", [X(SMALL, "pos"), X(SMALL, "unit")], id="Pow-both")
case("Pow", [X(SMALL, "pos"), C(np.array(2.0, F32))], id="Pow-square")
case("Pow", [X(SMALL, "pos"), C(np.array(0.5, F32))], id="Pow-sqrt")
case("Pow", [X(SMALL, "pos"), C(np.array(3, I64))], id="Pow-int-exponent")
case("Sum", [X(SMALL), X((3, 4)), X((4,))], id="Sum-3-bcast")
case("Sum", [X(SMALL)], id="Sum-1")
case("Mean", [X(SMALL), X((3, 1))], id="Mean-bcast")
case("Max", [X(SMALL, "grid"), X((3, 4), "gridint")], id="Max-bcast")
case("Min", [X(SMALL, "grid"), X(SMALL, "gridint"), X((4,), "gridint")], id="Min-3")

# ---- elementwise unary --------------------------------------------------------------------------------
for op, dom in [("Neg", "normal"), ("Abs", "grid"), ("Sqrt", "pos"), ("Exp", "normal"), ("Log", "pos"),
                ("Reciprocal", "pos"), ("Erf", "normal"), ("Sin", "normal"), ("Cos", "normal"),
                ("Sigmoid", "normal"), ("Tanh", "normal"), ("Softplus", "normal"), ("Softsign", "normal"),
                ("Relu", "grid"), ("Elu", "grid"), ("Selu", "grid"), ("HardSwish", "grid"), ("Gelu", "normal")]:
    case(op, [X(IMG, dom)], opset=20 if op == "Gelu" else 18)
case("LeakyRelu", [X(IMG, "grid")], {"alpha": 0.1})
case("LeakyRelu", [X(IMG, "grid")], id="LeakyRelu-default")
case("Elu", [X(IMG, "grid")], {"alpha": 0.5}, id="Elu-alpha")
case("PRelu", [X(IMG, "grid"), W((3, 1, 1))], id="PRelu-channel")
case("PRelu", [X(IMG, "grid"), W((1,))], id="PRelu-shared")
case("HardSigmoid", [X(IMG, "grid")])
case("HardSigmoid", [X(IMG, "grid")], {"alpha": 1 / 6, "beta": 0.5}, id="HardSigmoid-torch")
case("Clip", [X(IMG, "grid"), C(np.array(0.0, F32)), C(np.array(0.6, F32))], id="Clip-relu6ish")
case("Clip", [X(IMG, "grid"), C(np.array(-0.5, F32))], id="Clip-min-only")
case("Clip", [X(IMG, "grid"), None, C(np.array(0.5, F32))], id="Clip-max-only")
case("Clip", [X(IMG, "grid")], id="Clip-none")
case("Softmax", [X((2, 5))], id="Softmax-2d")
case("Softmax", [X(SMALL)], {"axis": 1}, id="Softmax-axis1")
case("LogSoftmax", [X((2, 5))], id="LogSoftmax-2d")
case("LogSoftmax", [X(SMALL)], {"axis": 0}, id="LogSoftmax-axis0")

# ---- conv ------------------------------------------------------------------------------------------
CV = (2, 4, 9, 8)
case("Conv", [X(CV), W((5, 4, 3, 3)), W((5,))], id="Conv-plain")
case("Conv", [X(CV), W((5, 4, 3, 3))], {"pads": [1, 1, 1, 1]}, id="Conv-pad1")
case("Conv", [X(CV), W((5, 4, 3, 3))], {"strides": [2, 2]}, id="Conv-s2")
case("Conv", [X(CV), W((5, 4, 3, 3))], {"strides": [2, 3], "pads": [1, 0, 2, 1]}, id="Conv-s23-asympad")
case("Conv", [X(CV), W((5, 4, 3, 2))], {"dilations": [2, 2], "pads": [2, 1, 2, 1]}, id="Conv-dil2")
case("Conv", [X(CV), W((6, 2, 3, 3))], {"group": 2, "pads": [1, 1, 1, 1], "strides": [2, 2]}, id="Conv-group2")
case("Conv", [X(CV), W((4, 1, 3, 3))], {"group": 4, "pads": [1, 1, 1, 1]}, id="Conv-depthwise")
case("Conv", [X(CV), W((5, 4, 4, 4))], {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, id="Conv-same-upper")
case("Conv", [X(CV), W((5, 4, 4, 4))], {"auto_pad": "SAME_LOWER", "strides": [2, 2]}, id="Conv-same-lower")
case("Conv", [X(CV), W((5, 4, 3, 3))], {"auto_pad": "VALID", "strides": [2, 2]}, id="Conv-valid")
case("Conv", [X(CV, "normal", "all"), W((5, 4, 3, 3))], {"strides": [2, 2], "pads": [1, 1, 0, 2]},
     id="Conv-dynamic-shapes")
case("Conv", [X((2, 3, 10)), W((4, 3, 3))], {"strides": [2], "pads": [1, 1]}, id="Conv-1d")
case("Conv", [X((1, 2, 5, 4, 6)), W((3, 2, 2, 3, 3))], {"strides": [1, 2, 2], "pads": [0, 1, 1, 1, 0, 1]},
     id="Conv-3d")
case("Conv", [X(CV), W((5, 4, 7, 7))], {"strides": [4, 4], "pads": [2, 2, 2, 2]}, id="Conv-alexnet-like")
case("Conv", [X(CV), W((6, 2, 3, 3))], {"group": 2, "pads": [0, 1, 2, 1]}, id="Conv-s1-group2-asympad")
case("Conv", [X((2, 3, 10)), W((4, 3, 5))], {"pads": [1, 3], "dilations": [2]}, id="Conv-s1-1d-dilated")
case("Conv", [X(CV), W((5, 4, 3, 3))], {"pads": [3, 0, 1, 3]}, id="Conv-s1-pad-beyond-kernel")
case("ConvTranspose", [X((2, 4, 5, 4)), W((4, 3, 3, 3))], id="ConvT-plain")
case("ConvTranspose", [X((2, 4, 5, 4)), W((4, 3, 3, 3)), W((3,))], {"strides": [2, 2], "pads": [1, 1, 1, 1],
                                                                     "output_padding": [1, 0]}, id="ConvT-s2-outpad")
case("ConvTranspose", [X((2, 4, 5, 4)), W((4, 2, 4, 4))], {"strides": [2, 2], "pads": [1, 1, 1, 1], "group": 2},
     id="ConvT-group")
case("ConvTranspose", [X((2, 4, 5, 4)), W((4, 3, 3, 3))], {"dilations": [2, 1], "pads": [1, 0, 2, 1]},
     id="ConvT-dil")
case("ConvTranspose", [X((2, 4, 5, 4)), W((4, 3, 3, 3))], {"strides": [2, 2], "auto_pad": "SAME_UPPER"},
     id="ConvT-same-upper")
case("ConvTranspose", [X((2, 4, 5, 4)), W((4, 3, 3, 3))], {"strides": [2, 2], "output_shape": [10, 8]},
     id="ConvT-output-shape")

# ---- pooling ---------------------------------------------------------------------------------------
PL = (2, 3, 9, 8)
for name, attrs in [
    ("k2s2", {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ("k3s2-overlap", {"kernel_shape": [3, 3], "strides": [2, 2]}),
    ("k3s1-pad1", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
    ("k3s2-ceil", {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    ("k3s2-pad-ceil", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 1, 1], "ceil_mode": 1}),
    ("same-upper", {"kernel_shape": [3, 2], "strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    ("same-lower", {"kernel_shape": [3, 2], "strides": [2, 2], "auto_pad": "SAME_LOWER"}),
    ("dil2", {"kernel_shape": [2, 2], "dilations": [2, 2], "strides": [1, 2]}),
]:
    case("MaxPool", [X(PL, "distinct")], attrs, id=f"MaxPool-{name}")
    case("AveragePool", [X(PL)], attrs, id=f"AveragePool-{name}", opset=19 if "dilations" in attrs else 18)
    if "pads" in attrs:
        case("AveragePool", [X(PL)], {**attrs, "count_include_pad": 1}, id=f"AveragePool-{name}-incl")
case("MaxPool", [X(PL, "distinct")], {"kernel_shape": [3, 3], "strides": [2, 2]}, n_out=2, id="MaxPool-indices-out")
case("MaxPool", [X((2, 3, 11), "distinct")], {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}, id="MaxPool-1d")
case("AveragePool", [X(PL, "normal", "all")], {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
     id="AveragePool-dynamic-shapes")
case("GlobalAveragePool", [X(PL)])
case("GlobalMaxPool", [X(PL, "distinct")])

# ---- normalisation -----------------------------------------------------------------------------------
case("BatchNormalization", [X(IMG), W((3,)), W((3,)), W((3,)), W((3,), "pos")], {"epsilon": 1e-3})
# BatchNorm1d on flattened tokens (N*L, C) and on (N, C, L), as conv/attention hybrids use it
case("BatchNormalization", [X((6, 3)), W((3,)), W((3,)), W((3,)), W((3,), "pos")], id="BatchNormalization-rank2")
case("BatchNormalization", [X(SMALL), W((3,)), W((3,)), W((3,)), W((3,), "pos")], id="BatchNormalization-rank3")
case("InstanceNormalization", [X(IMG), W((3,)), W((3,))])
case("LayerNormalization", [X((2, 5, 6)), W((6,)), W((6,))], id="LayerNorm-last")
case("LayerNormalization", [X((2, 5, 6)), W((5, 6)), W((5, 6))], {"axis": 1}, id="LayerNorm-axis1")
case("LayerNormalization", [X((2, 5, 6)), W((5, 6))], {"axis": -2}, id="LayerNorm-axis-2-nobias")
case("LRN", [X((2, 6, 4, 3))], {"size": 3, "alpha": 0.5, "beta": 0.75, "bias": 1.0}, id="LRN-3")
case("LRN", [X((2, 7, 4, 3))], {"size": 1, "alpha": 0.3, "beta": 0.6, "bias": 2.0}, id="LRN-1")
case("LRN", [X((2, 7, 4, 3))], {"size": 5, "alpha": 1e-2}, id="LRN-5-caffe")

# ---- matmul ------------------------------------------------------------------------------------------
case("Gemm", [X((3, 4)), W((4, 5)), W((5,))], id="Gemm-plain")
case("Gemm", [X((3, 4)), W((5, 4)), W((5,))], {"transB": 1}, id="Gemm-transB")
case("Gemm", [X((4, 3)), X((4, 5)), W((1, 5))], {"transA": 1, "alpha": 0.5, "beta": 2.0}, id="Gemm-transA-both")
case("Gemm", [X((4, 3)), X((5, 4)), X((3, 5))], {"transA": 1, "transB": 1}, id="Gemm-transAB-C")
case("Gemm", [X((3, 4)), X((5, 4))], {"transB": 1}, id="Gemm-noC")
case("MatMul", [X((3, 4)), X((4, 5))], id="MatMul-2d")
case("MatMul", [X((2, 3, 4)), W((4, 5))], id="MatMul-linear")
case("MatMul", [X((2, 2, 3, 4)), X((2, 2, 4, 3))], id="MatMul-attention")
case("MatMul", [X((2, 1, 3, 4)), X((3, 4, 2))], id="MatMul-bcast")
case("MatMul", [X((4,), "normal", "none"), X((2, 4, 3))], id="MatMul-1d-a")
case("MatMul", [X((2, 3, 4)), X((4,), "normal", "none")], id="MatMul-1d-b")
case("MatMul", [X((2, 3, 4), "normal", "all"), X((4, 5), "normal", "all")], id="MatMul-dynamic")

# ---- shapes and data movement --------------------------------------------------------------------
case("Reshape", [X(IMG), C(np.array([0, -1], I64))], id="Reshape-0-minus1")
case("Reshape", [X(IMG), C(np.array([2, 3, 42], I64))], id="Reshape-explicit")
case("Flatten", [X(IMG)], {"axis": 1})
case("Transpose", [X(IMG)], {"perm": [0, 2, 3, 1]}, id="Transpose-nhwc")
case("Transpose", [X(SMALL)], id="Transpose-default")
case("Squeeze", [X((2, 1, 3, 1)), C(np.array([1, 3], I64))], id="Squeeze-axes")
case("Squeeze", [X((2, 1, 3, 1), "normal", "none")], id="Squeeze-all")
case("Unsqueeze", [X(SMALL), C(np.array([0, -1], I64))])
case("Expand", [X((3, 1)), C(np.array([2, 3, 4], I64))], id="Expand-bcast")
case("Expand", [X((1, 1, 4), "normal", "none"), C(np.array([2, 3, 1], I64))], id="Expand-cls-token")
case("Tile", [X(SMALL), C(np.array([2, 1, 3], I64))])
case("Concat", [X(IMG), X((2, 2, 7, 6)), W((2, 1, 7, 6))], {"axis": 1}, id="Concat-channels")
case("Concat", [X((2, 1, 4), "normal", "none"), X((2, 5, 4))], {"axis": -2}, id="Concat-cls-neg-axis")
case("Split", [X((2, 6, 3))], {"axis": 1, "num_outputs": 3}, n_out=3, targets=3, id="Split-num-outputs")
case("Split", [X((2, 6, 3)), C(np.array([1, 5], I64))], {"axis": 1}, n_out=2, targets=2, id="Split-sizes")
case("Split", [X((2, 6, 3)), C(np.array([2, 4], I64))], {"axis": -2}, n_out=2, targets=1, id="Split-unused-output")
case("Slice", [X(IMG), C(np.array([1], I64)), C(np.array([3], I64)), C(np.array([1], I64))], id="Slice-axis")
case("Slice", [X(IMG), C(np.array([0, -1], I64)), C(np.array([1, 0], I64)), C(np.array([1, 2], I64)),
               C(np.array([1, -2], I64))], id="Slice-negative-step")
case("Slice", [X(IMG), C(np.array([1, 0], I64)), C(np.array([100, 6], I64)), C(np.array([2, 3], I64)),
               C(np.array([2, 2], I64))], id="Slice-step2-clamped")
case("Slice", [X((2, 5, 4)), C(np.array([0], I64)), C(np.array([1], I64))], id="Slice-cls-token-noaxes")
case("Pad", [X(IMG), C(np.array([0, 0, 1, 2, 0, 0, 2, 1], I64))], id="Pad-constant")
case("Pad", [X(IMG), C(np.array([0, 0, 1, -1, 0, 0, -2, 1], I64)), C(np.array(0.5, F32))],
     id="Pad-constant-negative")
case("Pad", [X(IMG), C(np.array([0, 0, 2, 2, 0, 0, 1, 2], I64))], {"mode": "reflect"}, id="Pad-reflect")
case("Pad", [X(IMG), C(np.array([0, 0, 2, 2, 0, 0, 1, 3], I64))], {"mode": "edge"}, id="Pad-edge")
case("Pad", [X(IMG), C(np.array([1, 3, 1, 2], I64)), None, C(np.array([2, -1], I64))], {"mode": "edge"},
     id="Pad-axes")
case("Gather", [X(IMG), C(np.array([2, 0, 2], I64))], {"axis": 1}, id="Gather-repeated")
case("Gather", [X((2, 5, 4)), C(np.array(0, I64))], {"axis": 1}, id="Gather-cls-token-scalar")
case("Gather", [X(IMG), C(np.array([[-1, 0]], I64))], {"axis": 3}, id="Gather-negative-2d")
case("GatherElements", [X((2, 3)), C(np.array([[0, 0, 1], [2, 2, 2]], I64))], {"axis": 1})
case("GatherND", [X((2, 3, 4)), C(np.array([[0, 1], [1, 2], [0, 1]], I64))])
case("Where", [C(np.array([[True], [False], [True]])), X(SMALL), X((4,))], id="Where-bcast")
case("Identity", [X(SMALL)])
case("Dropout", [X(SMALL)])
case("Dropout", [X(SMALL)], n_out=2, id="Dropout-mask")
case("Cast", [X(SMALL)], {"to": TensorProto.FLOAT}, id="Cast-float")
case("Cast", [X(SMALL)], {"to": TensorProto.DOUBLE}, id="Cast-double")

# ---- resize --------------------------------------------------------------------------------------
NOROI = C(np.array([], F32))
for mode, coord, near in [
    ("nearest", "asymmetric", "floor"),
    ("nearest", "half_pixel", "round_prefer_floor"),
    ("nearest", "half_pixel", "round_prefer_ceil"),
    ("nearest", "align_corners", "ceil"),
    ("linear", "half_pixel", None),
    ("linear", "pytorch_half_pixel", None),
    ("linear", "align_corners", None),
    ("linear", "asymmetric", None),
    ("linear", "half_pixel_symmetric", None),
]:
    attrs = {"mode": mode, "coordinate_transformation_mode": coord}
    if near:
        attrs["nearest_mode"] = near
    case("Resize", [X((2, 3, 4, 5)), NOROI, C(np.array([1, 1, 2, 1.5], F32))], attrs, id=f"Resize-{mode}-{coord}-{near}-x2",
         opset=19 if coord == "half_pixel_symmetric" else 18)
    case("Resize", [X((2, 3, 6, 5)), NOROI, None, C(np.array([2, 3, 4, 7], I64))], attrs,
         id=f"Resize-{mode}-{coord}-{near}-sizes", opset=19 if coord == "half_pixel_symmetric" else 18)
case("Resize", [X((2, 3, 4, 5)), None, C(np.array([3, 2], F32))], {"mode": "linear", "axes": [2, 3]},
     id="Resize-axes")
case("Resize", [X((2, 3, 4, 5)), NOROI, C(np.array([1, 1, 3, 2.5], F32))],  # deprecated since opset 13
     {"mode": "nearest", "coordinate_transformation_mode": "tf_half_pixel_for_nn", "nearest_mode": "round_prefer_ceil"},
     id="Resize-nearest-tf_half_pixel_for_nn-x3", opset=11)

# ---- reductions --------------------------------------------------------------------------------------
for op, dom in [("ReduceSum", "normal"), ("ReduceMean", "normal"), ("ReduceMax", "distinct"),
                ("ReduceMin", "distinct"), ("ReduceSumSquare", "normal")]:
    case(op, [X(IMG, dom), C(np.array([2, 3], I64))], id=f"{op}-spatial-keep")
    case(op, [X(IMG, dom), C(np.array([1, -1], I64))], {"keepdims": 0}, id=f"{op}-axes-drop")
    case(op, [X(IMG, dom)], {"keepdims": 0}, id=f"{op}-all-drop")
    case(op, [X(IMG, dom)], id=f"{op}-all-keep")
    if op != "ReduceSum":
        case(op, [X(IMG, dom)], {"axes": [1], "keepdims": 0}, id=f"{op}-axes-attribute", opset=17)
    case(op, [X(IMG, dom), C(np.array([], I64))], {"noop_with_empty_axes": 1}, id=f"{op}-noop")
case("ReduceSum", [X(IMG), C(np.array([1], I64))], {"keepdims": 0}, id="ReduceSum-13", opset=13)


@pytest.mark.parametrize("case", T, ids=[c.id for c in T])
def test_rule_vjp(case: Case):
    model, feeds = one_op_model(case.op, case.ins, case.attrs, n_out=case.n_out, opset=case.opset)
    targets = [f"y{i}" for i in range(case.targets)]
    check_vjp(model, feeds, targets, list(feeds), eps=case.eps, rtol=case.rtol)


# ---- non-differentiable ops: y = x * f(x) where f stops the gradient -------------------------------
def _nondiff_graph(op: str):
    """Nodes computing `v` (any type) from x with `op`, to be cast to float and reduced."""
    mk = helper.make_node
    c = helper.make_tensor
    nodes = {
        "Shape": [mk("Shape", ["x"], ["v"])],
        "Size": [mk("Size", ["x"], ["v"])],
        "Constant": [mk("Constant", [], ["v"], value=c("k", TensorProto.FLOAT, [1], [3.0]))],
        "ConstantOfShape": [mk("Shape", ["x"], ["s"]), mk("ConstantOfShape", ["s"], ["v"])],
        "Range": [mk("Size", ["x"], ["n"]), mk("Constant", [], ["z"], value=c("z", TensorProto.INT64, [], [0])),
                  mk("Constant", [], ["o"], value=c("o", TensorProto.INT64, [], [1])),
                  mk("Range", ["z", "n", "o"], ["v"])],
        "Not": [mk("Greater", ["x", "zero"], ["b"]), mk("Not", ["b"], ["v"])],
        "NonZero": [mk("Greater", ["x", "zero"], ["b"]), mk("NonZero", ["b"], ["v"])],
        "Mod": [mk("Floor", ["x"], ["f"]), mk("Mod", ["f", "three"], ["v"], fmod=1)],
        "ArgMax": [mk("ArgMax", ["x"], ["v"], axis=1)],
        "ArgMin": [mk("ArgMin", ["x"], ["v"], axis=1)],
    }
    if op in nodes:
        return nodes[op]
    if op in ("Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual"):
        return [mk(op, ["x", "zero"], ["v"])]
    if op in ("And", "Or", "Xor"):
        return [mk("Greater", ["x", "zero"], ["a"]), mk("Less", ["x", "three"], ["b"]), mk(op, ["a", "b"], ["v"])]
    return [mk(op, ["x"], ["v"])]  # Floor Ceil Round Sign IsNaN IsInf


NONDIFF = sorted(op for (dom, op), rule in REGISTRY.items() if rule.diff == ())


@pytest.mark.parametrize("op", NONDIFF)
def test_nondiff_ops_stop_the_gradient(op):
    from .helpers import finalize, sample

    mk = helper.make_node
    nodes = _nondiff_graph(op) + [
        mk("Cast", ["v"], ["vf"], to=TensorProto.FLOAT),
        mk("ReduceSum", ["vf"], ["r"], keepdims=0),
        mk("Mul", ["x", "r"], ["y"]),
    ]
    inits = [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
             helper.make_tensor("three", TensorProto.FLOAT, [], [3.0])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = finalize(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
    assert "v" not in differentiable_tensors(model)
    assert "y" in differentiable_tensors(model)
    feeds = {"x": sample(np.random.default_rng(0), (2, 3, 4), "grid")}
    check_vjp(model, feeds, ["y"], ["x"])


def test_every_registered_op_is_in_the_table():
    tested = {c.op for c in T} | set(NONDIFF)
    missing = sorted(op for (_, op) in REGISTRY if op not in tested)
    assert not missing, f"registered but untested: {missing}"
