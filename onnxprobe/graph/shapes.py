"""Shapes and element types of every tensor, by ONNX shape inference or, where it fails, by running."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from onnxprobe.graph.loading import BATCH_DIM, image_input
from onnxprobe.graph.expose import expose_tensors

FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}


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


def node_outputs(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in model.graph.node for out in node.output if out}


def infer_tensor_infos(model: onnx.ModelProto, input_shape: tuple[int, ...]) -> tuple[dict[str, TensorInfo], str]:
    """Every node output's TensorInfo; second value says how: "inference" or "execution"."""
    producers = node_outputs(model)
    infos = _from_shape_inference(model, producers)
    wanted = [name for name in producers]
    if all(name in infos for name in wanted):
        return infos, "inference"
    return _from_execution(model, producers, input_shape), "execution"


def _from_shape_inference(model, producers) -> dict[str, TensorInfo]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:
        return {}
    infos = {}
    for value in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input):
        info = _info_from_value(value, producers)
        if info is not None:
            infos[value.name] = info
    return infos


def _info_from_value(value: onnx.ValueInfoProto, producers) -> TensorInfo | None:
    tensor_type = value.type.tensor_type
    if not value.type.HasField("tensor_type") or not tensor_type.HasField("shape") or tensor_type.elem_type == 0:
        return None
    shape = []
    for axis, d in enumerate(tensor_type.shape.dim):
        if d.HasField("dim_value"):
            shape.append(d.dim_value)
        elif axis == 0 and d.dim_param == BATCH_DIM:
            shape.append(None)
        else:
            return None  # a symbolic dim we cannot pin down: let execution decide
    node = producers.get(value.name)
    return TensorInfo(value.name, tensor_type.elem_type, tuple(shape), node.op_type if node else "Input", node.name if node else "")


def _from_execution(model, producers, input_shape) -> dict[str, TensorInfo]:
    """Run once at batch 1 and once at batch 2 with every tensor exposed: an axis 0 that follows the
    batch size is the batch axis. Models that hard-code batch 1 run at batch 1 only."""
    from onnxprobe.runtime.session import create_session  # runtime depends on graph, not the reverse

    exposed = expose_tensors(model, producers.keys(), keep_outputs=True)
    session = create_session(exposed, device="cpu")
    name = image_input(model).name
    rng = np.random.default_rng(0)
    dtype = session.input_dtype(name)
    runs = {}
    for batch in (1, 2):
        x = rng.standard_normal((batch, *input_shape[1:])).astype(dtype)
        try:
            values = session.run({name: x})
        except Exception:
            if batch == 1:
                raise
            break
        runs[batch] = values
    infos = {}
    for tensor, value in runs[1].items():
        value = np.asarray(value)
        batched = value.ndim >= 1 and value.shape[0] == 1 and (2 not in runs or np.shape(runs[2][tensor])[:1] == (2,))
        shape = tuple([None] + list(value.shape[1:])) if batched else tuple(value.shape)
        node = producers.get(tensor)
        infos[tensor] = TensorInfo(tensor, _elem_type(value.dtype), shape, node.op_type if node else "Input", node.name if node else "")
    return infos


def _elem_type(dtype) -> int:
    return onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
