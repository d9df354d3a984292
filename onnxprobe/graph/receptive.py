"""Receptive fields and axis roles of every tensor, computed generically from the ONNX graph.

Pure ``onnx`` + ``numpy``: nothing is run. ``analyze_geometry`` walks the graph in topological order
from the image input and gives every tensor that depends on the image a ``TensorGeometry``: which
axis holds channels/units, which axes map onto the image's spatial axes, and, where it can be
proven, the receptive field (RF) of its units.

Conventions
-----------
* Per input spatial axis, unit index ``i`` of a tensor covers the half-open input-pixel interval
  ``[offset + i*stride, offset + i*stride + size)``. Pixel ``p`` is the interval ``[p, p+1)``, so the
  image itself has size 1, stride 1, offset 0. Boxes may reach outside the image (padding); clip them.
* Values are floats: transposed convolutions, upsampling and DepthToSpace give fractional strides
  (and then fractional sizes/offsets). Near-integers are snapped to integers.
* The box is always a *superset* of the input pixels the unit structurally depends on (the support
  of its gradient for some input); for chains of Conv/Pool/Pad/Slice/elementwise ops it is the exact
  bounding box (the classic RF arithmetic). Where a tight affine box does not exist (nearest/linear
  upsampling, ConvTranspose with stride > 1, DepthToSpace), it is the tightest box with the right
  fractional stride, which is looser than the support by less than one input stride.
* Anything that cannot be proven gives ``receptive_field=None`` (never a wrong RF). Tensors that do
  not depend on the image (initializers, Constant, Shape/Size results...) are not in the result.

Rules (default domain only; other domains are unknown)
-------------------------------------------------------
Axis roles are tracked as one label per tensor axis: batch ``N``, channels ``C``, spatial axis k of
the input, or unknown; ``spatial_axes`` is reported only when every input spatial axis is present
exactly once, and the RF is dropped as soon as one is lost.

* Conv / ConvInteger / QLinearConv: kernel from ``kernel_shape`` or the weight's shape; strides,
  dilations, pads, auto_pad (SAME_* needs the input size from ``shapes`` when stride > 1; VALID).
  ``size += (k-1)*d*stride_in``, ``offset -= pad_begin*stride_in``, ``stride *= s``. Weights that
  depend on the image -> unknown.
* ConvTranspose: output j sums inputs i with ``j = i*s - p + t*d``, i.e. i in
  ``[(j + p - (k-1)d)/s, (j + p)/s]``: ``stride /= s``, ``size += (k-1)*d*stride_in/s``,
  ``offset += (p - (k-1)*d)*stride_in/s``. Exact for s = 1; for s > 1 a superset (not every output
  phase touches every tap). ``output_shape``/SAME_* pads are used only when the total padding is even
  (the odd split differs between spec versions and runtimes) -> otherwise None.
* MaxPool/AveragePool/LpPool: like Conv on each channel (ceil_mode only adds units at the end, the
  formula for existing units is unchanged). Global*Pool -> non-spatial (spatial axes become size 1).
* Pad (constant mode): ``offset -= pad_begin*stride`` on spatial axes (negative pads crop). reflect /
  edge / wrap: padded units read mirrored pixels outside their box -> None unless ``approximate``.
* Resize (opset 10+) / Upsample: per spatial axis the exact source indices of every output index are
  enumerated (coordinate_transformation_mode, nearest_mode, linear = 2 taps, cubic = 4 taps, edge
  clamping), and the tightest envelope with slope ``1/scale`` is taken. Needs the input/output
  sizes. Nearest x2 (asymmetric/floor): size += stride/2; linear x2 (half_pixel): size += 1.5*stride.
  tf_crop_and_resize, antialiased downscaling, keep_aspect_ratio_policy != stretch -> None.
* DepthToSpace(b): stride /= b, size += (b-1)/b*stride, offset -= (b-1)/b*stride. SpaceToDepth(b):
  stride *= b, size += (b-1)*stride.
* Elementwise unary ops (Relu, Sigmoid, Clip, BatchNormalization in inference, Dropout, Cast,
  Quantize/DequantizeLinear...) pass geometry through.
* Broadcasting elementwise ops (Add, Mul, Sum, Max, Where, PRelu...) and Concat along a non-spatial
  axis: the union (bounding box) of the image-dependent inputs' RFs; strides must agree and spatial
  axes must line up, otherwise None. Constant inputs (BN scales, biases) never matter. An
  image-dependent input broadcast along a spatial axis (squeeze-excitation gates, global means)
  makes every unit depend on the whole map -> None, or, with ``approximate=True``, it is treated
  like a per-channel constant.
* Concat along a spatial axis: None, except one image-dependent input with constants around it
  (padding by concatenation: offset shifts). Split along a spatial axis: each part is a Slice.
* Transpose permutes labels (NHWC <-> NCHW). Squeeze/Unsqueeze drop/insert axes (squeezing a spatial
  axis loses the RF). Reshape keeps an axis only where it provably maps 1:1 onto an output axis of the
  same size (from ``shapes``); Flatten merges axes (merged groups holding the channels are the unit
  axis). Gemm -> (N, units). MatMul with a constant right operand is a 1x1 conv over the last axis
  (keeps geometry when the contracted axis is not spatial); image-dependent on both sides -> unknown.
* Slice: on a spatial axis ``offset += start*stride``, ``stride *= step`` (step > 0 only; negative
  steps flip the axis -> the axis is lost). Gather with constant indices on a non-spatial axis (e.g.
  inception_v3's transform_input picking colour channels) keeps geometry; on a spatial axis -> lost.
* Softmax/LogSoftmax/Hardmax/LpNormalization/CumSum/LRN over a non-spatial axis keep geometry, over a
  spatial axis -> None. Normalizations whose statistics run over spatial axes (InstanceNormalization,
  GroupNormalization, LayerNormalization/MeanVarianceNormalization including a spatial axis,
  BatchNormalization in training mode) make every unit depend on the whole map -> None, or with
  ``approximate=True`` keep the local RF (the usual convention for style-transfer networks).
* Reduce*/ArgMax/ArgMin over a spatial axis -> non-spatial (RF None); over channels -> kept.
* Everything else (other domains, control flow, attention-style MatMuls...) -> unknown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ["ReceptiveField", "TensorGeometry", "analyze_geometry"]

_TOL = 1e-9


def _snap(value: float) -> float:
    value = float(value)
    r = round(value)
    return float(r) if abs(value - r) <= _TOL * max(1.0, abs(value)) else value


def _num(value: float) -> int | float:
    value = _snap(value)
    return int(value) if value.is_integer() else value


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= _TOL * max(1.0, abs(a), abs(b))


@dataclass(frozen=True)
class ReceptiveField:
    """Per input spatial axis: unit ``i`` covers ``[offset + i*stride, offset + i*stride + size)``."""

    size: tuple[float, ...]
    stride: tuple[float, ...]
    offset: tuple[float, ...]

    @classmethod
    def identity(cls, ndim: int) -> "ReceptiveField":
        return cls((1.0,) * ndim, (1.0,) * ndim, (0.0,) * ndim)

    @property
    def ndim(self) -> int:
        return len(self.size)

    def box(self, index: Sequence[int]) -> tuple[tuple[float, float], ...]:
        """[start, end) in input pixels per spatial axis for the unit at this spatial index."""
        if len(index) != self.ndim:
            raise ValueError(f"index {tuple(index)} has {len(index)} axes, the receptive field has {self.ndim}")
        out = []
        for i, size, stride, offset in zip(index, self.size, self.stride, self.offset):
            start = _snap(offset + i * stride)
            out.append((start, _snap(start + size)))
        return tuple(out)

    def clipped_box(self, index: Sequence[int], image_size: Sequence[int]) -> tuple[tuple[int, int], ...]:
        """The box rounded outwards to whole pixels and clipped to an image of ``image_size`` (may be empty)."""
        out = []
        for (start, end), n in zip(self.box(index), image_size):
            lo = min(max(math.floor(start + _TOL), 0), n)
            hi = max(min(math.ceil(end - _TOL), n), lo)
            out.append((lo, hi))
        return tuple(out)

    def to_json(self) -> dict:
        return {"size": [_num(v) for v in self.size], "stride": [_num(v) for v in self.stride],
                "offset": [_num(v) for v in self.offset]}

    # -- construction helpers used by the propagation rules --------------------------------------
    def _replace_axis(self, axis: int, size: float, stride: float, offset: float) -> "ReceptiveField":
        s, t, o = list(self.size), list(self.stride), list(self.offset)
        s[axis], t[axis], o[axis] = _snap(size), _snap(stride), _snap(offset)
        return ReceptiveField(tuple(s), tuple(t), tuple(o))

    def _window(self, axis: int, kernel: int, stride: int, dilation: int, pad_begin: float) -> "ReceptiveField":
        r, s, o = self.size[axis], self.stride[axis], self.offset[axis]
        return self._replace_axis(axis, r + (kernel - 1) * dilation * s, s * stride, o - pad_begin * s)

    def _envelope(self, axis: int, slope: float, lo: float, hi: float) -> "ReceptiveField":
        """Unit j reads input units in ``[lo + slope*j, hi + slope*j]`` (index space, inclusive)."""
        r, s, o = self.size[axis], self.stride[axis], self.offset[axis]
        return self._replace_axis(axis, r + (hi - lo) * s, s * slope, o + lo * s)

    def _shift(self, axis: int, start: float, step: float = 1) -> "ReceptiveField":
        r, s, o = self.size[axis], self.stride[axis], self.offset[axis]
        return self._replace_axis(axis, r, s * step, o + start * s)


@dataclass(frozen=True)
class TensorGeometry:
    channel_axis: int | None  # axis holding channels/units; None if unknown
    spatial_axes: tuple[int, ...]  # tensor axes for the input's spatial axes, in input order; () if non-spatial
    receptive_field: ReceptiveField | None


# ------------------------------------------------------------------------------------------------
# internal state: one label per axis ("N", "C", int spatial index, or None) + RF
# ------------------------------------------------------------------------------------------------

class _GiveUp(Exception):
    """A rule lacks something it needs (a constant, a shape): the outputs become unknown."""


@dataclass(frozen=True)
class _Geo:
    labels: tuple | None  # None: rank/roles unknown
    rf: ReceptiveField | None

    @property
    def rank(self) -> int:
        if self.labels is None:
            raise _GiveUp
        return len(self.labels)


_UNKNOWN = _Geo(None, None)


def _is_spatial(label) -> bool:
    return isinstance(label, int) and not isinstance(label, bool)


class _Ctx:
    def __init__(self, model: onnx.ModelProto, nsp: int, shapes: dict[str, tuple], approximate: bool):
        self.nsp = nsp
        self.shapes = shapes
        self.approximate = approximate
        self.opset = next((imp.version for imp in model.opset_import if imp.domain in ("", "ai.onnx")), 18)
        self.consts: dict[str, np.ndarray] = {}
        for init in model.graph.initializer:
            if _small(init.dims):
                try:
                    self.consts[init.name] = numpy_helper.to_array(init)
                except Exception:
                    pass
        self.geos: dict[str, _Geo] = {}
        self.symdims: dict[str, list] = {}  # int tensors computed from shapes: ints or dim symbols

    def mk(self, labels, rf) -> _Geo:
        """Normalise: the RF only survives while every spatial axis is present exactly once."""
        if labels is None:
            return _UNKNOWN
        labels = tuple(labels)
        if rf is not None:
            for k in range(self.nsp):
                if labels.count(k) != 1:
                    rf = None
                    break
        return _Geo(labels, rf)

    def shape(self, name: str) -> tuple | None:
        shape = self.shapes.get(name)
        if shape is None:
            return None
        return tuple(d if isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0 else None
                     for d in shape)

    def dim(self, name: str, axis: int) -> int | None:
        shape = self.shape(name)
        if shape is None or not -len(shape) <= axis < len(shape):
            return None
        return shape[axis]

    def const(self, name: str) -> np.ndarray | None:
        if not name:
            return None
        return self.consts.get(name)

    def need_const(self, name: str) -> np.ndarray:
        value = self.const(name)
        if value is None:
            raise _GiveUp
        return value

    def ints(self, node: onnx.NodeProto, attr: str, input_index: int | None) -> list[int] | None:
        """An int list from an attribute, else from a constant input; None if neither is given."""
        a = _attr(node, attr)
        if a is not None:
            return [int(v) for v in np.atleast_1d(a)]
        if input_index is not None and len(node.input) > input_index and node.input[input_index]:
            return [int(v) for v in np.atleast_1d(self.need_const(node.input[input_index]))]
        return None

    def dep(self, name: str) -> bool:
        return bool(name) and name in self.geos


def _small(dims: Iterable[int]) -> bool:
    return int(np.prod(list(dims), dtype=np.int64)) <= 4096


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            value = helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _norm_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise _GiveUp
    return axis % rank


# ------------------------------------------------------------------------------------------------
# rules
# ------------------------------------------------------------------------------------------------

Rule = Callable[[_Ctx, onnx.NodeProto], "list[_Geo] | _Geo"]
_RULES: dict[str, Rule] = {}


def _rule(*ops: str):
    def register(fn):
        for op in ops:
            _RULES[op] = fn
        return fn
    return register


def _only_dep(ctx: _Ctx, node: onnx.NodeProto, allowed: Sequence[int]) -> None:
    """Inputs other than ``allowed`` must not depend on the image."""
    for i, name in enumerate(node.input):
        if i not in allowed and ctx.dep(name):
            raise _GiveUp


@_rule("Identity", "Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "BitwiseNot", "Cast", "Ceil",
       "Celu", "Cos", "Cosh", "Elu", "Erf", "Exp", "Floor", "Gelu", "HardSigmoid", "HardSwish", "IsInf",
       "IsNaN", "LeakyRelu", "Log", "Mish", "Neg", "Not", "Reciprocal", "Relu", "Round", "Selu", "Shrink",
       "Sigmoid", "Sign", "Sin", "Sinh", "Softplus", "Softsign", "Sqrt", "Tan", "Tanh", "ThresholdedRelu",
       "Dropout", "CastLike", "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")
def _unary(ctx, node):
    _only_dep(ctx, node, [0])
    g = ctx.geos[node.input[0]]  # (De)QuantizeLinear: constant per-axis scales keep it pointwise
    if node.op_type == "DynamicQuantizeLinear":  # scale and zero point are computed from the whole tensor
        return [_global_context(ctx, g), _UNKNOWN, _UNKNOWN]
    return g


@_rule("BatchNormalization")
def _batchnorm(ctx, node):
    _only_dep(ctx, node, [0])
    g = ctx.geos[node.input[0]]
    if _attr(node, "training_mode", 0):
        return [_global_context(ctx, g)] + [_UNKNOWN] * (len(node.output) - 1)
    return g


def _global_context(ctx: _Ctx, g: _Geo) -> _Geo:
    """Every unit also depends on statistics over the whole map."""
    return g if ctx.approximate else ctx.mk(g.labels, None)


@_rule("InstanceNormalization", "GroupNormalization")
def _instance_norm(ctx, node):
    _only_dep(ctx, node, [0])
    return _global_context(ctx, ctx.geos[node.input[0]])


@_rule("LayerNormalization")
def _layer_norm(ctx, node):
    _only_dep(ctx, node, [0])
    g = ctx.geos[node.input[0]]
    axis = _norm_axis(_attr(node, "axis", -1), g.rank)
    out = g
    if any(_is_spatial(lab) for lab in g.labels[axis:]):
        out = _global_context(ctx, g)
    return [out] + [_UNKNOWN] * (len(node.output) - 1)


@_rule("MeanVarianceNormalization")
def _mvn(ctx, node):
    g = ctx.geos[node.input[0]]
    axes = [_norm_axis(a, g.rank) for a in _attr(node, "axes", [0, 2, 3])]
    if any(_is_spatial(g.labels[a]) for a in axes):
        return _global_context(ctx, g)
    return g


@_rule("Softmax", "LogSoftmax", "Hardmax", "LpNormalization", "CumSum")
def _along_axis(ctx, node):
    _only_dep(ctx, node, [0])
    g = ctx.geos[node.input[0]]
    if node.op_type == "CumSum":
        axes = [_norm_axis(int(np.asarray(ctx.need_const(node.input[1])).reshape(-1)[0]), g.rank)]
    elif node.op_type in ("Softmax", "LogSoftmax", "Hardmax") and ctx.opset < 13:
        axes = list(range(_norm_axis(_attr(node, "axis", 1), g.rank), g.rank))  # coerced to 2-D
    else:
        axes = [_norm_axis(_attr(node, "axis", -1), g.rank)]
    if any(_is_spatial(g.labels[a]) for a in axes):
        return ctx.mk(g.labels, None)
    return g


@_rule("LRN")
def _lrn(ctx, node):
    g = ctx.geos[node.input[0]]
    if g.rank < 2 or _is_spatial(g.labels[1]):
        return ctx.mk(g.labels, None)
    return g


def _union(ctx: _Ctx, geos: Sequence[_Geo]) -> ReceptiveField | None:
    rfs = [g.rf for g in geos]
    if not rfs or any(rf is None for rf in rfs):
        return None
    first = rfs[0]
    for rf in rfs[1:]:
        if not all(_close(a, b) for a, b in zip(rf.stride, first.stride)):
            return None
    sizes, offsets = [], []
    for axis in range(first.ndim):
        start = min(rf.offset[axis] for rf in rfs)
        end = max(rf.offset[axis] + rf.size[axis] for rf in rfs)
        sizes.append(_snap(end - start))
        offsets.append(_snap(start))
    return ReceptiveField(tuple(sizes), first.stride, tuple(offsets))


@_rule("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Mod", "And", "Or", "Xor", "Equal",
       "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "PRelu", "Where", "BitShift", "BitwiseAnd",
       "BitwiseOr", "BitwiseXor", "Clip")
def _broadcast(ctx, node):
    names = [n for n in node.input if n]
    ranks = []
    for n in names:
        if ctx.dep(n):
            ranks.append(ctx.geos[n].rank)
        else:
            shape = ctx.shape(n)
            if shape is None and ctx.const(n) is not None:
                shape = ctx.const(n).shape
            if shape is None:
                raise _GiveUp  # a constant of unknown rank could add leading axes
            ranks.append(len(shape))
    rank = max(ranks)
    out_shape = ctx.shape(node.output[0])
    if out_shape is not None and len(out_shape) != rank:
        raise _GiveUp

    def aligned_dims(n):
        shape = ctx.shape(n)
        if shape is None and ctx.const(n) is not None:
            shape = ctx.const(n).shape
        r = ctx.geos[n].rank if ctx.dep(n) else len(shape)
        if shape is None or len(shape) != r:
            shape = (None,) * r
        return (1,) * (rank - r) + tuple(shape)

    dims = {n: aligned_dims(n) for n in names}

    def out_dim(axis):
        if out_shape is not None and out_shape[axis] is not None:
            return out_shape[axis]
        known = [dims[n][axis] for n in names]
        if any(d is None for d in known):
            return None
        return max(known)

    deps = [n for n in names if ctx.dep(n)]
    labels: list = [None] * rank
    conflict = False
    for axis in range(rank):
        od = out_dim(axis)
        seen = []
        for n in deps:
            g = ctx.geos[n]
            lab = (None,) * (rank - g.rank) + g.labels
            d = dims[n][axis]
            broadcast = d == 1 and od != 1
            if broadcast:
                if _is_spatial(lab[axis]):
                    conflict = True  # a 1-wide spatial map stretched over the output
                continue
            seen.append(lab[axis])
        if seen and all(s == seen[0] for s in seen):
            labels[axis] = seen[0]
        elif seen:
            labels[axis] = None
            if any(_is_spatial(s) for s in seen):
                conflict = True
    if conflict:
        return ctx.mk(labels, None)
    spatial_out = [a for a in range(rank) if _is_spatial(labels[a])]
    participants = []
    for n in deps:
        g = ctx.geos[n]
        lab = (None,) * (rank - g.rank) + g.labels
        broadcast_spatial = any(dims[n][a] == 1 and out_dim(a) != 1 for a in spatial_out)
        if broadcast_spatial:
            if not ctx.approximate:
                return ctx.mk(labels, None)  # global context: units depend on the whole map
            continue
        if any(lab[a] != labels[a] for a in spatial_out):
            return ctx.mk(labels, None)
        participants.append(g)
    return ctx.mk(labels, _union(ctx, participants) if participants else None)


def _conv_params(ctx: _Ctx, node: onnx.NodeProto, x_name: str, kernel: Sequence[int], transpose: bool = False):
    n = len(kernel)
    strides = list(_attr(node, "strides", [1] * n))
    dilations = list(_attr(node, "dilations", [1] * n))
    pads = list(_attr(node, "pads", [0] * (2 * n)))
    if len(strides) != n or len(dilations) != n or len(pads) != 2 * n:
        raise _GiveUp
    auto_pad = _attr(node, "auto_pad", "NOTSET")
    begins: list[float | None] = list(pads[:n])
    if auto_pad == "VALID":
        begins = [0] * n
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER") and not transpose:
        for t in range(n):
            span = (kernel[t] - 1) * dilations[t] + 1
            if strides[t] == 1:
                total = span - 1
            else:
                size = ctx.dim(x_name, 2 + t)
                if size is None:
                    begins[t] = None
                    continue
                out = -(-size // strides[t])
                total = max(0, (out - 1) * strides[t] + span - size)
            begins[t] = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
    elif auto_pad not in ("NOTSET", "", "VALID") and not transpose:
        raise _GiveUp
    return strides, dilations, begins


def _apply_windows(ctx: _Ctx, g: _Geo, out_labels: list, kernel, strides, dilations, begins, transpose=False):
    rf = g.rf
    for t in range(len(kernel)):
        axis = 2 + t
        lab = g.labels[axis]
        if _is_spatial(lab):
            if rf is None:
                continue
            if begins[t] is None:
                rf = None
                continue
            if transpose:
                k, s, d, p = kernel[t], strides[t], dilations[t], begins[t]
                rf = rf._envelope(lab, 1.0 / s, (p - (k - 1) * d) / s, p / s)
            else:
                rf = rf._window(lab, kernel[t], strides[t], dilations[t], begins[t])
        elif not (kernel[t] == 1 and strides[t] == 1 and (begins[t] or 0) == 0):
            out_labels[axis] = None  # windowing along a non-image axis: its role is lost
    return ctx.mk(out_labels, rf)


@_rule("Conv", "ConvInteger", "QLinearConv")
def _conv(ctx, node):
    x, g, kernel = _conv_geometry(ctx, node, 3 if node.op_type == "QLinearConv" else 1)
    strides, dilations, begins = _conv_params(ctx, node, x, kernel)
    out_labels = [g.labels[0], "C"] + list(g.labels[2:])
    return _apply_windows(ctx, g, out_labels, kernel, strides, dilations, begins)


def _conv_geometry(ctx: _Ctx, node, w_index: int):
    """A convolution's data input, its geometry and the kernel's spatial size (the kernel_shape
    attribute, else the spatial dims of the shape of the weights, input `w_index`)."""
    _only_dep(ctx, node, [0])
    x = node.input[0]
    g = ctx.geos[x]
    if g.rank < 3:
        raise _GiveUp
    kernel = _attr(node, "kernel_shape")
    if kernel is None:
        wshape = ctx.shape(node.input[w_index]) or _const_shape(ctx, node.input[w_index])
        if wshape is None or any(d is None for d in wshape[2:]):
            raise _GiveUp
        kernel = wshape[2:]
    kernel = list(kernel)
    if len(kernel) != g.rank - 2:
        raise _GiveUp
    return x, g, kernel


def _const_shape(ctx: _Ctx, name: str):
    value = ctx.const(name)
    return None if value is None else tuple(value.shape)


@_rule("ConvTranspose")
def _conv_transpose(ctx, node):
    x, g, kernel = _conv_geometry(ctx, node, 1)
    n = len(kernel)
    strides, dilations, begins = _conv_params(ctx, node, x, kernel, transpose=True)
    auto_pad = _attr(node, "auto_pad", "NOTSET")
    output_shape = _attr(node, "output_shape")
    if output_shape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out_pad = list(_attr(node, "output_padding", [0] * n))
        begins = []
        for t in range(n):
            size = ctx.dim(x, 2 + t)
            if size is None:
                begins.append(None)
                continue
            out = list(output_shape)[-n:][t] if output_shape is not None else size * strides[t]
            total = strides[t] * (size - 1) + out_pad[t] + (kernel[t] - 1) * dilations[t] + 1 - out
            begins.append(total // 2 if total >= 0 and total % 2 == 0 else None)
    out_labels = [g.labels[0], "C"] + list(g.labels[2:])
    return _apply_windows(ctx, g, out_labels, kernel, strides, dilations, begins, transpose=True)


@_rule("MaxPool", "AveragePool", "LpPool")
def _pool(ctx, node):
    x = node.input[0]
    g = ctx.geos[x]
    kernel = _attr(node, "kernel_shape")
    if kernel is None or len(kernel) != g.rank - 2:
        raise _GiveUp
    kernel = list(kernel)
    strides, dilations, begins = _conv_params(ctx, node, x, kernel)
    out = _apply_windows(ctx, g, list(g.labels), kernel, strides, dilations, begins)
    return [out] * len(node.output)  # MaxPool's indices share the geometry


@_rule("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
def _global_pool(ctx, node):
    g = ctx.geos[node.input[0]]
    return ctx.mk(list(g.labels[:2]) + [None] * (g.rank - 2), None)


@_rule("Pad")
def _pad(ctx, node):
    _only_dep(ctx, node, [0])
    g = ctx.geos[node.input[0]]
    rank = g.rank
    pads = ctx.ints(node, "pads", 1)
    if pads is None:
        raise _GiveUp
    axes = ctx.ints(node, "axes", 3) if ctx.opset >= 18 else None
    axes = list(range(rank)) if axes is None else [_norm_axis(a, rank) for a in axes]
    if len(pads) != 2 * len(axes):
        raise _GiveUp
    mode = _attr(node, "mode", "constant")
    rf = g.rf
    for i, axis in enumerate(axes):
        begin, end = pads[i], pads[i + len(axes)]
        lab = g.labels[axis]
        if not _is_spatial(lab) or (begin == 0 and end == 0) or rf is None:
            continue
        if mode != "constant" and not ctx.approximate:
            rf = None
            continue
        rf = rf._shift(lab, -begin)
    return ctx.mk(g.labels, rf)


def _resize_sources(mode: str, ctm: str, nearest_mode: str, in_size: int, out_size: int, scale: float,
                    cubic: bool = False):
    """For every output index, the (min, max) input index it reads; and the affine slope."""
    j = np.arange(out_size, dtype=np.float64)
    if ctm == "half_pixel":
        x = (j + 0.5) / scale - 0.5
    elif ctm == "half_pixel_symmetric":
        adjustment = out_size / (scale * in_size)
        center = in_size / 2
        x = center * (1 - adjustment) + (j + 0.5) / scale - 0.5
    elif ctm == "pytorch_half_pixel":
        x = (j + 0.5) / scale - 0.5 if out_size > 1 else np.zeros_like(j)
    elif ctm == "align_corners":
        x = j * (in_size - 1) / (out_size - 1) if out_size > 1 else np.zeros_like(j)
    elif ctm == "asymmetric":
        x = j / scale
    elif ctm == "tf_half_pixel_for_nn":
        x = (j + 0.5) / scale
    else:
        raise _GiveUp
    slope = (x[-1] - x[0]) / (out_size - 1) if out_size > 1 else 1.0 / scale
    # exact-arithmetic ties (integers, halves) must not flip with float rounding: snap to them
    halves = np.round(x * 2) / 2
    x = np.where(np.abs(x - halves) <= 1e-9 * np.maximum(1.0, np.abs(x)), halves, x)
    if mode == "nearest":
        if nearest_mode == "round_prefer_floor":
            cands = np.ceil(x - 0.5)[None]
        elif nearest_mode == "round_prefer_ceil":
            cands = np.floor(x + 0.5)[None]
        elif nearest_mode == "floor":
            cands = np.floor(x)[None]
        elif nearest_mode == "ceil":
            cands = np.ceil(x)[None]
        elif nearest_mode == "any":  # Upsample: runtimes differ, take every candidate
            cands = np.stack([np.floor(x), np.ceil(x - 0.5), np.floor(x + 0.5)])
        else:
            raise _GiveUp
    else:
        f = np.floor(x)
        nonzero = x > f  # an integer coordinate gives the right-hand tap weight 0
        taps = [f, np.where(nonzero, f + 1, f)]
        if cubic:
            taps += [np.where(nonzero, f - 1, f), np.where(nonzero, f + 2, f)]
        cands = np.stack(taps)
    cands = np.clip(cands, 0, in_size - 1)
    return cands.min(axis=0), cands.max(axis=0), slope, j


@_rule("Resize", "Upsample")
def _resize(ctx, node):
    _only_dep(ctx, node, [0])
    x, y = node.input[0], node.output[0]
    g = ctx.geos[x]
    rank = g.rank
    mode = _attr(node, "mode", "nearest")
    if mode not in ("nearest", "linear", "bilinear", "cubic"):
        raise _GiveUp
    if node.op_type == "Upsample":
        ctm, nearest_mode = "asymmetric", "any"
        scales = _attr(node, "scales")
        if scales is None and len(node.input) > 1:
            scales = ctx.const(node.input[1])
        sizes = None
        axes = list(range(rank))
    else:
        ctm = _attr(node, "coordinate_transformation_mode", "half_pixel" if ctx.opset >= 11 else "asymmetric")
        nearest_mode = _attr(node, "nearest_mode", "round_prefer_floor")
        if ctx.opset < 11:
            ctm = "asymmetric"
            nearest_mode = "any"
        if _attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
            raise _GiveUp
        scale_index = 1 if ctx.opset < 11 else 2
        scales = ctx.const(node.input[scale_index]) if len(node.input) > scale_index and node.input[scale_index] else None
        if scales is not None and np.size(scales) == 0:
            scales = None
        sizes = ctx.const(node.input[3]) if len(node.input) > 3 and node.input[3] else None
        axes = _attr(node, "axes")
        axes = list(range(rank)) if axes is None else [_norm_axis(a, rank) for a in axes]
    if ctm == "tf_crop_and_resize":
        raise _GiveUp
    scales = None if scales is None else [float(v) for v in np.asarray(scales).reshape(-1)]
    if scales is not None and len(scales) != len(axes):
        raise _GiveUp
    in_shape, out_shape = ctx.shape(x), ctx.shape(y)
    labels = list(g.labels)
    rf = g.rf
    for i, axis in enumerate(axes):
        in_size = in_shape[axis] if in_shape is not None else None
        out_size = out_shape[axis] if out_shape is not None else None
        if sizes is not None and out_size is None:
            out_size = int(np.asarray(sizes).reshape(-1)[i])
        scale = scales[i] if scales is not None else None
        if out_size is None and scale is not None and in_size is not None:
            out_size = int(math.floor(in_size * scale))
        if scale is None and in_size and out_size is not None:
            scale = out_size / in_size
        if scale is not None and scale == 1 and (in_size is None or out_size is None or in_size == out_size) \
                and ctm != "tf_half_pixel_for_nn":
            continue  # untouched axis
        if not _is_spatial(labels[axis]):
            labels[axis] = None
            continue
        if rf is None:
            continue
        if in_size is None or out_size is None or scale is None or scale <= 0 or out_size == 0:
            rf = None
            continue
        if _attr(node, "antialias", 0) and scale < 1 and mode != "nearest":
            rf = None
            continue
        lo, hi, slope, j = _resize_sources("nearest" if mode == "nearest" else "linear", ctm, nearest_mode,
                                           in_size, out_size, scale, cubic=(mode == "cubic"))
        rf = rf._envelope(labels[axis], slope, float(np.min(lo - slope * j)), float(np.max(hi - slope * j)))
    return ctx.mk(labels, rf)


@_rule("DepthToSpace", "SpaceToDepth")
def _depth_space(ctx, node):
    g = ctx.geos[node.input[0]]
    if g.rank != 4 or _is_spatial(g.labels[1]):
        raise _GiveUp
    b = int(_attr(node, "blocksize"))
    rf = g.rf
    for axis in (2, 3):
        lab = g.labels[axis]
        if not _is_spatial(lab):
            return ctx.mk([g.labels[0], "C", None, None], None)
        if rf is None:
            continue
        if node.op_type == "DepthToSpace":
            rf = rf._envelope(lab, 1.0 / b, -(b - 1) / b, 0.0)
        else:
            rf = rf._envelope(lab, float(b), 0.0, float(b - 1))
    return ctx.mk([g.labels[0], "C"] + list(g.labels[2:]), rf)


@_rule("Concat")
def _concat(ctx, node):
    names = [n for n in node.input if n]
    deps = [n for n in names if ctx.dep(n)]
    rank = ctx.geos[deps[0]].rank
    axis = _norm_axis(_attr(node, "axis"), rank)
    geos = [ctx.geos[n] for n in deps]
    if any(g.rank != rank for g in geos):
        raise _GiveUp
    labels = [geos[0].labels[a] if all(g.labels[a] == geos[0].labels[a] for g in geos) else None
              for a in range(rank)]
    cat_label = labels[axis]
    if any(_is_spatial(g.labels[axis]) for g in geos):
        if len(deps) == 1 and geos[0].rf is not None:
            before = 0
            for n in names:
                if n == deps[0]:
                    break
                d = ctx.dim(n, axis)
                if d is None:
                    d = _const_shape(ctx, n)[axis] if ctx.const(n) is not None else None
                if d is None:
                    return ctx.mk(labels, None)
                before += d
            return ctx.mk(labels, geos[0].rf._shift(cat_label, -before))
        labels[axis] = None
        return ctx.mk(labels, None)
    for a in range(rank):
        if any(_is_spatial(g.labels[a]) for g in geos) and labels[a] is None:
            return ctx.mk(labels, None)
    return ctx.mk(labels, _union(ctx, geos))


@_rule("Split")
def _split(ctx, node):
    _only_dep(ctx, node, [0])
    x = node.input[0]
    g = ctx.geos[x]
    axis = _norm_axis(_attr(node, "axis", 0), g.rank)
    lab = g.labels[axis]
    if not _is_spatial(lab) or g.rf is None:
        return [g] * len(node.output)
    split = ctx.ints(node, "split", 1)
    if split is None:
        size = ctx.dim(x, axis)
        count = len(node.output)
        if size is None:
            return [ctx.mk(g.labels, None)] * count
        chunk = -(-size // count)
        split = [min(chunk, max(0, size - chunk * i)) for i in range(count)]
    starts = np.concatenate([[0], np.cumsum(split)[:-1]])
    return [ctx.mk(g.labels, g.rf._shift(lab, float(s))) for s in starts]


@_rule("Slice")
def _slice(ctx, node):
    _only_dep(ctx, node, [0])
    x = node.input[0]
    g = ctx.geos[x]
    rank = g.rank
    if ctx.opset < 10:
        starts, ends, axes = _attr(node, "starts"), _attr(node, "ends"), _attr(node, "axes")
        steps = None
    else:
        starts, ends = ctx.ints(node, "", 1), ctx.ints(node, "", 2)
        axes, steps = ctx.ints(node, "", 3), ctx.ints(node, "", 4)
    if starts is None:
        raise _GiveUp
    axes = list(range(len(starts))) if axes is None else [_norm_axis(a, rank) for a in axes]
    steps = [1] * len(starts) if steps is None else steps
    labels, rf = list(g.labels), g.rf
    for axis, start, step in zip(axes, starts, steps):
        lab = labels[axis]
        if not _is_spatial(lab):
            continue
        if step <= 0:
            labels[axis] = None  # reversed: the axis no longer maps forwards onto the image
            continue
        size = ctx.dim(x, axis)
        if start < 0:
            if size is None:
                rf = None
                continue
            start = max(start + size, 0)
        elif size is not None:
            start = min(start, size)
        if rf is not None:
            rf = rf._shift(lab, float(start), float(step))
    return ctx.mk(labels, rf)


@_rule("Gather")
def _gather(ctx, node):
    _only_dep(ctx, node, [0])
    g = ctx.geos[node.input[0]]
    axis = _norm_axis(_attr(node, "axis", 0), g.rank)
    indices = ctx.shape(node.input[1])
    if indices is None:
        value = ctx.const(node.input[1])
        if value is None:
            raise _GiveUp
        indices = value.shape
    lab = g.labels[axis]
    kept = [lab] if len(indices) == 1 and not _is_spatial(lab) else [None] * len(indices)
    return ctx.mk(list(g.labels[:axis]) + kept + list(g.labels[axis + 1:]), g.rf)


@_rule("Transpose")
def _transpose(ctx, node):
    g = ctx.geos[node.input[0]]
    perm = _attr(node, "perm", list(range(g.rank))[::-1])
    if sorted(perm) != list(range(g.rank)):
        raise _GiveUp
    return ctx.mk([g.labels[p] for p in perm], g.rf)


@_rule("Squeeze")
def _squeeze(ctx, node):
    _only_dep(ctx, node, [0])
    x = node.input[0]
    g = ctx.geos[x]
    axes = ctx.ints(node, "axes", 1)
    if axes is None:
        shape = ctx.shape(x)
        if shape is None or any(d is None for d in shape):
            raise _GiveUp
        axes = [a for a, d in enumerate(shape) if d == 1]
    axes = {_norm_axis(a, g.rank) for a in axes}
    return ctx.mk([lab for a, lab in enumerate(g.labels) if a not in axes], g.rf)


@_rule("Unsqueeze")
def _unsqueeze(ctx, node):
    _only_dep(ctx, node, [0])
    g = ctx.geos[node.input[0]]
    axes = ctx.ints(node, "axes", 1)
    if axes is None:
        raise _GiveUp
    rank = g.rank + len(axes)
    axes = {_norm_axis(a, rank) for a in axes}
    it = iter(g.labels)
    return ctx.mk([None if a in axes else next(it) for a in range(rank)], g.rf)


def _merge(labels: Sequence) -> object:
    if len(labels) == 1:
        return labels[0]
    if "C" in labels and "N" not in labels:
        return "C"  # channels merged with other axes: still the unit axis
    return None


@_rule("Flatten")
def _flatten(ctx, node):
    g = ctx.geos[node.input[0]]
    axis = _attr(node, "axis", 1)
    axis = axis + g.rank if axis < 0 else axis
    if not 0 <= axis <= g.rank:
        raise _GiveUp
    first = _merge(g.labels[:axis]) if axis > 0 else None
    second = _merge(g.labels[axis:]) if axis < g.rank else None
    return ctx.mk([first, second], g.rf)


def _dim_key(ctx: _Ctx, name: str, axis: int):
    """A dim as an int, or a hashable symbol; batch axes (label N) all share one symbol."""
    d = ctx.dim(name, axis)
    if d is not None:
        return d
    g = ctx.geos.get(name)
    if g is not None and g.labels is not None and g.labels[axis] == "N":
        return ("N",)
    return ("dim", name, axis)


def _shape_values(ctx: _Ctx, node: onnx.NodeProto) -> list | None:
    """Values of small int tensors computed from shapes (Shape -> Gather/Slice/Concat/...): ints or symbols."""
    op = node.op_type

    def vals(name):
        if name in ctx.symdims:
            return list(ctx.symdims[name])
        value = ctx.const(name)
        return None if value is None else [int(v) for v in np.asarray(value).reshape(-1)]

    if op == "Shape":
        rank = len(ctx.geos[node.input[0]].labels) if ctx.dep(node.input[0]) and ctx.geos[node.input[0]].labels \
            else (len(ctx.shape(node.input[0])) if ctx.shape(node.input[0]) is not None else None)
        if rank is None:
            return None
        start, end = _attr(node, "start", 0), _attr(node, "end", rank)
        return [_dim_key(ctx, node.input[0], a) for a in range(rank)][slice(start, end)]
    if op in ("Identity", "Cast", "Squeeze", "Unsqueeze"):
        return vals(node.input[0])
    if op == "Concat":
        parts = [vals(n) for n in node.input]
        return None if any(p is None for p in parts) else [v for p in parts for v in p]
    if op == "Gather" and _attr(node, "axis", 0) == 0:
        data, idx = vals(node.input[0]), ctx.const(node.input[1])
        if data is None or idx is None:
            return None
        return [data[int(i)] for i in np.asarray(idx).reshape(-1)]
    return None


@_rule("Reshape")
def _reshape(ctx, node):
    _only_dep(ctx, node, [0])
    x, y = node.input[0], node.output[0]
    g = ctx.geos[x]
    in_dims = [_dim_key(ctx, x, a) for a in range(g.rank)]
    out_shape = ctx.shape(y)
    target = ctx.symdims.get(node.input[1])
    if target is None and ctx.const(node.input[1]) is not None:
        target = [int(v) for v in ctx.const(node.input[1]).reshape(-1)]
    if target is not None:
        out_dims = []
        for k, e in enumerate(target):
            if e == 0 and not _attr(node, "allowzero", 0):
                out_dims.append(in_dims[k])
            elif isinstance(e, int) and e > 0 and out_shape is not None and out_shape[k] is not None:
                out_dims.append(out_shape[k])
            else:
                out_dims.append(e if e != -1 else None)
        if out_shape is not None and len(out_shape) == len(out_dims):
            out_dims = [d if d is not None or out_shape[k] is None else out_shape[k] for k, d in enumerate(out_dims)]
    elif out_shape is not None:
        out_dims = [d if d is not None else ("out", k) for k, d in enumerate(out_shape)]
    else:
        raise _GiveUp
    # symbols become distinct large primes so that products of groups still identify them
    primes = iter([1_000_003, 1_000_033, 1_000_037, 1_000_039, 1_000_081, 1_000_099, 1_000_117, 1_000_121])
    table: dict = {}

    def num(d):
        if isinstance(d, int):
            return d
        if d not in table:
            table[d] = next(primes)
        return table[d]

    try:
        in_dims = [num(d) for d in in_dims]
        out_dims = [None if d is None else num(d) for d in out_dims]
    except StopIteration:
        raise _GiveUp from None
    if out_dims.count(None) > 1:
        raise _GiveUp
    if None in out_dims:  # the -1 (symbols are primes, so a symbolic quotient stays exact)
        known = int(np.prod([d for d in out_dims if d is not None], dtype=object))
        total = int(np.prod(in_dims, dtype=object))
        if known == 0 or total % known:
            raise _GiveUp
        out_dims[out_dims.index(None)] = total // known
    labels = [None] * len(out_dims)
    i = j = 0
    ni, no = len(in_dims), len(out_dims)
    while i < ni or j < no:
        # size-1 axes carry nothing: dropping or inserting them is free
        if i < ni and in_dims[i] == 1 and (j >= no or out_dims[j] != 1):
            i += 1
            continue
        if j < no and out_dims[j] == 1 and (i >= ni or in_dims[i] != 1):
            j += 1
            continue
        if i >= ni or j >= no:
            break
        gi, gj = [i], [j]
        pi, pj = in_dims[i], out_dims[j]
        i, j = i + 1, j + 1
        while pi != pj:
            if pi < pj:
                if i >= ni:
                    return ctx.mk([None] * no, None)
                pi *= in_dims[i]
                gi.append(i)
                i += 1
            else:
                if j >= no:
                    return ctx.mk([None] * no, None)
                pj *= out_dims[j]
                gj.append(j)
                j += 1
        if len(gj) == 1:
            labels[gj[0]] = _merge([g.labels[a] for a in gi])
        # an input axis split over several output axes: roles lost
    return ctx.mk(labels, g.rf)


@_rule("Gemm")
def _gemm(ctx, node):
    _only_dep(ctx, node, [0])
    g = ctx.geos[node.input[0]]
    if g.rank != 2:
        raise _GiveUp
    row = g.labels[1] if _attr(node, "transA", 0) else g.labels[0]
    return ctx.mk([row if row == "N" else None, "C"], None)


@_rule("MatMul", "MatMulInteger", "QLinearMatMul")
def _matmul(ctx, node):
    a_index, b_index = (0, 3) if node.op_type == "QLinearMatMul" else (0, 1)
    _only_dep(ctx, node, [a_index, b_index])
    a, b = node.input[a_index], node.input[b_index]
    if ctx.dep(a) and ctx.dep(b):
        raise _GiveUp
    other = b if ctx.dep(a) else a
    other_shape = ctx.shape(other) or _const_shape(ctx, other)
    if other_shape is None:
        raise _GiveUp
    g = ctx.geos[a if ctx.dep(a) else b]
    if g.rank < 2 or len(other_shape) < 2:
        raise _GiveUp
    batch_rank = max(g.rank, len(other_shape)) - 2
    batch = (None,) * (batch_rank - (g.rank - 2)) + tuple(g.labels[:-2])
    if ctx.dep(a):  # rows of A -> rows of the result; the last axis becomes units
        labels = list(batch) + [g.labels[-2], "C"]
    else:  # columns of B -> columns of the result
        labels = list(batch) + [None, g.labels[-1]]
    return ctx.mk(labels, g.rf)


@_rule("ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd", "ReduceL1", "ReduceL2",
       "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin")
def _reduce(ctx, node):
    _only_dep(ctx, node, [0])
    g = ctx.geos[node.input[0]]
    keep = _attr(node, "keepdims", 1)
    if node.op_type in ("ArgMax", "ArgMin"):
        axes = [_attr(node, "axis", 0)]
    else:
        axes = ctx.ints(node, "axes", 1)
        if not axes:
            if _attr(node, "noop_with_empty_axes", 0):
                return g
            axes = list(range(g.rank))
    axes = {_norm_axis(a, g.rank) for a in axes}
    if keep:
        labels = [None if a in axes else lab for a, lab in enumerate(g.labels)]
    else:
        labels = [lab for a, lab in enumerate(g.labels) if a not in axes]
    return ctx.mk(labels, g.rf)


@_rule("Expand", "Tile")
def _expand(ctx, node):
    _only_dep(ctx, node, [0])
    x, y = node.input[0], node.output[0]
    g = ctx.geos[x]
    in_shape, out_shape = ctx.shape(x), ctx.shape(y)
    if out_shape is None or len(out_shape) < g.rank:
        raise _GiveUp
    labels = [None] * (len(out_shape) - g.rank) + list(g.labels)
    in_dims = [None] * (len(out_shape) - g.rank) + list(in_shape or [None] * g.rank)
    for a in range(len(out_shape)):
        if labels[a] is not None and (in_dims[a] is None or in_dims[a] != out_shape[a]):
            labels[a] = None
    return ctx.mk(labels, g.rf)


@_rule("Shape", "Size")
def _shape_only(ctx, node):
    return None  # depends on the shape only: a constant as far as geometry goes


@_rule("Constant")
def _constant(ctx, node):
    return None


# ------------------------------------------------------------------------------------------------
# driver
# ------------------------------------------------------------------------------------------------

def _topological(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    produced = {out for node in graph.node for out in node.output if out}
    ready = set()
    order, pending = [], list(graph.node)
    while pending:
        progress = []
        rest = []
        for node in pending:
            if all(not n or n not in produced or n in ready for n in node.input):
                progress.append(node)
            else:
                rest.append(node)
        if not progress:  # a cycle (invalid graph): keep the file order for the rest
            order += rest
            break
        for node in progress:
            ready.update(o for o in node.output if o)
        order += progress
        pending = rest
    return order


def _inferred_shapes(model: onnx.ModelProto, overrides: dict[str, tuple]) -> dict[str, tuple]:
    """Shapes from ONNX shape inference on a copy without large weights (they become typed inputs)."""
    graph = model.graph
    light = onnx.GraphProto(name=graph.name)
    light.node.extend(graph.node)
    light.output.extend(graph.output)
    light.value_info.extend(graph.value_info)
    for value in graph.input:
        v = light.input.add()
        v.CopyFrom(value)
        shape = overrides.get(value.name)
        if shape is not None and v.type.HasField("tensor_type") and len(shape) == len(v.type.tensor_type.shape.dim):
            for d, s in zip(v.type.tensor_type.shape.dim, shape):
                if isinstance(s, (int, np.integer)) and s >= 0:
                    d.Clear()
                    d.dim_value = int(s)
    input_names = {v.name for v in graph.input}
    for init in graph.initializer:
        if _small(init.dims):
            light.initializer.append(init)
        elif init.name not in input_names:
            light.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    light_model = onnx.ModelProto(ir_version=model.ir_version, graph=light)
    light_model.opset_import.extend(model.opset_import)
    light_model.functions.extend(model.functions)
    try:
        inferred = onnx.shape_inference.infer_shapes(light_model, check_type=False, strict_mode=False, data_prop=True)
    except Exception:
        inferred = light_model
    shapes = {}
    for value in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        tt = value.type.tensor_type
        if value.type.HasField("tensor_type") and tt.HasField("shape"):
            shapes[value.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
    for init in graph.initializer:
        shapes[init.name] = tuple(init.dims)
    return shapes


def _layout_labels(layout: str) -> tuple[tuple, int]:
    labels, k = [], 0
    for ch in layout.upper():
        if ch == "N":
            labels.append("N")
        elif ch == "C":
            labels.append("C")
        else:
            labels.append(k)
            k += 1
    if labels.count("C") > 1 or labels.count("N") > 1 or k == 0:
        raise ValueError(f"layout {layout!r} needs at most one N, at most one C and at least one spatial axis")
    return tuple(labels), k


def analyze_geometry(model: onnx.ModelProto, input_name: str, layout: str = "NCHW",
                     shapes: dict[str, tuple] | None = None, *, approximate: bool = False) -> dict[str, TensorGeometry]:
    """Axis roles and receptive fields of every tensor that depends on ``input_name``.

    ``layout`` names the input's axes (``N``, ``C``, anything else spatial in input order: "NCHW",
    "NHWC", "NCW", "NCDHW"...). ``shapes`` maps tensor names to shapes (ints, None/str for unknown
    dims); they override ONNX shape inference, which fills in the rest. ``approximate=True`` keeps the
    local RF through global-context ops (squeeze-excitation gates, instance/group/layer norm statistics
    over the map) and reflect/edge/wrap padding, where the strict answer is None.
    """
    labels, nsp = _layout_labels(layout)
    overrides = dict(shapes or {})
    all_shapes = _inferred_shapes(model, overrides)
    all_shapes.update({k: tuple(v) for k, v in overrides.items() if v is not None})
    in_shape = all_shapes.get(input_name)
    if in_shape is not None and len(in_shape) != len(labels):
        raise ValueError(f"layout {layout!r} has {len(labels)} axes but input {input_name!r} has rank {len(in_shape)}")
    ctx = _Ctx(model, nsp, all_shapes, approximate)
    ctx.geos[input_name] = _Geo(labels, ReceptiveField.identity(nsp))
    for node in _topological(model.graph):
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.output:
            value = _constant_value(node)
            if value is not None:
                ctx.consts[node.output[0]] = value
            continue
        if node.op_type in ("Shape", "Identity", "Cast", "Squeeze", "Unsqueeze", "Concat", "Gather") \
                and node.output and (node.op_type == "Shape" or any(n in ctx.symdims for n in node.input)):
            try:
                values = _shape_values(ctx, node)
            except (_GiveUp, IndexError, KeyError, TypeError, ValueError):
                values = None
            if values is not None:
                ctx.symdims[node.output[0]] = values
                continue
        if not any(ctx.dep(n) for n in node.input):
            if node.op_type in ("Identity", "Cast") and node.input and node.input[0] in ctx.consts:
                ctx.consts[node.output[0]] = ctx.consts[node.input[0]]
            continue
        rule = _RULES.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        outs: list[_Geo | None]
        if rule is None:
            outs = [_UNKNOWN] * len(node.output)
        else:
            try:
                result = rule(ctx, node)
            except (_GiveUp, IndexError, KeyError, TypeError, ValueError):
                result = _UNKNOWN
            if result is None:
                continue
            outs = result if isinstance(result, list) else [result] * len(node.output)
        for name, geo in zip(node.output, outs):
            if name and name != input_name:
                ctx.geos[name] = geo
    return {name: _public(geo, nsp) for name, geo in ctx.geos.items()}


def _constant_value(node: onnx.NodeProto) -> np.ndarray | None:
    for a in node.attribute:
        if a.name == "value":
            t = a.t
            return numpy_helper.to_array(t) if _small(t.dims) else None
        if a.name in ("value_int", "value_float"):
            return np.asarray(helper.get_attribute_value(a))
        if a.name in ("value_ints", "value_floats"):
            return np.asarray(list(helper.get_attribute_value(a)))
    return None


def _public(geo: _Geo, nsp: int) -> TensorGeometry:
    if geo.labels is None:
        return TensorGeometry(None, (), None)
    labels = geo.labels
    channel = labels.index("C") if labels.count("C") == 1 else None
    if channel is None and "C" not in labels and labels.count(None) == 1 and labels.count("N") == 1 \
            and all(labels.count(k) == 1 for k in range(nsp)):
        channel = labels.index(None)  # batch and image axes identified: the one left holds the units
    if all(labels.count(k) == 1 for k in range(nsp)):
        spatial = tuple(labels.index(k) for k in range(nsp))
    else:
        spatial = ()
    return TensorGeometry(channel, spatial, geo.rf if spatial else None)
