"""Objectives on units: linear ones (`neuron`, `channel`, `direction`, `logit`, `unit_objective`,
`by_kind`) and non-linear ones (`own_activation`, `diversity`).

Constructors take the model (anything with `.layer(name)`; `logit` and `pre_activation` also
`.facts`, `logit` `.class_output`) and a layer name or `LayerInfo`. Positions mean what
onnxprobe.position says: `neuron` takes Y,X (None: the centre), `unit_objective` takes any
position keyword.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ParameterError, UsageError
from ..graph.layers import LayerInfo
from ..position import Position, centre, check_position, check_unit, resolve
from .algebra import Objective, SelfSeed
from .layers import activation_shape, differentiable_layer, logit_layer, objective_layer, pre_relu

def _unit_seed(info: LayerInfo, unit: int, position: Sequence[int] | None, value: float = 1.0) -> np.ndarray:
    """(1, *shape) float32: `value` on channel `unit` at `position` over the spatial axes (None:
    every position; axes that are neither channel nor spatial are taken whole), 0 elsewhere."""
    seed = np.zeros(activation_shape(info), np.float32)
    index: list = [slice(None)] * seed.ndim
    index[info.channel_axis] = unit
    for axis, p in zip(info.spatial_axes, position or ()):
        index[axis] = p
    seed[tuple(index)] = value
    return seed


def _layers(model, layer: str | LayerInfo, pre_activation: bool) -> tuple[LayerInfo, LayerInfo]:
    """(the layer named, the tensor the objective reads: the ReLU's input with `pre_activation`)."""
    info = differentiable_layer(model, layer)
    return info, (pre_relu(model, info) if pre_activation else info)


def _linear(info: LayerInfo, seed: np.ndarray, description: str) -> Objective:
    return Objective({info.name: seed.shape}, lambda acts, batch: {info.name: seed}, description)


def _where(info: LayerInfo, position: Sequence[int] | None) -> tuple[int, ...]:
    """A Y,X position checked against the layer (None: the centre; a vector layer takes () or None)."""
    if not info.is_spatial:
        if position is not None and tuple(position) != ():
            raise UsageError(f"layer '{info.name}' is not spatial: it takes no position")
        return ()
    return centre(info) if position is None else check_position(info, position)


def neuron(model, layer: str | LayerInfo, unit: int, position: Sequence[int] | None = None, *,
           pre_activation: bool = False) -> Objective:
    """One unit: channel `unit` at `position` (Y,X; the spatial centre by default, as the toolbox
    chose). `pre_activation`: on the input of the ReLU that produces `layer` (`pre_relu`)."""
    info, target = _layers(model, layer, pre_activation)
    unit, where = check_unit(info, unit), _where(info, position)
    at = f" at {','.join(map(str, where))}" if where else ""
    return _linear(target, _unit_seed(target, unit, where), f"neuron {target.name}:{unit}{at}")


def channel(model, layer: str | LayerInfo, unit: int, *, pre_activation: bool = False) -> Objective:
    """The mean of channel `unit` over all its positions."""
    info, target = _layers(model, layer, pre_activation)
    unit = check_unit(info, unit)
    positions = np.prod(activation_shape(target)) // target.units
    return _linear(target, _unit_seed(target, unit, None, 1.0 / positions), f"channel {target.name}:{unit}")


def direction(model, layer: str | LayerInfo, weights: Sequence[float], *, pre_activation: bool = False) -> Objective:
    """sum_c weights[c] * (the mean of channel c over all positions): a direction in channel space
    (Lucid's `direction`)."""
    info, target = _layers(model, layer, pre_activation)
    weights = np.asarray(weights, np.float64).ravel()
    if weights.size != info.units:
        raise UsageError(f"a direction in layer '{info.name}' needs {info.units} weights, got {weights.size}")
    shape = activation_shape(target)
    axes = [1] * len(shape)
    axes[target.channel_axis] = weights.size
    count = np.prod(shape) // weights.size
    seed = np.ascontiguousarray(np.broadcast_to((weights / count).reshape(axes), shape), np.float32)
    return _linear(target, seed, f"direction {target.name}")


def logit(model, cls: int) -> Objective:
    """The score of class `cls` before any final softmax."""
    info = logit_layer(model)
    cls = check_unit(info, cls, what="class")
    labels = getattr(getattr(model, "spec", None), "labels", None)
    label = f" ({labels[cls]})" if labels and cls < len(labels) else ""
    return _linear(info, _unit_seed(info, cls, ()), f"class {cls}{label}, logit '{info.name}'")


def unit_objective(model, layer: str | LayerInfo, unit: int, position: Position = None, x: np.ndarray | None = None, *,
                   pre_activation: bool = False) -> Objective:
    """Unit `unit` of `layer` at `position` as onnxprobe.position reads it: Y,X or "centre" (a
    neuron there), "mean" (the channel), "max" (a neuron where the unit fires most on the input
    `x`; refused without one, e.g. for a synthesized image); None is "max" when `x` is given, else
    "centre". `pre_activation`: on the input of the ReLU that produces `layer` (`pre_relu`)."""
    info = differentiable_layer(model, layer)
    unit = check_unit(info, unit)
    where, _ = resolve(model, info, unit, position, x)
    if where is None:
        return channel(model, info, unit, pre_activation=pre_activation)
    return neuron(model, info, unit, where, pre_activation=pre_activation)


def by_kind(model, kind: str, layer: str | LayerInfo | None, unit: int, position: Position = None,
            pre_activation: bool = False, x: np.ndarray | None = None) -> Objective:
    """An objective named by kind: "neuron" (`unit_objective` at `position`: any position of
    onnxprobe.position, the centre when none is given and there is no input `x`), "channel" (the
    mean over positions), "logit" (the class score `unit`; `layer` is not needed). Only a neuron
    takes a position."""
    info = objective_layer(model, kind, layer)
    if kind != "neuron" and position is not None:
        raise ParameterError("{position} applies to {objective} neuron only", "position", "objective")
    if kind == "logit":
        return logit(model, unit)
    if kind == "channel":
        return channel(model, info, unit, pre_activation=pre_activation)
    return unit_objective(model, info, unit, position, x, pre_activation=pre_activation)


# ---- non-linear objectives ---------------------------------------------------------------------

def own_activation(model, layer: str | LayerInfo, unit: int, at_peak: bool = True) -> Objective:
    """Half the sum of squares of channel `unit` (only where it is largest over the spatial axes,
    when `at_peak`): its seed is the unit's own activation there, the Deep Visualization Toolbox's
    back-map seed. Non-linear; `self_seed` gives its in-graph form (one gradient run, no forward
    first). The peak indicator is piecewise constant: it passes no gradient."""
    info = differentiable_layer(model, layer)
    unit = check_unit(info, unit)
    mask = _unit_seed(info, unit, None)
    peak_axes = tuple(info.spatial_axes) if at_peak and info.is_spatial else ()

    def weight(act: np.ndarray) -> np.ndarray:  # mask * (act == its max over the peak axes)
        return mask * (act == act.max(axis=peak_axes, keepdims=True)) if peak_axes else mask

    def seed_fn(acts, batch):
        act = np.asarray(acts[info.name])
        return {info.name: weight(act) * act}

    def value_fn(acts):
        act = np.asarray(acts[info.name], np.float64)
        return 0.5 * (weight(act) * act * act).reshape(act.shape[0], -1).sum(axis=1)

    where = " where it fires most" if peak_axes else ""
    return Objective({info.name: mask.shape}, seed_fn, f"own activation of {info.name}:{unit}{where}", linear=False,
                     value_fn=value_fn, self_seed=SelfSeed(info.name, mask, peak_axes))


def diversity(model, layer: str | LayerInfo) -> Objective:
    """Lucid's diversity term: mean over rows of the summed cosine similarity between this row's
    Gram matrix (channels x channels) and every other row's. Maximise its negative (e.g.
    `objective - 1e2 * diversity(...)`) to make a batch's images differ."""
    info = differentiable_layer(model, layer)  # a style statistic of the layer itself, not a maximiser
    axis = info.channel_axis

    def grams(act):
        a = np.moveaxis(np.asarray(act, np.float64), axis, -1)
        flat = a.reshape(a.shape[0], -1, a.shape[-1])  # (N, S, C)
        g = np.einsum("nsc,nsd->ncd", flat, flat)
        norms = np.sqrt((g ** 2).sum(axis=(1, 2)))
        return a.shape, flat, g, np.maximum(norms, 1e-10)

    def value_fn(acts):
        _, _, g, norms = grams(acts[info.name])
        gn = g / norms[:, None, None]
        n = gn.shape[0]
        total = np.einsum("icd,jcd->ij", gn, gn)
        per_row = total.sum(axis=1) - np.diagonal(total)
        return per_row / n  # row i's share; their sum is Lucid's value

    def seed_fn(acts, batch):
        shape, flat, g, norms = grams(acts[info.name])
        gn = g / norms[:, None, None]
        n = gn.shape[0]
        # d/dgn_i of sum_i sum_{j!=i} <gn_i, gn_j> / n = 2 / n * sum_{j != i} gn_j
        m = 2.0 / n * (gn.sum(axis=0, keepdims=True) - gn)
        inner = (m * gn).sum(axis=(1, 2))
        dg = (m - inner[:, None, None] * gn) / norms[:, None, None]
        dflat = np.einsum("nsc,ncd->nsd", flat, dg + np.transpose(dg, (0, 2, 1)))
        grad = np.moveaxis(dflat.reshape(shape), -1, axis)
        return {info.name: grad.astype(np.float32)}

    return Objective({info.name: activation_shape(info)}, seed_fn, f"diversity {info.name}", linear=False, value_fn=value_fn)
