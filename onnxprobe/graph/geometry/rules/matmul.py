"""Gemm and MatMul.

Gemm -> (N, units), non-spatial. MatMul with a constant right operand is a 1x1 conv over the last
axis (keeps geometry when the contracted axis is not spatial); with a constant left operand it mixes
rows; image-dependent on both sides (attention) -> unknown.
"""

from __future__ import annotations

from ..field import GiveUp
from ..registry import attr, register


@register("Gemm")
def _gemm(ctx, node):
    g = ctx.data(node)
    if g.rank != 2:
        raise GiveUp
    row = g.labels[1] if attr(node, "transA", 0) else g.labels[0]
    return ctx.mk([row if row == "N" else None, "C"], None)


@register("MatMul", "MatMulInteger", "QLinearMatMul")
def _matmul(ctx, node):
    a_index, b_index = (0, 3) if node.op_type == "QLinearMatMul" else (0, 1)
    ctx.only_dep(node, [a_index, b_index])
    a, b = node.input[a_index], node.input[b_index]
    if ctx.dep(a) and ctx.dep(b):
        raise GiveUp
    other = b if ctx.dep(a) else a
    other_shape = ctx.shape(other) or ctx.const_shape(other)
    if other_shape is None:
        raise GiveUp
    g = ctx.geos[a if ctx.dep(a) else b]
    if g.rank < 2 or len(other_shape) < 2:
        raise GiveUp
    batch_rank = max(g.rank, len(other_shape)) - 2
    batch = (None,) * (batch_rank - (g.rank - 2)) + tuple(g.labels[:-2])
    if ctx.dep(a):  # rows of A -> rows of the result; the last axis becomes units
        labels = list(batch) + [g.labels[-2], "C"]
    else:  # columns of B -> columns of the result
        labels = list(batch) + [None, g.labels[-1]]
    return ctx.mk(labels, g.rf)
