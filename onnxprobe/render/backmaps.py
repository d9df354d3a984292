"""The toolbox's back-pane filters: a gradient w.r.t. the input -> a display image."""

from __future__ import annotations

import cv2
import numpy as np

FILTERS = ("raw", "gray", "norm", "normblur")
NORMBLUR_SIGMA = 4.0


def gradient_hwc(grad: np.ndarray, layout: str) -> np.ndarray:
    """One input gradient (without batch axis) in the model's layout -> HxWxC float32."""
    grad = np.asarray(grad, dtype=np.float32)
    return np.transpose(grad, (1, 2, 0)) if layout == "NCHW" else grad


def filter_gradient(grad_hwc: np.ndarray, name: str = "raw", blur_sigma: float = NORMBLUR_SIGMA) -> np.ndarray:
    """HxWxC gradient -> HxW (gray, norm, normblur) or HxWxC (raw) float map, unnormalised."""
    if name not in FILTERS:
        raise ValueError(f"unknown back filter '{name}' (choose from {', '.join(FILTERS)})")
    if name == "raw":
        return grad_hwc
    if name == "gray":
        return grad_hwc.mean(axis=2)
    norm = np.linalg.norm(grad_hwc, axis=2)
    if name == "normblur":
        norm = cv2.GaussianBlur(norm, (0, 0), blur_sigma)
    return norm


def render_backmap(grad_hwc: np.ndarray, name: str = "raw", rgb_order: bool = True) -> np.ndarray:
    """Filtered map -> HxWx3 uint8 for display. Signed maps (raw, gray) keep 0 at mid-gray, as the
    toolbox's norm01c did; norms go from black (0) to white (max)."""
    data = filter_gradient(grad_hwc, name)
    if name in ("raw", "gray"):
        scale = float(np.abs(data).max(initial=0)) + 1e-10
        data = 0.5 + 0.5 * data / scale
    else:
        data = data / (float(data.max(initial=0)) + 1e-10)
    data = np.clip(data, 0, 1)
    if data.ndim == 2:
        data = data[:, :, None]
    if data.shape[2] == 1:
        data = np.repeat(data, 3, axis=2)
    elif not rgb_order:
        data = data[:, :, ::-1]
    return (data * 255).astype(np.uint8)
