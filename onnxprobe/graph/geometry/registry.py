"""ONE table of geometry rules keyed by (domain, op_type), plus what every rule reads a node with:
`Ctx`, the context (as autodiff's registry holds its rules' context).

A rule is a function ``rule(ctx: Ctx, node) -> Geo | list[Geo] | None``: the geometry of the node's
outputs (one ``Geo`` for all of them, or one per output), or None when the outputs depend on the
image's shape only (Shape, Size: constants as far as geometry goes). It raises ``GiveUp`` when it
lacks something it needs; the driver then marks the outputs unknown (never a wrong RF). The driver
does the rest: the topological walk, skipping nodes that do not depend on the image, unknown ops.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import onnx

from ..facts import GraphFacts, attr
from ..optable import OpTable
from .field import UNKNOWN, Geo, GiveUp

SMALL = 4096  # constants a rule may read (shape and index tensors, scales), in elements


class Ctx:
    """What a geometry rule may look at: the geometries so far, shapes, small constants, the opset."""

    def __init__(self, facts: GraphFacts, nsp: int, shapes: dict[str, tuple], approximate: bool):
        self.nsp = nsp
        self.facts = facts
        self.shapes = shapes  # the caller's shapes, over the facts'
        self.approximate = approximate
        self.opset = facts.opset
        self.consts: dict[str, np.ndarray] = {}  # values the walk derives (Identity/Cast of a constant)
        self.geos: dict[str, Geo] = {}
        self.symdims: dict[str, list] = {}  # int tensors computed from shapes: ints or dim symbols

    def mk(self, labels, rf) -> Geo:
        """Normalise: the RF only survives while every spatial axis is present exactly once."""
        if labels is None:
            return UNKNOWN
        labels = tuple(labels)
        if rf is not None:
            for k in range(self.nsp):
                if labels.count(k) != 1:
                    rf = None
                    break
        return Geo(labels, rf)

    def global_context(self, g: Geo) -> Geo:
        """Every unit also depends on statistics over the whole map."""
        return g if self.approximate else self.mk(g.labels, None)

    def shape(self, name: str) -> tuple | None:
        shape = self.shapes.get(name)
        if shape is None:
            shape = self.facts.shape(name)
        if shape is None:
            return None
        return tuple(d if isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0 else None
                     for d in shape)

    def dim(self, name: str, axis: int) -> int | None:
        shape = self.shape(name)
        if shape is None or not -len(shape) <= axis < len(shape):
            return None
        return shape[axis]

    def dim_key(self, name: str, axis: int):
        """A dim as an int, or a hashable symbol; batch axes (label N) all share one symbol."""
        d = self.dim(name, axis)
        if d is not None:
            return d
        g = self.geos.get(name)
        if g is not None and g.labels is not None and g.labels[axis] == "N":
            return ("N",)
        return ("dim", name, axis)

    def const(self, name: str) -> np.ndarray | None:
        if not name:
            return None
        value = self.consts.get(name)
        if value is None:
            try:
                value = self.facts.const(name, max_size=SMALL)
            except Exception:  # an initializer numpy cannot read: unknown
                return None
        return value

    def const_shape(self, name: str) -> tuple | None:
        value = self.const(name)
        return None if value is None else tuple(value.shape)

    def need_const(self, name: str) -> np.ndarray:
        value = self.const(name)
        if value is None:
            raise GiveUp
        return value

    def ints(self, node: onnx.NodeProto, name: str, input_index: int | None) -> list[int] | None:
        """An int list from an attribute, else from a constant input; None if neither is given."""
        a = attr(node, name)
        if a is not None:
            return [int(v) for v in np.atleast_1d(a)]
        if input_index is not None and len(node.input) > input_index and node.input[input_index]:
            return [int(v) for v in np.atleast_1d(self.need_const(node.input[input_index]))]
        return None

    def dep(self, name: str) -> bool:
        return bool(name) and name in self.geos

    def only_dep(self, node: onnx.NodeProto, allowed: Sequence[int]) -> None:
        """Inputs other than ``allowed`` must not depend on the image."""
        for i, name in enumerate(node.input):
            if i not in allowed and self.dep(name):
                raise GiveUp

    def data(self, node: onnx.NodeProto) -> Geo:
        """The geometry of input 0, the one input of ``node`` that may depend on the image."""
        self.only_dep(node, [0])
        return self.geos[node.input[0]]


Rule = Callable[[Ctx, onnx.NodeProto], "Geo | list[Geo] | None"]
REGISTRY: OpTable[Rule] = OpTable("geometry rule")
lookup = REGISTRY.lookup


def register(*ops: str):
    """Decorator: register ``fn`` as the geometry rule of ops ("Op" or "domain::Op")."""

    def deco(fn: Rule) -> Rule:
        for op in ops:
            REGISTRY.add(op, fn)
        return fn

    return deco


def norm_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise GiveUp
    return axis % rank
