"""The seed's pixel space and its four priors, in numpy (the reference for the in-graph step).

Pixel space: the image being optimised is `q`, NCHW, in 0..255 pixel units with its origin at the
model's input zero (for a mean-subtracting model, the mean pixel: exactly Caffe's
mean-subtracted 0..255 input in which the paper's hyperparameters were set). The model input is
`x = slope * q` per channel (`slope = (hi - lo) / (255 * std)` from the preprocessing spec, which
is linear), so decay, blur and the percentiles keep the paper's meaning for any model; the
constant lr is made scale-free by `presets.lr_scale` (the `scale` of `seed_update`), and the
gradient in pixel space is `slope * dx`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from onnxprobe.preprocess import PreprocessSpec

BLUR_TRUNCATE = 4.0  # scipy.ndimage.gaussian_filter's default


@dataclass(frozen=True)
class PixelSpace:
    """Maps the optimiser's NCHW pixel-unit images to model inputs and back."""

    spec: PreprocessSpec
    slope: np.ndarray  # (1, C, 1, 1): x = slope * q
    low: np.ndarray  # (1, C, 1, 1): valid range of q (pixels 0..255)
    high: np.ndarray

    @classmethod
    def from_spec(cls, spec: PreprocessSpec) -> "PixelSpace":
        lo, hi = spec.value_range
        std = np.asarray(spec.std, np.float32)
        slope = np.broadcast_to((hi - lo) / (255.0 * std), (spec.channels,)).astype(np.float32)
        x_low, x_high = spec.valid_range()
        x_low = np.asarray(x_low, np.float32).reshape(-1)
        x_high = np.asarray(x_high, np.float32).reshape(-1)
        a, b = x_low / slope, x_high / slope
        shape = (1, spec.channels, 1, 1)
        return cls(spec, slope.reshape(shape), np.minimum(a, b).astype(np.float32).reshape(shape),
                   np.maximum(a, b).astype(np.float32).reshape(shape))

    @property
    def nhwc(self) -> bool:
        return self.spec.layout == "NHWC"

    def clip(self, q: np.ndarray) -> np.ndarray:
        return np.minimum(np.maximum(q, self.low), self.high)

    def to_input(self, q: np.ndarray) -> np.ndarray:
        x = q * self.slope
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1) if self.nhwc else x, np.float32)

    def gradient_to_q(self, grad_x: np.ndarray) -> np.ndarray:
        g = grad_x.transpose(0, 3, 1, 2) if self.nhwc else grad_x
        return np.ascontiguousarray(g * self.slope, np.float32)

    def to_display(self, q_row: np.ndarray) -> np.ndarray:
        """One (C, H, W) pixel-space image -> HxWx3 uint8 RGB (preprocessing undone)."""
        x = self.to_input(q_row[None])[0]
        return self.spec.to_display(x)

    def to_display_stretched(self, q_row: np.ndarray) -> np.ndarray:
        """One (C, H, W) pixel-space image -> HxWx3 uint8 RGB, contrast-stretched around the mean
        pixel as the toolbox saved its optimized images (norm01c with centre 0 in Caffe's
        mean-subtracted space): every pixel's deviation from the centre is multiplied by the
        largest factor that keeps the whole image inside 0..255 (so the centre stays put and the
        furthest channel value reaches 0 or 255). The centre is the model's mean pixel (the
        origin of q), or the image's own mean when the preprocessing subtracts none."""
        x = self.to_input(q_row[None])[0]
        pixels = self.spec.tensor_to_pixels(x).astype(np.float64)
        if np.any(np.asarray(self.spec.mean, np.float64) != 0):
            centre = self.spec.tensor_to_pixels(np.zeros_like(x)).astype(np.float64)
        else:
            centre = np.broadcast_to(pixels.mean(), pixels.shape)
        centre = np.clip(centre, 0.0, 255.0)
        dev = pixels - centre
        with np.errstate(divide="ignore", invalid="ignore"):
            room = np.where(dev > 0, (255.0 - centre) / dev, np.where(dev < 0, -centre / dev, np.inf))
        factor = float(room.min()) if np.isfinite(room.min()) else 1.0
        out = np.clip(np.rint(centre + factor * dev), 0, 255).astype(np.uint8)
        if out.shape[2] == 1:
            return np.repeat(out, 3, axis=2)
        return out if self.spec.channel_order == "RGB" else out[:, :, ::-1].copy()


def gaussian_kernel(sigma: float) -> np.ndarray:
    """scipy.ndimage's 1-D Gaussian taps for `sigma` (radius int(4 sigma + 0.5))."""
    radius = int(BLUR_TRUNCATE * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 / float(sigma) ** 2 * x ** 2)
    return (taps / taps.sum()).astype(np.float32)


def blur(q: np.ndarray, sigma: float) -> np.ndarray:
    """Per-image, per-channel Gaussian blur (the paper's scipy call; edges mirrored incl. the edge pixel)."""
    return gaussian_filter(q, sigma=(0, 0, sigma, sigma), mode="reflect", truncate=BLUR_TRUNCATE).astype(np.float32)


def row_percentile(values: np.ndarray, pct: float) -> np.ndarray:
    """np.percentile (linear) of each batch row, shaped to broadcast against (N, 1, H, W)."""
    flat = values.reshape(values.shape[0], -1)
    return np.percentile(flat, pct, axis=1).astype(np.float32).reshape(-1, 1, 1, 1)


def percentile_indices(count: int, pct: float) -> tuple[int, int, float]:
    """Order statistics (i0, i1) and the weight of i1 that np.percentile(linear) interpolates."""
    index = (count - 1) * (pct / 100.0)
    i0 = int(np.floor(index))
    return i0, min(i0 + 1, count - 1), float(index - i0)


def progress_lr(grad: np.ndarray, max_lr, desired: float) -> np.ndarray:
    """The "progress" policy per row: min(max_lr, desired / ||g||^2)."""
    sq = (grad.astype(np.float32) ** 2).reshape(grad.shape[0], -1).sum(axis=1)
    with np.errstate(divide="ignore"):
        return np.minimum(np.asarray(max_lr, np.float32), np.float32(desired) / sq).astype(np.float32)


def seed_update(q: np.ndarray, grad: np.ndarray, preset, step: int, scale: np.ndarray | None = None) -> np.ndarray:
    """One update of the paper's method after the forward/backward pass: x += lr g, then L2 decay,
    blur every `blur_every` steps, clip small norms, clip small contributions. Rows whose gradient
    is exactly zero stop (unchanged), as in the toolbox. `scale` (N,) multiplies the constant lr
    and the progress policy's max_lr per row (presets.lr_scale; None = 1)."""
    scale = np.ones(q.shape[0], np.float32) if scale is None else np.asarray(scale, np.float32).reshape(-1)
    if preset.lr_policy == "progress":
        lr = progress_lr(grad, scale * np.float32(preset.max_lr), preset.desired_progress)
    else:
        lr = scale * np.float32(preset.lr)
    out = q + lr.reshape(-1, 1, 1, 1) * grad
    out = out * np.float32(1.0 - preset.decay)
    if preset.blur_every > 0 and preset.blur_radius > 0 and step % preset.blur_every == 0:
        out = blur(out, preset.blur_radius)
    if preset.norm_pct > 0:
        norms = np.sqrt((out ** 2).sum(axis=1, keepdims=True))
        out = np.where(norms < row_percentile(norms, preset.norm_pct), np.float32(0), out)
    if preset.contrib_pct > 0:
        contribution = np.abs((grad * -out).sum(axis=1, keepdims=True))
        out = np.where(contribution < row_percentile(contribution, preset.contrib_pct), np.float32(0), out)
    moving = (grad.reshape(grad.shape[0], -1) != 0).any(axis=1).reshape(-1, 1, 1, 1)
    return np.where(moving, out, q).astype(np.float32)
