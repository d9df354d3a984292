"""The values of the geometry analysis: receptive fields, a tensor's public geometry, and the
per-tensor state the rules pass along (axis labels + receptive field).

Per input spatial axis, unit index ``i`` of a tensor covers the half-open input-pixel interval
``[offset + i*stride, offset + i*stride + size)``. Pixel ``p`` is the interval ``[p, p+1)``, so the
image itself has size 1, stride 1, offset 0. Boxes may reach outside the image (padding); clip them.
Values are floats: transposed convolutions, upsampling and DepthToSpace give fractional strides (and
then fractional sizes/offsets). Near-integers are snapped to integers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

TOL = 1e-9


def snap(value: float) -> float:
    value = float(value)
    r = round(value)
    return float(r) if abs(value - r) <= TOL * max(1.0, abs(value)) else value


def _num(value: float) -> int | float:
    value = snap(value)
    return int(value) if value.is_integer() else value


def close(a: float, b: float) -> bool:
    return abs(a - b) <= TOL * max(1.0, abs(a), abs(b))


@dataclass(frozen=True)
class ReceptiveField:
    """Per input spatial axis: unit ``i`` covers ``[offset + i*stride, offset + i*stride + size)``."""

    size: tuple[float, ...]
    stride: tuple[float, ...]
    offset: tuple[float, ...]

    @classmethod
    def identity(cls, ndim: int) -> "ReceptiveField":
        return cls((1.0,) * ndim, (1.0,) * ndim, (0.0,) * ndim)

    @property
    def ndim(self) -> int:
        return len(self.size)

    def box(self, index: Sequence[int]) -> tuple[tuple[float, float], ...]:
        """[start, end) in input pixels per spatial axis for the unit at this spatial index."""
        if len(index) != self.ndim:
            raise ValueError(f"index {tuple(index)} has {len(index)} axes, the receptive field has {self.ndim}")
        out = []
        for i, size, stride, offset in zip(index, self.size, self.stride, self.offset):
            start = snap(offset + i * stride)
            out.append((start, snap(start + size)))
        return tuple(out)

    def clipped_box(self, index: Sequence[int], image_size: Sequence[int]) -> tuple[tuple[int, int], ...]:
        """The box rounded outwards to whole pixels and clipped to an image of ``image_size`` (may be empty)."""
        out = []
        for (start, end), n in zip(self.box(index), image_size):
            lo = min(max(math.floor(start + TOL), 0), n)
            hi = max(min(math.ceil(end - TOL), n), lo)
            out.append((lo, hi))
        return tuple(out)

    def to_json(self) -> dict:
        return {"size": [_num(v) for v in self.size], "stride": [_num(v) for v in self.stride],
                "offset": [_num(v) for v in self.offset]}

    # -- construction helpers used by the propagation rules --------------------------------------
    def _replace_axis(self, axis: int, size: float, stride: float, offset: float) -> "ReceptiveField":
        s, t, o = list(self.size), list(self.stride), list(self.offset)
        s[axis], t[axis], o[axis] = snap(size), snap(stride), snap(offset)
        return ReceptiveField(tuple(s), tuple(t), tuple(o))

    def _window(self, axis: int, kernel: int, stride: int, dilation: int, pad_begin: float) -> "ReceptiveField":
        r, s, o = self.size[axis], self.stride[axis], self.offset[axis]
        return self._replace_axis(axis, r + (kernel - 1) * dilation * s, s * stride, o - pad_begin * s)

    def _envelope(self, axis: int, slope: float, lo: float, hi: float) -> "ReceptiveField":
        """Unit j reads input units in ``[lo + slope*j, hi + slope*j]`` (index space, inclusive)."""
        r, s, o = self.size[axis], self.stride[axis], self.offset[axis]
        return self._replace_axis(axis, r + (hi - lo) * s, s * slope, o + lo * s)

    def _shift(self, axis: int, start: float, step: float = 1) -> "ReceptiveField":
        r, s, o = self.size[axis], self.stride[axis], self.offset[axis]
        return self._replace_axis(axis, r, s * step, o + start * s)


def union(rfs: Sequence[ReceptiveField | None]) -> ReceptiveField | None:
    """The bounding box of several receptive fields with equal strides (None if any is None or they differ)."""
    if not rfs or any(rf is None for rf in rfs):
        return None
    first = rfs[0]
    for rf in rfs[1:]:
        if not all(close(a, b) for a, b in zip(rf.stride, first.stride)):
            return None
    sizes, offsets = [], []
    for axis in range(first.ndim):
        start = min(rf.offset[axis] for rf in rfs)
        end = max(rf.offset[axis] + rf.size[axis] for rf in rfs)
        sizes.append(snap(end - start))
        offsets.append(snap(start))
    return ReceptiveField(tuple(sizes), first.stride, tuple(offsets))


@dataclass(frozen=True)
class TensorGeometry:
    channel_axis: int | None  # axis holding channels/units; None if unknown
    spatial_axes: tuple[int, ...]  # tensor axes for the input's spatial axes, in input order; () if non-spatial
    receptive_field: ReceptiveField | None


# ------------------------------------------------------------------------------------------------
# the state the rules pass along: one label per axis ("N", "C", int spatial index, or None) + RF
# ------------------------------------------------------------------------------------------------

class GiveUp(Exception):
    """A rule lacks something it needs (a constant, a shape): the outputs become unknown."""


@dataclass(frozen=True)
class Geo:
    labels: tuple | None  # None: rank/roles unknown
    rf: ReceptiveField | None

    @property
    def rank(self) -> int:
        if self.labels is None:
            raise GiveUp
        return len(self.labels)


UNKNOWN = Geo(None, None)


def is_spatial(label) -> bool:
    return isinstance(label, int) and not isinstance(label, bool)


def public(geo: Geo, nsp: int) -> TensorGeometry:
    """The geometry a caller sees: the unit axis, the image axes in input order, the RF where every one is there."""
    if geo.labels is None:
        return TensorGeometry(None, (), None)
    labels = geo.labels
    channel = labels.index("C") if labels.count("C") == 1 else None
    if channel is None and "C" not in labels and labels.count(None) == 1 and labels.count("N") == 1 \
            and all(labels.count(k) == 1 for k in range(nsp)):
        channel = labels.index(None)  # batch and image axes identified: the one left holds the units
    if all(labels.count(k) == 1 for k in range(nsp)):
        spatial = tuple(labels.index(k) for k in range(nsp))
    else:
        spatial = ()
    return TensorGeometry(channel, spatial, geo.rf if spatial else None)
