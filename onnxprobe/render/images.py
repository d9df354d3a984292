"""Writing and composing display images (HxWx3 uint8 RGB)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from onnxprobe.errors import InputError
from onnxprobe.fsutil import atomic_write_bytes


def to_rgb8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return image


def encode_png(image: np.ndarray) -> bytes:
    rgb = to_rgb8(image)
    ok, data = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise InputError("cannot encode PNG")
    return data.tobytes()


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Atomically write an RGB (or gray) image as PNG."""
    path = Path(path)
    if path.suffix.lower() not in (".png", ""):
        ok, data = cv2.imencode(path.suffix, np.ascontiguousarray(to_rgb8(image)[:, :, ::-1]))
        if not ok:
            raise InputError(f"cannot write image format '{path.suffix}': use .png")
        return atomic_write_bytes(path, data.tobytes())
    return atomic_write_bytes(path, encode_png(image))


MAP_MIN_SIDE = 224  # maps and class pictures are shown at least this large (a 28x28 map is upscaled 8x)


def upscale(image: np.ndarray, min_side: int) -> np.ndarray:
    """Nearest-neighbour upscaling by an integer factor so the shorter side is at least `min_side`."""
    h, w = image.shape[:2]
    factor = max(1, int(np.ceil(min_side / max(1, min(h, w)))))
    if factor == 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def montage(images: list[np.ndarray], columns: int | None = None, pad: int = 2, background: int = 32) -> np.ndarray:
    """Tile equally sized RGB images into a grid (rows x columns) with `pad` pixels between tiles."""
    if not images:
        return np.full((1, 1, 3), background, np.uint8)
    images = [to_rgb8(im) for im in images]
    h = max(im.shape[0] for im in images)
    w = max(im.shape[1] for im in images)
    n = len(images)
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    out = np.full((rows * h + (rows - 1) * pad, columns * w + (columns - 1) * pad, 3), background, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, columns)
        y, x = r * (h + pad), c * (w + pad)
        out[y:y + im.shape[0], x:x + im.shape[1]] = im
    return out


def clip_unit(values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Clip to 0..1, NaN (a model that yields NaN) to 0: the casts to uint8 that follow are then
    defined (NaN to an integer is not, and np.clip keeps NaN)."""
    return np.fmin(np.fmax(values, 0.0, out=out), 1.0, out=out)


def unit_to_uint8(values: np.ndarray, in_place: bool = False) -> np.ndarray:
    """Display values in 0..1 -> uint8 0..255 (truncating, as the displays always did), through
    `clip_unit`; `in_place`: `values` (a float array of the caller's own) is used as scratch."""
    scaled = clip_unit(values, out=values if in_place else None)
    scaled *= 255
    return scaled.astype(np.uint8)


def heatmap(values: np.ndarray, colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """A 2-D array -> RGB heat map (normalised to its own range)."""
    values = np.asarray(values, dtype=np.float32)
    lo, hi = float(values.min(initial=0)), float(values.max(initial=0))
    scaled = np.zeros_like(values) if hi <= lo else (values - lo) / (hi - lo)
    colored = cv2.applyColorMap(unit_to_uint8(scaled), colormap)
    return colored[:, :, ::-1].copy()


def overlay(base_rgb: np.ndarray, heat_rgb: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    heat = cv2.resize(heat_rgb, (base_rgb.shape[1], base_rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    return (base_rgb.astype(np.float32) * (1 - alpha) + heat.astype(np.float32) * alpha).astype(np.uint8)

