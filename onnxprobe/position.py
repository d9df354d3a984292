"""`--position`: which place of a spatial layer a unit is read at. One meaning for every command
(backprop, attribute, optimize) and the viewer's back pane:

- `Y,X`: that position of the layer's spatial grid (row, column, counted from 0);
- `max`: where the unit fires most on the given image (the default where there is an image:
  backprop, attribute, the viewer's back pane);
- `centre` (or `center`): the spatial centre, `size // 2` per axis (the default of optimize, which
  has no image, and the toolbox's choice);
- `mean`: the channel's mean over all positions (optimize: the same as `--objective channel`);
- None (not given): `max` where there is an image, `centre` where there is none (`resolve`).

A layer without spatial axes takes no position (any of them but `max`/`centre` is an error there).
`check_unit` is the one "unit out of range" check. Objectives built on these: objectives.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from onnxprobe.errors import ParameterError, UsageError

KEYWORDS = ("max", "centre", "mean")
_YX = "Y,X: that position of the layer's spatial grid (row, column from 0)"
_REST = "centre; mean: the channel's mean over all positions"
HELP = f"{_YX}; max: where the unit fires most on the image; {_REST}"
HELP_WITHOUT_IMAGE = f"{_YX}; {_REST}"  # where there is no image (a synthesized one): no max

Position = tuple[int, ...] | str | None


def parse_position(text: str | None) -> Position:
    """'3,4' -> (3, 4); 'max' / 'centre' / 'center' / 'mean' -> the keyword; None -> None."""
    if text is None:
        return None
    word = str(text).strip().lower()
    if word == "center":
        word = "centre"
    if word in KEYWORDS:
        return word
    try:
        return tuple(int(p) for p in word.split(","))
    except ValueError:
        raise ParameterError(f"{{position}} takes Y,X integers, max, centre or mean; got '{text}'", "position") from None


def check_unit(info, unit: int, what: str = "unit") -> int:
    """`unit` checked against the layer's units (one error text for every command and objective)."""
    unit, count = int(unit), int(info.units)
    if not 0 <= unit < count:
        plural = f"{what}es" if what.endswith("s") else f"{what}s"
        raise UsageError(f"{what} {unit} out of range for layer '{info.name}' ({count} {plural}: 0-{count - 1})")
    return unit


def centre(info) -> tuple[int, ...]:
    """The spatial centre of a layer (size // 2 per spatial axis), () for a vector layer."""
    return tuple(int(info.shape[a]) // 2 for a in info.spatial_axes)


def check_position(info, position: Sequence[int]) -> tuple[int, ...]:
    """A Y,X position checked against the layer's spatial size (one error text for every command)."""
    position = tuple(int(p) for p in position)
    spatial = tuple(int(info.shape[a]) for a in info.spatial_axes)
    if not spatial:
        raise UsageError(f"layer '{info.name}' is not spatial: it takes no position")
    if len(position) != len(spatial) or not all(0 <= p < s for p, s in zip(position, spatial)):
        limits = ", ".join(f"0-{s - 1}" for s in spatial)
        raise UsageError(f"position {','.join(map(str, position))} is outside layer '{info.name}' "
                         f"(spatial size {'x'.join(map(str, spatial))}: {limits})")
    return position


def unit_map(info, activation: np.ndarray, unit: int) -> np.ndarray:
    """Channel `unit` of one batch row (batch axis kept, size 1) as an array over the spatial axes
    (extra axes folded by their max)."""
    a = np.asarray(activation)[0]
    source = [info.channel_axis - 1] + [s - 1 for s in info.spatial_axes]
    a = np.moveaxis(a, source, list(range(len(source))))[int(unit)]
    return a.reshape(a.shape[:len(info.spatial_axes)] + (-1,)).max(axis=-1)


def strongest(info, activation: np.ndarray, unit: int) -> tuple[int, ...]:
    """Where channel `unit` is largest: the first such position in row-major order on ties (an
    all-equal channel gives the first position)."""
    m = unit_map(info, activation, unit)
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(m)), m.shape))


def resolve(model, info, unit: int, position: Position, x: np.ndarray | None = None) -> tuple[tuple[int, ...] | None, str]:
    """(position or None for the channel mean, how it was chosen) for unit `unit` of layer `info`.
    `max` runs the model on `x` (one input row); None means `max` when `x` is given, else `centre`."""
    unit = check_unit(info, unit)
    if position is None:
        position = "max" if x is not None else "centre"
    if not info.spatial_axes:
        if position not in ("max", "centre", ()):
            raise UsageError(f"layer '{info.name}' is not spatial: it takes no position")
        return (), ""
    if position == "mean":
        return None, "the channel's mean over all positions"
    if position == "centre":
        return centre(info), "the centre"
    if position == "max":
        if x is None:
            raise ParameterError("{position} max needs an image (where the unit fires most on it); without one give Y,X, "
                                 "centre or mean", "position")
        activation = model.activations(x[:1], [info.name], with_outputs=False)[info.name]
        where = strongest(info, activation, unit)
        value = float(unit_map(info, activation, unit)[where])
        return where, f"where the unit fires most on this image (value {value:.4g})"
    return check_position(info, position), "as given"
