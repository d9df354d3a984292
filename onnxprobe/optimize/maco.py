"""MACO (Fel et al. 2023, "Unlocking feature visualization for deeper networks with magnitude
constrained optimization"): only the Fourier phase of the image is optimized; its magnitude is
fixed to the mean magnitude spectrum of natural photographs, so the image keeps their 1/f power
and cannot drift into the high-frequency textures a free spectrum (lucid) turns into on deeper or
other networks. As the published code (xplique's `maco`, Horama's `maco_fv`):

    phase (N, C, S, S//2+1) -> standardized (per row) -> spectrum = magnitude * e^{i phase}
    -> irfft2 -> standardized (per row) -> colour recorrelation (lucid.COLOR_MATRIX) -> sigmoid
    = the canvas, S x S in 0..1, larger than the model's input;

each step takes `crops` random square crops of the canvas (centres ~ N(0.5, 0.15), sides ~
N(box, 0.05) clipped to 0.05..1 of the canvas, `box` shrinking linearly over the run) resized to the
model's size, adds Gaussian and uniform noise, and ascends the mean objective over the crops with
NAdam (lr 1.0). The result is the whole canvas resized to the model's input.

The magnitude ships as package data (`data/maco_spectrum.npy`: the mean |rfft2| of the project's
own photographs in decorrelated colour, computed by tools/maco_spectrum.py; nothing downloaded)
and is resized (bilinear) to the canvas's spectrum, as xplique resizes its own.
Backward passes are written by hand (float32), checked against a float64 reference
(tests/optimize/test_maco.py).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import cv2
import numpy as np
from scipy import fft as scipy_fft, sparse

from onnxprobe.optimize.lucid import AffineSampler, decorrelate, decorrelate_backward, sigmoid

SPECTRUM_FILE = "maco_spectrum.npy"
EPS = 1e-5  # xplique's: std + 1e-5 in both standardizations


@lru_cache(maxsize=1)
def natural_spectrum() -> np.ndarray:
    """The shipped mean magnitude spectrum, float32 (3, H, H//2+1) (read-only)."""
    with resources.files("onnxprobe.optimize").joinpath("data", SPECTRUM_FILE).open("rb") as f:
        spectrum = np.load(f, allow_pickle=False).astype(np.float32)
    spectrum.flags.writeable = False
    return spectrum


def magnitude_for(size: int, channels: int) -> np.ndarray:
    """The spectrum resized to a `size` x `size` canvas: (channels, size, size//2+1) float32; a
    one-channel model takes the channels' mean."""
    spectrum = natural_spectrum()
    shape = (size, size // 2 + 1)
    planes = [cv2.resize(np.ascontiguousarray(p), shape[::-1], interpolation=cv2.INTER_LINEAR) for p in spectrum]
    out = np.stack(planes).astype(np.float32)
    if channels == 1:
        out = out.mean(axis=0, keepdims=True)
    elif channels != 3:
        out = np.repeat(out.mean(axis=0, keepdims=True), channels, axis=0)
    return out


def _standardize(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: (t - mean) / (std + EPS), and the divisor (N, 1, 1, 1)."""
    axes = tuple(range(1, t.ndim))
    centred = t - t.mean(axis=axes, keepdims=True)
    divisor = centred.std(axis=axes, keepdims=True) + EPS
    return (centred / divisor).astype(np.float32), divisor.astype(np.float32)


def _standardize_backward(grad: np.ndarray, out: np.ndarray, divisor: np.ndarray) -> np.ndarray:
    """The adjoint of `_standardize` at its output `out` = (t - mean) / d, d = std + EPS (population
    std, per row): (g - mean(g)) / d - out * mean(g * out) / std."""
    axes = tuple(range(1, grad.ndim))
    std = np.maximum(divisor - EPS, 1e-30)
    g = (grad - grad.mean(axis=axes, keepdims=True)) / divisor
    return (g - out * (grad * out).mean(axis=axes, keepdims=True) / std).astype(np.float32)


class MacoImage:
    """Phase -> canvas in 0..1 (N, C, S, S), with the backward pass (the magnitude stays fixed)."""

    def __init__(self, channels: int, size: int, magnitude: np.ndarray | None = None):
        self.channels, self.size = channels, size
        self.magnitude = magnitude_for(size, channels) if magnitude is None else np.asarray(magnitude, np.float32)
        self.decorrelate = channels == 3

    def init(self, rng: np.random.Generator, sd: float = 1.0) -> np.ndarray:
        return (rng.standard_normal(self.magnitude.shape) * sd).astype(np.float32)

    def spectrum(self, phase: np.ndarray) -> np.ndarray:
        """The complex spectrum of `phase` (standardized first): its magnitude is `magnitude`."""
        p, _ = _standardize(phase)
        return self.magnitude * (np.cos(p) + 1j * np.sin(p))

    def forward(self, phase: np.ndarray) -> tuple[np.ndarray, dict]:
        p, p_div = _standardize(phase)
        cos, sin = np.cos(p), np.sin(p)
        spectrum = (self.magnitude * cos + 1j * (self.magnitude * sin)).astype(np.complex64)
        t = scipy_fft.irfft2(spectrum, s=(self.size, self.size), workers=-1).astype(np.float32)
        t, t_div = _standardize(t)
        z = decorrelate(t) if self.decorrelate else t
        image = sigmoid(z)
        return image, {"p": p, "p_div": p_div, "cos": cos, "sin": sin, "t": t, "t_div": t_div, "image": image}

    def backward(self, cache: dict, grad_image: np.ndarray) -> np.ndarray:
        image = cache["image"]
        g = grad_image * image * (1 - image)
        if self.decorrelate:
            g = decorrelate_backward(g)
        g = _standardize_backward(g, cache["t"], cache["t_div"])
        # irfft2's adjoint (real inner product on the spectrum's real and imaginary parts)
        s = self.size
        spec = scipy_fft.rfft2(g, workers=-1) / np.float32(s * s)
        weight = np.full(spec.shape[-1], 2.0, np.float32)
        weight[0] = 1.0
        if s % 2 == 0:
            weight[-1] = 1.0
        spec = spec * weight
        g_re, g_im = spec.real.astype(np.float32), spec.imag.astype(np.float32)
        # spectrum = m cos p + i m sin p
        g_p = self.magnitude * (-cache["sin"] * g_re + cache["cos"] * g_im)
        return _standardize_backward(g_p.astype(np.float32), cache["p"], cache["p_div"])


class NAdam:
    """NAdam (Dozat 2016) as torch.optim.NAdam (momentum decay 0.004), ascending, element-wise."""

    def __init__(self, shape, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 momentum_decay: float = 0.004):
        self.lr, self.b1, self.b2, self.eps, self.psi = lr, beta1, beta2, eps, momentum_decay
        self.m = np.zeros(shape, np.float32)
        self.v = np.zeros(shape, np.float32)
        self.t = 0
        self.mu_product = 1.0

    def ascend(self, params: np.ndarray, grad: np.ndarray) -> np.ndarray:
        self.t += 1
        t, b1 = self.t, self.b1
        mu = b1 * (1.0 - 0.5 * 0.96 ** (t * self.psi))
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * self.psi))
        self.mu_product *= mu
        self.m = b1 * self.m + (1 - b1) * grad
        self.v = self.b2 * self.v + (1 - self.b2) * grad * grad
        denom = np.sqrt(self.v / (1 - self.b2 ** t)) + self.eps
        step = (self.lr * (1 - mu) / (1 - self.mu_product)) * grad / denom
        step += (self.lr * mu_next / (1 - self.mu_product * mu_next)) * self.m / denom
        return (params + step).astype(np.float32)


def crop_matrices(rng: np.random.Generator, count: int, canvas: int, out_hw: tuple[int, int],
                  box: float) -> np.ndarray:
    """`count` random square crops of the canvas as (count, 2, 3) maps from model pixel (y, x, 1) to
    canvas pixel: centres ~ N(0.5, 0.15), sides ~ N(box, 0.05) clipped to 0.05..1 (xplique)."""
    cy, cx = 0.5 + 0.15 * rng.standard_normal(count), 0.5 + 0.15 * rng.standard_normal(count)
    side = np.clip(box + 0.05 * rng.standard_normal(count), 0.05, 1.0)
    h, w = out_hw
    m = np.zeros((count, 2, 3), np.float64)
    # model pixel u (centre at u) -> canvas pixel (y0 + (u + 0.5) * side / h) * canvas - 0.5
    m[:, 0, 0] = side * canvas / h
    m[:, 1, 1] = side * canvas / w
    m[:, 0, 2] = (cy - side / 2) * canvas + 0.5 * side * canvas / h - 0.5
    m[:, 1, 2] = (cx - side / 2) * canvas + 0.5 * side * canvas / w - 0.5
    return m


class CropSampler(AffineSampler):
    """`per_canvas` crops of each canvas (output row i * per_canvas + j reads canvas i), without
    repeating the canvases: forward reads the N canvases, backward sums each canvas's crops in the
    sparse product. (A repeated canvas through `AffineSampler` made and returned K copies of the
    S x S canvas every step: at 5 rows x 4 crops, S = 448, the sampler's build, forward and backward
    take 0.54 of that time, best of 7 interleaved; bench_quality.py round 5.)"""

    def __init__(self, matrices: np.ndarray, per_canvas: int, source_hw: tuple[int, int], out_hw: tuple[int, int],
                 fill: float):
        super().__init__(matrices, source_hw, out_hw, fill)
        rows, k = matrices.shape[0], per_canvas
        block = int(source_hw[0]) * int(source_hw[1])
        per_row = 4 * int(out_hw[0]) * int(out_hw[1])  # entries of one output row's block, in CSR order
        m = self.matrix
        row = np.arange(rows, dtype=np.int64)
        shift = np.repeat((row - row // k) * block, per_row)  # block i*K+j of the stacked copies -> canvas i
        indices = (m.indices - shift).astype(m.indices.dtype)
        self.matrix = sparse.csr_matrix((m.data, indices, m.indptr), shape=(m.shape[0], (rows // k) * block))
        self.k = k

    def forward(self, canvases: np.ndarray) -> np.ndarray:
        n, c = canvases.shape[:2]
        out = (self.matrix @ self._stacked(np.asarray(canvases, np.float32))).reshape(n * self.k, -1, c).transpose(0, 2, 1)
        return np.ascontiguousarray(out + self.fill_part[:, None, :], np.float32).reshape(n * self.k, c, *self.out_hw)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        rows, c = grad.shape[:2]
        out = (self.matrix.T @ self._stacked(np.asarray(grad, np.float32))).reshape(rows // self.k, -1, c).transpose(0, 2, 1)
        return np.ascontiguousarray(out, np.float32).reshape(rows // self.k, c, *self.source_hw)


def crops_of(canvas: np.ndarray, matrices: np.ndarray, out_hw: tuple[int, int]) -> CropSampler:
    """The sampler that takes len(matrices) // len(canvas) crops of each canvas (rows i*K .. i*K+K-1
    of canvas i; fill 0.5 outside it): forward(canvas) -> (N*K, C, h, w), backward -> (N, C, S, S),
    each canvas's gradient summed over its crops."""
    return CropSampler(matrices, matrices.shape[0] // canvas.shape[0], canvas.shape[-2:], out_hw, fill=0.5)


def to_model_size(canvas: np.ndarray, out_hw: tuple[int, int], view: float = 1.0) -> np.ndarray:
    """(N, C, S, S) canvas -> its centred `view` share (1: all of it) at (N, C, h, w), area-averaged
    (the result shown and measured)."""
    side = canvas.shape[-1]
    keep = min(side, max(1, int(round(side * view))))
    start = (side - keep) // 2
    canvas = canvas[..., start:start + keep, start:start + keep]
    rows = []
    for image in canvas:
        hwc = np.ascontiguousarray(image.transpose(1, 2, 0))
        small = cv2.resize(hwc, out_hw[::-1], interpolation=cv2.INTER_AREA)
        rows.append(small.reshape(*out_hw, -1).transpose(2, 0, 1))
    return np.stack(rows).astype(np.float32)
