"""Ops with statistics or normalisation along axes.

* BatchNormalization in inference passes geometry through; in training mode (and Instance/Group
  normalisation, Layer/MeanVariance normalisation including a spatial axis) every unit depends on
  statistics over the whole map -> None, or with ``approximate=True`` the local RF is kept (the usual
  convention for style-transfer networks).
* Softmax/LogSoftmax/Hardmax/LpNormalization/CumSum/LRN over a non-spatial axis keep geometry, over a
  spatial axis -> None.
"""

from __future__ import annotations

import numpy as np

from ..field import UNKNOWN, is_spatial
from ..registry import attr, norm_axis, register


@register("BatchNormalization")
def _batchnorm(ctx, node):
    g = ctx.data(node)
    if attr(node, "training_mode", 0):
        return [ctx.global_context(g)] + [UNKNOWN] * (len(node.output) - 1)
    return g


@register("InstanceNormalization", "GroupNormalization")
def _instance_norm(ctx, node):
    return ctx.global_context(ctx.data(node))


@register("LayerNormalization")
def _layer_norm(ctx, node):
    g = ctx.data(node)
    axis = norm_axis(attr(node, "axis", -1), g.rank)
    out = g
    if any(is_spatial(lab) for lab in g.labels[axis:]):
        out = ctx.global_context(g)
    return [out] + [UNKNOWN] * (len(node.output) - 1)


@register("MeanVarianceNormalization")
def _mvn(ctx, node):
    g = ctx.geos[node.input[0]]
    axes = [norm_axis(a, g.rank) for a in attr(node, "axes", [0, 2, 3])]
    if any(is_spatial(g.labels[a]) for a in axes):
        return ctx.global_context(g)
    return g


@register("Softmax", "LogSoftmax", "Hardmax", "LpNormalization", "CumSum")
def _along_axis(ctx, node):
    g = ctx.data(node)
    if node.op_type == "CumSum":
        axes = [norm_axis(int(np.asarray(ctx.need_const(node.input[1])).reshape(-1)[0]), g.rank)]
    elif node.op_type in ("Softmax", "LogSoftmax", "Hardmax") and ctx.opset < 13:
        axes = list(range(norm_axis(attr(node, "axis", 1), g.rank), g.rank))  # coerced to 2-D
    else:
        axes = [norm_axis(attr(node, "axis", -1), g.rank)]
    if any(is_spatial(g.labels[a]) for a in axes):
        return ctx.mk(g.labels, None)
    return g


@register("LRN")
def _lrn(ctx, node):
    g = ctx.geos[node.input[0]]
    if g.rank < 2 or is_spatial(g.labels[1]):
        return ctx.mk(g.labels, None)
    return g
