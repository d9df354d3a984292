"""Arithmetic: binary ops with broadcasting, variadic ops, and smooth elementwise functions."""

from __future__ import annotations

import math

from ..registry import ALL, Ctx, binary, linear, register, unary

# ---- binary (the `binary` kind unbroadcasts to each input) ---------------------------------------
binary("Add", lambda c, g: g, lambda c, g: g)
binary("Sub", lambda c, g: g, lambda c, g: c.t.op("Neg", g))
binary("Mul", lambda c, g: c.t.op("Mul", g, c.x(1)), lambda c, g: c.t.op("Mul", g, c.x(0)))
binary("Div", lambda c, g: c.t.op("Div", g, c.x(1)),
       lambda c, g: c.t.op("Neg", c.t.op("Mul", g, c.t.op("Div", c.y(), c.x(1)))))


def _pow_da(c: Ctx, g: str) -> str:
    t, a, b = c.t, c.x(0), c.x(1)
    b_f = t.cast_like(b, a)
    return t.op("Mul", g, t.op("Mul", b_f, t.op("Pow", a, t.op("Sub", b_f, t.scalar(1, a)))))


def _pow_db(c: Ctx, g: str) -> str:
    t = c.t
    return t.op("Mul", g, t.op("Mul", c.y(), t.op("Log", c.x(0))))


binary("Pow", _pow_da, _pow_db)


# ---- variadic --------------------------------------------------------------------------------------
@register("Sum", diff=ALL)
def _sum(c: Ctx):
    return [c.t.unbroadcast(c.g(), x, g_rank=c.rank(c.y())) if c.needs(i) else None
            for i, x in enumerate(c.node.input)]


@register("Mean", diff=ALL)
def _mean(c: Ctx):
    g = c.t.op("Div", c.g(), c.t.scalar(c.n_in, c.y()))
    return [c.t.unbroadcast(g, x, g_rank=c.rank(c.y())) if c.needs(i) else None
            for i, x in enumerate(c.node.input)]


@register("Max", "Min", diff=ALL)
def _extremum(c: Ctx):
    """Gradient goes to the inputs equal to the result; ties share it evenly (like torch.maximum)."""
    t, y = c.t, c.y()
    masks = [t.mask(t.op("Equal", x, y), y) for x in c.node.input]
    share = t.op("Div", c.g(), t.op("Sum", *masks)) if len(masks) > 1 else c.g()
    return [t.unbroadcast(t.op("Mul", share, m), x, g_rank=c.rank(y)) if c.needs(i) else None
            for i, (x, m) in enumerate(zip(c.node.input, masks))]


# ---- unary ----------------------------------------------------------------------------------------
linear("Neg", lambda c, g: c.t.op("Neg", g))
unary("Abs", lambda c: c.t.op("Sign", c.x()))
unary("Exp", lambda c: c.y())
unary("Sqrt", lambda c: c.t.op("Div", c.t.scalar(0.5, c.y()), c.y()))
unary("Log", lambda c: c.t.op("Reciprocal", c.x()))
unary("Reciprocal", lambda c: c.t.op("Neg", c.t.op("Mul", c.y(), c.y())))
unary("Erf", lambda c: c.t.op("Mul", c.t.scalar(2 / math.sqrt(math.pi), c.x()),
                              c.t.op("Exp", c.t.op("Neg", c.t.op("Mul", c.x(), c.x())))))
unary("Sin", lambda c: c.t.op("Cos", c.x()))
unary("Cos", lambda c: c.t.op("Neg", c.t.op("Sin", c.x())))
