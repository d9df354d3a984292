"""ONE table of backward rules keyed by (domain, op_type), plus one helper per KIND of rule.

A rule is a function `rule(c: Ctx) -> list[str | None]` that returns, for each input of the
node, the name of its gradient tensor (None = no gradient). It only sees the node, the output
gradients and the tape; the driver does the rest (reverse walk, summing gradients of tensors
used twice, pruning, unsupported-op reporting).

Each `Rule` also says which inputs carry a gradient (`diff`) and which legitimately never do
(`nodiff`: indices, shapes, conditions). An input in neither set is assumed constant (weights);
if the path from `wrt` runs through it, the driver reports the node as unsupported instead of
silently returning a wrong gradient.

Kinds (see JAX deflinear/defjvp, tinygrad gradient.py):
  unary(op, local)           y = f(x): dx = G * local(c)                (elementwise, same shape)
  binary(op, da, db)         z = f(a, b) with broadcasting: the driver-side unbroadcast is here
  linear(op, fn, ...)        structural/linear ops: dx = fn(c, G)
  passthrough(op)            dx = G
  nondiff(op)                stops the gradient (shape computations, comparisons, integer ops)
  relu_family(op, exact, mask)   exact rule in "gradient" mode; relu(G) in "deconv";
                                 relu(G) * mask(X) in "guided"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import onnx
from onnx import helper

from ..graph.facts import attr
from ..graph.optable import OpTable
from .modes import MODES, BackMode  # noqa: F401  (re-exported: the rules read them here)
from .tape import Tape



ALL = "all"  # every input


class Ctx:
    """What a backward rule may look at: the forward node, its output gradients, the tape."""

    def __init__(self, node: onnx.NodeProto, grads: list[str | None], needs: list[bool], tape: Tape,
                 mode: str, opset: int):
        self.node = node
        self.grads = grads
        self.needs_ = needs
        self.t = tape
        self.mode = mode
        self.opset = opset
        self.attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}

    # inputs / outputs / gradients
    def x(self, i: int = 0) -> str | None:
        n = self.node.input
        return n[i] if i < len(n) and n[i] else None

    def y(self, i: int = 0) -> str | None:
        n = self.node.output
        return n[i] if i < len(n) and n[i] else None

    def g(self, i: int = 0) -> str | None:
        return self.grads[i] if i < len(self.grads) else None

    @property
    def n_in(self) -> int:
        return len(self.node.input)

    def needs(self, i: int) -> bool:
        return i < len(self.needs_) and self.needs_[i]

    def attr(self, name: str, default=None):
        return attr(self.node, name, default)

    def const(self, i: int):
        """Build-time value of input i when it is an initializer or Constant output, else None."""
        name = self.x(i)
        return None if name is None else self.t.info.const(name)

    def rank(self, name: str | None = None) -> int | None:
        return self.t.info.rank(self.x(0) if name is None else name)

    def dims(self, name: str | None = None):
        return self.t.info.shape(self.x(0) if name is None else name)

    def fail(self, why: str):
        from ..errors import ModelError

        raise ModelError(f"cannot build the gradient of {self.node.op_type} node "
                         f"'{self.node.name or self.node.output[0]}': {why}")


RuleFn = Callable[[Ctx], list]


@dataclass
class Rule:
    fn: RuleFn
    diff: tuple | str = (0,)  # indices of inputs that receive a gradient, or ALL
    nodiff: tuple | str = ()  # indices of inputs that never do (indices, shapes, conditions), or ALL
    # static check of whether an output depends differentiably on the inputs (e.g. Cast to int)
    connects: Callable[[onnx.NodeProto], bool] = field(default=lambda node: True)

    def is_diff(self, i: int) -> bool:
        return self.diff == ALL or i in self.diff

    def is_nodiff(self, i: int) -> bool:
        return self.nodiff == ALL or i in self.nodiff


REGISTRY: OpTable[Rule] = OpTable("backward rule")
lookup = REGISTRY.lookup


def register(*ops: str, diff=(0,), nodiff=(), connects=None):
    """Decorator: register `fn` as the backward rule of ops ("Op" or "domain::Op")."""

    def deco(fn: RuleFn) -> RuleFn:
        for op in ops:
            kw = {"connects": connects} if connects else {}
            REGISTRY.add(op, Rule(fn, diff=diff, nodiff=nodiff, **kw))
        return fn

    return deco


# ---- kinds of rules -----------------------------------------------------------------------------

def unary(op: str, local: Callable[[Ctx], str]):
    """Elementwise y = f(x): dx = G * local(c) where local returns f'(x) as a tensor."""
    register(op)(lambda c: [c.t.op("Mul", c.g(), local(c))])


def linear(op: str, fn: Callable[[Ctx, str], str]):
    """Linear in input 0 (the other inputs are shapes/indices/attributes): dx = fn(c, G)."""
    register(op, diff=(0,), nodiff=tuple(range(1, 16)))(lambda c: [fn(c, c.g())])


def passthrough(*ops: str):
    for op in ops:
        linear(op, lambda c, g: g)


def nondiff(*ops: str):
    for op in ops:
        register(op, diff=(), nodiff=ALL)(lambda c: [None] * c.n_in)


def binary(op: str, da: Callable[[Ctx, str], str] | None, db: Callable[[Ctx, str], str] | None):
    """z = f(a, b) with numpy broadcasting: local gradients, then unbroadcast to each input."""

    def rule(c: Ctx):
        out = []
        for i, f in enumerate((da, db)):
            if f is None or not c.needs(i):
                out.append(None)
                continue
            gi = f(c, c.g())
            out.append(c.t.unbroadcast(gi, c.x(i), g_rank=c.rank(c.y())))
        return out

    diff = tuple(i for i, f in enumerate((da, db)) if f is not None)
    register(op, diff=diff)(rule)


def relu_family(op: str, exact: Callable[[Ctx], str], forward_mask: Callable[[Ctx], str], diff=(0,)):
    """ReLU-like ops whose backward depends on the mode.

    gradient: `exact(c)`;  deconv: relu(G) (forward mask ignored);
    guided: relu(G) * forward_mask(c) where forward_mask returns a 0/1 tensor (X > 0 for ReLU).
    """

    def rule(c: Ctx):
        if c.mode == BackMode.GRADIENT:
            gx = exact(c)
        elif c.mode == BackMode.DECONV:
            gx = c.t.op("Relu", c.g())
        else:
            gx = c.t.op("Mul", c.t.op("Relu", c.g()), forward_mask(c))
        return [gx] + [None] * (c.n_in - 1)

    register(op, diff=diff)(rule)
