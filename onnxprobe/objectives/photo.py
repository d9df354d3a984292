"""Objectives of pictures from a photo (onnxprobe.optimize.photo): Microscope's caricature, feature
inversion (Mahendran and Vedaldi 2015) and feature accentuation (Hamblin et al. 2024), whose
closeness to the photo (`Anchor`) lives on the image and is applied by the engine that owns it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError, UsageError
from ..graph.layers import LayerInfo
from .algebra import Objective
from .layers import activation_shape, differentiable_layer
from .units import _linear


def _photo_activation(info: LayerInfo, photo_activation: np.ndarray) -> tuple[np.ndarray, float]:
    """The photo's activation of the layer as (1, *shape) float32 and its squared norm (> 0)."""
    a0 = np.asarray(photo_activation, np.float32)
    if a0.shape[1:] != activation_shape(info)[1:] or a0.shape[0] != 1:
        raise ParameterError(f"{{photo_activation}} of layer '{info.name}' must have shape "
                             f"{(1, *activation_shape(info)[1:])}, got {a0.shape}", "photo_activation")
    norm2 = float((a0.astype(np.float64) ** 2).sum())
    if not np.isfinite(norm2) or norm2 <= 0:
        raise UsageError(f"layer '{info.name}' is all zero (or not finite) on this photo: nothing to "
                         "reconstruct or amplify there; choose another layer")
    return a0, norm2


def caricature(model, layer: str | LayerInfo, photo_activation: np.ndarray) -> Objective:
    """Microscope's caricature: amplify what `layer` already sees in a photo. The dot product of
    the layer's activation with the photo's own (`photo_activation`, (1, *shape), e.g.
    `model.activations(photo_x, [layer])[layer]`), divided by the photo's norm: the activation's
    projection on the photo's direction (the photo itself scores its own norm). Linear."""
    info = differentiable_layer(model, layer)
    a0, norm2 = _photo_activation(info, photo_activation)
    return _linear(info, a0 / np.float32(np.sqrt(norm2)), f"caricature of the photo at {info.name}")


def inversion(model, layer: str | LayerInfo, photo_activation: np.ndarray) -> Objective:
    """Feature inversion (Mahendran and Vedaldi 2015): the image whose activation of `layer` is the
    photo's. Value: -||a(x) - a0||^2 / ||a0||^2 (0 at a perfect reconstruction; the priors of the
    preset are the image regularizers). Non-linear: its seed is -2 (a(x) - a0) / ||a0||^2."""
    info = differentiable_layer(model, layer)
    a0, norm2 = _photo_activation(info, photo_activation)
    target = a0.astype(np.float64)

    def seed_fn(acts, batch):
        return {info.name: (-2.0 / norm2 * (np.asarray(acts[info.name], np.float64) - target)).astype(np.float32)}

    def value_fn(acts):
        diff = np.asarray(acts[info.name], np.float64) - target
        return -(diff * diff).reshape(diff.shape[0], -1).sum(axis=1) / norm2

    return Objective({info.name: a0.shape}, seed_fn, f"inversion of the photo at {info.name}", linear=False,
                     value_fn=value_fn)


@dataclass(frozen=True)
class Anchor:
    """Feature accentuation's closeness term (Hamblin et al. 2024, as Horama writes it): the image
    (display space 0..1, (1, C, H, W)) stays near `photo`: `weight * mean((image - photo)^2)` is
    subtracted from the objective. It lives on the image, not on a layer, so the engine that owns
    the image applies it (optimize's lucid engine)."""

    photo: np.ndarray
    weight: float

    def value(self, images: np.ndarray) -> np.ndarray:
        diff = np.asarray(images, np.float64) - self.photo
        return -self.weight * (diff * diff).reshape(len(diff), -1).mean(axis=1)

    def gradient(self, images: np.ndarray) -> np.ndarray:
        diff = np.asarray(images, np.float32) - self.photo
        return (-2.0 * self.weight / np.prod(diff.shape[1:]) * diff).astype(np.float32)


def accentuation(objective: Objective, photo: np.ndarray, weight: float = 1.0) -> Objective:
    """Feature accentuation (Hamblin et al. 2024): push `objective` (a unit or a class) starting
    from the photo while staying close to it (`Anchor`: `weight` on the mean squared distance in
    display space, 0..1, `photo` (1, C, H, W)). Start the optimization from the photo."""
    if not np.isfinite(weight) or weight < 0:
        raise ParameterError(f"{{weight}} must be a number of at least 0, got {weight}", "weight")
    photo = np.asarray(photo, np.float32)
    if photo.ndim != 4 or photo.shape[0] != 1:
        raise ParameterError(f"{{photo}} must be one display image (1, C, H, W) in 0..1, got {photo.shape}", "photo")
    out = objective.named(f"accentuation of {objective.description} from the photo")
    out.anchor = Anchor(photo, float(weight))
    return out
