"""The expose pass: make intermediate tensors graph outputs so one run returns every activation."""

from __future__ import annotations

from collections.abc import Iterable

import onnx

from onnxprobe.graph.loading import finalize_model


def expose_tensors(model: onnx.ModelProto, names: Iterable[str], keep_outputs: bool = True) -> onnx.ModelProto:
    """A copy of `model` whose outputs are the original outputs (if `keep_outputs`) plus `names`.

    Types come from the graph's value_info where known; ONNX Runtime infers the rest.
    """
    names = list(dict.fromkeys(names))
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    known = {v.name: v for v in list(graph.value_info) + list(graph.input) + list(graph.output)}
    existing = [o.name for o in graph.output]
    if not keep_outputs:
        del graph.output[:]
        existing = []
    for name in names:
        if name in existing:
            continue
        value = onnx.ValueInfoProto()
        if name in known:
            value.CopyFrom(known[name])
        else:
            value.name = name
        graph.output.append(value)
        existing.append(name)
    return finalize_model(out)
