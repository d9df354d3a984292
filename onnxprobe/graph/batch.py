"""The batch axis: making a fixed-batch graph batch-dynamic, and proving it on the model.

Most published ONNX files fix the batch at 1 (`torch.onnx.export` without `dynamic_axes`, and
PyTorch's default exporter always), and exporters fold the batch size into constants: Reshape
targets such as `[1, -1]` or `[1, 2, 24, 8, 8]` (the default exporter's views with `allowzero`),
the shapes of Expand and ConstantOfShape, Tile repeats, constants concatenated onto batched
tensors, `as_strided` as a flat Gather. `make_batch_dynamic` rewrites those constants so that the
batch follows the input; where views move the batch off axis 0 (nn.MultiheadAttention's
(L, N, E) layout), `batch_placements` follows it through every op and says which axis of each
view it joins. Where that walk is itself a proof (`rows_never_meet`: every op on the batch's path
keeps rows apart, none reads the batch's size) and the rewritten graph has the sizes it says
(`_sizes_follow`, by inference), the batch is proved from the graph, with no run. Otherwise
`prove_batch_dynamic` runs the rewritten graph: a batch of two different inputs must give, row by
row, what two single runs give, for the tensors where rows could meet (`rows_meet`). The rewrite is made in place on the loaded model (`Undo` puts it back), so no
weight is copied. A graph that cannot be rewritten, or whose proof fails, stays as it was and is
run a fixed number of rows at a time (`BatchAxis.rows`) by `ProbeModel`.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from onnxprobe.graph.facts import FLOAT_TYPES, GraphFacts, attr
from onnxprobe.graph.loading import BATCH_DIM, finalize_model

PREFIX = "onnxprobe.batch:"
UNIT_ROUNDOFF = 2.0 ** -24  # float32's unit roundoff u
# the unit roundoff of the narrower float types a graph may compute in (the proof's bound takes the widest)
NARROW_ROUNDOFF = {onnx.TensorProto.FLOAT16: 2.0 ** -11, onnx.TensorProto.BFLOAT16: 2.0 ** -8}
SHAPE_INPUTS = {"Reshape": 1, "Expand": 1, "Tile": 1, "ConstantOfShape": 0}


@dataclass(frozen=True)
class BatchAxis:
    """How a model's batch axis is handled.

    kind: "dynamic" (the file declares a symbolic batch), "made dynamic" (a fixed batch whose graph
    was rewritten, or needed no rewrite, and was proved on the model), or "fixed" (rows run
    `rows` at a time, the file's own batch)."""

    kind: str
    declared: int | str | None  # the input's first dim as the file gives it
    rows: int | None = None  # rows per run when kind == "fixed"
    rewritten: tuple[str, ...] = ()  # nodes whose batch-size constants now follow the input
    why: str = ""  # for "fixed": why the graph was not made dynamic
    max_error: float | None = None  # the proof's largest |batch - single| over its tolerance (a run's)
    # "made dynamic": how it was proved: "graph" (rows_never_meet and _sizes_follow: every op keeps
    # rows apart, no run) or "run" (prove_batch_dynamic: a batch of 2 against two single runs)
    proof: str | None = None
    # "made dynamic": tensors whose batch the rewrite folds into another axis (batch_placements),
    # with their shapes at batch 1: they have no batch axis of their own (not layers); "fixed":
    # every tensor's (shape, element type) at the file's batch, found before the proof; not in to_json
    off_axis: dict = field(default_factory=dict, compare=False, repr=False)
    on_axis: frozenset = field(default=frozenset(), compare=False, repr=False)  # batch exactly axis 0
    batch_axes: dict = field(default_factory=dict, compare=False, repr=False)  # off_axis tensor -> the axis holding the batch

    @property
    def fixed(self) -> bool:
        return self.kind == "fixed"

    def describe(self) -> str:
        if self.kind == "dynamic":
            return f"batch dynamic (input declares '{self.declared}')"
        if self.kind == "made dynamic":
            what = f"{len(self.rewritten)} batch-size constant(s) rewritten" if self.rewritten else "no constant needed rewriting"
            how = ("proved from the graph: every op keeps rows apart" if self.proof == "graph" else
                   "proved on the model: a batch of 2 equals two single runs")
            return f"batch made dynamic (the file fixes it at {self.declared}; {what}; {how})"
        return f"batch fixed at {self.rows}: rows run {'one' if self.rows == 1 else self.rows} at a time ({self.why})"

    def to_json(self) -> dict:
        return {"kind": self.kind, "declared": self.declared, "rows": self.rows, "rewritten": list(self.rewritten),
                "why": self.why, "max_error": self.max_error, "proof": self.proof}


def declared_batch(dim) -> int | str | None:
    """The first input dim as a batch: a positive int is fixed, anything else (a name, -1, 0,
    nothing) is symbolic."""
    if isinstance(dim, int) and dim > 0:
        return dim
    return dim if isinstance(dim, str) and dim else None


def reachable_from(model: onnx.ModelProto, name: str) -> set[str]:
    """Every tensor that depends on `name` (and `name` itself)."""
    return GraphFacts(model, infer_shapes=False).reachable_from(name)


def static_shapes(model: onnx.ModelProto, input_name: str, shape: tuple[int, ...]) -> tuple[dict[str, tuple], dict[str, int]]:
    """Shapes and element types of every tensor with the input fixed at `shape` (ONNX shape
    inference helped by folding, `_folded_facts`, else one run; dims none of them pins down are None). This is the file's own graph at its
    own fixed batch, before the rewrite that these shapes decide: an inference of its own, not the
    loaded model's (GraphFacts), which describes the rewritten graph with a dynamic batch."""
    facts = _folded_facts(model, input_name, shape)
    out = {name: tuple(dims) for name, dims in facts.dims.items()}
    elems = dict(facts.elem)
    missing = [o for n in model.graph.node for o in n.output if o and None in out.get(o, (None,))]
    if missing:  # shapes computed at run time that no fold finds: run once at that batch
        from onnxprobe.graph.expose import expose_tensors
        from onnxprobe.runtime.session import create_session, trim_memory

        def run() -> dict[str, tuple]:
            session = create_session(expose_tensors(model, missing, keep_outputs=False, known=facts.value_infos),
                                     device="cpu", one_off=True)
            x = np.zeros(shape, session.input_dtype(input_name))
            return {k: (tuple(np.shape(v)), helper.np_dtype_to_tensor_dtype(np.asarray(v).dtype))
                    for k, v in session.run({input_name: x}, missing).items()}

        try:
            for k, (dims, elem) in run().items():
                out[k], elems[k] = dims, elem
        except Exception:
            pass  # the rewrite then leaves those tensors alone; the proof decides
        finally:
            trim_memory()  # the session is gone: its memory goes back
    return out, elems


def _folded_facts(model: onnx.ModelProto, input_name: str, shape: tuple[int, ...], rounds: int = 8) -> GraphFacts:
    """The facts of `model` with the input fixed at `shape`, where shape inference falls short
    helped by folding what it cannot: the small integer tensors computed from constants and from
    the shapes already known (the legacy exporter's Expand shapes built with Where / Equal, Slice
    bounds from Mod, attention views from Shape ops: ONNX's data propagation follows only a few
    ops). Folded values become initializers of a weightless copy that is inferred again, until every
    shape is known or a round folds nothing new. The folds are ONNX's reference evaluator's, on
    values that do not depend on the input's values, so a shape found is the shape a run finds."""
    from onnxprobe.graph.geometry.fold import fold_node
    from onnxprobe.graph.loading import without_weights

    facts = GraphFacts(model, {input_name: shape})
    folded: dict[str, np.ndarray] = {}
    for _ in range(rounds):
        if all(None not in facts.dims.get(o, (None,)) for n in model.graph.node for o in n.output if o):
            break
        new = _fold_round(model, facts, folded, fold_node)
        if not new:
            break
        folded.update(new)
        light = without_weights(model)
        kept = [n for n in light.graph.node if not all(o in folded for o in n.output if o)]
        del light.graph.node[:]
        light.graph.node.extend(kept)
        light.graph.initializer.extend(numpy_helper.from_array(np.asarray(v), k) for k, v in folded.items())
        facts = GraphFacts(light, {input_name: shape})
    return facts


def _fold_round(model: onnx.ModelProto, facts: GraphFacts, folded: dict, fold_node) -> dict[str, np.ndarray]:
    """One pass in graph order: the values of the nodes not yet folded whose inputs are all known
    (constants, values folded before, a Shape or Size of a tensor whose dims `facts` knows)."""
    SMALL = 4096

    class Known:  # what fold.fold_node reads
        symdims: dict = {}
        opset = facts.opset

        @staticmethod
        def const(name):
            value = folded.get(name)
            if value is None:
                try:
                    value = facts.const(name, max_size=SMALL)
                except Exception:  # an initializer numpy cannot read: unknown
                    value = None
            return value

    new: dict[str, np.ndarray] = {}
    for node in model.graph.node:
        outputs = [o for o in node.output if o]
        if not outputs or all(o in folded for o in outputs):
            continue
        values = None
        if node.op_type in ("Shape", "Size") and node.domain in ("", "ai.onnx"):
            dims = facts.dims.get(node.input[0])
            if dims is not None and None not in dims:
                if node.op_type == "Size":
                    values = {outputs[0]: np.array(int(np.prod(dims, dtype=np.int64)), np.int64)}
                else:
                    start, end = attr(node, "start", 0), attr(node, "end", len(dims))
                    values = {outputs[0]: np.array(list(dims)[start:end], np.int64)}
        elif _small_result(node, Known.const, SMALL):
            values = fold_node(Known, node, SMALL)
        if values:
            values = {k: v for k, v in values.items() if v.size <= SMALL}
            folded.update(values)
            new.update(values)
    return new


def _small_result(node: onnx.NodeProto, const, small: int) -> bool:
    """Whether a fold of `node` stays small: the ops whose output can be far larger than their
    inputs (a shape or a count made into a tensor) are folded only when the output has at most
    `small` elements (a hostile ConstantOfShape of 10^10 elements is never evaluated)."""
    op = node.op_type
    try:
        if op == "ConstantOfShape":
            shape = const(node.input[0])
            return shape is not None and int(np.prod(np.asarray(shape, np.int64))) <= small
        if op in ("Expand", "Tile"):
            data, other = const(node.input[0]), const(node.input[1])
            if data is None or other is None:
                return False
            other = [int(v) for v in np.reshape(other, -1)]
            if op == "Tile":
                return len(other) == data.ndim and int(np.prod(np.array(data.shape) * np.array(other))) <= small
            rank = max(data.ndim, len(other))
            dims = [1] * (rank - data.ndim) + list(data.shape)
            target = [1] * (rank - len(other)) + other
            return int(np.prod([max(a, b) for a, b in zip(dims, target)])) <= small
        if op == "Range":
            start, limit, delta = (const(i) for i in node.input[:3])
            return None not in (start, limit, delta) and float(delta) != 0 and \
                bool(np.ceil((float(limit) - float(start)) / float(delta)) <= small)
        if op == "Pad":
            data, pads = const(node.input[0]), const(node.input[1])
            if data is None or pads is None or np.size(pads) != 2 * data.ndim:
                return False
            pads = [int(v) for v in np.reshape(pads, -1)]
            out = [d + pads[k] + pads[k + data.ndim] for k, d in enumerate(data.shape)]
            return int(np.prod([max(d, 0) for d in out])) <= small
    except (TypeError, ValueError, OverflowError, IndexError):
        return False
    return True


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    facts = GraphFacts(model, infer_shapes=False)
    names = list(facts.initializers) + [n.output[0] for n in model.graph.node if n.op_type == "Constant" and n.output]
    # shapes, repeats and indices: small (weights are never batch-size constants)
    return {name: value for name in names if (value := facts.const(name, max_size=1 << 16)) is not None}


def make_batch_dynamic(model: onnx.ModelProto, input_name: str, input_shape: tuple[int, ...],
                       batch: int, shapes: dict[str, tuple] | None = None, *,
                       in_place: bool = False, placements: dict | None = None) -> tuple[onnx.ModelProto, tuple[str, ...]]:
    """A copy of `model` (input batch already symbolic) whose batch-size constants follow the
    input's batch, and the names of the nodes rewritten. `batch` is the file's fixed batch and
    `input_shape` the input shape at that batch. `in_place`: rewrite `model` itself (no copy of its
    weights; `undo` restores it): only nodes and the initializers after the file's change."""
    if not in_place:
        model = onnx.ModelProto.FromString(model.SerializeToString())
    if shapes is None:
        shapes = static_shapes(model, input_name, (batch, *input_shape[1:]))[0]
    reach = reachable_from(model, input_name)
    consts = _constants(model)
    if placements is None:
        found = batch_placements(model, input_name, shapes, consts, batch)
        placements = found[0] if found else {}
    rewritten: list[str] = []
    head: list[onnx.NodeProto] = []  # nodes that read only the input: first in the graph
    new_nodes: list[onnx.NodeProto] = []  # nodes the current node needs: just before it
    state = {"batch_dim": None, "count": 0}

    def batch_dim() -> str:
        if state["batch_dim"] is None:
            state["batch_dim"] = PREFIX + "batch"
            head.append(helper.make_node("Shape", [input_name], [state["batch_dim"]], name=PREFIX + "batch",
                                              start=0, end=1))
        return state["batch_dim"]

    def fresh(hint: str) -> str:
        state["count"] += 1
        return f"{PREFIX}{hint}.{state['count']}"

    def dynamic_shape(rest: np.ndarray) -> str:
        """Concat(batch, rest) as an int64 tensor name."""
        tail = fresh("tail")
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(rest, np.int64), tail))
        out = fresh("shape")
        new_nodes.append(helper.make_node("Concat", [batch_dim(), tail], [out], name=out, axis=0))
        return out

    def leading(name: str) -> int | None:
        shape = shapes.get(name)
        return shape[0] if shape else None

    def _rewrite_node(node: onnx.NodeProto) -> None:
        op = node.op_type
        index = SHAPE_INPUTS.get(op)
        spot = placements.get(node.name or node.output[0]) if op == "Reshape" else None
        if spot is not None and node.input[1] in consts:
            # the batch is a factor of target axis k (batch_placements): that dim times the batch
            k = spot[0]
            target = resolved_target(node, shapes.get(node.input[0]) or (), consts[node.input[1]])
            if k == 0 and target[0] == batch and leading(node.input[0]) == batch and 0 not in target:
                for a in node.attribute:  # no 0 in the target: allowzero means nothing, 0 may copy
                    if a.name == "allowzero":
                        a.i = 0
                copied = fresh("reshape")  # the common case: [0, ...] copies the batch
                model.graph.initializer.append(numpy_helper.from_array(np.array([0, *target[1:]], np.int64), copied))
                node.input[1] = copied
            else:
                size = fresh("size")
                model.graph.initializer.append(numpy_helper.from_array(np.array([target[k] // batch], np.int64), size))
                scaled = fresh("scaled")
                new_nodes.append(helper.make_node("Mul", [batch_dim(), size], [scaled], name=scaled))
                parts = []
                for part in (target[:k], None, target[k + 1:]):
                    if part is None:
                        parts.append(scaled)
                    elif part:
                        name = fresh("dims")
                        model.graph.initializer.append(numpy_helper.from_array(np.array(part, np.int64), name))
                        parts.append(name)
                shape = fresh("shape")
                new_nodes.append(helper.make_node("Concat", parts, [shape], name=shape, axis=0))
                node.input[1] = shape
            rewritten.append(node.name or node.output[0])
            return
        if index is not None and len(node.input) > index and node.input[index] in consts:
            const = np.asarray(consts[node.input[index]]).reshape(-1)
            if const.size < 2 or int(const[0]) != batch:
                return
            if op == "Reshape":
                data = node.input[0]
                if data not in reach or leading(data) != batch:
                    return
                if not attr(node, "allowzero", 0):  # 0 copies the input's dim: the batch
                    target = fresh("reshape")
                    model.graph.initializer.append(numpy_helper.from_array(
                        np.concatenate([[0], const[1:]]).astype(np.int64), target))
                    node.input[1] = target
                else:  # (the default exporter's views) a 0 is a 0: the batch joins the target at run time
                    node.input[1] = dynamic_shape(const[1:])
            elif op == "Tile":
                # repeats[0] == batch tiles a one-row tensor into the batch; a batched one is left alone
                if node.input[0] in reach or leading(node.input[0]) != 1:
                    return
                node.input[1] = dynamic_shape(const[1:])
            else:  # Expand, ConstantOfShape: a shape whose first dim is the batch
                node.input[index] = dynamic_shape(const[1:])
            rewritten.append(node.name or node.output[0])
        elif op == "Concat" and batch == 1:
            # a constant one-row tensor concatenated onto batched ones (class tokens): broadcast it
            axis = attr(node, "axis", 0)
            inputs = list(node.input)
            batched = [i for i in inputs if i in reach and leading(i) == 1]
            if not batched or axis == 0:
                return
            rank = len(shapes.get(batched[0], ()))
            if rank == 0 or (axis % rank) == 0:
                return
            changed = False
            for k, name in enumerate(inputs):
                if name not in follows and name and leading(name) == 1 and len(shapes.get(name, ())) == rank:
                    expanded = fresh("expand")
                    new_nodes.append(helper.make_node("Expand", [name, dynamic_shape(np.ones(rank - 1))], [expanded],
                                                      name=expanded))
                    node.input[k] = expanded
                    changed = True
            if changed:
                rewritten.append(node.name or node.output[0])
    rewritten += _flat_gathers(model, reach, consts, leading, batch, fresh)
    follows = {input_name}  # tensors that follow the batch once the rewrites so far are made
    ordered: list[onnx.NodeProto] = []
    for node in model.graph.node:
        before = len(rewritten)
        _rewrite_node(node)
        ordered.extend(new_nodes)
        new_nodes.clear()
        ordered.append(node)
        if len(rewritten) > before or any(i in follows for i in node.input):
            follows.update(o for o in node.output if o)
    if head:
        ordered = head + ordered
        del model.graph.node[:]
        model.graph.node.extend(ordered)
    return finalize_model(model), tuple(rewritten)


class Undo:
    """What `make_batch_dynamic(..., in_place=True)` changes in a model, to put it back: the
    nodes (copied: small) and the number of initializers (the rewrite only appends)."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.nodes = onnx.GraphProto()
        self.nodes.node.extend(model.graph.node)
        self.initializers = len(model.graph.initializer)
        self.ir_version = model.ir_version

    def __call__(self) -> onnx.ModelProto:
        graph = self.model.graph
        del graph.node[:]
        graph.node.extend(self.nodes.node)
        del graph.initializer[self.initializers:]
        self.model.ir_version = self.ir_version
        return self.model


def batch_placements(model: onnx.ModelProto, input_name: str, shapes: dict[str, tuple], consts: dict,
                     batch: int, budget: int = 200_000) -> tuple[dict, dict] | None:
    """Where the batch goes in each Reshape that reads it, for graphs that move the batch off axis 0
    (nn.MultiheadAttention's (L, N, E) layout as PyTorch's default exporter writes it: views that
    merge the batch with the heads, then with the sequence): Reshape node name -> (target axis,
    stride), the batch being a factor of that axis with `stride` elements of the axis inside it;
    and the same for every tensor that carries the batch.

    A batch-1 shape cannot tell `view(L, N*H, d)` from `view(L*N, H, d)`, so each Reshape has its
    candidate placements (`_reshape_candidates`, the likeliest first) and the walk below follows
    the batch through every op, backtracking when a placement leads to a contradiction: the batch
    in a contracted, normalised or reduced axis, in two axes of one tensor, or anywhere but axis 0
    of an output. Only files with a batch of 1. None when the walk meets an op it does not know on
    the batch's path or finds no consistent placement (the proof then decides the plain rewrite)."""
    if batch != 1:
        return None
    nodes = list(model.graph.node)
    outputs = {o.name for o in model.graph.output}
    rank = {name: len(shape) for name, shape in shapes.items() if shape is not None}
    place: dict[str, tuple[int, int]] = {input_name: (0, 1)}
    chosen: dict[str, tuple[int, int]] = {}
    stack: list[tuple[int, list, dict, dict]] = []  # choice points: node index, candidates left, state before
    i, steps = 0, 0
    while i < len(nodes):
        steps += 1
        if steps > budget:
            return None
        node = nodes[i]
        result = _propagate(node, place, shapes, consts, rank)
        if result == "unknown":
            return None
        if isinstance(result, list) and result:  # a Reshape of the batch: try its likeliest placement
            stack.append((i, result[1:], dict(place), dict(chosen)))
            result = {node.output[0]: result[0]}
            chosen[node.name or node.output[0]] = result[node.output[0]]
        elif isinstance(result, list):
            result = "conflict"
        if isinstance(result, dict) and any(o in outputs and (spot[0] != 0 or shapes[o][0] != spot[1])
                                            for o, spot in result.items()):
            result = "conflict"  # an output carries the batch on its first axis, outermost (stride 1: the whole axis)
        if result == "conflict":  # back to the last Reshape with a placement left
            while stack and not stack[-1][1]:
                stack.pop()
            if not stack:
                return None
            index, left, saved_place, saved_chosen = stack.pop()
            stack.append((index, left[1:], saved_place, saved_chosen))
            place, chosen = dict(saved_place), dict(saved_chosen)
            reshape = nodes[index]
            chosen[reshape.name or reshape.output[0]] = place[reshape.output[0]] = left[0]
            i = index + 1
            continue
        place.update(result)
        i += 1
    return chosen, place


def resolved_target(node: onnx.NodeProto, dims, target) -> list[int]:
    """A Reshape's target at the file's batch with its 0s (copies of the input's dims, unless
    allowzero) and its -1 (the rest) written out."""
    target = [int(t) for t in np.asarray(target).reshape(-1)]
    if not attr(node, "allowzero", 0):
        target = [dims[j] if t == 0 and j < len(dims) else t for j, t in enumerate(target)]
    if target.count(-1) == 1 and None not in dims:
        rest = int(np.prod([t for t in target if t != -1], dtype=np.int64))
        target = [int(np.prod(dims, dtype=np.int64)) // max(rest, 1) if t == -1 else t for t in target]
    return target


def _reshape_candidates(in_shape, axis: int, stride: int, target) -> list[tuple[int, int]]:
    """Where the batch can sit in a Reshape's target (batch 1 shapes): (axis, stride) with the
    batch's elements after it (`stride` times the input's dims after its axis) matching the
    target's; the likeliest first: an axis that is the batch alone, then the batch as an axis's
    outermost factor, then the rest."""
    inner = stride * int(np.prod(in_shape[axis + 1:], dtype=np.int64))
    target = [int(t) for t in target]
    if any(t <= 0 for t in target):  # -1 or 0 in the target: the plain rewrite handles those
        return []
    found = []
    for k in range(len(target)):
        after = int(np.prod(target[k + 1:], dtype=np.int64))
        if inner % after:
            continue
        s = inner // after
        if s == 0 or target[k] % s:
            continue
        found.append((k, s))
    order = {c: (0 if target[c[0]] == 1 else 1 if target[c[0]] == c[1] else 2, c[0]) for c in found}
    return sorted(found, key=order.get)


def _propagate(node, place, shapes, consts, rank):
    """The batch's place in the outputs of `node` ({} when none of its inputs carries it), a list of
    candidates for a Reshape of the batch, "conflict" or "unknown"."""
    op = node.op_type
    carried = [(k, name) for k, name in enumerate(node.input) if name and name in place]
    if not carried:
        index = SHAPE_INPUTS.get(op)
        if op != "Reshape" and index is not None and len(node.input) > index and node.input[index] in consts:
            const = np.asarray(consts[node.input[index]]).reshape(-1)
            if const.size >= 2 and int(const[0]) == 1:  # made to follow the batch by the rewrite
                return {node.output[0]: (0, 1)}
        return {}
    out = node.output[0]
    out_rank = rank.get(out)
    if out_rank is None:
        return "unknown"

    def one(axis, stride):
        return {out: (axis, stride)}

    (k0, first), = carried[:1]
    a, s = place[first]
    if op in ELEMENTWISE or op in ("Expand",):
        if op == "Expand":
            if k0 != 0:
                return "conflict"
        spots = {(pa + out_rank - rank.get(name, out_rank), ps) for _, name in carried for pa, ps in [place[name]]}
        if len(spots) != 1:
            return "conflict"
        (axis, stride), = spots
        for name in node.input:
            if name and name not in place and op != "Expand":
                shape = shapes.get(name)
                if shape is None:
                    return "unknown"
                j = axis - (out_rank - len(shape))
                if 0 <= j < len(shape) and shape[j] != 1:
                    return "conflict"  # a constant that varies along the batch's axis
        return one(axis, stride)
    if op in PER_ROW:
        return one(0, s) if k0 == 0 and a == 0 and len(carried) == 1 else "conflict"
    if op in ("Softmax", "LogSoftmax", "Hardmax"):
        axis = attr(node, "axis", -1) % out_rank
        return "conflict" if axis == a else one(a, s)
    if op == "LayerNormalization":
        axis = attr(node, "axis", -1) % out_rank
        return "conflict" if a >= axis or k0 != 0 else one(a, s)
    if op == "Transpose":
        perm = attr(node, "perm") or list(range(out_rank))[::-1]
        return one(list(perm).index(a), s)
    if op == "Reshape":
        if k0 != 0 or len(node.input) < 2 or node.input[1] not in consts:
            return "unknown" if k0 == 0 else "conflict"
        return _reshape_candidates(shapes[first], a, s, resolved_target(node, shapes[first], consts[node.input[1]]))
    if op == "Flatten":
        f = attr(node, "axis", 1) % max(rank.get(first, 1), 1)
        dims = shapes[first]
        if a < f:
            return one(0, s * int(np.prod(dims[a + 1:f], dtype=np.int64)))
        return one(1, s * int(np.prod(dims[a + 1:], dtype=np.int64)))
    if op == "Gather":
        g = attr(node, "axis", 0) % rank[first]
        if k0 != 0 or g == a:
            return "conflict"
        indices = shapes.get(node.input[1]) or ()
        return one(a + len(indices) - 1 if g < a else a, s)
    if op in ("Squeeze", "Unsqueeze"):
        axes = consts.get(node.input[1]) if len(node.input) > 1 and node.input[1] else attr(node, "axes")
        if axes is None:
            return "unknown"
        axes = [int(x) for x in np.asarray(axes).reshape(-1)]
        if op == "Squeeze":
            axes = [x % rank[first] for x in axes]
            return "conflict" if a in axes else one(a - sum(x < a for x in axes), s)
        axes = sorted(x % out_rank for x in axes)
        positions = [j for j in range(out_rank) if j not in axes]
        return one(positions[a], s)
    if op in ("Slice", "Split", "Concat"):
        if op == "Concat":
            spots = {place[name] for _, name in carried}
            if len(spots) != 1 or attr(node, "axis", 0) % out_rank == a:
                return "conflict"
            for name in node.input:  # a one-row constant on axis 0 is broadcast by the rewrite
                if name and name not in place and not (a == 0 and (shapes.get(name) or (0,))[0] == 1):
                    return "conflict"
            return {out: (a, s)}
        if op == "Split":
            return "conflict" if attr(node, "axis", 0) % out_rank == a else {o: (a, s) for o in node.output if o}
        axes = consts.get(node.input[3]) if len(node.input) > 3 and node.input[3] else None
        axes = list(range(out_rank)) if axes is None else [int(x) % out_rank for x in np.asarray(axes).reshape(-1)]
        return "conflict" if a in axes and shapes[first][a] != shapes[out][a] else one(a, s)
    if op == "MatMul":
        ra, rb = rank.get(node.input[0]), rank.get(node.input[1])
        spots = set()
        for k, name in carried:
            pa, ps = place[name]
            r = ra if k == 0 else rb
            if (k == 0 and pa == r - 1) or (k == 1 and pa == r - 2) or (k == 1 and r == 1):
                return "conflict"  # the batch in the contracted axis
            spots.add((pa + out_rank - r, ps))
        return one(*spots.pop()) if len(spots) == 1 else "conflict"
    if op == "Gemm":
        if [k for k, _ in carried] != [0] or attr(node, "transA", 0):
            return "conflict" if carried else {}
        return one(a, s) if a == 0 else "conflict"
    if op in REDUCE:
        axes = [attr(node, "axis", 0)] if op in ("ArgMax", "ArgMin") else (
            consts.get(node.input[1]) if len(node.input) > 1 and node.input[1] else attr(node, "axes"))
        if axes is None or k0 != 0:
            return "conflict"
        axes = [int(x) % rank[first] for x in np.asarray(axes).reshape(-1)]
        if a in axes:
            return "conflict"
        keep = attr(node, "keepdims", 1)
        return one(a if keep else a - sum(x < a for x in axes), s)
    if op in ("Shape", "Size"):
        return {}
    return "unknown"


def _flat_gathers(model, reach, consts, leading, batch, fresh) -> list[str]:
    """`as_strided` as PyTorch's default exporter writes it: the whole batch-1 tensor flattened
    (Reshape to [-1]) and read back by Gathers (axis 0) with constant indices shaped (1, ...).
    Flattened row by row instead (Reshape to [0, -1]), each Gather reads its indices in every row
    (axis 1, the indices without their batch axis): rows stay rows. Only when every reader of the
    flat tensor is such a Gather, and every index lies in the one row there is at batch 1."""
    if batch != 1:
        return []
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    done = []
    for node in model.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in consts:
            continue
        target = np.asarray(consts[node.input[1]]).reshape(-1)
        data, flat = node.input[0], node.output[0]
        if target.tolist() != [-1] or data not in reach or leading(data) != 1:
            continue
        gathers = readers.get(flat, [])
        fits = [g for g in gathers if g.op_type == "Gather" and g.input[0] == flat and attr(g, "axis", 0) == 0
                and g.input[1] in consts and np.ndim(consts[g.input[1]]) >= 1 and np.shape(consts[g.input[1]])[0] == 1
                and np.issubdtype(np.asarray(consts[g.input[1]]).dtype, np.integer)
                and np.asarray(consts[g.input[1]]).min(initial=0) >= 0]
        if not gathers or len(fits) != len(gathers) or any(flat == o.name for o in model.graph.output):
            continue
        rows = fresh("rows")
        model.graph.initializer.append(numpy_helper.from_array(np.array([0, -1], np.int64), rows))
        node.input[1] = rows
        for gather in fits:
            indices = fresh("indices")
            model.graph.initializer.append(numpy_helper.from_array(np.asarray(consts[gather.input[1]])[0], indices))
            gather.input[1] = indices
            for a in gather.attribute:
                if a.name == "axis":
                    a.i = 1
            if not any(a.name == "axis" for a in gather.attribute):
                gather.attribute.append(helper.make_attribute("axis", 1))
            done.append(gather.name or gather.output[0])
        done.append(node.name or flat)
    return done


def _reduction_lengths(model: onnx.ModelProto, shapes: dict[str, tuple]) -> dict[str, int]:
    """For each tensor, the summed lengths of the dot products and reductions on its longest path
    from the input (1 for each other op): the K of the float32 error bound below."""
    weights = {init.name: tuple(init.dims) for init in model.graph.initializer}
    depth: dict[str, int] = {}
    for node in model.graph.node:
        k = 1
        op = node.op_type
        if op in ("Conv", "ConvTranspose") and len(node.input) > 1:
            w = weights.get(node.input[1]) or shapes.get(node.input[1]) or ()
            if w and all(d for d in w):
                k = int(np.prod(w[1:])) * (int(w[0]) if op == "ConvTranspose" else 1)
        elif op in ("Gemm", "MatMul") and node.input:
            a = shapes.get(node.input[0]) or ()
            trans = bool(attr(node, "transA", 0))
            if a and a[-1 if not trans else -2]:
                k = int(a[-1 if not trans else -2])
        elif op in ("GlobalAveragePool", "ReduceMean", "ReduceSum", "AveragePool", "Softmax",
                    "LpNormalization", "InstanceNormalization", "LayerNormalization"):
            a = shapes.get(node.input[0]) or ()
            k = int(np.prod([d for d in a[1:] if d])) if a else 1
        base = max((depth.get(i, 0) for i in node.input if i), default=0)
        for out in node.output:
            depth[out] = base + k
    return depth


def prove_batch_dynamic(original: onnx.ModelProto, rewritten: onnx.ModelProto, input_name: str,
                        input_shape: tuple[int, ...], batch: int, known=None, *, compared: list[str] | None = None,
                        depth: dict[str, int] | None = None, right: set[str] | None = None) -> tuple[bool, str, float]:
    """Run the rewritten graph on two different rows, once as a batch of 2 and once each alone:
    row by row the batch must equal the single runs for every float tensor that carries the batch
    where rows could meet (`rows_meet`; the rest follow from those). The rewrite gives, at the
    file's own batch, the constants the file has (a Reshape to [0, ...] or Concat(batch, ...) is
    [1, ...] at batch 1), so the rewritten graph computes the original's function there; the runs
    prove that its rows are independent. Returns (proved, why not, the largest error as a fraction
    of its tolerance). `compared` and `depth`: `rows_meet` and the reduction lengths of the
    original, when it was rewritten in place since.

    `right` (rows_meet's second value): the runs start where they must (`_region`): only the nodes
    the compared tensors need after the last tensors right by rows_meet's induction, which are fed
    two random rows of their own (ConvNeXt-T's default export: its pooled features, not the
    image); where that region fails on values, the whole graph runs as above."""
    shapes, elem = known or static_shapes(original, input_name, (batch, *input_shape[1:]))
    names = compared if compared is not None else rows_meet(original, input_name, shapes, elem, batch)
    depth = depth if depth is not None else _reduction_lengths(original, shapes)
    if not names:
        return False, "no tensor of the graph carries the batch axis", float("inf")
    rng = np.random.default_rng(20240611)
    rows = rng.standard_normal((2, *input_shape[1:])).astype(np.float32)
    unit = max([UNIT_ROUNDOFF] + [NARROW_ROUNDOFF[t] for t in set(elem.values()) if t in NARROW_ROUNDOFF])
    from onnxprobe.runtime.session import trim_memory

    try:
        with _quiet_runtime():
            region = _region(rewritten, input_name, names, right, shapes, elem, input_shape) if right else None
            if region is not None:
                sub, cuts = region
                feeds = {c: rng.standard_normal((2, *shapes[c][1:])).astype(helper.tensor_dtype_to_np_dtype(elem[c]))
                         for c in cuts}
                result = _compare(sub, feeds, names, _reduction_lengths(sub, shapes), unit)
                if result[0] or not result[3]:  # proved, or failed whatever the values: the whole graph would too
                    return result[:3]
            return _compare(rewritten, {input_name: rows}, names, depth, unit)[:3]
    finally:
        trim_memory()  # the proof's session and runs are gone: their memory goes back


def _region(rewritten: onnx.ModelProto, input_name: str, names: list[str], right: set[str], shapes: dict,
            elem: dict, input_shape: tuple[int, ...]) -> tuple[onnx.ModelProto, list[str]] | None:
    """The part of the rewritten graph that the compared tensors `names` need after the tensors
    right by rows_meet's induction (`right`: rows first, every row a function of its own input
    row), with those tensors as its inputs: (the graph, its inputs), or None where it is the whole
    graph or the sizes at the cut are not the batch's (inferred at batch STATIC_BATCH). Its runs
    are the proof's: the nodes before the cut map right rows to right rows (rows_meet), and a
    batch of two rows at the cut equals its single rows, so the compared tensors get what the
    whole graph gives them. The rewrite's size of the batch (Shape of the input) reads a cut tensor."""
    producers = {o: n for n in rewritten.graph.node for o in n.output if o}
    wanted, numeric = set(names), FLOAT_TYPES - {onnx.TensorProto.BFLOAT16}

    def cut(t):
        shape = shapes.get(t)
        return (t == input_name or (t in right and t not in wanted and elem.get(t) in numeric and shape
                                    and None not in shape and shape[0] == 1))

    region, cuts, seen, stack = set(), [], set(), list(names)
    while stack:
        t = stack.pop()
        if t in seen or not t:
            continue
        seen.add(t)
        node = producers.get(t)
        if node is None and t != input_name:
            continue  # an initializer
        if cut(t):
            cuts.append(t)
            continue
        region.add(id(node))
        if node.name != PREFIX + "batch":
            stack.extend(node.input)
    if input_name in cuts or not cuts or any(id(producers[c]) in region for c in cuts):
        return None
    sized = _folded_facts(rewritten, input_name, (STATIC_BATCH, *input_shape[1:]))
    if any(tuple(sized.dims.get(c) or ()) != (STATIC_BATCH, *shapes[c][1:]) for c in cuts):
        return None  # the graph before the cut may not run at every batch: the whole graph runs
    graph = onnx.GraphProto(name=rewritten.graph.name)
    for node in rewritten.graph.node:
        if id(node) in region:
            added = graph.node.add()
            added.CopyFrom(node)
            if node.name == PREFIX + "batch":
                added.input[0] = cuts[0]
    graph.initializer.extend(rewritten.graph.initializer)  # weights stay references (runtime.weights)
    graph.input.extend(helper.make_tensor_value_info(c, elem[c], [BATCH_DIM, *shapes[c][1:]]) for c in cuts)
    graph.output.extend(helper.make_empty_tensor_value_info(n) for n in names)
    sub = onnx.ModelProto(ir_version=rewritten.ir_version, graph=graph)
    sub.opset_import.extend(rewritten.opset_import)
    sub.functions.extend(rewritten.functions)
    return sub, cuts


# ops whose output row i depends on input row i only, when the batch is axis 0 of every input the
# input reaches (conditions on their axes in _row_local); any other op's output is compared
ELEMENTWISE = {"Relu", "Sigmoid", "Tanh", "Erf", "Exp", "Log", "Abs", "Neg", "Sqrt", "Reciprocal", "Clip",
               "LeakyRelu", "HardSigmoid", "HardSwish", "Gelu", "Softplus", "Softsign", "Elu", "Selu", "Celu",
               "Mish", "ThresholdedRelu", "Cast", "Identity", "Dropout", "Sign", "Floor", "Ceil", "Round", "Sin",
               "Cos", "PRelu", "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Where", "Not",
               "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "And", "Or", "IsNaN", "IsInf", "Mod"}
PER_ROW = {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool",
           "GlobalLpPool", "BatchNormalization", "InstanceNormalization", "LRN", "DepthToSpace", "SpaceToDepth"}
AXIS_OPS = {"Softmax", "LogSoftmax", "Hardmax", "LayerNormalization", "Flatten", "Concat", "Split", "Gather"}
REDUCE = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
          "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp", "ArgMax", "ArgMin"}


def rows_meet(model: onnx.ModelProto, input_name: str, shapes: dict[str, tuple], elem: dict[str, int],
              batch: int, place: dict[str, tuple[int, int]] | None = None, *, with_right: bool = False):
    """The float tensors the proof compares: the graph's outputs and every output, carrying the
    batch on axis 0, of a node where rows could meet (not `_row_local`). By induction every other
    batch-carrying tensor is then row by row right: a row-local node maps right rows to right rows.
    `place`: where `batch_placements` found the batch (a tensor whose first dim is 1 but whose batch
    is elsewhere, such as an unsqueezed axis, is not compared as rows). `with_right`: also the set
    of tensors right by that induction (the compared ones included), as a second value."""
    float_types = FLOAT_TYPES - {onnx.TensorProto.BFLOAT16}  # compared in numpy, which has no bfloat16
    reach = reachable_from(model, input_name)
    consts = _constants(model)

    def rows_first(name):  # carries the batch on axis 0 (`place`: batch_placements' walk; else the shapes say)
        shape = shapes.get(name)
        if place is not None:
            return place.get(name) == (0, 1) and bool(shape) and shape[0] == batch
        return bool(shape) and shape[0] == batch

    right = {input_name}
    compare = []
    for node in model.graph.node:
        outputs = [o for o in node.output if o and o in reach]
        if not outputs:
            continue
        if _row_local(node, reach, right, shapes, consts, rows_first):
            right.update(o for o in outputs if rows_first(o))
            continue
        for o in outputs:
            if rows_first(o) and elem.get(o) in float_types:
                compare.append(o)
                right.add(o)
    outputs = [o.name for o in model.graph.output
               if o.name in reach and rows_first(o.name) and elem.get(o.name) in float_types]
    compared = list(dict.fromkeys(compare + outputs))
    return (compared, right) if with_right else compared


def _row_local(node, reach, right, shapes, consts, rows_first) -> bool:
    op = node.op_type
    if node.domain not in ("", "ai.onnx") or any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                                                  for a in node.attribute):
        return False
    inputs = [i for i in node.input if i]
    reached = [i for i in inputs if i in reach]
    if not reached or any(i not in right for i in reached):
        return False
    out = node.output[0]
    rank = len(shapes.get(out) or ())
    if rank == 0 or not rows_first(out):
        return False

    def const_axes(index, name):
        value = consts.get(node.input[index]) if len(node.input) > index and node.input[index] else None
        if value is None:
            value = attr(node, name)
        return None if value is None else [int(v) for v in np.asarray(value).reshape(-1)]

    def free_of_axis0(axes, r):
        return axes is not None and len(axes) > 0 and all(a % r != 0 for a in axes)

    if op in ELEMENTWISE:
        # every reached input has the output's rank (its axis 0 is the batch); constants broadcast
        # from fewer dims or a leading 1
        if any(len(shapes.get(i) or ()) != rank for i in reached):
            return False
        for i in inputs:
            if i not in reach:
                shape = shapes.get(i)
                if shape is None or (len(shape) == rank and shape[0] != 1):
                    return False
        return True
    if op in PER_ROW:
        return reached == [node.input[0]]
    if op == "Gemm":
        return reached == [node.input[0]] and not attr(node, "transA", 0)
    if op == "MatMul":
        a, b = node.input[0], node.input[1]
        if b not in reach:
            return a in reach and len(shapes.get(b) or ()) in (1, 2) and len(shapes.get(a) or ()) >= 2
        return a in reach and len(shapes.get(a) or ()) == len(shapes.get(b) or ()) == rank >= 3
    if op == "Transpose":
        perm = attr(node, "perm")
        return perm is not None and int(perm[0]) == 0
    if op in AXIS_OPS:
        in_rank = len(shapes.get(node.input[0]) or ())
        axis = attr(node, "axis", 1 if op == "Flatten" else -1 if op in ("Softmax", "LogSoftmax", "Hardmax",
                                                                           "LayerNormalization") else 0)
        if in_rank == 0 or axis % in_rank == 0:
            return False
        if op == "Concat":
            return len(reached) == len(inputs) and all(len(shapes.get(i) or ()) == rank for i in inputs)
        return reached == [node.input[0]]
    if op in REDUCE:
        in_rank = len(shapes.get(node.input[0]) or ())
        axes = const_axes(1, "axes") if op not in ("ArgMax", "ArgMin") else [attr(node, "axis", 0)]
        return reached == [node.input[0]] and in_rank > 0 and free_of_axis0(axes, in_rank)
    if op == "Unsqueeze":
        return reached == [node.input[0]] and free_of_axis0(const_axes(1, "axes"), rank)
    if op == "Squeeze":
        in_rank = len(shapes.get(node.input[0]) or ())
        return reached == [node.input[0]] and in_rank > 0 and free_of_axis0(const_axes(1, "axes"), in_rank)
    if op == "Slice":
        in_rank = len(shapes.get(node.input[0]) or ())
        return reached == [node.input[0]] and in_rank > 0 and free_of_axis0(const_axes(3, "axes"), in_rank)
    return False


# ops whose rule in _propagate is a proof: with the batch where the walk puts it in their inputs,
# each output row is computed from the same row of the inputs only (the conditions on attributes
# and sizes that the rules leave open are checked in `_keeps_rows_apart` and `_sizes_follow`)
STATIC_OPS = (ELEMENTWISE | PER_ROW | REDUCE | {"Expand", "Softmax", "LogSoftmax", "Hardmax", "LayerNormalization",
                                                "Transpose", "Reshape", "Flatten", "Gather", "Squeeze", "Unsqueeze",
                                                "Slice", "Split", "Concat", "MatMul", "Gemm"})
WHOLE_AXIS = 2 ** 31 - 1  # a Slice end at least this keeps an axis to its end whatever its size
STATIC_BATCH = 3  # the batch at which the rewritten graph's sizes are inferred (any size but 1)


def rows_never_meet(model: onnx.ModelProto, input_name: str, place: dict[str, tuple[int, int]],
                    shapes: dict[str, tuple], consts: dict) -> str:
    """Why the placement walk (`batch_placements`, on the file's own graph, before the rewrite) is
    no proof that rows never meet; "" when it is one. It is one when every node that reads a tensor
    carrying the batch is a default-domain op of STATIC_OPS whose outputs the walk placed (or
    nobody reads), none reads the batch's size (Shape, Size: a value that changes with the batch),
    the conditions below hold, and every output that carries the batch has it as its whole axis
    0. Each such op computes its output at batch row b from row b of its inputs (the walk put the
    batch in no contracted, normalised, reduced, gathered, split or concatenated axis; broadcast
    operands have size 1 on the batch's axis), so by induction over the graph every row is the
    file's function of its own input row, provided the rewritten graph has the sizes the walk
    says: `_sizes_follow` checks those."""
    outputs = {o.name for o in model.graph.output}
    read = {i for node in model.graph.node for i in node.input if i}
    for node in model.graph.node:
        carried = [i for i in node.input if i and i in place]
        if not carried:
            continue
        op = node.op_type
        where = f"{op} node '{node.name or node.output[0]}'"
        if node.domain not in ("", "ai.onnx") or op not in STATIC_OPS:
            return f"{where} reads the batch"
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            return f"{where} has a subgraph"
        if any(o and o not in place and (o in read or o in outputs) for o in node.output):
            return f"{where} has an output the walk did not place"
        if op not in ELEMENTWISE and op not in ("Concat", "MatMul") and any(i in place for i in node.input[1:]):
            return f"{where} reads the batch in an input that is no data"  # shapes, indices, bounds, weights
        a = place[node.input[0]][0] if node.input and node.input[0] in place else None
        if op == "BatchNormalization" and attr(node, "training_mode", 0):
            return f"{where} normalises over the batch"
        if op == "Dropout" and len(node.input) > 2 and node.input[2]:
            return f"{where} may drop at random"
        if op in REDUCE and op not in ("ArgMax", "ArgMin"):
            axes = consts.get(node.input[1]) if len(node.input) > 1 and node.input[1] else attr(node, "axes")
            if axes is None or np.size(axes) == 0:  # no axes: every axis, the batch's included
                return f"{where} may reduce over every axis"
        if op == "Gemm" and len(node.input) > 2 and node.input[2]:
            c = shapes.get(node.input[2])
            if node.input[2] in place or c is None or (len(c) == 2 and c[0] != 1):
                return f"{where} adds a bias with rows of its own"
        if op == "Slice" and a is not None:
            rank = len(shapes.get(node.input[0]) or ())
            parts = [consts.get(node.input[k]) if len(node.input) > k and node.input[k] else None for k in (1, 2, 3, 4)]
            if parts[0] is None or parts[1] is None or rank == 0:
                return f"{where} has bounds computed at run time"
            axes = list(range(len(np.reshape(parts[0], -1)))) if parts[2] is None else \
                [int(x) % rank for x in np.reshape(parts[2], -1)]
            steps = [1] * len(axes) if parts[3] is None else [int(x) for x in np.reshape(parts[3], -1)]
            for k, axis in enumerate(axes):
                if axis == a and not (int(np.reshape(parts[0], -1)[k]) == 0 and steps[k] == 1
                                      and int(np.reshape(parts[1], -1)[k]) >= WHOLE_AXIS):
                    return f"{where} slices the batch's axis"
    for name in outputs:
        if name in place and (place[name] != (0, 1) or (shapes.get(name) or (None,))[0] != 1):
            return f"output '{name}' has the batch inside its axis {place[name][0]}"
    return ""


def _sizes_follow(rewritten: onnx.ModelProto, input_name: str, input_shape: tuple[int, ...],
                  place: dict[str, tuple[int, int]], shapes: dict[str, tuple]) -> str:
    """Why the rewritten graph's sizes at a batch of STATIC_BATCH are not the ones the walk says
    (every tensor as at batch 1, the axis that carries the batch STATIC_BATCH times longer); ""
    when they are, found by ONNX shape inference helped by folding (no run). The batch's size enters the rewritten
    graph through one Shape of the input only, and only into the shape inputs the rewrite made
    (Reshape targets, Expand / ConstantOfShape shapes, Tile repeats: products and concatenations
    of the size with constants), so sizes right at one batch are right at every batch."""
    n = STATIC_BATCH
    shape_inputs = {"Reshape": 1, "Expand": 1, "Tile": 1, "ConstantOfShape": 0}
    sized = set()  # tensors whose value is the batch's size, or made from it
    for node in rewritten.graph.node:
        ours = node.name.startswith(PREFIX)
        reads = [k for k, i in enumerate(node.input) if i in sized]
        if ours and node.op_type == "Shape" and list(node.input) == [input_name]:
            sized.update(node.output)
        elif ours and node.op_type in ("Concat", "Mul") and reads:
            sized.update(node.output)
        elif reads and reads != [shape_inputs.get(node.op_type)]:
            return f"{node.op_type} node '{node.name}' reads the batch's size"
        elif ours and node.op_type not in ("Shape", "Concat", "Mul", "Expand"):
            return f"the rewrite's {node.op_type} node '{node.name}'"
    facts = _folded_facts(rewritten, input_name, (n, *input_shape[1:]))  # Tile reads no propagated repeats
    for node in rewritten.graph.node:
        for o in node.output:
            if not o or node.name.startswith(PREFIX) or o not in shapes:
                continue
            want = shapes[o]
            if want is None or None in want:
                return f"the size of '{o}' at batch 1 is unknown"
            if o in place:
                want = tuple(d * n if axis == place[o][0] else d for axis, d in enumerate(want))
            if tuple(facts.dims.get(o) or ()) != tuple(want):
                return f"'{o}' is {facts.dims.get(o)} at batch {n}, not {list(want)}"
    return ""


@contextmanager
def _quiet_runtime():
    """A rewritten graph that fails at batch 2 is an expected outcome, not an error to print."""
    import onnxruntime as ort

    ort.set_default_logger_severity(4)
    try:
        yield
    finally:
        ort.set_default_logger_severity(3)  # the level onnxprobe.runtime.session sets


def _compare(rewritten, feeds, names, depth, unit=UNIT_ROUNDOFF) -> tuple[bool, str, float, bool]:
    """The runs of the proof on `feeds` (two rows each, cast to the graph's input types: a float16
    or double input takes its own); the fourth value: whether a failure may depend on the values
    fed (a difference over the tolerance), not only on sizes."""
    from onnxprobe.graph.expose import expose_tensors
    from onnxprobe.runtime.session import create_session

    try:
        session = create_session(expose_tensors(rewritten, names, keep_outputs=False), device="cpu", one_off=True)
    except Exception as exc:  # a graph ONNX Runtime does not take (a region cut wrong): the values decide nothing
        return False, f"ONNX Runtime refuses the graph: {' '.join(str(exc).split())[:160]}", float("inf"), True
    try:
        feeds = {k: v.astype(session.input_dtype(k)) for k, v in feeds.items()}
        both = session.run(feeds, names)  # first: a graph that fails at batch 2 fails early
        single = [session.run({k: v[i:i + 1] for k, v in feeds.items()}, names) for i in range(2)]
    except Exception as exc:  # ONNX Runtime refuses the rewritten graph at batch 1 or 2
        text = " ".join(str(exc).split())
        node = re.search(r"running (\w+) node\. Name:'([^']*)'", text)
        where = f"{node.group(1)} node '{node.group(2)}' fails" if node else text[:160]
        return (False, f"the graph does not run at batch 2 even with its batch-size constants rewritten: {where}",
                float("inf"), False)
    worst = 0.0
    for t in names:
        b = np.asarray(both[t])
        if b.shape[:1] != (2,):
            return False, f"tensor '{t}' does not follow the batch (shape {b.shape} at batch 2)", float("inf"), False
        for i in range(2):
            one = np.asarray(single[i][t])
            if b[i:i + 1].shape != one.shape:
                return False, f"tensor '{t}' changes shape when the batch does", float("inf"), False
            # Each run computes t in float32 (u: float16's where the graph holds float16 tensors)
            # through dot products and reductions of summed length K (its longest path): the
            # standard bound puts each run's rounding error within
            # K*u*scale, scale the largest magnitude on the path (at least max|t|), so two runs
            # differ by at most 2*K*u*scale. A rewrite that mixes rows or drops one differs by O(scale).
            scale = max(float(np.abs(one).max(initial=0.0)), float(np.abs(b[i]).max(initial=0.0)), 1e-30)
            tol = 2.0 * depth.get(t, 1) * unit * scale
            err = float(np.abs(b[i:i + 1].astype(np.float64) - one).max(initial=0.0))
            if not np.isfinite(err) or err > tol:
                return False, (f"tensor '{t}' differs between a batch of 2 and single runs "
                               f"by {err:.3g} (float32 rounding allows {tol:.3g})"), float(err / tol), True
            worst = max(worst, float(err / tol))
    return True, "", worst, False


def _static(label: str, check, *args) -> str:
    """A check of the proof from the graph; a graph it cannot read is no proof (the run decides)."""
    try:
        return check(*args)
    except Exception as exc:
        return f"{label}: {' '.join(str(exc).split())[:120]}"


def resolve_batch(model: onnx.ModelProto, input_name: str, input_shape: tuple[int, ...],
                  declared) -> tuple[onnx.ModelProto, BatchAxis]:
    """The model to run and how its batch is handled. `model` has a symbolic input batch already;
    `declared` is the input's first dim as the file gave it."""
    batch = declared_batch(declared)
    if not isinstance(batch, int):
        return model, BatchAxis("dynamic", declared if declared not in (None, "") else "?")
    with _quiet_runtime():
        known = static_shapes(model, input_name, (batch, *input_shape[1:]))
    # the facts the proof needs about the file's own graph, before the rewrite changes it in place
    consts = _constants(model)
    found = batch_placements(model, input_name, known[0], consts, batch)
    chosen, place = found if found else ({}, None)
    # rows provably apart from the graph alone (checked on the file's own graph, before the rewrite)?
    static_why = _static("rows_never_meet", rows_never_meet, model, input_name, place, known[0], consts) \
        if place else "no placement"
    compared, right = rows_meet(model, input_name, known[0], known[1], batch, place, with_right=True)
    depth = _reduction_lengths(model, known[0])
    undo = Undo(model)
    try:
        rewritten, nodes = make_batch_dynamic(model, input_name, input_shape, batch, known[0], in_place=True,
                                              placements=chosen)
    except Exception as exc:  # a graph our rewrite cannot read: keep the original, rows at a time
        return undo(), BatchAxis("fixed", batch, rows=batch, why=f"cannot rewrite the graph: {' '.join(str(exc).split())[:120]}")
    if not static_why:
        static_why = _static("_sizes_follow", _sizes_follow, rewritten, input_name, input_shape, place, known[0])
    if not static_why:  # proved from the graph: no run
        proved, why, worst, proof = True, "", None, "graph"
    else:
        proved, why, worst = prove_batch_dynamic(model, rewritten, input_name, input_shape, batch, known,
                                                 compared=compared, depth=depth, right=right)
        proof = "run"
    if proved:
        off_axis = {t: known[0][t] for t, spot in (place or {}).items()
                    if spot != (0, 1) or not known[0].get(t) or known[0][t][0] != batch}
        off_axis = {t: shape for t, shape in off_axis.items() if shape is not None and None not in shape}
        on_axis = frozenset(t for t, spot in (place or {}).items() if t not in off_axis and spot == (0, 1))
        batch_axes = {t: (place or {})[t][0] for t in off_axis if t in (place or {})}
        return rewritten, BatchAxis("made dynamic", batch, rewritten=nodes, max_error=worst, off_axis=off_axis,
                                    on_axis=on_axis, batch_axes=batch_axes, proof=proof)
    # the shapes found at the file's batch are the fixed graph's: its facts need no run of their own
    known_shapes = {t: (shape, known[1].get(t)) for t, shape in known[0].items()
                    if shape is not None and None not in shape and known[1].get(t)}
    return undo(), BatchAxis("fixed", batch, rows=batch, why=why, max_error=None if not np.isfinite(worst) else worst,
                             off_axis=known_shapes)
