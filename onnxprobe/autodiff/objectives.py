"""Seed tensors (numpy) for the implicit objective sum(seed * activation) of a gradient model.

Shapes are full activation shapes including the batch axis, e.g. (N, C, H, W), (N, C) or, with
channel_axis=-1, (N, T, D) / (N, H, W, C). "Spatial" axes are every axis but batch and channel.
The `*_seeds` variants give each batch row its own unit (one compiled graph serves them all).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import onnx

from ..errors import UsageError


def _axes(act_shape: Sequence[int], channel_axis: int) -> tuple[int, list[int]]:
    rank = len(act_shape)
    if rank < 2:
        raise UsageError(f"activation shape {tuple(act_shape)} has no channel axis")
    ca = channel_axis % rank
    if ca == 0:
        raise UsageError("the channel axis cannot be the batch axis")
    return ca, [a for a in range(1, rank) if a != ca]


def _check_channel(act_shape, ca: int, channel: int) -> None:
    if not 0 <= channel < act_shape[ca]:
        raise UsageError(f"unit {channel} is out of range: the layer has {act_shape[ca]} channels")


def _position(act_shape, spatial: list[int], position) -> tuple[int, ...]:
    if position is None:
        return tuple(act_shape[a] // 2 for a in spatial)
    position = tuple(int(p) for p in np.atleast_1d(position))
    if len(position) != len(spatial):
        raise UsageError(f"position {position} needs {len(spatial)} coordinate(s)")
    for p, a in zip(position, spatial):
        if not 0 <= p < act_shape[a]:
            raise UsageError(f"position {position} is outside the {tuple(act_shape[a] for a in spatial)} map")
    return position


def _index(rank: int, batch, ca: int, channel: int, spatial: list[int], pos) -> tuple:
    idx: list = [slice(None)] * rank
    idx[0] = batch
    idx[ca] = channel
    if pos is not None:
        for a, p in zip(spatial, pos):
            idx[a] = p
    return tuple(idx)


def unit_seed(act_shape, channel: int, position=None, channel_axis: int = 1, dtype=np.float32) -> np.ndarray:
    """One unit (channel at a spatial position, default the centre) in every batch row."""
    ca, spatial = _axes(act_shape, channel_axis)
    _check_channel(act_shape, ca, channel)
    seed = np.zeros(act_shape, dtype=dtype)
    seed[_index(len(act_shape), slice(None), ca, channel, spatial, _position(act_shape, spatial, position))] = 1
    return seed


def channel_mean_seed(act_shape, channel: int, channel_axis: int = 1, dtype=np.float32) -> np.ndarray:
    """The mean of one channel over its spatial positions, in every batch row."""
    ca, spatial = _axes(act_shape, channel_axis)
    _check_channel(act_shape, ca, channel)
    seed = np.zeros(act_shape, dtype=dtype)
    count = int(np.prod([act_shape[a] for a in spatial])) if spatial else 1
    seed[_index(len(act_shape), slice(None), ca, channel, spatial, None)] = 1.0 / count
    return seed


def weighted_channels_seed(act_shape, weights, channel_axis: int = 1, mean: bool = True,
                           dtype=np.float32) -> np.ndarray:
    """sum_c weights[c] * (mean or sum over positions of channel c): a direction in channel space."""
    ca, spatial = _axes(act_shape, channel_axis)
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    if weights.size != act_shape[ca]:
        raise UsageError(f"{weights.size} weights for a layer with {act_shape[ca]} channels")
    count = int(np.prod([act_shape[a] for a in spatial])) if spatial and mean else 1
    shape = [1] * len(act_shape)
    shape[ca] = weights.size
    return np.broadcast_to((weights / count).reshape(shape), act_shape).astype(dtype)


def unit_seeds(act_shape, units: Sequence, channel_axis: int = 1, dtype=np.float32) -> np.ndarray:
    """Batch row i gets unit units[i]: a channel index or (channel, position)."""
    ca, spatial = _axes(act_shape, channel_axis)
    if len(units) != act_shape[0]:
        raise UsageError(f"{len(units)} units for a batch of {act_shape[0]}")
    seed = np.zeros(act_shape, dtype=dtype)
    for i, unit in enumerate(units):
        channel, position = (unit, None) if np.isscalar(unit) else (unit[0], unit[1])
        _check_channel(act_shape, ca, int(channel))
        pos = _position(act_shape, spatial, position)
        seed[_index(len(act_shape), i, ca, int(channel), spatial, pos)] = 1
    return seed


def channel_mean_seeds(act_shape, channels: Sequence[int], channel_axis: int = 1, dtype=np.float32) -> np.ndarray:
    """Batch row i gets the mean of channel channels[i]."""
    if len(channels) != act_shape[0]:
        raise UsageError(f"{len(channels)} channels for a batch of {act_shape[0]}")
    rows = [channel_mean_seed((1, *act_shape[1:]), int(ch), channel_axis, dtype) for ch in channels]
    return np.concatenate(rows, axis=0)


_SHAPE_ONLY = ("Identity",)


def pre_softmax_tensor(model: onnx.ModelProto, tensor: str) -> str:
    """The logits: the input of the Softmax/LogSoftmax that produces `tensor` (through Identity
    nodes), else `tensor` itself. Objectives on class units use the logits by default, because
    maximising a softmax output mostly minimises the other classes."""
    producers = {o: n for n in model.graph.node for o in n.output}
    name = tensor
    while name in producers and producers[name].op_type in _SHAPE_ONLY:
        name = producers[name].input[0]
    node = producers.get(name)
    if node is not None and node.op_type in ("Softmax", "LogSoftmax") and node.domain in ("", "ai.onnx"):
        return node.input[0]
    return tensor


def self_seeded(model: onnx.ModelProto, target: str, peak_axes: tuple[int, ...] = ()) -> tuple[onnx.ModelProto, str]:
    """A copy of `model` with one more output, target * target, and its name.

    Its gradient under the seed 0.5 * mask (mask of 0/1) equals the gradient of `target` under the
    seed mask * target -- exactly in floating point: the Mul rule hands each factor 0.5 * mask *
    target and the two halves add up. That is "the unit's own activation as the seed" (the Deep
    Visualization Toolbox's back map) in ONE run, without a forward pass first to read the unit.

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
