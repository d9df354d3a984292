"""Receptive fields from the ONNX graph: hand-computed single-op cases, plus an empirical ground truth.

The empirical check is independent of the analysis: every network is built with positive weights,
positive biases and monotone ops only, so raising one input pixel by a huge amount changes exactly
the units that structurally depend on it (ReLUs never switch off, a max pool passes the raised
value). One ONNX Runtime call perturbs every pixel (one batch row each) and gives, for every unit,
the set of pixels it depends on; its bounding box must equal the analytic box clipped to the image
(or, for fractional-stride ops, lie inside it with a bounded slack).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprobe.graph.geometry import REGISTRY, ReceptiveField, TensorGeometry, analyze_geometry

OPSET = 18


class Net:
    """A tiny ONNX graph builder: positive random weights, dynamic batch axis."""

    def __init__(self, shape=(3, 16, 16), name="x", seed=0):
        self.rng = np.random.default_rng(seed)
        self.input = name
        self.shape = tuple(shape)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0
        self.opset = OPSET  # a builder may need another (Upsample: 9, Gelu: 20)

    def _name(self, prefix):
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, value, dtype=np.int64):
        name = self._name("c")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type, inputs, outputs=1, **attrs):
        names = [self._name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=names[0], **attrs))
        return names[0] if outputs == 1 else names

    def conv(self, x, cin, cout, kernel, bias=True, op="Conv", **attrs):
        kernel = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
        group = attrs.get("group", 1)
        shape = (cout, cin // group, *kernel) if op == "Conv" else (cin, cout // group, *kernel)
        fan_in = int(np.prod(shape[1:]))
        w = self.const(self.rng.uniform(0.5, 1.0, shape) / fan_in, np.float32)
        inputs = [x, w]
        if bias:
            inputs.append(self.const(self.rng.uniform(0.01, 0.1, cout), np.float32))
        return self.op(op, inputs, **attrs)

    def model(self, *outputs) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, "net", [helper.make_tensor_value_info(self.input, TensorProto.FLOAT, ["N", *self.shape])],
            [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        model.ir_version = 10
        return model


def rf(size, stride, offset):
    return ReceptiveField(tuple(map(float, size)), tuple(map(float, stride)), tuple(map(float, offset)))


def geometry(net: Net, out: str, layout="NCHW", **kw) -> TensorGeometry:
    return analyze_geometry(net.model(out), net.input, layout=layout, **kw)[out]


# ------------------------------------------------------------------------------------------------
# single ops and short chains, expectations computed by hand
# ------------------------------------------------------------------------------------------------

def conv_s2_p1(n):  # k3 s2 p1: unit 0 covers [-1, 2)
    return n.conv(n.input, 3, 4, 3, strides=[2, 2], pads=[1, 1, 1, 1])


def conv_dilated(n):  # k3 d2 p2: footprint 5
    return n.conv(n.input, 3, 4, 3, dilations=[2, 2], pads=[2, 2, 2, 2])


def conv_rect_no_kernel_attr(n):  # kernel (3, 5) from the weight; pads (1, 2)
    return n.conv(n.input, 3, 4, (3, 5), pads=[1, 2, 1, 2])


def conv_same_upper_even(n):  # 16 -> 8: total pad max(0, 7*2 + 3 - 16) = 1, begin 0 (UPPER)
    return n.conv(n.input, 3, 4, 3, strides=[2, 2], auto_pad="SAME_UPPER")


def conv_same_lower_even(n):  # same total 1, begin 1 (LOWER)
    return n.conv(n.input, 3, 4, 3, strides=[2, 2], auto_pad="SAME_LOWER")


def conv_same_upper_odd(n):  # 15 -> 8: total 7*2 + 3 - 15 = 2, begin 1
    return n.conv(n.input, 3, 4, 3, strides=[2, 2], auto_pad="SAME_UPPER")


def conv_valid(n):
    return n.conv(n.input, 3, 4, 5, strides=[3, 3], auto_pad="VALID")


def conv_grouped_1x1(n):
    return n.conv(n.input, 3, 3, 1, group=3)


def maxpool(n):
    return n.op("MaxPool", [n.input], kernel_shape=[3, 3], strides=[2, 2])


def maxpool_ceil_pad(n):  # ceil_mode does not move existing units
    return n.op("MaxPool", [n.input], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)


def maxpool_dilated(n):
    return n.op("MaxPool", [n.input], kernel_shape=[2, 2], dilations=[3, 3])


def avgpool(n):
    return n.op("AveragePool", [n.input], kernel_shape=[2, 2], strides=[2, 2])


def lppool(n):
    return n.op("LpPool", [n.input], kernel_shape=[3, 2], strides=[1, 2], pads=[0, 1, 0, 1])


def alexnet_conv1_pool1(n):  # 11 + (3-1)*4 = 19, stride 8, offset -2
    return n.op("MaxPool", [n.op("Relu", [n.conv(n.input, 3, 4, 11, strides=[4, 4], pads=[2, 2, 2, 2])])],
                kernel_shape=[3, 3], strides=[2, 2])


def vgg_block(n):  # conv3 p1, conv3 p1, pool2: size 6, stride 2, offset -2
    c = n.conv(n.op("Relu", [n.conv(n.input, 3, 4, 3, pads=[1] * 4)]), 4, 4, 3, pads=[1] * 4)
    return n.op("MaxPool", [c], kernel_shape=[2, 2], strides=[2, 2])


def residual_union(n):  # branch A covers [j, j+3), branch B [j-2, j+1): union [j-2, j+3)
    a = n.conv(n.input, 3, 4, 3, pads=[0, 0, 2, 2])
    b = n.conv(n.input, 3, 4, 3, pads=[2, 2, 0, 0])
    return n.op("Add", [a, b])


def residual_block(n):  # x + conv(conv(x)): the union is the longer branch
    a = n.conv(n.input, 3, 3, 3, pads=[1] * 4)
    return n.op("Relu", [n.op("Add", [n.input, n.conv(n.op("Relu", [a]), 3, 3, 3, pads=[1] * 4)])])


def add_stride_mismatch(n):  # same 8x8 shape, strides 2 and 1 -> None
    a = n.conv(n.input, 3, 4, 1, strides=[2, 2])
    b = n.op("Slice", [n.conv(n.input, 3, 4, 1), n.const([0, 0]), n.const([8, 8]), n.const([2, 3])])
    return n.op("Add", [a, b])


def bn_scale_bias(n):  # BatchNormalization and per-channel Mul/Add constants keep geometry
    c = n.conv(n.input, 3, 4, 3, strides=[2, 2])
    ones = n.const(np.ones(4), np.float32)
    zeros = n.const(np.zeros(4), np.float32)
    c = n.op("BatchNormalization", [c, ones, zeros, zeros, ones])
    c = n.op("Mul", [c, n.const(np.ones((4, 1, 1)), np.float32)])
    return n.op("Add", [n.const(np.ones((1, 4, 1, 1)), np.float32), c])


def concat_channels(n):  # k1 and k5p2 branches: union = the k5 box
    a = n.conv(n.input, 3, 2, 1)
    b = n.conv(n.input, 3, 2, 5, pads=[2] * 4)
    return n.op("Concat", [a, b], axis=1)


def concat_spatial(n):
    return n.op("Concat", [n.input, n.input], axis=3)


def concat_pad_constant(n):  # concatenating a constant block in front of H acts like padding
    return n.op("Concat", [n.const(np.zeros((1, 3, 2, 16)), np.float32), n.input], axis=2)


def transpose_nhwc(n):
    return n.op("Transpose", [n.conv(n.input, 3, 4, 3, strides=[2, 2])], perm=[0, 2, 3, 1])


def pad_constant(n):  # pads begin (1, 2): offset (-1, -2)
    return n.op("Pad", [n.input, n.const([0, 0, 1, 2, 0, 0, 3, 4])])


def pad_axes(n):  # opset 18 axes input: pad only W
    return n.op("Pad", [n.input, n.const([3, 1]), "", n.const([3])])


def pad_reflect(n):  # strict: mirrored pixels lie outside the box
    return n.op("Pad", [n.input, n.const([0, 0, 1, 1, 0, 0, 1, 1])], mode="reflect")


def pad_reflect_channels_only(n):
    return n.op("Pad", [n.input, n.const([0, 1, 0, 0, 0, 1, 0, 0])], mode="reflect")


def resize_nearest_x2(n):  # asymmetric+floor (PyTorch nearest): unit j reads floor(j/2): size 1.5, offset -0.5
    return n.op("Resize", [n.input, "", n.const([1, 1, 2, 2], np.float32)], mode="nearest",
                coordinate_transformation_mode="asymmetric", nearest_mode="floor")


def resize_linear_x2(n):  # half_pixel: x = j/2 - 1/4; taps floor(x), floor(x)+1: envelope [-1, 0.5]
    return n.op("Resize", [n.input, "", n.const([1, 1, 2, 2], np.float32)], mode="linear")


def resize_sizes_align_corners(n):  # 16 -> 31 align_corners: x = j/2; odd j reads (j-1)/2, (j+1)/2: [-0.5, 0.5]
    return n.op("Resize", [n.input, "", "", n.const([1, 3, 31, 31])], mode="linear",
                coordinate_transformation_mode="align_corners")


def resize_axes_w_only(n):
    return n.op("Resize", [n.input, "", n.const([2], np.float32)], mode="nearest", axes=[3],
                coordinate_transformation_mode="asymmetric", nearest_mode="floor")


def conv_transpose_k4s2p1(n):  # i in [(j+1-3)/2, (j+1)/2]: stride 0.5, offset -1, size 2.5
    return n.conv(n.input, 3, 4, 4, op="ConvTranspose", strides=[2, 2], pads=[1, 1, 1, 1])


def conv_transpose_s1(n):  # stride 1: exactly a conv with pad k-1-p
    return n.conv(n.input, 3, 4, 3, op="ConvTranspose", pads=[0, 0, 0, 0])


def depth_to_space(n):
    return n.op("DepthToSpace", [n.conv(n.input, 3, 4, 1)], blocksize=2)


def space_to_depth(n):
    return n.op("SpaceToDepth", [n.input], blocksize=2)


def global_pool(n):
    return n.op("GlobalAveragePool", [n.conv(n.input, 3, 4, 3)])


def reduce_mean_spatial(n):
    return n.op("ReduceMean", [n.input, n.const([2, 3])], keepdims=1)


def reduce_mean_channels(n):
    return n.op("ReduceMean", [n.conv(n.input, 3, 4, 3), n.const([1])], keepdims=1)


def flatten(n):
    return n.op("Flatten", [n.conv(n.input, 3, 4, 3)], axis=1)


def gemm_head(n):
    g = n.op("GlobalAveragePool", [n.conv(n.input, 3, 4, 3)])
    f = n.op("Flatten", [g])
    return n.op("Gemm", [f, n.const(np.ones((4, 5)), np.float32)])


def reshape_head(n):  # torchvision-style x.view(N, -1) via Shape/Gather/Concat
    g = n.op("GlobalAveragePool", [n.input])
    batch = n.op("Gather", [n.op("Shape", [g]), n.const(0)], axis=0)
    shape = n.op("Concat", [n.op("Unsqueeze", [batch, n.const([0])]), n.const([-1])], axis=0)
    return n.op("Reshape", [g, shape])


def reshape_identity(n):
    return n.op("Reshape", [n.conv(n.input, 3, 4, 3, strides=[2, 2]), n.const([-1, 4, 7, 7])])


def reshape_split_channels(n):  # (N, 4, 7, 7) -> (N, 2, 2, 7, 7): channels split, spatial kept
    return n.op("Reshape", [n.conv(n.input, 3, 4, 3, strides=[2, 2]), n.const([0, 2, 2, 7, 7])])


def reshape_tokens(n):  # (N, 3, 16, 16) -> (N, 3, 256): spatial axes merged
    return n.op("Reshape", [n.input, n.const([0, 3, 256])])


def unsqueeze_squeeze(n):
    u = n.op("Unsqueeze", [n.conv(n.input, 3, 4, 3), n.const([0])])
    return u


def squeeze_back(n):
    return n.op("Squeeze", [unsqueeze_squeeze(n), n.const([0])])


def slice_spatial(n):  # H: start 1 step 2 -> offset 1 stride 2; W: start -4 of 16 -> offset 12
    return n.op("Slice", [n.input, n.const([1, -4]), n.const([100, 100]), n.const([2, 3]), n.const([2, 1])])


def slice_channels(n):
    return n.op("Slice", [n.conv(n.input, 3, 4, 3), n.const([1]), n.const([3]), n.const([1])])


def slice_reversed(n):
    return n.op("Slice", [n.input, n.const([-1]), n.const([-100]), n.const([3]), n.const([-1])])


def transform_input(n):  # torchvision inception_v3 transform_input: per-channel affine via Gather/Concat
    parts = []
    for c in range(3):
        g = n.op("Gather", [n.input, n.const(c)], axis=1)
        u = n.op("Unsqueeze", [g, n.const([1])])
        parts.append(n.op("Add", [n.op("Mul", [u, n.const(0.5, np.float32)]), n.const(-0.1, np.float32)]))
    cat = n.op("Concat", parts, axis=1)
    return n.conv(cat, 3, 4, 3, strides=[2, 2])


def gather_spatial(n):
    return n.op("Gather", [n.input, n.const([0, 2, 4])], axis=2)


def softmax_channels(n):
    return n.op("Softmax", [n.conv(n.input, 3, 4, 3)], axis=1)


def softmax_spatial(n):
    return n.op("Softmax", [n.conv(n.input, 3, 4, 3)], axis=3)


def lrn(n):
    return n.op("LRN", [n.conv(n.input, 3, 4, 3)], size=3)


def instance_norm(n):
    c = n.conv(n.input, 3, 4, 3)
    return n.op("InstanceNormalization", [c, n.const(np.ones(4), np.float32), n.const(np.zeros(4), np.float32)])


def layer_norm_channels_last(n):  # NHWC LayerNorm over C only (ConvNeXt): local
    t = n.op("Transpose", [n.conv(n.input, 3, 4, 3)], perm=[0, 2, 3, 1])
    return n.op("LayerNormalization", [t, n.const(np.ones(4), np.float32)], axis=-1)


def squeeze_excite(n):
    c = n.conv(n.input, 3, 4, 3)
    gate = n.op("Sigmoid", [n.conv(n.op("GlobalAveragePool", [c]), 4, 4, 1)])
    return n.op("Mul", [c, gate])


def matmul_pointwise(n):  # NHWC x (C, K): a 1x1 conv
    t = n.op("Transpose", [n.conv(n.input, 3, 4, 3, strides=[2, 2])], perm=[0, 2, 3, 1])
    return n.op("MatMul", [t, n.const(np.ones((4, 6)), np.float32)])


def matmul_attention(n):  # image-dependent on both sides: unknown
    t = n.op("Reshape", [n.input, n.const([0, 3, 256])])
    return n.op("MatMul", [n.op("Transpose", [t], perm=[0, 2, 1]), t])


def split_spatial(n):
    return n.op("Split", [n.input, n.const([6, 10])], outputs=2, axis=2)[1]


def unknown_domain(n):
    n.nodes.append(helper.make_node("Mystery", [n.input], ["mystery"], domain="com.example"))
    return n.conv("mystery", 3, 4, 3)


def where_union(n):
    a = n.conv(n.input, 3, 4, 3, pads=[1] * 4)
    b = n.conv(n.input, 3, 4, 5, pads=[2] * 4)
    return n.op("Where", [n.op("Greater", [a, b]), a, b])


C = 1
SPATIAL = (2, 3)

CASES = [
    # (builder, input (C, H, W), channel_axis, spatial_axes, (size, stride, offset) or None, kwargs)
    (conv_s2_p1, (3, 16, 16), C, SPATIAL, rf((3, 3), (2, 2), (-1, -1)), {}),
    (conv_dilated, (3, 16, 16), C, SPATIAL, rf((5, 5), (1, 1), (-2, -2)), {}),
    (conv_rect_no_kernel_attr, (3, 16, 16), C, SPATIAL, rf((3, 5), (1, 1), (-1, -2)), {}),
    (conv_same_upper_even, (3, 16, 16), C, SPATIAL, rf((3, 3), (2, 2), (0, 0)), {}),
    (conv_same_lower_even, (3, 16, 16), C, SPATIAL, rf((3, 3), (2, 2), (-1, -1)), {}),
    (conv_same_upper_odd, (3, 15, 15), C, SPATIAL, rf((3, 3), (2, 2), (-1, -1)), {}),
    (conv_valid, (3, 16, 16), C, SPATIAL, rf((5, 5), (3, 3), (0, 0)), {}),
    (conv_grouped_1x1, (3, 16, 16), C, SPATIAL, rf((1, 1), (1, 1), (0, 0)), {}),
    (maxpool, (3, 16, 16), C, SPATIAL, rf((3, 3), (2, 2), (0, 0)), {}),
    (maxpool_ceil_pad, (3, 16, 16), C, SPATIAL, rf((3, 3), (2, 2), (-1, -1)), {}),
    (maxpool_dilated, (3, 16, 16), C, SPATIAL, rf((4, 4), (1, 1), (0, 0)), {}),
    (avgpool, (3, 16, 16), C, SPATIAL, rf((2, 2), (2, 2), (0, 0)), {}),
    (lppool, (3, 16, 16), C, SPATIAL, rf((3, 2), (1, 2), (0, -1)), {}),
    (alexnet_conv1_pool1, (3, 67, 67), C, SPATIAL, rf((19, 19), (8, 8), (-2, -2)), {}),
    (vgg_block, (3, 16, 16), C, SPATIAL, rf((6, 6), (2, 2), (-2, -2)), {}),
    (residual_union, (3, 16, 16), C, SPATIAL, rf((5, 5), (1, 1), (-2, -2)), {}),
    (residual_block, (3, 16, 16), C, SPATIAL, rf((5, 5), (1, 1), (-2, -2)), {}),
    (add_stride_mismatch, (3, 16, 16), C, SPATIAL, None, {}),
    (bn_scale_bias, (3, 16, 16), C, SPATIAL, rf((3, 3), (2, 2), (0, 0)), {}),
    (concat_channels, (3, 16, 16), C, SPATIAL, rf((5, 5), (1, 1), (-2, -2)), {}),
    (concat_spatial, (3, 16, 16), C, (), None, {}),
    (concat_pad_constant, (3, 16, 16), C, SPATIAL, rf((1, 1), (1, 1), (-2, 0)), {}),
    (transpose_nhwc, (3, 16, 16), 3, (1, 2), rf((3, 3), (2, 2), (0, 0)), {}),
    (pad_constant, (3, 16, 16), C, SPATIAL, rf((1, 1), (1, 1), (-1, -2)), {}),
    (pad_axes, (3, 16, 16), C, SPATIAL, rf((1, 1), (1, 1), (0, -3)), {}),
    (pad_reflect, (3, 16, 16), C, SPATIAL, None, {}),
    (pad_reflect, (3, 16, 16), C, SPATIAL, rf((1, 1), (1, 1), (-1, -1)), {"approximate": True}),
    (pad_reflect_channels_only, (3, 16, 16), C, SPATIAL, rf((1, 1), (1, 1), (0, 0)), {}),
    (resize_nearest_x2, (3, 16, 16), C, SPATIAL, rf((1.5, 1.5), (0.5, 0.5), (-0.5, -0.5)), {}),
    (resize_linear_x2, (3, 16, 16), C, SPATIAL, rf((2.5, 2.5), (0.5, 0.5), (-1, -1)), {}),
    (resize_sizes_align_corners, (3, 16, 16), C, SPATIAL, rf((2, 2), (0.5, 0.5), (-0.5, -0.5)), {}),
    (resize_axes_w_only, (3, 16, 16), C, SPATIAL, rf((1, 1.5), (1, 0.5), (0, -0.5)), {}),
    (conv_transpose_k4s2p1, (3, 16, 16), C, SPATIAL, rf((2.5, 2.5), (0.5, 0.5), (-1, -1)), {}),
    (conv_transpose_s1, (3, 16, 16), C, SPATIAL, rf((3, 3), (1, 1), (-2, -2)), {}),
    (depth_to_space, (3, 16, 16), C, SPATIAL, rf((1.5, 1.5), (0.5, 0.5), (-0.5, -0.5)), {}),
    (space_to_depth, (3, 16, 16), C, SPATIAL, rf((2, 2), (2, 2), (0, 0)), {}),
    (global_pool, (3, 16, 16), C, (), None, {}),
    (reduce_mean_spatial, (3, 16, 16), C, (), None, {}),
    (reduce_mean_channels, (3, 16, 16), C, SPATIAL, rf((3, 3), (1, 1), (0, 0)), {}),
    (flatten, (3, 16, 16), C, (), None, {}),
    (gemm_head, (3, 16, 16), C, (), None, {}),
    (reshape_head, (3, 16, 16), C, (), None, {}),
    (reshape_identity, (3, 16, 16), C, SPATIAL, rf((3, 3), (2, 2), (0, 0)), {}),
    (reshape_split_channels, (3, 16, 16), None, (3, 4), rf((3, 3), (2, 2), (0, 0)), {}),
    (reshape_tokens, (3, 16, 16), C, (), None, {}),
    (unsqueeze_squeeze, (3, 16, 16), 2, (3, 4), rf((3, 3), (1, 1), (0, 0)), {}),
    (squeeze_back, (3, 16, 16), C, SPATIAL, rf((3, 3), (1, 1), (0, 0)), {}),
    (slice_spatial, (3, 16, 16), C, SPATIAL, rf((1, 1), (2, 1), (1, 12)), {}),
    (slice_channels, (3, 16, 16), C, SPATIAL, rf((3, 3), (1, 1), (0, 0)), {}),
    (slice_reversed, (3, 16, 16), C, (), None, {}),
    (transform_input, (3, 16, 16), C, SPATIAL, rf((3, 3), (2, 2), (0, 0)), {}),
    (gather_spatial, (3, 16, 16), C, (), None, {}),
    (softmax_channels, (3, 16, 16), C, SPATIAL, rf((3, 3), (1, 1), (0, 0)), {}),
    (softmax_spatial, (3, 16, 16), C, SPATIAL, None, {}),
    (lrn, (3, 16, 16), C, SPATIAL, rf((3, 3), (1, 1), (0, 0)), {}),
    (instance_norm, (3, 16, 16), C, SPATIAL, None, {}),
    (instance_norm, (3, 16, 16), C, SPATIAL, rf((3, 3), (1, 1), (0, 0)), {"approximate": True}),
    (layer_norm_channels_last, (3, 16, 16), 3, (1, 2), rf((3, 3), (1, 1), (0, 0)), {}),
    (squeeze_excite, (3, 16, 16), C, SPATIAL, None, {}),
    (squeeze_excite, (3, 16, 16), C, SPATIAL, rf((3, 3), (1, 1), (0, 0)), {"approximate": True}),
    (matmul_pointwise, (3, 16, 16), 3, (1, 2), rf((3, 3), (2, 2), (0, 0)), {}),
    (matmul_attention, (3, 16, 16), None, (), None, {}),
    (split_spatial, (3, 16, 16), C, SPATIAL, rf((1, 1), (1, 1), (6, 0)), {}),
    (unknown_domain, (3, 16, 16), None, (), None, {}),
    (where_union, (3, 16, 16), C, SPATIAL, rf((5, 5), (1, 1), (-2, -2)), {}),
]



# ---- one case per op of a family: the op itself decides nothing about geometry ------------------
F, U8, I32 = TensorProto.FLOAT, TensorProto.UINT8, TensorProto.INT32


def _named(name, build):
    build.__name__ = name
    return build


def _to_float(n, y):
    return n.op("Cast", [y], to=F)


def pointwise(op, cast=None, back=False, consts=(), opset=OPSET, **attrs):
    """conv 3x3/2 -> [Cast] -> op(x, constants) [-> Cast to float]: the units keep the conv's RF."""
    def build(n):
        n.opset = opset
        x = n.conv(n.input, 3, 4, 3, strides=[2, 2])
        if cast is not None:
            x = n.op("Cast", [x], to=cast)
        y = n.op(op, [x] + [n.const(v, dt) for v, dt in consts], **attrs)
        return _to_float(n, y) if back else y
    return _named(f"pointwise_{op}", build)


def broadcast(op, cast=None, back=False, **attrs):
    """op(3x3 conv, 5x5 conv), both stride 1, padded to the same size: the union of the two RFs."""
    def build(n):
        xs = [n.conv(n.input, 3, 4, 3, pads=[1] * 4), n.conv(n.input, 3, 4, 5, pads=[2] * 4)]
        if cast is not None:
            xs = [n.op("Cast", [x], to=cast) for x in xs]
        y = n.op(op, xs, **attrs)
        return _to_float(n, y) if back else y
    return _named(f"broadcast_{op}", build)


def along_channels(op, **attrs):
    def build(n):
        c = n.conv(n.input, 3, 4, 3)
        return n.op(op, [c, n.const(1)] if op == "CumSum" else [c], **attrs)
    return _named(f"channels_{op}", build)


def reduce_channels(op):
    return _named(f"channels_{op}", lambda n: n.op(op, [n.conv(n.input, 3, 4, 3), n.const([1])], keepdims=1))


def arg_channels(op):
    return _named(f"channels_{op}", lambda n: _to_float(n, n.op(op, [n.conv(n.input, 3, 4, 3)], axis=1)))


def argmin_spatial(n):
    return _to_float(n, n.op("ArgMin", [n.conv(n.input, 3, 4, 3)], axis=2, keepdims=0))


def cumsum_spatial(n):
    return n.op("CumSum", [n.conv(n.input, 3, 4, 3), n.const(-1)])


def global_pool_of(op, **attrs):
    return _named(f"global_{op}", lambda n: n.op(op, [n.conv(n.input, 3, 4, 3)], **attrs))


def quantize_dequantize(n):
    q = n.op("QuantizeLinear", [n.conv(n.input, 3, 4, 3, strides=[2, 2]), n.const(0.01, np.float32),
                                n.const(0, np.uint8)])
    return n.op("DequantizeLinear", [q, n.const(0.01, np.float32), n.const(0, np.uint8)])


def dynamic_quantize(n):  # scale and zero point come from the whole tensor: global context
    y = n.op("DynamicQuantizeLinear", [n.conv(n.input, 3, 4, 3, strides=[2, 2])], outputs=3)[0]
    return _to_float(n, y)


def cast_like(n):
    return _to_float(n, n.op("CastLike", [n.conv(n.input, 3, 4, 3, strides=[2, 2]), n.const([1.0], np.float16)]))


def conv_integer(n):
    x = n.op("Cast", [n.input], to=U8)
    w = n.const(np.ones((4, 3, 3, 3)), np.uint8)
    return _to_float(n, n.op("ConvInteger", [x, w], strides=[2, 2]))


def qlinear_conv(n):  # kernel from the weights' shape (input 3)
    x = n.op("Cast", [n.input], to=U8)
    scale, zero = n.const(0.5, np.float32), n.const(0, np.uint8)
    w = n.const(np.ones((4, 3, 3, 3)), np.uint8)
    return _to_float(n, n.op("QLinearConv", [x, scale, zero, w, scale, zero, scale, zero], strides=[2, 2]))


def _nhwc_u8(n):
    return n.op("Cast", [n.op("Transpose", [n.conv(n.input, 3, 4, 3, strides=[2, 2])], perm=[0, 2, 3, 1])], to=U8)


def matmul_integer(n):  # NHWC x (C, K) in integers: a 1x1 conv
    return _to_float(n, n.op("MatMulInteger", [_nhwc_u8(n), n.const(np.ones((4, 6)), np.uint8)]))


def qlinear_matmul(n):
    scale, zero = n.const(0.5, np.float32), n.const(0, np.uint8)
    b = n.const(np.ones((4, 6)), np.uint8)
    return _to_float(n, n.op("QLinearMatMul", [_nhwc_u8(n), scale, zero, b, scale, zero, scale, zero]))


def group_norm(n):  # statistics over groups of channels and the whole map
    c = n.conv(n.input, 3, 4, 3)
    return n.op("GroupNormalization", [c, n.const(np.ones(2), np.float32), n.const(np.zeros(2), np.float32)],
                num_groups=2)


def mvn_spatial(n):  # the default axes (onnx 1.23's function body fails inference when they are left out)
    return n.op("MeanVarianceNormalization", [n.conv(n.input, 3, 4, 3)], axes=[0, 2, 3])


def mvn_channels(n):
    return n.op("MeanVarianceNormalization", [n.conv(n.input, 3, 4, 3)], axes=[1])


def expand_same(n):  # Expand to the same shape: every axis kept
    return n.op("Expand", [n.conv(n.input, 3, 4, 3), n.const([1, 1, 1, 1])])


def tile_spatial(n):  # Tile along H: the map repeats, H no longer maps onto the image
    return n.op("Tile", [n.conv(n.input, 3, 4, 3), n.const([1, 1, 2, 1])])


def size_scaled(n):  # Size depends on the shape only: a constant for the Mul
    c = n.conv(n.input, 3, 4, 3)
    return n.op("Mul", [c, n.op("Cast", [n.op("Size", [c])], to=F)])


def upsample_opset9(n):  # Upsample: nearest, runtimes differ in rounding, every candidate counts
    n.opset = 9
    return n.op("Upsample", [n.input, n.const([1, 1, 2, 2], np.float32)], mode="nearest")


CONV_S2 = rf((3, 3), (2, 2), (0, 0))  # conv 3x3 stride 2, no padding
UNION_35 = rf((5, 5), (1, 1), (-2, -2))  # union of 3x3 pad 1 and 5x5 pad 2
CONV_S1 = rf((3, 3), (1, 1), (0, 0))
B, I = TensorProto.BOOL, TensorProto.INT32
CASES += [(pointwise(op, **kw), (3, 16, 16), C, SPATIAL, CONV_S2, {}) for op, kw in [
    ("Identity", {}), ("Abs", {}), ("Acos", {}), ("Acosh", {}), ("Asin", {}), ("Asinh", {}), ("Atan", {}),
    ("Atanh", {}), ("Ceil", {}), ("Celu", {}), ("Cos", {}), ("Cosh", {}), ("Elu", {}), ("Erf", {}), ("Exp", {}),
    ("Floor", {}), ("Gelu", {"opset": 20}), ("HardSigmoid", {}), ("HardSwish", {}), ("LeakyRelu", {}), ("Log", {}),
    ("Mish", {}), ("Neg", {}), ("Reciprocal", {}), ("Relu", {}), ("Round", {}), ("Selu", {}), ("Shrink", {}),
    ("Sigmoid", {}), ("Sign", {}), ("Sin", {}), ("Sinh", {}), ("Softplus", {}), ("Softsign", {}), ("Sqrt", {}),
    ("Tan", {}), ("Tanh", {}), ("ThresholdedRelu", {}), ("Dropout", {}),
    ("Clip", {"consts": [(0.0, np.float32), (6.0, np.float32)]}), ("Cast", {"to": TensorProto.FLOAT16, "back": True}),
    ("IsInf", {"back": True}), ("IsNaN", {"back": True}), ("Not", {"cast": B, "back": True}),
    ("BitwiseNot", {"cast": I, "back": True})]]
CASES += [(broadcast(op, **kw), (3, 16, 16), C, SPATIAL, UNION_35, {}) for op, kw in [
    ("Sub", {}), ("Mul", {}), ("Div", {}), ("Pow", {}), ("Max", {}), ("Min", {}), ("Sum", {}), ("Mean", {}),
    ("Mod", {"fmod": 1}), ("PRelu", {}), ("Equal", {"back": True}), ("GreaterOrEqual", {"back": True}),
    ("Less", {"back": True}), ("LessOrEqual", {"back": True}), ("And", {"cast": B, "back": True}),
    ("Or", {"cast": B, "back": True}), ("Xor", {"cast": B, "back": True}),
    ("BitShift", {"cast": U8, "back": True, "direction": "LEFT"}), ("BitwiseAnd", {"cast": I, "back": True}),
    ("BitwiseOr", {"cast": I, "back": True}), ("BitwiseXor", {"cast": I, "back": True})]]
CASES += [(build, (3, 16, 16), C, SPATIAL, CONV_S1, {}) for build in [
    along_channels("Hardmax", axis=1), along_channels("LogSoftmax", axis=1), along_channels("LpNormalization", axis=1),
    along_channels("CumSum"), arg_channels("ArgMax"), arg_channels("ArgMin"), mvn_channels, expand_same, size_scaled,
    *[reduce_channels(op) for op in ("ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd", "ReduceL1", "ReduceL2",
                                     "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")]]]
CASES += [
    (cumsum_spatial, (3, 16, 16), C, SPATIAL, None, {}),
    (argmin_spatial, (3, 16, 16), C, (), None, {}),
    (global_pool_of("GlobalMaxPool"), (3, 16, 16), C, (), None, {}),
    (global_pool_of("GlobalLpPool", p=2), (3, 16, 16), C, (), None, {}),
    (group_norm, (3, 16, 16), C, SPATIAL, None, {}),
    (group_norm, (3, 16, 16), C, SPATIAL, CONV_S1, {"approximate": True}),
    (mvn_spatial, (3, 16, 16), C, SPATIAL, None, {}),
    (tile_spatial, (3, 16, 16), C, (), None, {}),
    (quantize_dequantize, (3, 16, 16), C, SPATIAL, CONV_S2, {}),
    (dynamic_quantize, (3, 16, 16), C, SPATIAL, None, {}),
    (dynamic_quantize, (3, 16, 16), C, SPATIAL, CONV_S2, {"approximate": True}),
    (cast_like, (3, 16, 16), C, SPATIAL, CONV_S2, {}),
    (conv_integer, (3, 16, 16), C, SPATIAL, CONV_S2, {}),
    (qlinear_conv, (3, 16, 16), C, SPATIAL, CONV_S2, {}),
    (matmul_integer, (3, 16, 16), 3, (1, 2), CONV_S2, {}),
    (qlinear_matmul, (3, 16, 16), 3, (1, 2), CONV_S2, {}),
    # floor and round candidates for x = j/2: j even -> j/2, j odd -> {(j-1)/2, (j+1)/2}
    (upsample_opset9, (3, 8, 8), C, SPATIAL, rf((2, 2), (0.5, 0.5), (-0.5, -0.5)), {}),
]

@pytest.mark.parametrize("build, shape, channel_axis, spatial_axes, expected, kwargs", CASES,
                         ids=[f"{c[0].__name__}{'-approx' if c[5] else ''}" for c in CASES])
def test_single_ops(build, shape, channel_axis, spatial_axes, expected, kwargs):
    net = Net(shape)
    out = build(net)
    model = net.model(out)
    if build is not unknown_domain:  # the analysis swallows failed shape inference: the graphs must type-check
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    geo = analyze_geometry(model, net.input, **kwargs)[out]
    assert geo.channel_axis == channel_axis
    assert geo.spatial_axes == spatial_axes
    assert geo.receptive_field == expected



def test_every_registered_op_is_in_the_table():
    """Every op with a geometry rule meets the image in at least one case of CASES (its rule runs)."""
    tested = set()
    for build, shape, *_, kwargs in CASES:
        net = Net(shape)
        model = net.model(build(net))
        geos = analyze_geometry(model, net.input, **kwargs)
        tested |= {node.op_type for node in model.graph.node if any(name in geos for name in node.input)}
    missing = sorted(op for (_, op) in REGISTRY if op not in tested)
    assert not missing, f"registered but untested: {missing}"

def test_input_geometry_and_layouts():
    net = Net((16, 16, 3))
    out = net.op("Relu", [net.input])
    geos = analyze_geometry(net.model(out), net.input, layout="NHWC")
    assert geos[net.input] == TensorGeometry(3, (1, 2), ReceptiveField.identity(2))
    assert geos[out] == geos[net.input]
    net = Net((3, 20))
    out = net.conv(net.input, 3, 4, (5,), strides=[2], pads=[2, 2])
    assert geometry(net, out, layout="NCW") == TensorGeometry(1, (2,), rf((5,), (2,), (-2,)))


def test_nhwc_model_round_trip():
    """tf2onnx style: NHWC input, Transpose to NCHW for the conv, Transpose back."""
    net = Net((16, 16, 3))
    t = net.op("Transpose", [net.input], perm=[0, 3, 1, 2])
    c = net.conv(t, 3, 4, 3, strides=[2, 2], pads=[1, 1, 1, 1])
    back = net.op("Transpose", [c], perm=[0, 2, 3, 1])
    geos = analyze_geometry(net.model(back), net.input, layout="NHWC")
    assert geos[t] == TensorGeometry(1, (2, 3), ReceptiveField.identity(2))
    assert geos[back] == TensorGeometry(3, (1, 2), rf((3, 3), (2, 2), (-1, -1)))


def test_same_padding_needs_sizes():
    """Stride-2 SAME padding depends on the input size: without any shape the RF is unknown."""
    net = Net((3, 16, 16))
    out = net.conv(net.input, 3, 4, 3, strides=[2, 2], auto_pad="SAME_UPPER")
    model = net.model(out)
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    model.graph.input[0].type.tensor_type.shape.dim[3].dim_param = "W"
    geo = analyze_geometry(model, net.input)[out]
    assert geo.spatial_axes == SPATIAL and geo.receptive_field is None
    geo = analyze_geometry(model, net.input, shapes={net.input: (None, 3, 15, 15)})[out]
    assert geo.receptive_field == rf((3, 3), (2, 2), (-1, -1))


def test_constants_are_not_reported():
    net = Net((3, 16, 16))
    shape = net.op("Shape", [net.input])
    out = net.conv(net.input, 3, 4, 3)
    geos = analyze_geometry(net.model(out, shape), net.input)
    assert shape not in geos
    assert not {init.name for init in net.inits} & set(geos)


def test_channels_rebuilt_from_unsqueezed_planes():
    """inception_v3 transform_input: x[:, c] drops the channel axis, Unsqueeze + Concat rebuild it."""
    net = Net((3, 16, 16))
    out = transform_input(net)
    geos = analyze_geometry(net.model(out), net.input)
    gathered = [n.output[0] for n in net.nodes if n.op_type == "Gather"]
    concat = next(n.output[0] for n in net.nodes if n.op_type == "Concat")
    assert geos[gathered[0]] == TensorGeometry(None, (1, 2), ReceptiveField.identity(2))
    assert geos[concat] == TensorGeometry(1, (2, 3), ReceptiveField.identity(2))


def test_receptive_field_box_and_json():
    field = rf((19, 19), (8, 8), (-2, -2))
    assert field.box((0, 3)) == ((-2, 17), (22, 41))
    assert field.clipped_box((0, 3), (67, 30)) == ((0, 17), (22, 30))
    assert field.to_json() == {"size": [19, 19], "stride": [8, 8], "offset": [-2, -2]}
    assert isinstance(field.to_json()["size"][0], int)
    half = rf((2.5, 1), (0.5, 1), (-1, 0))
    assert half.to_json() == {"size": [2.5, 1], "stride": [0.5, 1], "offset": [-1, 0]}
    assert half.clipped_box((3, 0), (10, 10)) == ((0, 3), (0, 1))  # [0.5, 3.0) rounds out to [0, 3)
    with pytest.raises(ValueError):
        field.box((1,))


# ------------------------------------------------------------------------------------------------
# empirical ground truth with ONNX Runtime
# ------------------------------------------------------------------------------------------------

def alexnet_like(n):
    c = n.op("Relu", [n.conv(n.input, n.shape[0], 4, 11, strides=[4, 4], pads=[2, 2, 2, 2])])
    p = n.op("MaxPool", [c], kernel_shape=[3, 3], strides=[2, 2])
    c = n.op("Relu", [n.conv(p, 4, 4, 5, pads=[2, 2, 2, 2])])
    return n.op("MaxPool", [c], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)


def resnet_like(n):
    c = n.op("Relu", [n.conv(n.input, 3, 4, 7, strides=[2, 2], pads=[3, 3, 3, 3])])
    p = n.op("MaxPool", [c], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    a = n.conv(n.op("Relu", [n.conv(p, 4, 4, 3, pads=[1] * 4)]), 4, 4, 3, pads=[1] * 4)
    r = n.op("Relu", [n.op("Add", [a, p])])
    b = n.conv(n.op("Relu", [n.conv(r, 4, 4, 3, strides=[2, 2], pads=[1] * 4)]), 4, 4, 3, pads=[1] * 4)
    return n.op("Relu", [n.op("Add", [b, n.conv(r, 4, 4, 1, strides=[2, 2])])])


def inception_like(n):
    stem = n.op("Relu", [n.conv(n.input, 3, 3, 3, pads=[1] * 4)])
    branches = [
        n.conv(stem, 3, 2, 1),
        n.conv(n.conv(stem, 3, 2, (1, 7), pads=[0, 3, 0, 3]), 2, 2, (7, 1), pads=[3, 0, 3, 0]),
        n.conv(stem, 3, 2, 3, pads=[0, 0, 2, 2]),  # asymmetric: looks down/right
        n.conv(n.op("MaxPool", [stem], kernel_shape=[3, 3], pads=[1] * 4), 3, 2, 1),
        n.conv(stem, 3, 2, 3, pads=[2, 1, 0, 1]),  # looks up
    ]
    return n.op("Concat", branches, axis=1)


def transform_input_net(n):
    return n.op("Relu", [transform_input(n)])


def same_pad_slice(n):  # SAME on odd size, padded avg pool, Pad, Slice with a step, Split
    c = n.conv(n.input, 3, 4, 3, strides=[2, 2], auto_pad="SAME_UPPER")
    p = n.op("AveragePool", [c], kernel_shape=[3, 3], strides=[1, 1], auto_pad="SAME_LOWER")
    p = n.op("Pad", [p, n.const([0, 0, 1, 2, 0, 0, 0, 1])])
    s = n.op("Slice", [p, n.const([1, 1]), n.const([100, 100]), n.const([2, 3]), n.const([2, 1])])
    return n.op("Split", [s, n.const([3, 10])], outputs=2, axis=3)[1]  # W: 21 -> 11 -> 14 -> 13


def dilated(n):
    c = n.conv(n.input, 3, 3, 3, dilations=[2, 2], pads=[2, 2, 2, 2])
    return n.conv(n.op("MaxPool", [c], kernel_shape=[2, 2], strides=[2, 2]), 3, 3, 3, dilations=[2, 3], pads=[1] * 4)


def nhwc_net(n):
    t = n.op("Transpose", [n.input], perm=[0, 3, 1, 2])
    c = n.conv(t, 3, 4, 3, strides=[2, 2], pads=[1, 1, 1, 1])
    back = n.op("Transpose", [c], perm=[0, 2, 3, 1])
    return n.op("Relu", [n.op("MatMul", [back, n.const(np.full((4, 5), 0.25), np.float32)])])


def focus_net(n):  # YOLOv5 Focus: four strided slices concatenated on channels
    parts = [n.op("Slice", [n.input, n.const([h, w]), n.const([100, 100]), n.const([2, 3]), n.const([2, 2])])
             for h, w in ((0, 0), (1, 0), (0, 1), (1, 1))]
    return n.conv(n.op("Concat", parts, axis=1), 12, 4, 3, pads=[1] * 4)


def unet_nearest(n):
    down = n.op("Relu", [n.conv(n.input, 3, 4, 3, strides=[2, 2], pads=[1] * 4)])
    up = n.op("Resize", [down, "", n.const([1, 1, 2, 2], np.float32)], mode="nearest",
              coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    return n.op("Add", [up, n.conv(n.input, 3, 4, 3, pads=[1] * 4)])


def unet_linear(n):
    down = n.op("Relu", [n.conv(n.input, 3, 4, 3, strides=[2, 2], pads=[1] * 4)])
    return n.op("Resize", [down, "", n.const([1, 1, 2, 2], np.float32)], mode="linear")


def unet_align_corners(n):
    down = n.op("Relu", [n.conv(n.input, 3, 4, 3, strides=[2, 2], pads=[1] * 4)])
    return n.op("Resize", [down, "", "", n.const([23, 17])], mode="linear", axes=[2, 3],
                coordinate_transformation_mode="align_corners")


def unet_half_pixel_nearest(n):
    down = n.op("Relu", [n.conv(n.input, 3, 4, 3, strides=[2, 2], pads=[1] * 4)])
    return n.op("Resize", [down, "", n.const([1, 1, 3, 2.5], np.float32)], mode="nearest")


def deconv(n):
    down = n.op("Relu", [n.conv(n.input, 3, 4, 3, strides=[2, 2], pads=[1] * 4)])
    return n.conv(down, 4, 4, 4, op="ConvTranspose", strides=[2, 2], pads=[1, 1, 1, 1])


def pixel_shuffle(n):
    down = n.op("Relu", [n.conv(n.input, 3, 8, 3, strides=[2, 2], pads=[1] * 4)])
    return n.op("DepthToSpace", [down], blocksize=2)


def _same_pad_amounts_from_shape(n, x, kernel, stride):
    """tf2onnx / TF-style SAME padding computed in the graph from the tensor's shape (H, W):
    pad = max((ceil(size / s) - 1) * s + k - size, 0), begin = pad // 2, end = pad - begin."""
    shape = n.op("Shape", [x])
    sizes = n.op("Gather", [shape, n.const([2, 3])], axis=0)
    out = n.op("Div", [n.op("Sub", [n.op("Add", [sizes, n.const([stride - 1] * 2)]), n.const([0, 0])]),
                       n.const([stride] * 2)])  # ceil(size / s), integer division
    total = n.op("Max", [n.op("Sub", [n.op("Add", [n.op("Mul", [n.op("Sub", [out, n.const([1, 1])]),
                                                                  n.const([stride] * 2)]),
                                                   n.const([kernel] * 2)]), sizes]), n.const([0, 0])])
    begin = n.op("Div", [total, n.const([2, 2])])
    end = n.op("Sub", [total, begin])
    zeros = n.const([0, 0])
    return n.op("Concat", [zeros, begin, zeros, end], axis=0)


def tf_same_from_shape(n):  # the pads of two strided convs computed from the image's shape
    x = n.input
    for cin, cout in ((3, 4), (4, 4)):
        x = n.conv(n.op("Pad", [x, _same_pad_amounts_from_shape(n, x, 3, 2)]), cin, cout, 3, strides=[2, 2])
    return x


def torch_static_pad(n):  # PyTorch's F.pad with a list, as exported: ConstantOfShape/Concat/Reshape/Slice/Transpose
    zeros = n.op("ConstantOfShape", [n.const([4])], value=numpy_helper.from_array(np.zeros(1, np.int64)))
    pads = n.op("Concat", [n.const([0, 1, 0, 1]), zeros], axis=0)
    pads = n.op("Reshape", [pads, n.const([-1, 2])])
    pads = n.op("Slice", [pads, n.const([-1]), n.const([-(2 ** 63) + 1]), n.const([0]), n.const([-1])])
    pads = n.op("Cast", [n.op("Reshape", [n.op("Transpose", [pads], perm=[1, 0]), n.const([-1])])], to=7)
    return n.conv(n.op("Pad", [n.input, pads]), 3, 4, 3, strides=[2, 2])


EMPIRICAL = [
    (torch_static_pad, (3, 20, 20), "NCHW", True),
    # (builder, input shape without batch, layout, exact?)
    (alexnet_like, (3, 48, 48), "NCHW", True),
    (resnet_like, (3, 32, 32), "NCHW", True),
    (inception_like, (3, 18, 18), "NCHW", True),
    (transform_input_net, (3, 20, 20), "NCHW", True),
    (same_pad_slice, (3, 23, 21), "NCHW", True),
    (focus_net, (3, 20, 20), "NCHW", True),
    (nhwc_net, (20, 20, 3), "NHWC", True),
    (dilated, (3, 24, 24), "NCHW", False),  # holes: the box is the hull, tight only inside the image
    (unet_nearest, (3, 20, 20), "NCHW", False),
    (unet_linear, (3, 20, 20), "NCHW", False),
    (unet_align_corners, (3, 20, 20), "NCHW", False),
    (unet_half_pixel_nearest, (3, 20, 20), "NCHW", False),
    (deconv, (3, 20, 20), "NCHW", False),
    (pixel_shuffle, (3, 20, 20), "NCHW", False),
]

DELTA = 1e9


def empirical_supports(model: onnx.ModelProto, input_shape, layout, out_name, geo: TensorGeometry):
    """mask[h, w, *unit_index]: does the unit at that spatial index depend on input pixel (h, w)?"""
    import onnxruntime as ort
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    base = rng.uniform(0.1, 1.0, (1, *input_shape)).astype(np.float32)
    sp = [layout.index(ch) for ch in layout if ch not in "NC"]
    H, W = base.shape[sp[0]], base.shape[sp[1]]
    batch = np.repeat(base, H * W + 1, axis=0)  # the last row stays unperturbed: the reference
    for p in range(H * W):
        index = [p] + [slice(None)] * len(input_shape)
        index[sp[0]], index[sp[1]] = p // W, p % W
        batch[tuple(index)] += DELTA
    out = session.run([out_name], {model.graph.input[0].name: batch})[0].astype(np.float64)
    ref = out[-1:]
    changed = np.abs(out[:-1] - ref) > 1e-3 * (1 + np.abs(ref))
    other = tuple(a for a in range(1, changed.ndim) if a not in geo.spatial_axes)
    changed = changed.any(axis=other) if other else changed  # (H*W, *spatial in tensor-axis order)
    order = np.argsort(np.argsort(geo.spatial_axes))  # tensor-axis order -> input order
    changed = np.transpose(changed, (0, *(1 + order)))
    return changed.reshape(H, W, *changed.shape[1:]), (H, W)


LOADED = [(tf_same_from_shape, (3, 23, 20), "NCHW", True), (tf_same_from_shape, (3, 16, 17), "NCHW", True)]


@pytest.mark.parametrize("build, shape, layout, exact, loaded",
                         [(*c, False) for c in EMPIRICAL] + [(*c, True) for c in LOADED],
                         ids=[c[0].__name__ for c in EMPIRICAL] + [f"{c[0].__name__}-{c[1][1]}x{c[1][2]}" for c in LOADED])
def test_empirical_support(build, shape, layout, exact, loaded):
    """`loaded`: padding computed from the image's shape, which ONNX's shape inference cannot follow
    past the first Pad: the shapes of a loaded model (GraphFacts.of_loaded, by running it) let the
    walk fold every Pad's amounts."""
    net = Net(shape, seed=3)
    out = build(net)
    model = net.model(out)
    facts = None
    if loaded:
        from onnxprobe.graph.facts import GraphFacts

        facts = GraphFacts.of_loaded(model, (1, *shape))
        assert analyze_geometry(model, net.input, layout=layout)[out].receptive_field is None  # without the shapes
    geo = analyze_geometry(model, net.input, layout=layout, facts=facts)[out]
    field = geo.receptive_field
    assert field is not None and len(geo.spatial_axes) == 2
    mask, (H, W) = empirical_supports(model, shape, layout, out, geo)
    units = mask.shape[2:]
    assert units[0] >= 2 and units[1] >= 2
    slack = [0.0, 0.0]
    for i in range(units[0]):
        for j in range(units[1]):
            support = np.argwhere(mask[:, :, i, j])
            box = field.clipped_box((i, j), (H, W))
            raw = field.box((i, j))
            if support.size == 0:  # a unit made of padding only: any box is a superset
                continue
            lo, hi = support.min(axis=0), support.max(axis=0) + 1
            for axis in range(2):
                # the analytic box always contains the support ...
                assert box[axis][0] <= lo[axis] and hi[axis] <= box[axis][1], (i, j, axis, box, lo, hi)
                # ... and is its exact bounding box for exact networks, or inside the image
                inside = raw[axis][0] >= 0 and raw[axis][1] <= (H, W)[axis]
                if exact or (build is dilated and inside):
                    assert (box[axis][0], box[axis][1]) == (lo[axis], hi[axis]), (i, j, axis, box, lo, hi)
                slack[axis] = max(slack[axis], (box[axis][1] - box[axis][0]) - (hi[axis] - lo[axis]))
    if not exact and build is not dilated:
        # fractional strides: looser than the support by at most about two pixels of the source tensor
        # (the box rounds outwards at both ends)
        source_stride = 2
        assert max(slack) <= 2 * source_stride, slack


def test_empirical_middle_and_border_units_alexnet():
    """The brief's explicit check: one unit in the middle and one on the border, by perturbation."""
    net = Net((1, 64, 64), seed=5)
    out = alexnet_like(net)
    model = net.model(out)
    geo = analyze_geometry(model, net.input)[out]
    # conv1 k11 s4 p2 + pool k3 s2: 19, 8, -2; conv k5 p2: 19 + 4*8 = 51, offset -2 - 2*8 = -18;
    # pool k3 s2: 51 + 2*8 = 67, stride 16
    assert geo.receptive_field == rf((67, 67), (16, 16), (-18, -18))
    mask, (H, W) = empirical_supports(model, (1, 64, 64), "NCHW", out, geo)
    assert mask.shape[2:] == (3, 3)
    for unit in ((1, 1), (0, 2)):
        support = np.argwhere(mask[:, :, unit[0], unit[1]])
        box = geo.receptive_field.clipped_box(unit, (H, W))
        assert tuple(zip(support.min(axis=0), support.max(axis=0) + 1)) == box


@pytest.mark.parametrize("op, inputs, made", [
    ("ConstantOfShape", [[64, 1024]], False), ("ConstantOfShape", [[1 << 30, 1 << 30]], False),
    ("ConstantOfShape", [[2, 3]], True),
    ("Expand", [np.zeros((1, 4)), [64, 64, 4]], False), ("Expand", [np.zeros((1, 4)), [3, 4]], True),
    ("Tile", [np.zeros((2, 2)), [128, 128]], False), ("Tile", [np.zeros((2, 2)), [2, 1]], True),
    ("Range", [0, 1 << 16, 1], False), ("Range", [0, 10, 3], True),
    ("Pad", [np.zeros((1, 2)), [0, 0, 0, 1 << 16]], False), ("Pad", [np.zeros((1, 2)), [0, 1, 0, 1]], True),
])
def test_fold_builds_no_large_tensor_from_small_ones(op, inputs, made):
    """fold.py folds small tensors only: a shape, repeat count, range or pad that makes a large
    tensor out of small inputs (an attention mask's ConstantOfShape; a hostile file's 2**60 elements)
    leaves it unknown without building it (before, it was built, then dropped by the walk); small
    ones fold to their values."""
    from types import SimpleNamespace

    from onnxprobe.graph.geometry.fold import fold_node
    from onnxprobe.graph.geometry.registry import SMALL

    values = {f"in{k}": np.asarray(v, np.float32 if op == "Pad" and k == 0 else np.int64 if op != "Expand" or k
                                   else np.float32)
              for k, v in enumerate(inputs)}
    if op == "Range":
        values = {k: v.reshape(()) for k, v in values.items()}
    ctx = SimpleNamespace(symdims={}, opset=18, const=values.get)
    node = helper.make_node(op, list(values), ["out"])
    folded = fold_node(ctx, node, SMALL)
    if not made:
        assert folded is None
        return
    from onnx.reference import ReferenceEvaluator

    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype),
                                                                           v.shape) for k, v in values.items()],
                              [helper.make_value_info("out", onnx.TypeProto())])
    want = ReferenceEvaluator(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])).run(None, values)[0]
    np.testing.assert_array_equal(folded["out"], want)
