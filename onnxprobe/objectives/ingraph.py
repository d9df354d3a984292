"""Objectives written into ONNX graphs: a linear objective's value (`value_nodes`, the step
graph's), and the self-seeded output whose gradient is the unit's own activation as the seed
(`self_seeded`, ProbeModel.gradient_session's).
"""

from __future__ import annotations

import numpy as np
import onnx

from .algebra import Objective

def value_nodes(objective: Objective, seeds: dict[str, str], output: str) -> tuple[list[onnx.NodeProto],
                                                                                  list[onnx.TensorProto]]:
    """The in-graph form of a linear objective's `value`: (nodes, initializers) computing into
    `output`, (N,) float32, the sum over its targets of sum(seed * activation) per batch row, from
    the target tensors and the seed inputs `seeds` (target -> the seed's name in the graph, fed
    `objective.seeds`). A non-linear objective has no such form (its value is not its seeds'
    product with the activations)."""
    from onnx import helper, numpy_helper

    if not objective.linear:
        raise ValueError(f"objective '{objective.description}' is not linear: it has no in-graph value")
    nodes, inits, parts = [], [], []
    for i, target in enumerate(objective.targets):
        axes, product, part = (f"{output}/{kind}{i}" for kind in ("axes", "product", "sum"))
        inits.append(numpy_helper.from_array(np.arange(1, len(objective.shapes[target]), dtype=np.int64), axes))
        nodes.append(helper.make_node("Mul", [seeds[target], target], [product], name=product))
        nodes.append(helper.make_node("ReduceSum", [product, axes], [part], name=part, keepdims=0))
        parts.append(part)
    nodes.append(helper.make_node("Sum", parts, [output], name=output))
    return nodes, inits



def self_seeded(model: onnx.ModelProto, target: str, peak_axes: tuple[int, ...] = ()) -> tuple[onnx.ModelProto, str]:
    """A copy of `model` with one more output, target * target, and its name.

    Its gradient under the seed 0.5 * mask (mask of 0/1) equals the gradient of `target` under the
    seed mask * target -- exactly in floating point: the Mul rule hands each factor 0.5 * mask *
    target and the two halves add up. That is "the unit's own activation as the seed" (the Deep
    Visualization Toolbox's back map, `own_activation`) in ONE run, without a forward pass first to
    read the unit.

    `peak_axes` (the spatial axes): the square is also multiplied by where the target reaches its
    maximum over those axes (Equal with ReduceMax, cast to float: no gradient flows through it), so
    the seed is the unit's activation at the position where it fires most (every such position on
    an exact tie), again without a forward pass first.
    """
    from onnx import helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    names = {o for n in out.graph.node for o in n.output} | {i.name for i in out.graph.input}
    square = f"onnxprobe.self_seeded:{target}"
    while square in names:
        square += "_"
    if peak_axes:
        axes, peak, at_peak, weight, product = (f"{square}/{part}" for part in ("axes", "max", "at_max", "weight", "sq"))
        out.graph.node.extend([
            helper.make_node("Constant", [], [axes], value=helper.make_tensor(axes, onnx.TensorProto.INT64,
                                                                                [len(peak_axes)], list(peak_axes))),
            helper.make_node("ReduceMax", [target, axes], [peak], keepdims=1),
            helper.make_node("Equal", [target, peak], [at_peak]),
            helper.make_node("Cast", [at_peak], [weight], to=onnx.TensorProto.FLOAT),  # onnxprobe runs float32
            helper.make_node("Mul", [target, target], [product]),
            helper.make_node("Mul", [product, weight], [square], name=square),
        ])
    else:
        out.graph.node.append(helper.make_node("Mul", [target, target], [square], name=square))
    out.graph.output.append(helper.make_empty_tensor_value_info(square))
    return out, square
