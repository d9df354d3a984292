"""Normalisation layers (inference form): BatchNormalization, Instance/LayerNormalization, LRN."""

from __future__ import annotations

import numpy as np

from ..registry import Ctx, register


def _per_channel(c: Ctx, v: str) -> str:
    """[C] -> [C, 1, ..., 1] so that it broadcasts against [N, C, *spatial]."""
    r = c.rank()
    if r is None:
        c.fail("the input rank is unknown")
    return v if r <= 2 else c.t.op("Unsqueeze", v, c.t.i64(list(range(1, r - 1))))


@register("BatchNormalization")
def _batch_norm(c: Ctx):
    """Inference mode: G * scale / sqrt(var + eps), per channel."""
    t, x = c.t, c.x()
    if c.attr("training_mode", 0):
        c.fail("training_mode=1 is not supported (export the model in eval mode)")
    eps = t.scalar(c.attr("epsilon", 1e-5), x)
    factor = t.op("Div", c.x(1), t.op("Sqrt", t.op("Add", c.x(4), eps)))
    return [t.op("Mul", c.g(), _per_channel(c, factor))] + [None] * 4


def normalized_grad(c: Ctx, x: str, g: str, axes: str, eps: float) -> str:
    """dX of (x - mean) / sqrt(var + eps) over `axes` given g = dL/d(normalised x), recomputing
    mean and 1/std from x:  r * (g - mean(g) - xh * mean(g * xh))."""
    t = c.t
    mean = t.op("ReduceMean", x, axes, keepdims=1)
    xc = t.op("Sub", x, mean)
    var = t.op("ReduceMean", t.op("Mul", xc, xc), axes, keepdims=1)
    r = t.op("Reciprocal", t.op("Sqrt", t.op("Add", var, t.scalar(eps, x))))
    xh = t.op("Mul", xc, r)
    mg = t.op("ReduceMean", g, axes, keepdims=1)
    mgx = t.op("ReduceMean", t.op("Mul", g, xh), axes, keepdims=1)
    return t.op("Mul", r, t.op("Sub", t.op("Sub", g, mg), t.op("Mul", xh, mgx)))


@register("InstanceNormalization")
def _instance_norm(c: Ctx):
    r = c.rank()
    if r is None:
        c.fail("the input rank is unknown")
    g = c.t.op("Mul", c.g(), _per_channel(c, c.x(1)))
    return [normalized_grad(c, c.x(), g, c.t.i64(list(range(2, r))), c.attr("epsilon", 1e-5)), None, None]


@register("LayerNormalization")
def _layer_norm(c: Ctx):
    """Only the main output's gradient is used (Mean/InvStdDev outputs feed nothing differentiable
    in exported models)."""
    if c.g(1) is not None or c.g(2) is not None:
        c.fail("gradients through the Mean/InvStdDev outputs are not supported")
    axis = c.attr("axis", -1)
    if axis < 0:
        axes = list(range(axis, 0))
    else:
        r = c.rank()
        if r is None:
            c.fail("the input rank is unknown")
        axes = list(range(axis, r))
    g = c.t.op("Mul", c.g(), c.x(1))
    return [normalized_grad(c, c.x(), g, c.t.i64(axes), c.attr("epsilon", 1e-5)), None, None]


@register("LRN")
def _lrn(c: Ctx):
    """s = bias + alpha/size * WinSum(X^2);  y = X * s^-beta;
    dX = G * s^-beta - (2 alpha beta / size) * X * WinSum^T(G * X * s^(-beta-1)).
    WinSum runs over channels: a Conv with a ones kernel on X unsqueezed at axis 1."""
    t, x, g = c.t, c.x(), c.g()
    r = c.rank()
    if r is None:
        c.fail("the input rank is unknown")
    size = int(c.attr("size"))
    alpha, beta, bias = c.attr("alpha", 1e-4), c.attr("beta", 0.75), c.attr("bias", 1.0)
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    kern = t.const(np.ones([1, 1, size] + [1] * (r - 2), dtype=t.np_dtype(x)))
    one = t.i64([1])
    zeros = [0] * (r - 2)

    def winsum(v: str, before: int, after: int) -> str:
        u = t.op("Unsqueeze", v, one)
        s = t.op("Conv", u, kern, pads=[before] + zeros + [after] + zeros)
        return t.op("Squeeze", s, one)

    s = t.op("Add", t.scalar(bias, x), t.op("Mul", t.scalar(alpha / size, x), winsum(t.op("Mul", x, x), lo, hi)))
    direct = t.op("Mul", g, t.op("Pow", s, t.scalar(-beta, x)))
    inner = t.op("Mul", t.op("Mul", g, x), t.op("Pow", s, t.scalar(-beta - 1, x)))
    cross = t.op("Mul", t.op("Mul", t.scalar(2 * alpha * beta / size, x), x), winsum(inner, hi, lo))
    return [t.op("Sub", direct, cross)]
