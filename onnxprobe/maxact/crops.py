"""Crops of the top-k hits: the input patch under a unit's receptive field (zero-padded where it
reaches past the image), the deconv / backprop maps of that unit cropped the same way, montages."""

from __future__ import annotations

import math

import cv2
import numpy as np

from onnxprobe.graph.geometry import ReceptiveField
from onnxprobe.render.backmaps import gradient_hwc, render_backmap
from onnxprobe.render.images import montage, to_rgb8

TILE_MAX = 128  # montage tiles larger than this are shrunk (deep layers see more than the image)
TILE_MIN = 48  # ... and smaller ones (first layers) are enlarged, nearest neighbour


def crop_box(rf: ReceptiveField | None, location, image_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """(y0, x0, y1, x1) in input pixels, half-open, rounded outwards, NOT clipped to the image.
    Without a receptive field (fully connected units, or geometry we cannot prove) the whole image."""
    if rf is None or len(location) != 2 or rf.ndim != 2:
        return 0, 0, int(image_hw[0]), int(image_hw[1])
    (y0, y1), (x0, x1) = rf.box(tuple(int(v) for v in location))
    return math.floor(y0 + 1e-9), math.floor(x0 + 1e-9), math.ceil(y1 - 1e-9), math.ceil(x1 - 1e-9)


def crop_padded(array: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """array[y0:y1, x0:x1] (HxW or HxWxC) with zeros where the box lies outside the array."""
    y0, x0, y1, x1 = box
    h, w = array.shape[:2]
    out = np.zeros((max(0, y1 - y0), max(0, x1 - x0), *array.shape[2:]), array.dtype)
    sy0, sx0, sy1, sx1 = max(y0, 0), max(x0, 0), min(y1, h), min(x1, w)
    if sy1 > sy0 and sx1 > sx0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = array[sy0:sy1, sx0:sx1]
    return out


def fit_tile(image: np.ndarray, tile_max: int = TILE_MAX, tile_min: int = TILE_MIN) -> np.ndarray:
    """Shrink (area) or enlarge (nearest, integer factor) a patch for a montage tile."""
    image = to_rgb8(image)
    h, w = image.shape[:2]
    if max(h, w) > tile_max:
        scale = tile_max / max(h, w)
        return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    factor = max(1, tile_min // max(1, max(h, w)))
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1) if factor > 1 else image


def unit_montage(tiles: list[np.ndarray], k: int) -> np.ndarray:
    """The toolbox's per-unit picture: k tiles in a near-square grid (3x3 for k = 9)."""
    return montage([fit_tile(t) for t in tiles], columns=int(math.ceil(math.sqrt(k))))


def backmap_patch(grad: np.ndarray, layout: str, box: tuple[int, int, int, int]) -> np.ndarray:
    """One input gradient (no batch axis) -> the display map of its box (zero gradient outside the
    image shows as mid-gray, like a zero gradient inside it)."""
    return render_backmap(crop_padded(gradient_hwc(grad, layout), box), "raw")

