"""`TensorInfo`: a tensor's element type and shape with its batch axis marked, for every tensor of a
loaded model, from the graph facts' one ONNX shape inference or, where it falls short, by running the
model in ONNX Runtime (onnxprobe.runtime, the one package below graph that graph may import, for
this fallback only: pyproject.toml's layers contract)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import onnx

from onnxprobe.graph.loading import BATCH_DIM, image_input
from onnxprobe.graph.expose import expose_tensors

if TYPE_CHECKING:
    from onnxprobe.graph.facts import GraphFacts

FLOAT_TYPES = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                         onnx.TensorProto.BFLOAT16})


@dataclass(frozen=True)
class TensorInfo:
    name: str
    elem_type: int
    shape: tuple[int | None, ...]  # None marks the (dynamic) batch axis
    op: str  # producing op_type, or "Input"
    node: str  # producing node name ("" for the input)

    @property
    def has_batch_axis(self) -> bool:
        return len(self.shape) >= 1 and self.shape[0] is None

    @property
    def is_float(self) -> bool:
        return self.elem_type in FLOAT_TYPES


def tensor_infos(model: onnx.ModelProto, facts: "GraphFacts", input_shape: tuple[int, ...],
                 rows: int | None = None, off_axis=None, on_axis=frozenset()) -> tuple[dict[str, TensorInfo], str, bool]:
    """Every node output's TensorInfo from the facts' one shape inference (`facts.values`), else by
    running the model; second value says how: "inference" or "execution"; third whether the graph
    follows the batch (False when a run at batch 2 failed).

    `rows`: the graph runs a fixed batch of that many rows (its input still declared symbolic; the
    facts inferred it at that batch): a tensor carries the batch axis when it depends on the input
    and its first dim is `rows`. `off_axis`: tensors whose batch sits inside another axis, with
    their shapes at batch 1 (inference cannot write N*4): their TensorInfo has no batch axis;
    `on_axis`: tensors whose axis 0 is the batch, whatever symbol inference gives it."""
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
    exposed = expose_tensors(model, producers.keys(), keep_outputs=True)
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
