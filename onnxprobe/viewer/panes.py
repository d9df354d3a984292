"""Pane images (HxWx3 uint8 RGB) drawn without Qt, so they can be tested and saved as PNG."""

from __future__ import annotations

import cv2
import numpy as np

from onnxprobe.render.compose import BACKGROUND, FONT, text_image
from onnxprobe.render.images import clip_unit, heatmap, unit_to_uint8, upscale


def input_pane(display_rgb: np.ndarray, label: str | None = None, min_side: int = 224) -> np.ndarray:
    image = np.ascontiguousarray(upscale(display_rgb, min_side))
    if label:
        cv2.putText(image, label, (6, 22), FONT, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(image, label, (6, 22), FONT, 0.6, (255, 255, 80), 1, cv2.LINE_AA)
    return image


def unit_pane(tile: np.ndarray, display_rgb: np.ndarray, spatial: bool, value: float | None = None,
              min_side: int = 160) -> np.ndarray:
    """The selected unit enlarged (gray, own range) next to its activation map over the input."""
    base = upscale(display_rgb, min_side)
    h, w = base.shape[:2]
    if not spatial:
        lines = [f"activation {value:.4g}" if value is not None else "no activation"]
        return np.concatenate([base, cv2.resize(text_image(lines, 200), (w, h), interpolation=cv2.INTER_AREA)], axis=1)
    tile = np.asarray(tile, dtype=np.float32)
    lo, hi = float(tile.min(initial=0)), float(tile.max(initial=0))
    gray = np.zeros_like(tile) if hi <= lo else clip_unit((tile - lo) / (hi - lo))
    enlarged = cv2.resize(unit_to_uint8(gray), (w, h), interpolation=cv2.INTER_NEAREST)
    enlarged = np.repeat(enlarged[:, :, None], 3, axis=2)
    heat = cv2.resize(heatmap(tile), (w, h), interpolation=cv2.INTER_LINEAR)
    # where the unit is silent the input shows through; where it fires, the heat colour does
    alpha = cv2.resize(gray, (w, h), interpolation=cv2.INTER_LINEAR)[:, :, None] * 0.7
    over = (base.astype(np.float32) * (1 - alpha) + heat.astype(np.float32) * alpha).astype(np.uint8)
    gap = np.full((h, 4, 3), BACKGROUND, np.uint8)
    return np.concatenate([enlarged, gap, over], axis=1)


def visuals_pane(images: dict[str, np.ndarray | None], width: int = 200) -> np.ndarray:
    """The atlas's optimized image, top-9 patches and their deconv, stacked (placeholders if missing)."""
    parts = []
    for kind, image in images.items():
        if image is None:
            part = text_image([f"{kind}: no image"], width, line_height=20)
        else:
            h = max(1, round(image.shape[0] * width / image.shape[1]))
            part = cv2.resize(image, (width, h), interpolation=cv2.INTER_AREA if image.shape[1] > width else cv2.INTER_NEAREST)
        parts.append(part)
        parts.append(np.full((4, width, 3), BACKGROUND, np.uint8))
    return np.concatenate(parts[:-1], axis=0) if parts else text_image(["no unit visuals"], width)


def mark_selection(grid: np.ndarray, layout, unit: int, color=(255, 255, 0)) -> np.ndarray:
    """A copy of the grid with the unit's tile outlined (for saved panes; widgets draw their own)."""
    out = np.ascontiguousarray(grid.copy())
    if layout is None or not 0 <= unit < layout.count:
        return out
    y, x, h, w = layout.tile_rect(unit)
    cv2.rectangle(out, (max(0, x - 1), max(0, y - 1)), (min(out.shape[1] - 1, x + w), min(out.shape[0] - 1, y + h)), color, 1)
    return out


def stale(image: np.ndarray) -> np.ndarray:
    """The toolbox showed an out-of-date back map dimmed."""
    return (image.astype(np.uint16) * 2 // 5).astype(np.uint8)
