"""Which tensor an objective reads: layers a gradient reaches (`differentiable_layer`), the input
of a ReLU-like activation (`pre_relu`), the logits before a softmax (`pre_softmax_tensor`,
`logit_layer`), and the layer of an objective named by kind (`objective_layer`).

`model` is anything with `.layer(name)` (`pre_relu` also `.facts`, `logit_layer` `.facts` and
`.class_output`), as a ProbeModel is.
"""

from __future__ import annotations

from ..errors import ParameterError, UsageError
from ..graph.facts import GraphFacts
from ..graph.layers import LayerInfo

def differentiable_layer(model, layer: str | LayerInfo) -> LayerInfo:
    """The layer (a name, or its LayerInfo), refused when no gradient path leads back to the input
    (the one text for it)."""
    info = layer if isinstance(layer, LayerInfo) else model.layer(layer)
    if info.differentiable is False:
        raise UsageError(f"layer '{info.name}' cannot be differentiated back to the input "
                         "(an op without a gradient lies between); run 'onnxprobe layers' to see which can")
    return info


def activation_shape(info: LayerInfo) -> tuple[int, ...]:
    """The activation shape with a batch axis of 1."""
    return (1, *(int(d) for d in info.shape[1:]))


# Activations that pass no gradient over a half-line of their input (ReLU below 0, ReLU6 = Clip
# below its min and above its max, the hard sigmoid / swish below -3) and whose maximum lies where
# their input is largest: optimized through their input (`pre_relu`).
FLAT_ACTIVATIONS = ("Relu", "Clip", "HardSigmoid", "HardSwish")


def pre_relu(model, layer: str | LayerInfo) -> LayerInfo:
    """The tensor to optimise for `layer`: the input of a ReLU-like activation (FLAT_ACTIVATIONS)
    when `layer` is its output (same shape and axes), else the layer itself.

    relu(v) (relu6(v), ...) and v have the same maximiser wherever the unit fires, but a unit that
    is off at the start (common for a noise or grey start) passes no gradient at all; Lucid
    optimises such layers "pre_relu" for the same reason. Values reported are then the
    pre-activation's."""
    info = differentiable_layer(model, layer)
    node = model.facts.producers.get(info.name)
    if node is not None and node.op_type in FLAT_ACTIVATIONS:
        try:
            pre = model.layer(node.input[0])
        except UsageError:
            return info
        if pre.shape == info.shape and pre.channel_axis == info.channel_axis and pre.differentiable is not False:
            return pre
    return info


_SHAPE_ONLY = ("Identity",)


def pre_softmax_tensor(facts: GraphFacts, tensor: str) -> str:
    """The logits: the input of the Softmax/LogSoftmax that produces `tensor` (through Identity
    nodes), else `tensor` itself. Objectives on class units use the logits, because maximising
    (or explaining) a softmax output mostly minimises the other classes."""
    producers = facts.producers
    name = tensor
    while name in producers and producers[name].op_type in _SHAPE_ONLY:
        name = producers[name].input[0]
    node = producers.get(name)
    if node is not None and node.op_type in ("Softmax", "LogSoftmax") and node.domain in ("", "ai.onnx"):
        return node.input[0]
    return tensor


def logit_layer(model) -> LayerInfo:
    """The class scores before any final softmax (the model's (N, classes) output, through Identity)."""
    if model.class_output is None:
        raise UsageError("the model has no class-score output (N, classes): choose a layer and unit instead of a class")
    return differentiable_layer(model, pre_softmax_tensor(model.facts, model.class_output))


KINDS = ("neuron", "channel", "logit")


def objective_layer(model, kind: str, layer: str | LayerInfo | None) -> LayerInfo:
    """The layer an objective of `kind` reads (its units are that layer's): the logits for
    "logit" (`layer` is not needed), else `layer`, which must be given."""
    if kind not in KINDS:
        raise UsageError(f"unknown objective '{kind}' (known: {', '.join(KINDS)})")
    if kind == "logit":
        return logit_layer(model)
    if layer is None:
        raise ParameterError(f"{{objective}} {kind} needs {{layer}}", "objective", "layer")
    return differentiable_layer(model, layer)
