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


def caption(image: np.ndarray, text: str, width: int | None = None, background: int = 16) -> np.ndarray:
    """`image` (resized to `width` when given: area when shrinking, nearest when enlarging) over a
    one-line caption bar (`text`, cut to fit). HxWx3 uint8 RGB."""
    image = to_rgb8(image)
    width = width or image.shape[1]
    if image.shape[1] != width:
        image = cv2.resize(np.ascontiguousarray(image), (width, max(1, round(image.shape[0] * width / image.shape[1]))),
                           interpolation=cv2.INTER_AREA if image.shape[1] > width else cv2.INTER_NEAREST)
    bar = np.full((20, width, 3), background, np.uint8)
    text = str(text)
    while len(text) > 1 and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)[0][0] > width - 6:
        text = text[:-2] + "."
    cv2.putText(bar, text, (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (230, 230, 230), 1, cv2.LINE_AA)
    return np.vstack([np.ascontiguousarray(image), bar])


def side_by_side(tiles: list[np.ndarray], pad: int = 8, background: int = 16) -> np.ndarray:
    """Tiles in one row, top-aligned, `pad` pixels apart (HxWx3 uint8 RGB)."""
    tiles = [to_rgb8(t) for t in tiles]
    height = max(t.shape[0] for t in tiles)
    out = []
    for i, tile in enumerate(tiles):
        out.append(np.pad(tile, ((0, height - tile.shape[0]), (0, 0 if i == len(tiles) - 1 else pad), (0, 0)),
                          constant_values=background))
    return np.hstack(out)


def one_above_another(rows: list[np.ndarray], pad: int = 10, background: int = 16) -> np.ndarray:
    """Rows of any width stacked, left-aligned, `pad` pixels apart (HxWx3 uint8 RGB)."""
    rows = [to_rgb8(r) for r in rows]
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=background) for r in rows]
    return montage(padded, columns=1, pad=pad, background=background)
