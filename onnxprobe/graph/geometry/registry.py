"""ONE table of geometry rules keyed by (domain, op_type), plus what every rule reads a node with.

A rule is a function ``rule(ctx: Ctx, node) -> Geo | list[Geo] | None``: the geometry of the node's
outputs (one ``Geo`` for all of them, or one per output), or None when the outputs depend on the
image's shape only (Shape, Size: constants as far as geometry goes). It raises ``GiveUp`` when it
lacks something it needs; the driver then marks the outputs unknown (never a wrong RF). The driver
does the rest: the topological walk, skipping nodes that do not depend on the image, unknown ops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import onnx

from ..facts import attr  # noqa: F401  (what every rule reads a node's attributes with)
from ..optable import OpTable
from .field import Geo, GiveUp

if TYPE_CHECKING:
    from .driver import Ctx

Rule = Callable[["Ctx", onnx.NodeProto], "Geo | list[Geo] | None"]
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
