"""The batch axis: making a fixed-batch graph batch-dynamic, and proving it on the model.

Most published ONNX files fix the batch at 1 (`torch.onnx.export` without `dynamic_axes`), and
exporters fold the batch size into constants: Reshape targets such as `[1, -1]` or
`[1, 2, 24, 8, 8]`, the shapes of Expand and ConstantOfShape, Tile repeats, constants
concatenated onto batched tensors. `make_batch_dynamic` rewrites those constants so that the batch
follows the input; `prove_batch_dynamic` then runs the model: a batch of two different inputs must
give, row by row, what two single runs give (and what the original graph gives), for every
batch-carrying tensor. A graph that cannot be rewritten, or whose proof fails, stays as it was and
is run a fixed number of rows at a time (`BatchAxis.rows`) by `ProbeModel`.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from onnxprobe.graph.facts import FLOAT_TYPES, GraphFacts, attr
from onnxprobe.graph.loading import finalize_model

PREFIX = "onnxprobe.batch:"
UNIT_ROUNDOFF = 2.0 ** -24  # float32's unit roundoff u
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
    max_error: float | None = None  # the proof's largest |batch - single| over its tolerance

    @property
    def fixed(self) -> bool:
        return self.kind == "fixed"

    def describe(self) -> str:
        if self.kind == "dynamic":
            return f"batch dynamic (input declares '{self.declared}')"
        if self.kind == "made dynamic":
            what = f"{len(self.rewritten)} batch-size constant(s) rewritten" if self.rewritten else "no constant needed rewriting"
            return (f"batch made dynamic (the file fixes it at {self.declared}; {what}; "
                    "proved on the model: a batch of 2 equals two single runs)")
        return f"batch fixed at {self.rows}: rows run {'one' if self.rows == 1 else self.rows} at a time ({self.why})"

    def to_json(self) -> dict:
        return {"kind": self.kind, "declared": self.declared, "rows": self.rows, "rewritten": list(self.rewritten),
                "why": self.why, "max_error": self.max_error}


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
    inference, else one run; dims neither pins down are None). This is the file's own graph at its
    own fixed batch, before the rewrite that these shapes decide: an inference of its own, not the
    loaded model's (GraphFacts), which describes the rewritten graph with a dynamic batch."""
    facts = GraphFacts(model, {input_name: shape})
    out = {name: tuple(dims) for name, dims in facts.dims.items()}
    elems = dict(facts.elem)
    missing = [o for n in model.graph.node for o in n.output if o and None in out.get(o, (None,))]
    if missing:  # shapes computed at run time (Split sizes from Shape ops ...): run once at that batch
        from onnxprobe.graph.expose import expose_tensors
        from onnxprobe.runtime.session import create_session

        try:
            session = create_session(expose_tensors(model, missing, keep_outputs=False), device="cpu")
            x = np.zeros(shape, session.input_dtype(input_name))
            for k, v in session.run({input_name: x}, missing).items():
                out[k] = tuple(np.shape(v))
                elems[k] = helper.np_dtype_to_tensor_dtype(np.asarray(v).dtype)
        except Exception:
            pass  # the rewrite then leaves those tensors alone; the proof decides
    return out, elems


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    facts = GraphFacts(model, infer_shapes=False)
    names = list(facts.initializers) + [n.output[0] for n in model.graph.node if n.op_type == "Constant" and n.output]
    # shapes, repeats and indices: small (weights are never batch-size constants)
    return {name: value for name in names if (value := facts.const(name, max_size=1 << 16)) is not None}


def make_batch_dynamic(model: onnx.ModelProto, input_name: str, input_shape: tuple[int, ...],
                       batch: int, shapes: dict[str, tuple] | None = None) -> tuple[onnx.ModelProto, tuple[str, ...]]:
    """A copy of `model` (input batch already symbolic) whose batch-size constants follow the
    input's batch, and the names of the nodes rewritten. `batch` is the file's fixed batch and
    `input_shape` the input shape at that batch."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    if shapes is None:
        shapes = static_shapes(model, input_name, (batch, *input_shape[1:]))[0]
    reach = reachable_from(model, input_name)
    consts = _constants(model)
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
                        input_shape: tuple[int, ...], batch: int, known=None) -> tuple[bool, str, float]:
    """Run both graphs: the rewritten one at batch 2 must equal, row by row, its single runs, and
    its single runs must equal the original's rows, for every float tensor that carries the
    batch. Returns (proved, why not, the largest error as a fraction of its tolerance)."""
    shapes, elem = known or static_shapes(original, input_name, (batch, *input_shape[1:]))
    reach = reachable_from(original, input_name)
    float_types = FLOAT_TYPES - {onnx.TensorProto.BFLOAT16}  # compared in numpy, which has no bfloat16
    outputs = [o.name for o in original.graph.output]
    produced = [o for n in original.graph.node for o in n.output if o]
    names = [t for t in dict.fromkeys(produced + outputs)
             if t in reach and elem.get(t) in float_types and (shapes.get(t) or (None,))[0] == batch
             and len(shapes[t]) >= 1]
    if not names:
        return False, "no tensor of the graph carries the batch axis", float("inf")
    rng = np.random.default_rng(20240611)
    rows = rng.standard_normal((2, *input_shape[1:])).astype(np.float32)
    with _quiet_runtime():
        return _compare(original, rewritten, input_name, names, shapes, rows, batch)


@contextmanager
def _quiet_runtime():
    """A rewritten graph that fails at batch 2 is an expected outcome, not an error to print."""
    import onnxruntime as ort

    ort.set_default_logger_severity(4)
    try:
        yield
    finally:
        ort.set_default_logger_severity(3)  # the level onnxprobe.runtime.session sets


def _compare(original, rewritten, input_name, names, shapes, rows, batch) -> tuple[bool, str, float]:
    from onnxprobe.graph.expose import expose_tensors
    from onnxprobe.runtime.session import create_session

    try:
        after = create_session(expose_tensors(rewritten, names, keep_outputs=False), device="cpu")
        single = [after.run({input_name: rows[i:i + 1]}, names) for i in range(2)]
        if rewritten is original and batch == 1:  # nothing rewritten: the single runs are the original's
            reference = single
        else:
            before = create_session(expose_tensors(original, names, keep_outputs=False), device="cpu")
            reference = [before.run({input_name: np.repeat(rows[i:i + 1], batch, axis=0)}, names) for i in range(2)]
        both = after.run({input_name: rows}, names)
    except Exception as exc:  # ONNX Runtime refuses the rewritten graph at batch 1 or 2
        text = " ".join(str(exc).split())
        node = re.search(r"running (\w+) node\. Name:'([^']*)'", text)
        where = f"{node.group(1)} node '{node.group(2)}' fails" if node else text[:160]
        return False, f"the graph does not run at batch 2 even with its batch-size constants rewritten: {where}", float("inf")
    depth = _reduction_lengths(original, shapes)
    worst = 0.0
    for t in names:
        b = np.asarray(both[t], np.float64)
        if b.shape[:1] != (2,):
            return False, f"tensor '{t}' does not follow the batch (shape {b.shape} at batch 2)", float("inf")
        for i in range(2):
            ref = np.asarray(reference[i][t], np.float64)[:1]
            one = np.asarray(single[i][t], np.float64)
            if one.shape != ref.shape or b[i:i + 1].shape != one.shape:
                return False, f"tensor '{t}' changes shape when the batch does", float("inf")
            # Each run computes t in float32 through dot products and reductions of summed length
            # K (its longest path): the standard bound puts each run's rounding error within
            # K*u*scale, scale the largest magnitude on the path (at least max|t|), so two runs
            # differ by at most 2*K*u*scale. A rewrite that mixes rows or drops one differs by O(scale).
            scale = max(np.abs(ref).max(initial=0.0), np.abs(one).max(initial=0.0), 1e-30)
            tol = 2.0 * depth.get(t, 1) * UNIT_ROUNDOFF * scale
            err = max(np.abs(one - ref).max(initial=0.0), np.abs(b[i:i + 1] - one).max(initial=0.0))
            if not np.isfinite(err) or err > tol:
                return False, (f"tensor '{t}' differs between a batch of 2 and single runs "
                               f"by {err:.3g} (float32 rounding allows {tol:.3g})"), float(err / tol)
            worst = max(worst, float(err / tol))
    return True, "", worst


def resolve_batch(model: onnx.ModelProto, input_name: str, input_shape: tuple[int, ...],
                  declared) -> tuple[onnx.ModelProto, BatchAxis]:
    """The model to run and how its batch is handled. `model` has a symbolic input batch already;
    `declared` is the input's first dim as the file gave it."""
    batch = declared_batch(declared)
    if not isinstance(batch, int):
        return model, BatchAxis("dynamic", declared if declared not in (None, "") else "?")
    with _quiet_runtime():
        known = static_shapes(model, input_name, (batch, *input_shape[1:]))
    try:
        rewritten, nodes = make_batch_dynamic(model, input_name, input_shape, batch, known[0])
    except Exception as exc:  # a graph our rewrite cannot read: keep the original, rows at a time
        return model, BatchAxis("fixed", batch, rows=batch, why=f"cannot rewrite the graph: {' '.join(str(exc).split())[:120]}")
    if not nodes:
        rewritten = model  # the same graph: its batch axis only had to be declared
    proved, why, worst = prove_batch_dynamic(model, rewritten, input_name, input_shape, batch, known)
    if proved:
        return rewritten, BatchAxis("made dynamic", batch, rewritten=nodes, max_error=worst)
    return model, BatchAxis("fixed", batch, rows=batch, why=why, max_error=None if not np.isfinite(worst) else worst)
