"""Pointwise and broadcasting ops.

* Elementwise unary ops (Relu, Sigmoid, Cast, Dropout, Quantize/DequantizeLinear...) pass geometry
  through; constant per-axis scales keep (De)QuantizeLinear pointwise. DynamicQuantizeLinear's scale
  and zero point come from the whole tensor (global context).
* Broadcasting elementwise ops (Add, Mul, Sum, Max, Where, PRelu, Clip...): the union (bounding box)
  of the image-dependent inputs' RFs; strides must agree and spatial axes must line up, otherwise
  None. Constant inputs (BN scales, biases) never matter. An image-dependent input broadcast along a
  spatial axis (squeeze-excitation gates, global means) makes every unit depend on the whole map ->
  None, or, with ``approximate=True``, it is treated like a per-channel constant.
"""

from __future__ import annotations

from ..field import UNKNOWN, GiveUp, is_spatial, union
from ..registry import register


@register("Identity", "Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "BitwiseNot", "Cast", "Ceil",
       "Celu", "Cos", "Cosh", "Elu", "Erf", "Exp", "Floor", "Gelu", "HardSigmoid", "HardSwish", "IsInf",
       "IsNaN", "LeakyRelu", "Log", "Mish", "Neg", "Not", "Reciprocal", "Relu", "Round", "Selu", "Shrink",
       "Sigmoid", "Sign", "Sin", "Sinh", "Softplus", "Softsign", "Sqrt", "Tan", "Tanh", "ThresholdedRelu",
       "Dropout", "CastLike", "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")
def _unary(ctx, node):
    g = ctx.data(node)  # (De)QuantizeLinear: constant per-axis scales keep it pointwise
    if node.op_type == "DynamicQuantizeLinear":  # scale and zero point are computed from the whole tensor
        return [ctx.global_context(g), UNKNOWN, UNKNOWN]
    return g


@register("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Mod", "And", "Or", "Xor", "Equal",
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
                raise GiveUp  # a constant of unknown rank could add leading axes
            ranks.append(len(shape))
    rank = max(ranks)
    out_shape = ctx.shape(node.output[0])
    if out_shape is not None and len(out_shape) != rank:
        raise GiveUp

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
                if is_spatial(lab[axis]):
                    conflict = True  # a 1-wide spatial map stretched over the output
                continue
            seen.append(lab[axis])
        if seen and all(s == seen[0] for s in seen):
            labels[axis] = seen[0]
        elif seen:
            labels[axis] = None
            if any(is_spatial(s) for s in seen):
                conflict = True
    if conflict:
        return ctx.mk(labels, None)
    spatial_out = [a for a in range(rank) if is_spatial(labels[a])]
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
    return ctx.mk(labels, union([g.rf for g in participants]) if participants else None)
