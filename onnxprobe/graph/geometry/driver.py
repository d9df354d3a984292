"""The walk: every tensor that depends on the image gets its geometry, node by node in topological
order, from the rule of the node's op (registry.py, rules/*.py, with the context a rule reads: the
tensors' geometries, shapes, small constants, the opset, from the model's GraphFacts, whose one
shape inference this pass shares). Also symbolic values of small int tensors computed from shapes
(Shape -> Gather/Concat -> Reshape) so that Reshape can follow batch-agnostic targets.
"""

from __future__ import annotations

import numpy as np
import onnx

from ..facts import GraphFacts, attr
from ..optable import DEFAULT_DOMAINS
from . import rules as _rules  # noqa: F401  (fills the registry)
from .fold import fold_node
from .field import UNKNOWN, Geo, GiveUp, ReceptiveField, TensorGeometry, public
from .registry import SMALL, Ctx, lookup


# what a rule or the shape pass raises where a model lacks what it needs (a constant, a shape, a valid
# attribute): the tensors become unknown, never a wrong receptive field
_UNPROVEN = (GiveUp, IndexError, KeyError, TypeError, ValueError)


def _topological(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    produced = {out for node in graph.node for out in node.output if out}
    ready = set()
    order, pending = [], list(graph.node)
    while pending:
        progress = []
        rest = []
        for node in pending:  # one sweep releases a whole file-ordered graph (ready grows as it goes)
            if all(not n or n not in produced or n in ready for n in node.input):
                progress.append(node)
                ready.update(o for o in node.output if o)
            else:
                rest.append(node)
        if not progress:  # a cycle (invalid graph): keep the file order for the rest
            order += rest
            break
        order += progress
        pending = rest
    return order


def _shape_values(ctx: Ctx, node: onnx.NodeProto) -> list | None:
    """Values of small int tensors computed from shapes (Shape -> Gather/Slice/Concat/...): ints or symbols."""
    op = node.op_type

    def vals(name):
        if name in ctx.symdims:
            return list(ctx.symdims[name])
        value = ctx.const(name)
        return None if value is None else [int(v) for v in np.asarray(value).reshape(-1)]

    if op == "Shape":
        rank = len(ctx.geos[node.input[0]].labels) if ctx.dep(node.input[0]) and ctx.geos[node.input[0]].labels \
            else (len(ctx.shape(node.input[0])) if ctx.shape(node.input[0]) is not None else None)
        if rank is None:
            return None
        start, end = attr(node, "start", 0), attr(node, "end", rank)
        return [ctx.dim_key(node.input[0], a) for a in range(rank)][slice(start, end)]
    if op in ("Identity", "Cast", "Squeeze", "Unsqueeze"):
        return vals(node.input[0])
    if op == "Concat":
        parts = [vals(n) for n in node.input]
        return None if any(p is None for p in parts) else [v for p in parts for v in p]
    if op == "Gather" and attr(node, "axis", 0) == 0:
        data, idx = vals(node.input[0]), ctx.const(node.input[1])
        if data is None or idx is None:
            return None
        return [data[int(i)] for i in np.asarray(idx).reshape(-1)]
    return None


def _layout_labels(layout: str) -> tuple[tuple, int]:
    labels, k = [], 0
    for ch in layout.upper():
        if ch == "N":
            labels.append("N")
        elif ch == "C":
            labels.append("C")
        else:
            labels.append(k)
            k += 1
    if labels.count("C") > 1 or labels.count("N") > 1 or k == 0:
        raise ValueError(f"layout {layout!r} needs at most one N, at most one C and at least one spatial axis")
    return tuple(labels), k


def analyze_geometry(model: onnx.ModelProto, input_name: str, layout: str = "NCHW",
                     shapes: dict[str, tuple] | None = None, *, approximate: bool = False,
                     facts: GraphFacts | None = None) -> dict[str, TensorGeometry]:
    """Axis roles and receptive fields of every tensor that depends on ``input_name``.

    ``layout`` names the input's axes (``N``, ``C``, anything else spatial in input order: "NCHW",
    "NHWC", "NCW", "NCDHW"...). ``shapes`` maps tensor names to shapes (ints, None/str for unknown
    dims); they override ONNX shape inference, which fills in the rest: the model's ``facts`` when
    given (a loaded model's: no inference here), else one of its own. ``approximate=True`` keeps the
    local RF through global-context ops (squeeze-excitation gates, instance/group/layer norm statistics
    over the map) and reflect/edge/wrap padding, where the strict answer is None.
    """
    labels, nsp = _layout_labels(layout)
    overrides = {k: tuple(v) for k, v in (shapes or {}).items() if v is not None}
    if facts is None:
        facts = GraphFacts(model, {v.name: overrides[v.name] for v in model.graph.input if v.name in overrides})
    ctx = Ctx(facts, nsp, overrides, approximate)
    in_shape = ctx.shapes.get(input_name) or facts.shape(input_name)
    if in_shape is not None and len(in_shape) != len(labels):
        raise ValueError(f"layout {layout!r} has {len(labels)} axes but input {input_name!r} has rank {len(in_shape)}")
    ctx.geos[input_name] = Geo(labels, ReceptiveField.identity(nsp))
    for node in _topological(model.graph):
        if node.op_type == "Constant" and node.domain in DEFAULT_DOMAINS and node.output:
            continue  # the facts hold its value
        if node.op_type in ("Shape", "Identity", "Cast", "Squeeze", "Unsqueeze", "Concat", "Gather") \
                and node.output and (node.op_type == "Shape" or any(n in ctx.symdims for n in node.input)):
            try:
                values = _shape_values(ctx, node)
            except _UNPROVEN:
                values = None
            if values is not None:
                ctx.symdims[node.output[0]] = values
                continue
        if not any(ctx.dep(n) for n in node.input):
            # padding and shapes computed in the graph, folded with the known input shape (fold.py)
            for name, value in (fold_node(ctx, node, SMALL) or {}).items():
                if value.size <= SMALL:
                    ctx.consts[name] = value
            continue
        rule = lookup(node.domain, node.op_type)
        outs: list[Geo | None]
        if rule is None:
            outs = [UNKNOWN] * len(node.output)
        else:
            try:
                result = rule(ctx, node)
            except _UNPROVEN:
                result = UNKNOWN
            if result is None:
                continue
            outs = result if isinstance(result, list) else [result] * len(node.output)
        for name, geo in zip(node.output, outs):
            if name and name != input_name:
                ctx.geos[name] = geo
    return {name: public(geo, nsp) for name, geo in ctx.geos.items()}
