"""The facts about one model's graph, gathered once: who produces and who reads each tensor, element
types and shapes from ONE ONNX shape inference, constant values (initializers and Constant nodes),
the default-domain opset, and typed attribute access.

    facts = GraphFacts(model)                  # one inference; GraphFacts(model, infer=False): none
    facts.elem[name], facts.shape(name)        # static dims: ints, None where unknown (the batch axis)
    facts.const(name)                          # numpy value of an initializer or Constant output
    facts.producers[name], facts.consumers[name], facts.opset, attr(node, "axis", 0)

`ProbeModel` builds one at load (`GraphFacts.of_loaded`: also the probeable `TensorInfo`s, found by
running the model where inference falls short: `tensor_infos`) and hands it to everything that
reads the graph: layers and geometry, the gradient graph (autodiff's Tape writes what it emits on a
`scratch()` overlay, never into the shared facts), the step graph. A model rewritten afterwards by
adding nodes (a self-seeded target) is covered by `extended()`: only the new nodes are inferred.
This module holds the only call of `onnx.shape_inference.infer_shapes` in onnxprobe (`infer`).
"""

from __future__ import annotations

import copy
from collections import ChainMap, defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from onnxprobe.graph.expose import expose_tensors
from onnxprobe.graph.loading import BATCH_DIM, WORKING_OPSET, default_opset, image_input
from onnxprobe.graph.optable import DEFAULT_DOMAINS
from onnxprobe.graph.shapes import FLOAT_TYPES, TensorInfo
from onnxprobe.runtime import weights

LARGE = 4096  # float initializers with more elements are left out of shape inference (typed inputs instead)

__all__ = ["FLOAT_TYPES", "GraphFacts", "TensorInfo", "attr", "infer"]


def attr(node: onnx.NodeProto, name: str, default=None):
    """An attribute's value (strings decoded), or ``default``."""
    for a in node.attribute:
        if a.name == name:
            value = helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def constant_value(node: onnx.NodeProto) -> np.ndarray | None:
    """The value of a default-domain Constant node (None for the sparse form)."""
    for a in node.attribute:
        if a.name == "value":
            return numpy_helper.to_array(a.t)
        if a.name in ("value_float", "value_int", "value_floats", "value_ints"):
            return np.asarray(helper.get_attribute_value(a))
    return None


def infer(model: onnx.ModelProto, pinned: Mapping[str, Sequence] | None = None) -> list[onnx.ValueInfoProto] | None:
    """ONNX shape inference on a copy of `model` without its large float weights (they become typed
    inputs: shapes need no weight values), with the dims in `pinned` (input name -> ints, None keeps
    the file's dim) set on those inputs first. Returns every typed value the inference knows
    (inputs, intermediates, outputs), or None when it fails."""
    graph = model.graph
    light = onnx.GraphProto(name=graph.name)
    light.node.extend(graph.node)
    light.output.extend(graph.output)
    light.value_info.extend(graph.value_info)
    pinned = pinned or {}
    for value in graph.input:
        v = light.input.add()
        v.CopyFrom(value)
        dims = pinned.get(value.name)
        if dims is not None and v.type.HasField("tensor_type") and len(dims) == len(v.type.tensor_type.shape.dim):
            for d, size in zip(v.type.tensor_type.shape.dim, dims):
                if isinstance(size, (int, np.integer)) and size >= 0:
                    d.Clear()
                    d.dim_value = int(size)
    input_names = {v.name for v in graph.input}
    for init in graph.initializer:
        if init.data_type not in FLOAT_TYPES or int(np.prod(init.dims, dtype=np.int64)) <= LARGE:
            light.initializer.append(init)
        elif init.name not in input_names:
            light.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    light_model = onnx.ModelProto(ir_version=model.ir_version, graph=light)
    light_model.opset_import.extend(model.opset_import)
    light_model.functions.extend(model.functions)
    try:
        inferred = onnx.shape_inference.infer_shapes(light_model, strict_mode=False, data_prop=True)
    except Exception:  # shapes are facts where inference proves them; a model it cannot read has none
        return None
    g = inferred.graph
    return list(g.input) + list(g.value_info) + list(g.output)


class GraphFacts:
    """Static facts about `model`'s tensors; see the module docstring."""

    def __init__(self, model: onnx.ModelProto, pinned: Mapping[str, Sequence] | None = None, *, infer_shapes: bool = True):
        self.model = model
        self.opset = default_opset(model, WORKING_OPSET)
        self.producers: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        self.elem: dict[str, int] = {}
        self.dims: dict[str, list[int | None]] = {}
        self.infos: dict[str, TensorInfo] = {}  # of_loaded: the probeable view (batch axis None)
        self.source = "none"  # of_loaded: "inference" or "execution"
        self.follows = True  # of_loaded: False when the graph failed at batch 2
        self._consts: dict[str, np.ndarray] = {}
        self.initializers: dict[str, onnx.TensorProto] = {}  # converted to numpy only when asked for
        self._add_nodes(model.graph.node)
        for init in model.graph.initializer:
            self.initializers[init.name] = init
            self.elem[init.name] = init.data_type
            self.dims[init.name] = list(init.dims)
        self.values = infer(model, pinned) if infer_shapes else None  # None: inference failed or did not run
        self._value_infos: dict[str, onnx.ValueInfoProto] | None = None
        self._record(self.values or ())

    @classmethod
    def of_loaded(cls, model: onnx.ModelProto, input_shape: tuple[int, ...], rows: int | None = None,
                  off_axis: Mapping[str, Sequence[int]] | None = None, on_axis=frozenset(),
                  batch_axes: Mapping[str, int] | None = None) -> "GraphFacts":
        """The facts of a loaded model (input dims fixed but the batch): with `rows` (a graph that
        runs a fixed batch) shapes are inferred at that batch. Adds `infos` (every tensor's
        TensorInfo, from this inference, else by running the model) and `source`, `follows`.
        `off_axis`: tensors whose batch is folded into an axis other than a whole axis 0 (the batch
        rewrite's `BatchAxis.off_axis`), with their shapes at batch 1: no batch axis of their own;
        `on_axis`: tensors whose axis 0 is the batch whatever inference calls it; `batch_axes`: the
        axis that carries the batch in each tensor of `off_axis` (its dim is left unknown)."""
        name = image_input(model).name
        facts = cls(model, {name: (rows, *input_shape[1:])} if rows is not None else None)
        facts.infos, facts.source, facts.follows = tensor_infos(model, facts, input_shape, rows, off_axis, on_axis)
        for tensor, info in facts.infos.items():  # the batch axis is dynamic whatever batch inference ran at
            facts.elem[tensor] = info.elem_type
            facts.dims[tensor] = list(info.shape)
        for tensor, axis in (batch_axes or {}).items():
            # its shape was read at batch 1 and the batch sits in this axis (ViT's [tokens, N, C],
            # [tokens, N * heads, d]): that dim is not static at other batches, so the backward rules
            # read it at run time (a static 1 there would sum the batch away in unbroadcast)
            dims = facts.dims.get(tensor)
            if dims is not None and 0 <= axis < len(dims):
                dims[axis] = None
        return facts

    def _add_nodes(self, nodes: Iterable[onnx.NodeProto]) -> None:
        for node in nodes:
            for out in node.output:
                if out:
                    self.producers[out] = node
            for i in node.input:
                if i:
                    self.consumers[i].append(node)
            if node.op_type == "Constant" and node.domain in DEFAULT_DOMAINS and node.output:
                value = constant_value(node)
                if value is not None:
                    self._consts[node.output[0]] = value
                    self.elem[node.output[0]] = helper.np_dtype_to_tensor_dtype(value.dtype)
                    self.dims[node.output[0]] = list(value.shape)

    def _record(self, values: Iterable[onnx.ValueInfoProto]) -> None:
        for value in values:
            tt = value.type.tensor_type
            if not value.type.HasField("tensor_type") or value.name in self.initializers or value.name in self._consts:
                continue  # a constant's own value is the truth
            if tt.elem_type:
                self.elem[value.name] = tt.elem_type
            if tt.HasField("shape"):
                self.dims[value.name] = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]

    # ---- reading ------------------------------------------------------------------------------
    @property
    def value_infos(self) -> dict[str, onnx.ValueInfoProto]:
        """Tensor name -> its typed value: the inference's (`values`), else what the file declares
        (inputs, value_info, outputs)."""
        if self._value_infos is None:
            graph = self.model.graph
            typed = self.values if self.values is not None else [*graph.input, *graph.value_info, *graph.output]
            self._value_infos = {v.name: v for v in typed}
        return self._value_infos

    def shape(self, name: str) -> list[int | None] | None:
        return self.dims.get(name)

    def rank(self, name: str) -> int | None:
        d = self.dims.get(name)
        return None if d is None else len(d)

    def const(self, name: str, max_size: int | None = None) -> np.ndarray | None:
        """The value of an initializer or Constant output (None otherwise, or above `max_size` elements)."""
        if name not in self._consts and name in self.initializers:
            init = self.initializers[name]
            if max_size is not None and int(np.prod(init.dims, dtype=np.int64)) > max_size:
                return None
            held = weights.array(init)  # a weight kept in its file (runtime.weights): a memory map of it
            self._consts[name] = held if held is not None else numpy_helper.to_array(init)
        value = self._consts.get(name)
        if value is not None and max_size is not None and value.size > max_size:
            return None
        return value

    def is_const(self, name: str) -> bool:
        return name in self.initializers or name in self._consts

    def names(self) -> set[str]:
        """Every tensor name the graph defines: inputs, initializers, node outputs."""
        return {i.name for i in self.model.graph.input} | set(self.initializers) | set(self.producers)

    def reachable_from(self, name: str) -> set[str]:
        """Every tensor that depends on `name` (and `name` itself)."""
        seen, queue = {name}, deque([name])
        while queue:
            for node in self.consumers.get(queue.popleft(), ()):
                for out in node.output:
                    if out and out not in seen:
                        seen.add(out)
                        queue.append(out)
        return seen

    def ancestors_of(self, targets: Iterable[str]) -> set[str]:
        """Every tensor that `targets` depend on (the targets included): reachable_from's twin."""
        seen, queue = set(targets), deque(targets)
        while queue:
            node = self.producers.get(queue.popleft())
            for name in (node.input if node is not None else ()):
                if name and name not in seen:
                    seen.add(name)
                    queue.append(name)
        return seen

    # ---- deriving -----------------------------------------------------------------------------
    def scratch(self) -> "GraphFacts":
        """A view whose writes (types and dims of tensors a Tape emits) stay in the view."""
        view = copy.copy(self)
        view.elem = ChainMap({}, self.elem)
        view.dims = ChainMap({}, self.dims)
        return view

    def extended(self, model: onnx.ModelProto) -> "GraphFacts":
        """The facts of `model`, which is this model with nodes added: only the added nodes are
        inferred (a graph of them alone, fed by the tensors they read with their known types)."""
        if model is self.model:
            return self
        new = [n for n in model.graph.node if not any(o in self.producers for o in n.output if o)]
        facts = self.scratch()
        facts.model = model
        facts.producers = dict(self.producers)
        facts.consumers = defaultdict(list, {k: list(v) for k, v in self.consumers.items()})
        facts._consts = ChainMap({}, self._consts)
        facts.initializers = dict(self.initializers)
        for init in model.graph.initializer:
            if init.name not in facts.initializers:
                facts.initializers[init.name] = init
                facts.elem[init.name] = init.data_type
                facts.dims[init.name] = list(init.dims)
        facts._add_nodes(new)
        produced = {o for n in new for o in n.output if o}
        feeds = [i for i in dict.fromkeys(i for n in new for i in n.input if i) if i not in produced]
        added_inits = [init for init in model.graph.initializer if init.name in feeds and init.name not in self.initializers]
        feeds = [i for i in feeds if i not in {init.name for init in added_inits}]
        if any(i not in self.elem or i not in self.dims for i in feeds):  # a new tensor we know nothing of
            facts._record(infer(model) or ())
            return facts
        graph = helper.make_graph(new, "added", [helper.make_tensor_value_info(i, self.elem[i], self.dims[i]) for i in feeds],
                                  [helper.make_empty_tensor_value_info(o) for o in produced], added_inits)
        added = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
        facts._record(infer(added) or ())
        return facts


# ---- the probeable view: TensorInfo of every tensor, from the inference or by running the model ----

def tensor_infos(model: onnx.ModelProto, facts: GraphFacts, input_shape: tuple[int, ...],
                 rows: int | None = None, off_axis=None, on_axis=frozenset()) -> tuple[dict[str, TensorInfo], str, bool]:
    """Every node output's TensorInfo from the facts' one shape inference (`facts.values`), else by
    running the model; second value says how: "inference" or "execution"; third whether the graph
    follows the batch (False when a run at batch 2 failed).

    `rows`: the graph runs a fixed batch of that many rows (its input still declared symbolic; the
    facts inferred it at that batch): a tensor carries the batch axis when it depends on the input
    and its first dim is `rows`. `off_axis`: made dynamic, the tensors whose batch sits inside
    another axis, with their shapes at batch 1 (inference cannot write N*4): their TensorInfo has no
    batch axis; fixed, every tensor's (shape, element type) at the file's batch, found by the batch
    rewrite (run included). `on_axis`: tensors whose axis 0 is the batch, whatever symbol
    inference gives it."""
    producers = facts.producers
    off_axis = off_axis or {}
    batch_of = None
    if rows is not None:
        reach = facts.reachable_from(image_input(model).name)
        batch_of = lambda name, dim: name in reach and dim == rows  # noqa: E731
    infos = {}
    for value in facts.values or ():
        if value.name in facts.initializers:  # weights inferred as typed inputs
            continue
        info = _info_from_value(value, producers, batch_of, value.name in on_axis)
        if info is None and value.name in off_axis and value.type.HasField("tensor_type") and rows is None:
            node = producers.get(value.name)
            info = TensorInfo(value.name, value.type.tensor_type.elem_type, tuple(off_axis[value.name]),
                              node.op_type if node else "Input", node.name if node else "")
        if info is not None:
            infos[value.name] = info
    if rows is not None:  # a fixed graph: the shapes the batch rewrite found at its batch, run included
        for name in producers:
            if name not in infos and name in off_axis:
                shape, elem = off_axis[name]
                node = producers[name]
                dims = tuple(None if axis == 0 and batch_of(name, d) else d for axis, d in enumerate(shape))
                infos[name] = TensorInfo(name, elem, dims, node.op_type, node.name)
    if all(name in infos for name in producers):
        return infos, "inference", True
    infos, follows = _from_execution(model, facts, input_shape, rows, batch_of)
    return infos, "execution", follows


def _info_from_value(value: onnx.ValueInfoProto, producers, batch_of=None, batch_first: bool = False) -> TensorInfo | None:
    tensor_type = value.type.tensor_type
    if not value.type.HasField("tensor_type") or not tensor_type.HasField("shape") or tensor_type.elem_type == 0:
        return None
    shape = []
    for axis, d in enumerate(tensor_type.shape.dim):
        if d.HasField("dim_value") and d.dim_value >= 0:
            batched = axis == 0 and batch_of is not None and batch_of(value.name, d.dim_value)
            shape.append(None if batched else d.dim_value)
        elif axis == 0 and (d.dim_param == BATCH_DIM or batch_first) and batch_of is None:
            shape.append(None)
        else:
            return None  # a symbolic dim we cannot pin down: let execution decide
    node = producers.get(value.name)
    return TensorInfo(value.name, tensor_type.elem_type, tuple(shape), node.op_type if node else "Input", node.name if node else "")


def _from_execution(model, facts, input_shape, rows=None, batch_of=None) -> tuple[dict[str, TensorInfo], bool]:
    """Run once at batch 1 and once at batch 2 with every tensor exposed: an axis 0 that follows the
    batch size is the batch axis. A graph that fails at batch 2 (or runs `rows` rows only) is
    read at one batch: there an axis 0 of that size that depends on the input is the batch axis."""
    from onnxprobe.runtime.session import create_session  # graph may import runtime (it sits below)

    producers = facts.producers
    exposed = expose_tensors(model, producers.keys(), keep_outputs=True, known=facts.value_infos)
    session = create_session(exposed, device="cpu", one_off=True)
    name = image_input(model).name
    rng = np.random.default_rng(0)
    dtype = session.input_dtype(name)
    runs = {}
    for batch in (1, 2) if rows is None else (rows,):
        x = rng.standard_normal((batch, *input_shape[1:])).astype(dtype)
        try:
            values = session.run({name: x})
        except Exception:
            if batch != 2:
                raise
            break
        runs[batch] = values
    first = min(runs)
    if batch_of is None:
        if 2 in runs:
            batch_of = lambda tensor, dim: dim == 1 and np.shape(runs[2][tensor])[:1] == (2,)  # noqa: E731
        else:  # one batch only: what depends on the input and has a first dim of 1 carries it
            reach = facts.reachable_from(name)
            batch_of = lambda tensor, dim: tensor in reach and dim == 1  # noqa: E731
    infos = {}
    for tensor, value in runs[first].items():
        value = np.asarray(value)
        batched = value.ndim >= 1 and batch_of(tensor, value.shape[0])
        shape = tuple([None] + list(value.shape[1:])) if batched else tuple(value.shape)
        node = producers.get(tensor)
        infos[tensor] = TensorInfo(tensor, _elem_type(value.dtype), shape, node.op_type if node else "Input", node.name if node else "")
    return infos, rows is not None or 2 in runs


def _elem_type(dtype) -> int:
    return onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
