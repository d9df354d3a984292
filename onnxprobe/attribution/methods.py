"""The attribution methods. Each takes a `ProbeModel`, one input `x` (batch 1) and an `Objective`
(onnxprobe.objectives) and returns a map without the batch axis: input-shaped, or HxW for
Grad-CAM and occlusion."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from onnxprobe.autodiff import BackMode
from onnxprobe.errors import ParameterError
from onnxprobe.limits import MAX_GAUSS_LEGENDRE_POINTS, MAX_NOISE_SAMPLES, MAX_QUADRATURE_POINTS

if TYPE_CHECKING:
    from onnxprobe.objectives import Objective

IG_RULES = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")
IG_BASELINES = ("zero", "black", "white")


# ---- helpers ------------------------------------------------------------------------------------

def _gradient(model, x: np.ndarray, objective: Objective, mode: str = BackMode.GRADIENT) -> np.ndarray:
    return model.gradient(x, objective, mode=mode).input


def default_gradient_batch(model) -> int | None:
    """Gradient rows per run the method prefers: small batches stay in the CPU's caches (IG, 50
    steps, ResNet-18: batch 2 ran at 0.64-0.70 of Captum's time, batch 10 at about 1.0); a GPU
    takes as many as the memory budget holds (None)."""
    return None if model.device == "cuda" else 2


def _rows(model, batch_size, kind: str, work: int) -> int:
    """Rows per run: `batch_size` (None: the method's preference) of the `work` rows, as many as the
    model's memory budget holds (ProbeModel.rows_per_run) when that is fewer."""
    wanted = _batch_size(batch_size) if batch_size is not None else \
        (default_gradient_batch(model) if kind == "gradient" else None)
    return model.rows_per_run(kind, limit=min(work, wanted) if wanted is not None else work)


def _positive_int(value) -> int | None:
    """`value` as an int when it is a whole number of at least 1, else None."""
    try:
        return int(value) if int(value) == value and value >= 1 else None
    except (TypeError, ValueError):
        return None


def _batch_size(value) -> int:
    if _positive_int(value) is None:
        raise ParameterError(f"{{batch_size}} must be a positive integer, got {value!r}", "batch_size")
    return int(value)


def _spatial(model) -> tuple[tuple[int, int], tuple[int, int]]:
    """(H, W) of the input and the input tensor's axes (without batch) that hold them."""
    axes = (1, 2) if model.spec.layout == "NCHW" else (0, 1)
    shape = model.input_shape[1:]
    return (int(shape[axes[0]]), int(shape[axes[1]])), axes


def resize_map(values: np.ndarray, size: tuple[int, int], interpolation: str = "bilinear") -> np.ndarray:
    """Resize a 2-D map like torch.nn.functional.interpolate (align_corners=False): "nearest" picks
    floor(i * in / out); "bilinear" samples at half-pixel centres, clamped at the borders."""
    values = np.asarray(values, dtype=np.float32)
    for axis, out_size in enumerate(size):
        in_size = values.shape[axis]
        if in_size == out_size:
            continue
        scale = np.float32(in_size / out_size)
        dst = np.arange(out_size, dtype=np.float32)
        if interpolation == "nearest":
            values = np.take(values, np.minimum(np.floor(dst * scale).astype(int), in_size - 1), axis=axis)
            continue
        if interpolation != "bilinear":
            raise ParameterError(f"unknown {{interpolation}} '{interpolation}' (use bilinear or nearest)", "interpolation")
        src = np.maximum((dst + 0.5) * scale - 0.5, 0)
        lo = np.minimum(np.floor(src).astype(int), in_size - 1)
        hi = np.minimum(lo + 1, in_size - 1)
        frac = (src - lo).astype(np.float32)
        shape = [1, 1]
        shape[axis] = out_size
        frac = frac.reshape(shape)
        values = np.take(values, lo, axis=axis) * (1 - frac) + np.take(values, hi, axis=axis) * frac
    return values


# ---- gradient methods ---------------------------------------------------------------------------

def saliency(model, x, objective):
    """|d objective / d x| (Simonyan et al. 2014)."""
    return np.abs(_gradient(model, x, objective)[0])


def gradient_x_input(model, x, objective):
    """x * d objective / d x."""
    return (x * _gradient(model, x, objective))[0]


def guided_backprop(model, x, objective):
    """Guided backpropagation (Springenberg et al. 2015): ReLUs pass relu(G) * (X > 0)."""
    return _gradient(model, x, objective, mode=BackMode.GUIDED)[0]


def deconvnet(model, x, objective):
    """Deconvnet (Zeiler and Fergus 2014): ReLUs pass relu(G); max pooling keeps its switches."""
    return _gradient(model, x, objective, mode=BackMode.DECONV)[0]


def _default_cam_layer(model, objective: Objective) -> str:
    """The last spatial layer on the path to the objective (the "last convolutional layer")."""
    upstream = model.facts.ancestors_of(objective.targets)
    candidates = [layer for layer in model.layers if layer.is_spatial and np.prod(layer.spatial_shape) > 1
                  and layer.name in upstream and layer.differentiable is not False]
    if not candidates:
        raise ParameterError(f"no spatial layer lies before '{', '.join(objective.targets)}': Grad-CAM needs one "
                             "(choose it with {cam_layer})", "cam_layer")
    return candidates[-1].name


def gradcam_layer_map(model, x, objective, cam_layer: str | None = None, relu: bool = True) -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017) at the resolution of `cam_layer`: the layer's channels
    weighted by their spatially averaged gradients, summed, then (by default) rectified."""
    layer = model.layer(cam_layer) if cam_layer else model.layer(_default_cam_layer(model, objective))
    if not layer.is_spatial:
        raise ParameterError(f"Grad-CAM needs a spatial layer as {{cam_layer}}; '{layer.name}' has shape "
                             f"{'x'.join('N' if d is None else str(d) for d in layer.shape)}", "cam_layer")
    grad = model.gradient(x, objective, wrt=[layer.name]).grads[layer.name][0]
    activation = model.activations(x, [layer.name], with_outputs=False)[layer.name][0]
    spatial = tuple(a - 1 for a in layer.spatial_axes)
    channel = layer.channel_axis - 1
    weights = grad.mean(axis=spatial, keepdims=True)
    cam = (weights * activation).sum(axis=channel)
    return np.maximum(cam, 0) if relu else cam


def gradcam(model, x, objective, cam_layer: str | None = None, relu: bool = True, interpolation: str = "bilinear"):
    """Grad-CAM upsampled to the input's HxW (`interpolation=None` keeps the layer's resolution)."""
    cam = gradcam_layer_map(model, x, objective, cam_layer, relu)
    if interpolation is None:
        return cam
    return resize_map(cam, _spatial(model)[0], interpolation)


def guided_gradcam(model, x, objective, cam_layer: str | None = None, interpolation: str = "nearest"):
    """Guided backprop times the rectified Grad-CAM upsampled to the input (as Captum does)."""
    cam = gradcam(model, x, objective, cam_layer, relu=True, interpolation=interpolation)
    guided = guided_backprop(model, x, objective)
    axis = 0 if model.spec.layout == "NCHW" else 2
    return guided * np.expand_dims(cam, axis)


def _ig_rule(rule: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(alphas, weights) of the quadrature; the same points and weights as Captum's methods."""
    n = steps
    limit = MAX_GAUSS_LEGENDRE_POINTS if rule == "gausslegendre" else MAX_QUADRATURE_POINTS
    if n > limit:
        raise ParameterError(f"{{steps}} {n:,} is more than the {rule} rule's limit of {limit:,} points "
                             f"(onnxprobe.limits)", "steps")
    if rule == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)
        return 0.5 * (1 + nodes), 0.5 * weights
    if n < 2:
        raise ParameterError(f"{{steps}} must be at least 2 for {{rule}} {rule}, got {n}", "steps", "rule")
    weights = np.full(n, 1.0 / n)
    if rule == "riemann_trapezoid":
        weights[[0, -1]] /= 2  # Captum keeps 1/n (not 1/(n-1)) as the interior step
        return np.linspace(0, 1, n), weights
    if rule == "riemann_left":
        return np.linspace(0, 1 - 1 / n, n), weights
    if rule == "riemann_right":
        return np.linspace(1 / n, 1, n), weights
    if rule == "riemann_middle":
        return np.linspace(1 / (2 * n), 1 - 1 / (2 * n), n), weights
    raise ParameterError(f"unknown integration {{rule}} '{rule}' (choose from {', '.join(IG_RULES)})", "rule")


def ig_baseline(model, x: np.ndarray, baseline) -> np.ndarray:
    """"zero" (the zero tensor), "black" / "white" (images of pixel value 0 / 255), or an array."""
    if isinstance(baseline, str):
        if baseline == "zero":
            return np.zeros_like(x)
        if baseline in ("black", "white"):
            value = 0.0 if baseline == "black" else 255.0
            h, w = model.spec.input_size
            pixels = np.full((h, w, model.spec.channels), value, np.float32)
            return np.broadcast_to(model.spec.pixels_to_tensor(pixels)[None], x.shape).copy()
        raise ParameterError(f"unknown {{baseline}} '{baseline}' (choose from {', '.join(IG_BASELINES)}, or give an array)",
                             "baseline")
    return model.check_input(baseline)


def integrated_gradients(model, x, objective, steps: int = 50, rule: str = "gausslegendre", baseline="zero",
                         batch_size: int | None = None):
    """(x - baseline) * the integral of the gradient along the straight path (Sundararajan et al.
    2017), by the quadrature `rule` with `steps` points, streamed through the gradient `batch_size`
    points at a time (at most as many as the model's memory budget holds) and summed in float64."""
    if _positive_int(steps) is None:
        raise ParameterError(f"{{steps}} must be a positive integer, got {steps!r}", "steps")
    steps = int(steps)
    alphas, weights = _ig_rule(rule, steps)
    batch_size = _rows(model, batch_size, "gradient", steps)
    base = ig_baseline(model, x, baseline)
    delta = x - base
    total = np.zeros(x.shape[1:], np.float64)
    for start in range(0, steps, batch_size):
        a = alphas[start:start + batch_size].astype(np.float32).reshape(-1, *([1] * (x.ndim - 1)))
        grads = _gradient(model, base + a * delta, objective)
        total += np.tensordot(weights[start:start + batch_size], grads.astype(np.float64), axes=1)
    return (total * delta[0]).astype(np.float32)


def smoothgrad(model, x, objective, samples: int = 25, noise_level: float = 0.15, seed: int = 0,
               batch_size: int | None = None):
    """The mean input gradient over `samples` noisy copies of x (Smilkov et al. 2017). The noise is
    `np.random.default_rng(seed).normal(0, sigma, (samples, *x.shape[1:]))` with
    sigma = noise_level * (x.max() - x.min())."""
    if _positive_int(samples) is None:
        raise ParameterError(f"{{samples}} must be a positive integer, got {samples!r}", "samples")
    samples = int(samples)
    if not noise_level >= 0:
        raise ParameterError(f"{{noise_level}} must be >= 0, got {noise_level}", "noise_level")
    if samples > MAX_NOISE_SAMPLES:
        raise ParameterError(f"{{samples}} {samples:,} is more than the limit of {MAX_NOISE_SAMPLES:,} (onnxprobe.limits)",
                             "samples")
    batch_size = _rows(model, batch_size, "gradient", samples)
    sigma = float(noise_level) * float(x.max() - x.min())
    # streamed: the generator draws each batch's noise in turn (the same numbers as one draw of all
    # samples), so memory holds one batch whatever the sample count
    rng = np.random.default_rng(seed)
    total = np.zeros(x.shape[1:], np.float64)
    for start in range(0, samples, batch_size):
        rows = min(batch_size, samples - start)
        chunk = x + rng.normal(0.0, sigma, (rows, *x.shape[1:])).astype(np.float32)
        total += model.gradient(chunk, objective, batch_size=batch_size).input.sum(axis=0, dtype=np.float64)
    return (total / samples).astype(np.float32)


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Window offsets every `stride` pixels, plus one flush with the far edge so every pixel is covered."""
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def occlusion(model, x, objective, window=(8, 8), stride=(4, 4), baseline: float = 0.0, batch_size: int = 32):
    """How much the objective drops when a window (all channels) is replaced by `baseline`: each
    pixel gets the mean drop over the windows that cover it (Zeiler and Fergus 2014). HxW.
    `batch_size` windows per run, at most as many as the model's memory budget holds."""
    (h, w), (ay, ax) = _spatial(model)
    window = tuple(int(v) for v in (window if np.ndim(window) else (window, window)))
    stride = tuple(int(v) for v in (stride if np.ndim(stride) else (stride, stride)))
    if len(window) != 2 or min(window) < 1:
        raise ParameterError(f"occlusion's {{window}} takes one or two positive integers, got {window}", "window")
    if len(stride) != 2 or min(stride) < 1:
        raise ParameterError(f"occlusion's {{stride}} takes one or two positive integers, got {stride}", "stride")
    if window[0] > h or window[1] > w:
        raise ParameterError(f"occlusion {{window}} {window[0]}x{window[1]} is larger than the input {h}x{w}", "window")
    ys, xs = window_starts(h, window[0], stride[0]), window_starts(w, window[1], stride[1])
    windows = len(ys) * len(xs)  # row by row, made a batch at a time (never all listed at once)
    batch_size = _rows(model, batch_size, "forward", windows)
    reference = objective.value(model.activations(x, objective.targets, with_outputs=False))[0]
    total = np.zeros((h, w), np.float64)
    count = np.zeros((h, w), np.int64)
    for start in range(0, windows, batch_size):
        chunk = [(ys[i // len(xs)], xs[i % len(xs)]) for i in range(start, min(start + batch_size, windows))]
        batch = np.repeat(x, len(chunk), axis=0)
        for row, (y, x0) in enumerate(chunk):
            index = [row, slice(None), slice(None), slice(None)]
            index[1 + ay] = slice(y, y + window[0])
            index[1 + ax] = slice(x0, x0 + window[1])
            batch[tuple(index)] = baseline
        values = objective.value(model.activations(batch, objective.targets, with_outputs=False))
        for (y, x0), value in zip(chunk, values):
            total[y:y + window[0], x0:x0 + window[1]] += reference - value
            count[y:y + window[0], x0:x0 + window[1]] += 1
    return (total / count).astype(np.float32)


# ---- the table ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Method:
    name: str
    run: Callable
    signed: bool  # is the sign of the map meaningful (diverging colours) or a magnitude?
    options: tuple[str, ...] = ()
    empty: str | None = None  # why the method's map can be all zero where gradients are not (objectives.silence's cause)


CAM_EMPTY = ("Grad-CAM keeps positive evidence only, and its layer's channels, weighted by their mean gradients, "
             "sum to 0 or less everywhere on this input")
METHODS: dict[str, Method] = {m.name: m for m in (
    Method("saliency", saliency, signed=False),
    Method("gradient_x_input", gradient_x_input, signed=True),
    Method("guided_backprop", guided_backprop, signed=True),
    Method("deconvnet", deconvnet, signed=True),
    Method("gradcam", gradcam, signed=False, options=("cam_layer", "relu", "interpolation"), empty=CAM_EMPTY),
    Method("guided_gradcam", guided_gradcam, signed=True, options=("cam_layer", "interpolation"), empty=CAM_EMPTY),
    Method("integrated_gradients", integrated_gradients, signed=True, options=("steps", "rule", "baseline", "batch_size")),
    Method("smoothgrad", smoothgrad, signed=False, options=("samples", "noise_level", "seed", "batch_size")),
    Method("occlusion", occlusion, signed=True, options=("window", "stride", "baseline", "batch_size")),
)}
