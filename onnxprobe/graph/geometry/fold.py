"""Constant folding of the small integer subgraphs that compute padding and shapes, given the
known input shape: what a rule reads with `Ctx.const` (Pad amounts, Slice starts, Reshape targets).

Exporters compute TF-style SAME padding in the graph: from constants (PyTorch's `F.pad` with a
Python list becomes Constant -> ConstantOfShape -> Concat -> Reshape -> Slice -> Transpose -> Cast)
or from the image's shape (Shape -> Gather -> Sub / Div / Max ... -> Concat -> Pad). Neither is a
constant of the file, so without folding every receptive field after the first Pad is unknown.

`fold_node` evaluates one node that does not depend on the image's values when every input is
known: a constant (initializer, Constant, a value folded before) or a shape value whose entries
are all ints (the driver's symbolic dims, fixed by the input shape; the batch axis stays a symbol,
so whatever reads it is never folded). The node runs through ONNX's reference evaluator, small
tensors only (`SMALL` elements in and out); anything it cannot evaluate stays unknown, so a fold
never makes a receptive field wrong, only known.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

# ops whose value depends on their inputs' values only (no randomness, no subgraphs)
_FOLDABLE = frozenset({
    "Abs", "Add", "And", "Cast", "Ceil", "Clip", "Concat", "ConstantOfShape", "Div", "Equal", "Expand", "Flatten",
    "Floor", "Gather", "Greater", "GreaterOrEqual", "Identity", "Less", "LessOrEqual", "Max", "Min", "Mod", "Mul",
    "Neg", "Not", "Or", "Pad", "Range", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSum", "Reshape", "Round",
    "Sign", "Slice", "Sqrt", "Squeeze", "Sub", "Tile", "Transpose", "Unsqueeze", "Where",
})


def _known_value(ctx, name: str, small: int) -> np.ndarray | None:
    """A tensor's value if the walk knows it: a constant, or shape values that are all ints."""
    if not name:
        return None
    values = ctx.symdims.get(name)
    if values is not None:
        if all(isinstance(v, (int, np.integer)) for v in values):
            return np.asarray(values, np.int64)
        return None
    value = ctx.const(name)
    return None if value is None or value.size > small else value


def fold_node(ctx, node: onnx.NodeProto, small: int) -> dict[str, np.ndarray] | None:
    """The values of `node`'s outputs when all its inputs are known and small, else None."""
    if node.domain not in ("", "ai.onnx") or node.op_type not in _FOLDABLE or not node.output:
        return None
    inputs = [_known_value(ctx, name, small) if name else None for name in node.input]
    if any(value is None for name, value in zip(node.input, inputs) if name):
        return None
    try:
        if _made_size(node.op_type, inputs) > small:
            return None  # a large tensor made from small ones (an attention mask's ConstantOfShape): never built
        return _evaluate(node, inputs, ctx.opset)
    except Exception:  # the reference evaluator refused it: unknown, as before folding
        return None


def _made_size(op: str, inputs: list) -> int:
    """The output size of the ops whose output size is their inputs' values (shapes, repeats, a
    range, pads), from those values, before anything is built; 0 for the other ops (their outputs
    are no larger than their small inputs broadcast together)."""
    def count(dims) -> int:
        dims = [int(d) for d in np.asarray(dims).reshape(-1)]
        return int(np.prod(dims, dtype=object)) if all(d >= 0 for d in dims) else np.iinfo(np.int64).max

    if op == "ConstantOfShape":
        return count(inputs[0])
    if op == "Expand":
        shape = [int(d) for d in np.asarray(inputs[1]).reshape(-1)]
        return count(np.broadcast_shapes(np.shape(inputs[0]), tuple(max(d, 0) for d in shape)))
    if op == "Tile":
        return count(np.shape(inputs[0])) * count(inputs[1])
    if op == "Range":
        start, limit, delta = (float(np.asarray(v).reshape(-1)[0]) for v in inputs[:3])
        return max(int(np.ceil((limit - start) / delta)), 0) if delta else 0
    if op == "Pad":
        dims = list(np.shape(inputs[0]))
        pads = [int(p) for p in np.asarray(inputs[1]).reshape(-1)]
        axes = range(len(dims)) if len(inputs) < 4 or inputs[3] is None else \
            [int(a) % len(dims) for a in np.asarray(inputs[3]).reshape(-1)]
        for k, axis in enumerate(axes):
            dims[axis] += pads[k] + pads[k + len(axes)]
        return count(dims)
    return 0


_EVALUATORS: dict[tuple, object] = {}  # one reference evaluator per (op, attributes, input types, opset)
_MAX_EVALUATORS = 256


def _evaluate(node: onnx.NodeProto, inputs: list, opset: int) -> dict[str, np.ndarray] | None:
    names = [f"in{i}" if name else "" for i, name in enumerate(node.input)]
    key = (node.op_type, node.domain, tuple(a.SerializeToString() for a in node.attribute), int(opset),
           tuple((n, np.asarray(v).dtype.str, np.shape(v)) for n, v in zip(names, inputs) if n),
           tuple(bool(o) for o in node.output))
    evaluator = _EVALUATORS.get(key)
    if evaluator is None:
        evaluator = _evaluator(node, names, inputs, opset)
        if len(_EVALUATORS) >= _MAX_EVALUATORS:
            _EVALUATORS.clear()
        _EVALUATORS[key] = evaluator
    feeds = {n: np.asarray(v) for n, v in zip(names, inputs) if n}
    results = evaluator.run(None, feeds)
    values = {}
    for name, value in zip((o for o in node.output if o), results):
        value = np.asarray(value)
        if value.dtype == object:
            return None
        values[name] = value
    return values


def _evaluator(node: onnx.NodeProto, names: list[str], inputs: list, opset: int):
    from onnx.reference import ReferenceEvaluator

    outs = [f"out{i}" if name else "" for i, name in enumerate(node.output)]
    one = helper.make_node(node.op_type, names, outs, domain=node.domain)
    one.attribute.extend(node.attribute)
    graph = helper.make_graph(
        [one], "fold",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(np.asarray(v).dtype), np.shape(v))
         for n, v in zip(names, inputs) if n],
        [helper.make_value_info(o, onnx.TypeProto()) for o in outs if o])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", max(int(opset), 7))])
    return ReferenceEvaluator(model)


__all__ = ["fold_node"]
