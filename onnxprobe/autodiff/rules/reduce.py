"""Reductions: axes as input (ReduceSum >= 13, the others >= 18) or as attribute, keepdims."""

from __future__ import annotations

from ..registry import Ctx, register


def _axes(c: Ctx) -> str | None:
    """Name of an int64 axes tensor, or None when every axis is reduced."""
    if c.x(1):
        v = c.const(1)
        if v is not None and v.size == 0:
            return None
        return c.x(1)
    axes = c.attr("axes")
    return c.t.i64(list(axes)) if axes else None


def _is_noop(c: Ctx) -> bool:
    if not c.attr("noop_with_empty_axes", 0):
        return False
    if c.x(1):
        v = c.const(1)
        return v is not None and v.size == 0
    return not c.attr("axes")


def _keep(c: Ctx, v: str, axes: str | None) -> str:
    """Bring a reduced tensor back to keepdims form (broadcastable against X)."""
    if c.attr("keepdims", 1) or axes is None:
        return v
    return c.t.op("Unsqueeze", v, axes)


@register("ReduceSum", nodiff=(1,))
def _reduce_sum(c: Ctx):
    if _is_noop(c):
        return [c.g(), None]
    axes = _axes(c)
    return [c.t.op("Expand", _keep(c, c.g(), axes), c.t.shape(c.x())), None]


@register("ReduceMean", nodiff=(1,))
def _reduce_mean(c: Ctx):
    if _is_noop(c):
        return [c.g(), None]
    t, x, g = c.t, c.x(), c.g()
    count = t.cast_like(t.op("Div", t.op("Size", x), t.op("Size", g)), x)
    return [t.op("Div", t.op("Expand", _keep(c, g, _axes(c)), t.shape(x)), count), None]


@register("ReduceMax", "ReduceMin", nodiff=(1,))
def _reduce_extremum(c: Ctx):
    """Gradient to the elements equal to the extremum; ties share it evenly."""
    if _is_noop(c):
        return [c.g(), None]
    t, x = c.t, c.x()
    axes = _axes(c)
    mask = t.mask(t.op("Equal", x, _keep(c, c.y(), axes)), x)
    count = t.op("ReduceSum", mask, axes, keepdims=1)
    return [t.op("Mul", _keep(c, c.g(), axes), t.op("Div", mask, count)), None]


@register("ReduceSumSquare", nodiff=(1,))
def _reduce_sum_square(c: Ctx):
    if _is_noop(c):
        return [c.t.op("Mul", c.g(), c.t.op("Mul", c.x(), c.t.scalar(2, c.x()))), None]
    t, x = c.t, c.x()
    return [t.op("Mul", _keep(c, c.g(), _axes(c)), t.op("Mul", x, t.scalar(2, x))), None]
