"""What an attribution explains: a scalar objective `sum(seed * tensor)` per batch row.

Either a class logit (before any softmax, so that a saturated softmax does not hide the gradient)
or one unit of any probeable layer: a single position of a spatial channel, or the channel's mean
over all positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnxprobe.errors import UsageError
from onnxprobe.graph.layers import LayerInfo


@dataclass(frozen=True)
class Objective:
    tensor: str  # the layer the seed applies to
    seed: np.ndarray  # (1, *layer shape without batch), float32: d(objective) / d(tensor)
    description: str

    def value(self, activation: np.ndarray) -> np.ndarray:
        """The objective of each batch row of the layer's activation: shape (N,)."""
        activation = np.asarray(activation, dtype=np.float64)
        return (activation * self.seed).reshape(activation.shape[0], -1).sum(axis=1)


def _seed_shape(layer: LayerInfo) -> tuple[int, ...]:
    return (1, *(int(d) for d in layer.shape[1:]))


def class_objective(model, x: np.ndarray, target: int | None = None) -> Objective:
    """The logit of class `target` (default: the class the model predicts for `x`)."""
    from onnxprobe.autodiff.objectives import pre_softmax_tensor, unit_seed

    if model.class_output is None:
        raise UsageError("the model has no class-score output (N, classes): choose a layer and unit instead of a class")
    layer = model.layer(pre_softmax_tensor(model.proto, model.class_output))
    classes = layer.units
    if target is None:
        logits = model.activations(x, [layer.name], with_outputs=False)[layer.name]
        target = int(np.argmax(logits[0].reshape(-1)))
        how = "predicted class"
    else:
        how = "class"
        if not 0 <= int(target) < classes:
            raise UsageError(f"class {target} is out of range: the model has {classes} classes (0-{classes - 1})")
    labels = model.spec.labels
    label = f" ({labels[target]})" if labels and target < len(labels) else ""
    seed = unit_seed(_seed_shape(layer), int(target), channel_axis=layer.channel_axis)
    return Objective(layer.name, seed, f"{how} {target}{label}, logit '{layer.name}'")


def unit_objective(model, layer_name: str, unit: int, position: tuple[int, ...] | str | None = None) -> Objective:
    """Unit `unit` of a layer. For a spatial layer, `position` is (y, x) for one position, "centre"
    for the spatial centre, or None for the channel's mean over all positions; a non-spatial layer
    takes no position."""
    from onnxprobe.autodiff.objectives import channel_mean_seed, unit_seed

    layer = model.layer(layer_name)
    if layer.differentiable is False:
        raise UsageError(f"layer '{layer.name}' cannot be differentiated back to the input "
                         "(an op without a gradient lies between); run 'onnxprobe layers' to see which can")
    if not 0 <= int(unit) < layer.units:
        raise UsageError(f"unit {unit} is out of range: layer '{layer.name}' has {layer.units} units (0-{layer.units - 1})")
    unit = int(unit)
    if not layer.is_spatial:
        if position not in (None, "centre"):
            raise UsageError(f"layer '{layer.name}' is not spatial (shape {_shape_text(layer)}): it takes no position")
        return Objective(layer.name, unit_seed(_seed_shape(layer), unit, channel_axis=layer.channel_axis),
                         f"unit {unit} of '{layer.name}'")
    spatial = layer.spatial_shape
    if position is None:
        seed = channel_mean_seed(_seed_shape(layer), unit, channel_axis=layer.channel_axis)
        return Objective(layer.name, seed, f"mean of channel {unit} of '{layer.name}'")
    if position == "centre":
        position = tuple(s // 2 for s in spatial)
    position = tuple(int(p) for p in position)
    if len(position) != len(spatial) or not all(0 <= p < s for p, s in zip(position, spatial)):
        limits = ", ".join(f"0-{s - 1}" for s in spatial)
        raise UsageError(f"position {','.join(map(str, position))} is outside layer '{layer.name}' "
                         f"(spatial size {'x'.join(map(str, spatial))}: {limits})")
    seed = unit_seed(_seed_shape(layer), unit, position, channel_axis=layer.channel_axis)
    return Objective(layer.name, seed,
                     f"unit {unit} at {','.join(map(str, position))} of '{layer.name}'")


def _shape_text(layer: LayerInfo) -> str:
    return "x".join("N" if d is None else str(d) for d in layer.shape)
