"""Objectives written into ONNX graphs, through autodiff's Tape (fresh names, shared constants), as
the backward rules and the step graph write theirs: a linear objective's value (`write_value`, the
step graph's), and the self-seeded output whose gradient is the unit's own activation as the seed
(`self_seeded`, behind ProbeModel.gradient for an objective with a `self_seed`).
"""

from __future__ import annotations

import onnx

from ..autodiff.tape import Tape
from ..graph.facts import GraphFacts
from .algebra import Objective


def write_value(tape: Tape, objective: Objective, seeds: dict[str, str]) -> str:
    """The in-graph form of a linear objective's `value`, written on `tape`: returns the name of
    the (N,) float32 tensor holding, per batch row, the sum over its targets of sum(seed *
    activation), from the target tensors and the seed inputs `seeds` (target -> the seed's name in
    the graph, fed `objective.seeds`). A non-linear objective has no such form (its value is not
    its seeds' product with the activations)."""
    if not objective.linear:
        raise ValueError(f"objective '{objective.description}' is not linear: it has no in-graph value")
    parts = [tape.op("ReduceSum", tape.op("Mul", seeds[target], target, hint="product"),
                     tape.i64(list(range(1, len(objective.shapes[target])))), keepdims=0, hint="sum")
             for target in objective.targets]
    return tape.op("Sum", *parts, hint="value")


def self_seeded(model: onnx.ModelProto, target: str, peak_axes: tuple[int, ...] = (),
                facts: GraphFacts | None = None) -> tuple[onnx.ModelProto, str]:
    """A copy of `model` with one more output, target * target, and its name. `facts`: the
    model's GraphFacts when known (the names the new ones must avoid).

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
    tape = Tape(facts if facts is not None else GraphFacts(model, infer_shapes=False), prefix="onnxprobe.self_seeded:")
    square = tape.op("Mul", target, target, hint=target)
    if peak_axes:
        peak = tape.op("ReduceMax", target, tape.i64(list(peak_axes)), keepdims=1, hint="max")
        at_peak = tape.op("Cast", tape.op("Equal", target, peak), to=onnx.TensorProto.FLOAT)  # onnxprobe runs float32
        square = tape.op("Mul", square, at_peak, hint=target)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    out.graph.node.extend(tape.nodes)
    out.graph.initializer.extend(tape.initializers)
    out.graph.output.append(onnx.helper.make_empty_tensor_value_info(square))
    return out, square
