"""Data movement: reshapes, permutations, concatenation, slicing, gathering, padding, tiling.

Ops that pick or copy elements (Slice, Gather*, Tile, Pad in every mode) share ONE adjoint:
run the same op on a tensor of flat element indices and scatter-add G back through it
(`scatter_adjoint`). Repeated elements (Tile, edge/reflect padding, repeated indices) sum.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from ..registry import ALL, Ctx, linear, passthrough, register
from ...graph.facts import FLOAT_TYPES


def scatter_adjoint(c: Ctx, g: str, x: str, apply, sentinel: bool = False) -> str:
    """Adjoint of any element-picking op `apply(tensor) -> tensor` (applied to x in the forward).

    sentinel: the op may create elements with no source (constant padding); apply() is then
    given the fill value to use, which points at one extra slot that is dropped afterwards.
    """
    t = c.t
    n = t.op("Size", x)
    idx = t.op("Reshape", t.op("Range", t.i64(0), n, t.i64(1)), t.shape(x))
    moved = apply(idx, n) if sentinel else apply(idx)
    slots = t.op("Add", n, t.i64(1)) if sentinel else n
    zeros = t.op("ConstantOfShape", t.op("Reshape", slots, t.i64([1])),
                 value=helper.make_tensor("value", t.elem(x), [1], [0]))
    flat = t.op("ScatterElements", zeros, t.flat(moved), t.flat(g), axis=0, reduction="add")
    if sentinel:
        flat = t.op("Slice", flat, t.i64([0]), t.op("Reshape", n, t.i64([1])))
    return t.reshape_like(flat, x)


def _same_op(c: Ctx, **override):
    """apply(idx): the forward node re-run on idx, with its other inputs and attributes."""

    def apply(idx: str, fill: str | None = None) -> str:
        ins = [idx] + list(c.node.input[1:])
        if fill is not None:
            while len(ins) < 3:
                ins.append("")
            ins[2] = fill
        attrs = {**c.attrs, **override}
        return c.t.op(c.node.op_type, *ins, **attrs)

    return apply


# ---- reshapes and permutations ------------------------------------------------------------------
for _op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze"):
    linear(_op, lambda c, g: c.t.reshape_like(g, c.x()))

passthrough("Identity", "Dropout")


@register("Cast", connects=lambda node: any(a.name == "to" and a.i in FLOAT_TYPES for a in node.attribute))
def _cast(c: Ctx):
    return [c.t.cast_like(c.g(), c.x())]


@register("Transpose")
def _transpose(c: Ctx):
    perm = c.attr("perm")
    if perm is None:
        r = c.rank()
        if r is None:
            c.fail("the input rank is unknown")
        perm = list(range(r))[::-1]
    return [c.t.op("Transpose", c.g(), perm=[int(i) for i in np.argsort(perm)])]


linear("Expand", lambda c, g: c.t.unbroadcast(g, c.x(), g_rank=c.rank(c.y())))


# ---- concatenation and splitting ----------------------------------------------------------------
def _axis_len(c: Ctx, x: str, axis: int) -> str:
    return c.t.shape(x, start=axis, end=axis + 1 if axis != -1 else None)


@register("Concat", diff=ALL)
def _concat(c: Ctx):
    t, axis = c.t, c.attr("axis")
    xs = list(c.node.input)
    sizes = t.op("Concat", *[_axis_len(c, x, axis) for x in xs], axis=0)
    parts = t.op("Split", c.g(), sizes, axis=axis, outputs=len(xs))
    parts = [parts] if isinstance(parts, str) else parts
    return [p if c.needs(i) else None for i, p in enumerate(parts)]


@register("Split", nodiff=(1,))
def _split(c: Ctx):
    t = c.t
    parts = [c.g(i) if c.g(i) is not None else t.zeros_like(y) for i, y in enumerate(c.node.output)]
    return [t.op("Concat", *parts, axis=c.attr("axis", 0)), None]


# ---- element pickers: one shared adjoint ---------------------------------------------------------
for _op in ("Slice", "Tile", "Gather", "GatherElements", "GatherND"):
    register(_op, nodiff=tuple(range(1, 5)))(lambda c: [scatter_adjoint(c, c.g(), c.x(), _same_op(c))])


@register("Pad", nodiff=(1, 2, 3))
def _pad(c: Ctx):
    """Every mode (constant, reflect, edge, wrap): constant padding points at a dropped slot."""
    constant = c.attr("mode", "constant") == "constant"
    return [scatter_adjoint(c, c.g(), c.x(), _same_op(c), sentinel=constant)]


@register("Where", diff=(1, 2), nodiff=(0,))
def _where(c: Ctx):
    t, cond, g = c.t, c.x(0), c.g()
    zero = t.scalar(0, c.y())
    r = c.rank(c.y())
    return [None,
            t.unbroadcast(t.op("Where", cond, g, zero), c.x(1), g_rank=r) if c.needs(1) else None,
            t.unbroadcast(t.op("Where", cond, zero, g), c.x(2), g_rank=r) if c.needs(2) else None]
