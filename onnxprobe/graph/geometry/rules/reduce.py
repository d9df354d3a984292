"""Reductions: Reduce*/ArgMax/ArgMin over a spatial axis -> non-spatial (RF None); over channels -> kept."""

from __future__ import annotations

from ..registry import attr, norm_axis, register


@register("ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd", "ReduceL1", "ReduceL2",
       "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin")
def _reduce(ctx, node):
    g = ctx.data(node)
    keep = attr(node, "keepdims", 1)
    if node.op_type in ("ArgMax", "ArgMin"):
        axes = [attr(node, "axis", 0)]
    else:
        axes = ctx.ints(node, "axes", 1)
        if not axes:
            if attr(node, "noop_with_empty_axes", 0):
                return g
            axes = list(range(g.rank))
    axes = {norm_axis(a, g.rank) for a in axes}
    if keep:
        labels = [None if a in axes else lab for a, lab in enumerate(g.labels)]
    else:
        labels = [lab for a, lab in enumerate(g.labels) if a not in axes]
    return ctx.mk(labels, g.rf)
