"""The expose pass: make intermediate tensors graph outputs so one run returns every activation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import onnx

from onnxprobe.graph.loading import finalize_model


def expose_tensors(model: onnx.ModelProto, names: Iterable[str], keep_outputs: bool = True,
                   known: Mapping[str, onnx.ValueInfoProto] | None = None) -> onnx.ModelProto:
    """A copy of `model` whose outputs are the original outputs (if `keep_outputs`) plus `names`.

    Types come from `known`, the model's facts (`GraphFacts.value_infos`), where given; ONNX
    Runtime infers the rest.
    """
    names = list(dict.fromkeys(names))
    known = known or {}
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
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
