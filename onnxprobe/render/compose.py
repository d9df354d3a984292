"""Composing display images (HxWx3 uint8 RGB): text lines, captions, rows and columns of tiles,
and the one picture of "no signal" (a map that is all zero or not finite)."""

from __future__ import annotations

import cv2
import numpy as np

from onnxprobe.render.images import to_rgb8

FONT = cv2.FONT_HERSHEY_SIMPLEX
BACKGROUND = 16
NO_SIGNAL_GREY = 128  # neutral: neither end of any colour map or back filter


def text_image(lines: list[str], width: int = 320, line_height: int = 18, scale: float = 0.45,
               colors: list[tuple[int, int, int]] | None = None) -> np.ndarray:
    """Lines of text on the dark background, `line_height` pixels apart."""
    image = np.full((max(1, len(lines)) * line_height + 6, width, 3), BACKGROUND, np.uint8)
    for i, line in enumerate(lines):
        color = colors[i] if colors else (230, 230, 230)
        cv2.putText(image, line, (4, (i + 1) * line_height - 4), FONT, scale, color, 1, cv2.LINE_AA)
    return image


def predictions_image(predictions, width: int = 220) -> np.ndarray:
    """Top-k lines (`model.Prediction`s: label, score), each with a bar; brighter and greener with
    higher probability, as the toolbox did."""
    if not predictions:
        return text_image(["no class output"], width)
    pairs = [(p.label, p.score) for p in predictions]
    lines = [f"{p * 100:5.1f}%  {label}" for label, p in pairs]
    colors = [(int(255 * (1 - p) * 0.6 + 90), int(120 + 135 * p), 90) for _, p in pairs]
    image = text_image(lines, width, line_height=22, scale=0.5, colors=colors)
    for i, (_, p) in enumerate(pairs):
        y = (i + 1) * 22
        cv2.rectangle(image, (4, y - 3), (4 + int((width - 8) * p), y - 1), colors[i], -1)
    return image


def fit_width(image: np.ndarray, width: int) -> np.ndarray:
    """Scaled to `width` pixels wide, keeping its aspect (area averaging down, nearest up)."""
    image = np.ascontiguousarray(to_rgb8(image))
    if image.shape[1] == width:
        return image
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if image.shape[1] > width else cv2.INTER_NEAREST)


def caption(image: np.ndarray, text: str, width: int | None = None) -> np.ndarray:
    """The image (scaled to `width`) over one line of text."""
    image = fit_width(image, width or image.shape[1])
    width = image.shape[1]
    return np.vstack([image, text_image([text[: max(8, width // 7)]], width, line_height=20, scale=0.5)])


def row(tiles: list[np.ndarray], pad: int = 8, background: int = BACKGROUND) -> np.ndarray:
    """Tiles side by side, top-aligned, `pad` pixels apart."""
    tiles = [to_rgb8(t) for t in tiles]
    height = max(t.shape[0] for t in tiles)
    out = [np.pad(t, ((0, height - t.shape[0]), (0, 0 if i == len(tiles) - 1 else pad), (0, 0)),
                  constant_values=background) for i, t in enumerate(tiles)]
    return np.hstack(out)


def column(rows: list[np.ndarray], pad: int = 10, background: int = BACKGROUND) -> np.ndarray:
    """Rows one under the other, left-aligned, `pad` pixels apart."""
    rows = [to_rgb8(r) for r in rows]
    width = max(r.shape[1] for r in rows)
    out = []
    for i, r in enumerate(rows):
        out.append(np.pad(r, ((0, 0 if i == len(rows) - 1 else pad), (0, width - r.shape[1]), (0, 0)),
                          constant_values=background))
    return np.vstack(out)


def no_signal(height: int, width: int, label: str = "no signal") -> np.ndarray:
    """The one picture of a map without signal (all zero, or NaN): neutral grey with `label`
    centred, drawn by every command in place of a flat or undefined map."""
    image = np.full((max(1, height), max(1, width), 3), NO_SIGNAL_GREY, np.uint8)
    scale = min(1.0, max(0.3, width / 260))
    (w, h), _ = cv2.getTextSize(label, FONT, scale, 1)
    origin = (max(2, (width - w) // 2), max(h + 2, (height + h) // 2))
    cv2.putText(image, label, origin, FONT, scale, (40, 40, 40), 2 if scale >= 0.6 else 1, cv2.LINE_AA)
    return image
