"""The toolbox's back-pane filters: a gradient w.r.t. the input -> a display image."""

from __future__ import annotations

import cv2
import numpy as np

from onnxprobe.render.images import unit_to_uint8

FILTERS = ("raw", "gray", "norm", "normblur")
NORMBLUR_SIGMA = 4.0
# Per cent of a map's largest |values| that saturate the display (Captum's `outlier_perc` idea). 5:
# on guided backprop of scikit-image's chelsea on MobileNetV2 the eyes carry most of the map's mass,
# and with 2 % (or Captum's own cumulative-mass threshold at 2 %, which there is 1.4 against a 90th
# percentile of 0.08) the rest of the face stays white; at 5 % the eyes, nose, mouth and face show.
OUTLIER_PERC = 5.0


def outlier_scale(values: np.ndarray, outlier_perc: float = OUTLIER_PERC) -> float:
    """The display scale of a map with its outliers clipped: the (100 - outlier_perc)th
    percentile of |value| over the map's non-zero entries (a unit's map is zero outside its
    receptive field, which must not pull the scale to 0). outlier_perc=0: the largest |value|, as
    the toolbox scaled. 0.0 for an all-zero map."""
    flat = np.abs(np.asarray(values, np.float64)).ravel()
    flat = flat[flat > 0]
    if flat.size == 0:
        return 0.0
    return float(np.percentile(flat, 100.0 - outlier_perc)) if outlier_perc > 0 else float(flat.max())


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


def render_backmap(grad_hwc: np.ndarray, name: str = "raw", rgb_order: bool = True,
                   outlier_perc: float = OUTLIER_PERC) -> np.ndarray:
    """Filtered map -> HxWx3 uint8 for display. Signed maps (raw, gray) keep 0 at mid-gray, as the
    toolbox's norm01c did; norms go from black (0) to white. The scale clips outliers
    (`outlier_scale`; outlier_perc=0 scales by the largest value, as the toolbox did)."""
    data = filter_gradient(grad_hwc, name)
    scale = outlier_scale(data, outlier_perc) + 1e-10
    if name in ("raw", "gray"):
        data = 0.5 + 0.5 * data / scale
    else:
        data = data / scale
    data = unit_to_uint8(data, in_place=True)
    if data.ndim == 2:
        data = data[:, :, None]
    if data.shape[2] == 1:
        data = np.repeat(data, 3, axis=2)
    elif not rgb_order:
        data = data[:, :, ::-1]
    return np.ascontiguousarray(data)
