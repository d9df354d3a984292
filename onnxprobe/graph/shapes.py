"""`TensorInfo`: a tensor's element type and shape with its batch axis marked, the probeable view of
every tensor of a loaded model (`GraphFacts.of_loaded` finds them: graph/facts.py), and the float
element types."""

from __future__ import annotations

from dataclasses import dataclass

import onnx

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
