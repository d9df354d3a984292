"""Streaming, mergeable per-unit top-k and per-unit statistics.

For each unit of a layer, `LayerState` keeps the k best images ranked by (score desc, image index
asc) with the location of the unit's spatial maximum in that image, and running sums for the
statistics (mean and max activation, how often the unit fires). Memory is O(units x k).
`merge` of the states of two disjoint sets of images equals the state of their union; the top-k
part is exact in any order, the float sums are exact when folded in a fixed order (the job folds
shard states in shard order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EMPTY_INDEX = np.iinfo(np.int64).max  # empty slots sort after every real image
BY = ("max", "mean")


def units_spatial(activation: np.ndarray, channel_axis: int, spatial_axes: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, ...]]:
    """(N, ...) activations -> (N, units, positions) and the spatial shape that positions unravel to.
    Axes that are neither channel nor spatial (rare) are folded by their max."""
    act = np.asarray(activation)
    others = [a for a in range(1, act.ndim) if a != channel_axis and a not in spatial_axes]
    if others:
        act = act.max(axis=tuple(others), keepdims=True)
    order = [0, channel_axis, *spatial_axes, *others]
    act = np.transpose(act, order)
    spatial_shape = tuple(act.shape[2:2 + len(spatial_axes)])
    return act.reshape(act.shape[0], act.shape[1], -1), spatial_shape


@dataclass
class LayerState:
    """Top-k and statistics of one layer over a set of images."""

    by: str
    score: np.ndarray  # (units, k) float32, descending
    index: np.ndarray  # (units, k) int64, image index (EMPTY_INDEX = empty slot)
    location: np.ndarray  # (units, k, spatial dims) int32, argmax of the unit in that image
    count: int  # images seen
    sum_mean: np.ndarray  # (units,) float64: sum over images of the unit's spatial mean
    sum_max: np.ndarray  # (units,) float64: sum over images of the unit's spatial max
    max: np.ndarray  # (units,) float32: max over images and positions
    fires: np.ndarray  # (units,) int64: images whose spatial max is > 0

    @classmethod
    def empty(cls, units: int, k: int, spatial_dims: int, by: str = "max") -> "LayerState":
        if by not in BY:
            raise ValueError(f"by must be one of {BY}, got {by!r}")
        return cls(by, np.full((units, k), -np.inf, np.float32), np.full((units, k), EMPTY_INDEX, np.int64),
                   np.zeros((units, k, spatial_dims), np.int32), 0, np.zeros(units), np.zeros(units),
                   np.full(units, -np.inf, np.float32), np.zeros(units, np.int64))

    @property
    def units(self) -> int:
        return self.score.shape[0]

    @property
    def k(self) -> int:
        return self.score.shape[1]

    def filled(self) -> np.ndarray:
        """(units, k) bool: slots that hold an image."""
        return self.index != EMPTY_INDEX

    def update(self, activation: np.ndarray, indices: np.ndarray, channel_axis: int, spatial_axes: tuple[int, ...]) -> None:
        """Add a batch: `activation` (N, ...) for the images with global `indices` (N,)."""
        flat, spatial_shape = units_spatial(activation, channel_axis, spatial_axes)
        flat = np.nan_to_num(flat.astype(np.float32, copy=False), nan=-np.inf)
        n = flat.shape[0]
        if n == 0:
            return
        arg = flat.argmax(axis=2)  # first maximum in row-major order: deterministic
        peak = np.take_along_axis(flat, arg[:, :, None], axis=2)[:, :, 0]  # (N, units)
        mean = flat.mean(axis=2, dtype=np.float64)
        score = peak if self.by == "max" else mean.astype(np.float32)
        location = np.stack(np.unravel_index(arg, spatial_shape), axis=-1).astype(np.int32) if spatial_shape else \
            np.zeros((n, flat.shape[1], 0), np.int32)
        self.count += n
        self.sum_mean += mean.sum(axis=0)
        self.sum_max += peak.astype(np.float64).sum(axis=0)
        self.max = np.maximum(self.max, peak.max(axis=0))
        self.fires += (peak > 0).sum(axis=0)
        idx = np.broadcast_to(np.asarray(indices, np.int64)[:, None], score.shape)
        self._select(score.T, idx.T, np.transpose(location, (1, 0, 2)))

    def _select(self, score: np.ndarray, index: np.ndarray, location: np.ndarray) -> None:
        """Keep the best k of the current slots and the candidates (units, m) per unit."""
        all_score = np.concatenate([self.score, score], axis=1)
        all_index = np.concatenate([self.index, index], axis=1)
        all_location = np.concatenate([self.location, location], axis=1)
        order = np.lexsort((all_index, -all_score.astype(np.float64)), axis=1)[:, :self.k]
        self.score = np.take_along_axis(all_score, order, axis=1)
        self.index = np.take_along_axis(all_index, order, axis=1)
        self.location = np.take_along_axis(all_location, order[:, :, None], axis=1)

    def merge(self, other: "LayerState") -> "LayerState":
        """A new state for the union of the two (disjoint) image sets."""
        if (self.by, self.score.shape, self.location.shape) != (other.by, other.score.shape, other.location.shape):
            raise ValueError("cannot merge top-k states of different layers or settings")
        out = self.copy()
        out._select(other.score, other.index, other.location)
        out.count += other.count
        out.sum_mean = self.sum_mean + other.sum_mean
        out.sum_max = self.sum_max + other.sum_max
        out.max = np.maximum(self.max, other.max)
        out.fires = self.fires + other.fires
        return out

    def copy(self) -> "LayerState":
        return LayerState(self.by, self.score.copy(), self.index.copy(), self.location.copy(), self.count,
                          self.sum_mean.copy(), self.sum_max.copy(), self.max.copy(), self.fires.copy())

    # ---- statistics --------------------------------------------------------------------------
    def mean_activation(self) -> np.ndarray:
        return self.sum_mean / self.count if self.count else np.full(self.units, np.nan)

    def mean_max(self) -> np.ndarray:
        return self.sum_max / self.count if self.count else np.full(self.units, np.nan)

    def fire_rate(self) -> np.ndarray:
        return self.fires / self.count if self.count else np.full(self.units, np.nan)

    # ---- (de)serialisation --------------------------------------------------------------------
    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}{key}": np.asarray(getattr(self, key)) for key in
                ("by", "score", "index", "location", "count", "sum_mean", "sum_max", "max", "fires")}

    @classmethod
    def from_arrays(cls, arrays, prefix: str) -> "LayerState":
        get = lambda key: arrays[f"{prefix}{key}"]  # noqa: E731
        return cls(str(get("by")), get("score"), get("index"), get("location"), int(get("count")),
                   get("sum_mean"), get("sum_max"), get("max"), get("fires"))
