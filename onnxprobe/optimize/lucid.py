"""The modern parameterization (Lucid, Olah et al. 2017) in numpy, with hand-written backward passes:
FFT spectrum with 1/f scaling -> colour decorrelation -> sigmoid -> random pad/jitter/scale/rotate
(one bilinear resampling) -> model input; Adam ascent on the spectrum. The FFTs are single
precision on every core (scipy.fft): 0.36 of numpy's double-precision time at batch 8, 224 px. Defaults in
/work/shared/reference/feature-vis-anchors.md; transformation sizes are Lucid's pixels at 128 px,
scaled down for smaller inputs.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import fft as scipy_fft, sparse

# square root of the ImageNet colour correlation (Lucid's color_correlation_svd_sqrt)
COLOR_CORRELATION_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float64)
COLOR_MATRIX = (COLOR_CORRELATION_SQRT / np.max(np.linalg.norm(COLOR_CORRELATION_SQRT, axis=0))).astype(np.float32)
REFERENCE_SIZE = 128  # Lucid's image size, for which its transformation sizes were chosen


def spectrum_scale(height: int, width: int, decay_power: float = 1.0) -> np.ndarray:
    """Per-frequency scale 1 / max(f, 1/max(h, w))^decay_power * sqrt(h * w), shape (h, w//2+1)."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    freqs = np.sqrt(fx * fx + fy * fy)
    scale = 1.0 / np.maximum(freqs, 1.0 / max(width, height)) ** decay_power
    return (scale * np.sqrt(width * height)).astype(np.float32)


def fft_image(params: np.ndarray, scale: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, C, h, w//2+1, 2) real/imag spectrum -> (N, C, h, w) image (before decorrelation)."""
    spectrum = (params[..., 0] + 1j * params[..., 1]).astype(np.complex64) * scale
    return (scipy_fft.irfft2(spectrum, s=size, workers=-1) * np.float32(0.25)).astype(np.float32)


def fft_image_backward(grad_image: np.ndarray, scale: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The adjoint of `fft_image` (real inner product on real/imag parts)."""
    h, w = size
    spec = scipy_fft.rfft2(np.asarray(grad_image, np.float32), workers=-1) * np.float32(0.25 / (h * w))
    weight = np.full(spec.shape[-1], 2.0, np.float32)
    weight[0] = 1.0
    if w % 2 == 0:
        weight[-1] = 1.0
    spec = spec * (weight * scale)
    return np.stack([spec.real, spec.imag], axis=-1).astype(np.float32)


def decorrelate(t: np.ndarray) -> np.ndarray:
    return np.einsum("cd,ndhw->nchw", COLOR_MATRIX, t).astype(np.float32)


def decorrelate_backward(grad: np.ndarray) -> np.ndarray:
    return np.einsum("cd,nchw->ndhw", COLOR_MATRIX, grad).astype(np.float32)


def sigmoid(t: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-t))).astype(np.float32)


@lru_cache(maxsize=8)
def _pixel_grid(out_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of every output pixel, row-major, float64 (one per size, shared)."""
    ys, xs = np.meshgrid(np.arange(out_hw[0], dtype=np.float64), np.arange(out_hw[1], dtype=np.float64), indexing="ij")
    ys, xs = ys.ravel(), xs.ravel()
    ys.flags.writeable = xs.flags.writeable = False  # shared by every sampler of this size
    return ys, xs


def _corners(coord: np.ndarray, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Along one axis: for the lower then the upper bilinear neighbour of each source coordinate,
    its index clipped into 0..size-1 (int32) and its weight (float32), 0 where it lies outside."""
    base = np.floor(coord)
    frac = (coord - base).astype(np.float32)
    # both neighbours of a coordinate far outside stay outside: -2, -1 or size, size+1 (and fit int32)
    lower = np.clip(base, -2, size).astype(np.int32)
    out = []
    for step, weight in ((0, 1.0 - frac), (1, frac)):
        index = lower + step
        out.append((np.clip(index, 0, size - 1), np.where((index >= 0) & (index < size), weight, np.float32(0))))
    return out


class AffineSampler:
    """Bilinear resampling of (N, C, H, W) images through one affine map per row (output pixel ->
    source pixel, pixel centres at integers); samples outside the source read `fill`.

    The map is one sparse matrix (N*P x N*H*W, four bilinear weights per output pixel, zero for
    corners outside the source): forward is `S @ image`, backward its exact adjoint `S.T @ grad`,
    both in scipy's compiled loops (the gathers and bincounts they replace cost a quarter of a
    lucid step at 224 px)."""

    def __init__(self, matrices: np.ndarray, source_hw: tuple[int, int], out_hw: tuple[int, int], fill: float):
        n = matrices.shape[0]
        h, w = source_hw
        self.source_hw, self.out_hw, self.fill, self.n = source_hw, out_hw, np.float32(fill), n
        ys, xs = _pixel_grid(tuple(out_hw))
        p = ys.size
        m = np.asarray(matrices, np.float64)
        src_y = m[:, 0, 0, None] * ys + m[:, 0, 1, None] * xs + m[:, 0, 2, None]  # (N, P) source pixel
        src_x = m[:, 1, 0, None] * ys + m[:, 1, 1, None] * xs + m[:, 1, 2, None]
        index_type = np.int32 if max(n * h * w, 4 * n * p + 1) < 2**31 else np.int64  # scipy's matvecs are faster on int32
        columns = np.empty((n, p, 4), index_type)
        weights = np.empty((n, p, 4), np.float32)
        offsets = (np.arange(n, dtype=index_type) * (h * w))[:, None]  # row n reads block n of the stacked sources
        rows, cols = _corners(src_y, h), _corners(src_x, w)
        corner = 0  # (0, 0), (0, 1), (1, 0), (1, 1): the bilinear corners, row-major
        for row, row_weight in rows:
            start = row.astype(index_type) * w + offsets
            for column, column_weight in cols:
                columns[:, :, corner] = start + column
                weights[:, :, corner] = row_weight * column_weight
                corner += 1
        # exactly four entries per row: CSR built directly (no sort); matvecs sum repeated columns
        self.matrix = sparse.csr_matrix((weights.ravel(), columns.ravel(), np.arange(0, 4 * n * p + 1, 4, dtype=index_type)),
                                        shape=(n * p, n * h * w))
        # what the corners outside the source contribute: fill times their weight (the four weights
        # sum to the product of the per-axis in-source weights)
        inside = (rows[0][1] + rows[1][1]).astype(np.float64) * (cols[0][1] + cols[1][1])
        self.fill_part = (self.fill * (1.0 - inside)).astype(np.float32)  # (N, P)

    @staticmethod
    def _stacked(images: np.ndarray) -> np.ndarray:
        n, c = images.shape[:2]
        return images.reshape(n, c, -1).transpose(0, 2, 1).reshape(-1, c)  # (N * pixels, C)

    def forward(self, images: np.ndarray) -> np.ndarray:
        n, c = images.shape[:2]
        out = (self.matrix @ self._stacked(np.asarray(images, np.float32))).reshape(n, -1, c).transpose(0, 2, 1)
        return np.ascontiguousarray(out + self.fill_part[:, None, :], np.float32).reshape(n, c, *self.out_hw)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        n, c = grad.shape[:2]
        out = (self.matrix.T @ self._stacked(np.asarray(grad, np.float32))).reshape(n, -1, c).transpose(0, 2, 1)
        return np.ascontiguousarray(out, np.float32).reshape(n, c, *self.source_hw)


def _translate(dy: float, dx: float) -> np.ndarray:
    return np.array([[1, 0, dy], [0, 1, dx], [0, 0, 1]], np.float64)


def _scale(sy: float, sx: float) -> np.ndarray:
    return np.array([[sy, 0, 0], [0, sx, 0], [0, 0, 1]], np.float64)


def _rotate(degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]], np.float64)


def transform_sizes(preset, size: tuple[int, int]) -> tuple[int, tuple[int, ...]]:
    factor = min(1.0, min(size) / REFERENCE_SIZE)
    return int(round(preset.pad * factor)), tuple(int(round(j * factor)) for j in preset.jitter)


def random_transform(preset, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """One draw of Lucid's pad -> jitter -> random scale -> random rotate -> jitter, resized back
    to `size`, as the 3x3 map from output pixel (y, x, 1) to source pixel."""
    h, w = size
    pad, jitters = transform_sizes(preset, size)
    m = _translate(-pad, -pad)  # padded canvas -> source
    ch, cw = h + 2 * pad, w + 2 * pad
    for i, j in enumerate(jitters):
        oy, ox = rng.integers(0, j + 1, size=2) if j > 0 else (0, 0)
        m = m @ _translate(oy, ox)  # crop -> canvas
        ch, cw = ch - j, cw - j
        if i == 0:
            s = float(rng.choice(preset.scales)) if preset.scales else 1.0
            nh, nw = max(1, round(ch * s)), max(1, round(cw * s))
            # scaled pixel u -> crop pixel (u + 0.5) * ch / nh - 0.5
            m = m @ _translate(-0.5, -0.5) @ _scale(ch / nh, cw / nw) @ _translate(0.5, 0.5)
            ch, cw = nh, nw
            angle = float(rng.uniform(-preset.max_rotate, preset.max_rotate)) if preset.max_rotate else 0.0
            cy, cx = (ch - 1) / 2.0, (cw - 1) / 2.0
            m = m @ _translate(cy, cx) @ _rotate(-angle) @ _translate(-cy, -cx)
    m = m @ _translate(-0.5, -0.5) @ _scale(ch / h, cw / w) @ _translate(0.5, 0.5)  # model pixel -> last crop
    return m


class Adam:
    """Adam (Kingma and Ba), ascending; element-wise, so every batch row is independent."""

    def __init__(self, shape, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.lr, self.b1, self.b2, self.eps = lr, beta1, beta2, eps
        self.m = np.zeros(shape, np.float32)
        self.v = np.zeros(shape, np.float32)
        self.t = 0

    def ascend(self, params: np.ndarray, grad: np.ndarray) -> np.ndarray:
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * grad
        self.v = self.b2 * self.v + (1 - self.b2) * grad * grad
        m_hat = self.m / (1 - self.b1 ** self.t)
        v_hat = self.v / (1 - self.b2 ** self.t)
        return (params + self.lr * m_hat / (np.sqrt(v_hat) + self.eps)).astype(np.float32)


class LucidImage:
    """Parameters -> display image in 0..1 (N, C, H, W), with the backward pass."""

    def __init__(self, channels: int, size: tuple[int, int], param: str, decorrelate_colour: bool):
        self.channels, self.size, self.param = channels, size, param
        self.decorrelate = decorrelate_colour and channels == 3
        self.scale = spectrum_scale(*size) if param == "fft" else None

    def init(self, rng: np.random.Generator, sd: float) -> np.ndarray:
        h, w = self.size
        shape = (self.channels, h, w // 2 + 1, 2) if self.param == "fft" else (self.channels, h, w)
        return (rng.standard_normal(shape) * sd).astype(np.float32)

    def from_display(self, images: np.ndarray) -> np.ndarray:
        """The parameters whose image is `images` (N, C, H, W) in 0..1 (clipped to 0.001..0.999,
        where the sigmoid is invertible): the start of a picture from a photo."""
        d = np.clip(np.asarray(images, np.float64), 1e-3, 1 - 1e-3)
        t = np.log(d / (1 - d))
        if self.decorrelate:
            t = np.einsum("cd,ndhw->nchw", np.linalg.inv(COLOR_MATRIX.astype(np.float64)), t)
        if self.param != "fft":
            return t.astype(np.float32)
        spectrum = np.fft.rfft2(t) / (0.25 * self.scale)
        return np.stack([spectrum.real, spectrum.imag], axis=-1).astype(np.float32)

    def forward(self, params: np.ndarray) -> np.ndarray:
        t = fft_image(params, self.scale, self.size) if self.param == "fft" else params
        if self.decorrelate:
            t = decorrelate(t)
        return sigmoid(t)

    def backward(self, params: np.ndarray, image: np.ndarray, grad_image: np.ndarray) -> np.ndarray:
        g = grad_image * image * (1 - image)
        if self.decorrelate:
            g = decorrelate_backward(g)
        return fft_image_backward(g, self.scale, self.size) if self.param == "fft" else g.astype(np.float32)
