"""Activations. The ReLU family (Relu, LeakyRelu, PRelu, Elu, Selu, and Clip when its lower bound
is 0, i.e. ReLU6) follows the mode: exact / deconv relu(G) / guided relu(G) * (X > 0).
Smooth activations (Sigmoid, Tanh, HardSigmoid, HardSwish, Softplus, Gelu, ...) are exact in
every mode.
"""

from __future__ import annotations

import math

from ..registry import Ctx, register, relu_family, unary


def _pos(c: Ctx) -> str:
    return c.t.op("Greater", c.x(), c.t.scalar(0, c.x()))


def _pos_mask(c: Ctx) -> str:
    return c.t.mask(_pos(c), c.x())


def _relu_on(c: Ctx) -> str:
    # Y > 0 exactly where X > 0; reading the output instead of the input leaves the input free for
    # ONNX Runtime's Conv+Relu fusion in the forward half of the graph.
    return c.t.op("Greater", c.y(), c.t.scalar(0, c.y()))


# G * cast(Y > 0), not Where(Y > 0, G, 0): ONNX Runtime's Mul is threaded, its Where is not. The pair
# alone: 0.72-0.78 of Where's time (bench/bench_adjoints.py --only relu); the whole ResNet-18 step at
# 2 threads on a quiet machine: Where / Mul 1.02-1.12 best, 1.03-1.07 median, 1.01-1.02 CPU time
# (bench_gradient.py --before; an A/A run read 0.98-1.00). CPU time alone barely moves: it cannot
# see threading. Same values, except that an infinite or NaN G at a masked cell gives NaN, not 0.
relu_family("Relu", lambda c: c.t.op("Mul", c.g(), c.t.mask(_relu_on(c), c.g())),
            lambda c: c.t.mask(_relu_on(c), c.y()))
relu_family("LeakyRelu", lambda c: c.t.op("Where", _pos(c), c.g(),
                                          c.t.op("Mul", c.g(), c.t.scalar(c.attr("alpha", 0.01), c.x()))),
            _pos_mask)
relu_family("PRelu", lambda c: c.t.op("Where", _pos(c), c.g(), c.t.op("Mul", c.g(), c.x(1))), _pos_mask)
relu_family("Elu", lambda c: c.t.op("Where", _pos(c), c.g(), c.t.op(
    "Mul", c.g(), c.t.op("Add", c.y(), c.t.scalar(c.attr("alpha", 1.0), c.x())))), _pos_mask)


def _selu(c: Ctx) -> str:
    t, gamma, alpha = c.t, c.attr("gamma", 1.05070102214813232421875), c.attr("alpha", 1.67326319217681884765625)
    return t.op("Where", _pos(c), t.op("Mul", c.g(), t.scalar(gamma, c.x())),
                t.op("Mul", c.g(), t.op("Add", c.y(), t.scalar(alpha * gamma, c.x()))))


relu_family("Selu", _selu, _pos_mask)


def _clip_bounds(c: Ctx):
    """(min_name_or_None, max_name_or_None, min_value_or_None) for both opset forms."""
    if c.x(1) or c.x(2) or "min" not in c.attrs and "max" not in c.attrs:
        lo, hi = c.x(1), c.x(2)
        lo_v = c.const(1)
        return lo, hi, None if lo_v is None else float(lo_v)
    lo = c.t.scalar(c.attrs["min"], c.x()) if "min" in c.attrs else None
    hi = c.t.scalar(c.attrs["max"], c.x()) if "max" in c.attrs else None
    return lo, hi, c.attrs.get("min")


@register("Clip", nodiff=(1, 2))
def _clip(c: Ctx):
    """Exact: G where min < X < max (open interval, like Relu at 0 and torch's hardtanh/ReLU6).
    Clip with a lower bound of 0 (ReLU6) belongs to the ReLU family in deconv/guided modes."""
    t, x, y = c.t, c.x(), c.y()
    lo, hi, lo_v = _clip_bounds(c)
    # min < Y < max exactly where min < X < max (outside, Y sits on a bound); reading the output, as
    # the Relu rule does, leaves X to its one consumer, so ONNX Runtime keeps Conv+Clip fused
    conds = []
    if lo:
        conds.append(t.op("Greater", y, lo))
    if hi:
        conds.append(t.op("Less", y, hi))
    inside = conds[0] if len(conds) == 1 else t.op("And", *conds) if conds else None
    mask = t.mask(inside, x) if inside else None
    if c.mode != "gradient" and lo_v == 0.0:
        rg = t.op("Relu", c.g())
        gx = rg if c.mode == "deconv" else t.op("Mul", rg, mask)
    else:
        gx = t.op("Mul", c.g(), mask) if mask else c.g()
    return [gx, None, None]


unary("Sigmoid", lambda c: c.t.op("Mul", c.y(), c.t.op("Sub", c.t.scalar(1, c.y()), c.y())))
unary("Tanh", lambda c: c.t.op("Sub", c.t.scalar(1, c.y()), c.t.op("Mul", c.y(), c.y())))
unary("Softplus", lambda c: c.t.op("Sigmoid", c.x()))
unary("Softsign", lambda c: c.t.op("Reciprocal", c.t.op("Pow", c.t.op("Add", c.t.scalar(1, c.x()),
                                                                     c.t.op("Abs", c.x())), c.t.scalar(2, c.x()))))


def _between(c: Ctx, z: str, lo: float, hi: float) -> str:
    t = c.t
    return t.mask(t.op("And", t.op("Greater", z, t.scalar(lo, z)), t.op("Less", z, t.scalar(hi, z))), z)


def _hard_sigmoid(c: Ctx) -> str:
    t, x, alpha, beta = c.t, c.x(), c.attr("alpha", 0.2), c.attr("beta", 0.5)
    z = t.op("Add", t.op("Mul", x, t.scalar(alpha, x)), t.scalar(beta, x))
    t.set_shape(z, c.dims(), c.t.elem(x))
    return t.op("Mul", _between(c, z, 0.0, 1.0), t.scalar(alpha, x))


def _hard_swish(c: Ctx) -> str:
    t, x = c.t, c.x()
    hs = t.op("HardSigmoid", x, alpha=1 / 6, beta=0.5)
    ramp = t.op("Mul", t.op("Mul", x, t.scalar(1 / 6, x)), _between(c, x, -3.0, 3.0))
    return t.op("Add", hs, ramp)


unary("HardSigmoid", _hard_sigmoid)
unary("HardSwish", _hard_swish)


def _gelu(c: Ctx) -> str:
    if c.attr("approximate", "none") != "none":
        c.fail("only approximate='none' is supported")
    t, x = c.t, c.x()
    cdf = t.op("Mul", t.scalar(0.5, x), t.op("Add", t.scalar(1, x),
                                               t.op("Erf", t.op("Mul", x, t.scalar(1 / math.sqrt(2), x)))))
    pdf = t.op("Mul", t.scalar(1 / math.sqrt(2 * math.pi), x),
               t.op("Exp", t.op("Mul", t.scalar(-0.5, x), t.op("Mul", x, x))))
    return t.op("Add", cdf, t.op("Mul", x, pdf))


unary("Gelu", _gelu)


@register("Softmax")
def _softmax(c: Ctx):
    t, y, g = c.t, c.y(), c.g()
    axis = t.i64([c.attr("axis", -1)])
    s = t.op("ReduceSum", t.op("Mul", g, y), axis, keepdims=1)
    return [t.op("Mul", y, t.op("Sub", g, s))]


@register("LogSoftmax")
def _log_softmax(c: Ctx):
    t, y, g = c.t, c.y(), c.g()
    axis = t.i64([c.attr("axis", -1)])
    return [t.op("Sub", g, t.op("Mul", t.op("Exp", y), t.op("ReduceSum", g, axis, keepdims=1)))]
