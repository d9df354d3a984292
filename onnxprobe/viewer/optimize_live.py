"""A small adapter over `onnxprobe.optimize`'s step-at-a-time API, for watching an optimization live.

The optimize package offers an `Optimizer` with `start()`, `step(n)`, `image(i)` and `activation`.
The viewer only needs: build one for (layer, unit), step it a few iterations at a time, and show
image 0. When the package is not there (or lacks that API) the viewer says so and carries on.
"""

from __future__ import annotations

import numpy as np

from onnxprobe.optimize.presets import DEFAULT_PRESET

STEPS_PER_UPDATE = 4
PRESET = DEFAULT_PRESET  # lucid: legible on any model within a few dozen steps; set3 depends on the gradient scale


def _api():
    """(Optimizer, neuron objective) from onnxprobe.optimize; ImportError if not (yet) there."""
    try:
        from onnxprobe.autodiff.objectives import neuron
        from onnxprobe.optimize.optimizer import Optimizer
    except ImportError as exc:
        raise ImportError(f"onnxprobe.optimize cannot be imported ({exc})") from None
    missing = [name for name in ("start", "step", "image") if not hasattr(Optimizer, name)]
    if missing:
        raise ImportError(f"onnxprobe.optimize.Optimizer lacks {', '.join(missing)}")
    return Optimizer, neuron


class LiveOptimization:
    """The toolbox's objective: the unit at the spatial centre of the selected channel (on the
    ReLU's input for a ReLU layer, as render_units optimises it)."""

    def __init__(self, model, layer: str, unit: int, preset: str = PRESET):
        optimizer_cls, neuron = _api()
        self.model = model
        self.layer = layer
        self.unit = unit
        self._optimizer = optimizer_cls(model, neuron(model, layer, unit, pre_activation=True), preset=preset)
        self._image: np.ndarray | None = None

    @staticmethod
    def unavailable_reason() -> str | None:
        try:
            _api()
        except ImportError as exc:
            return str(exc)
        return None

    def start(self) -> None:
        self._optimizer.start()

    @property
    def steps_done(self) -> int:
        return int(self._optimizer.steps_done)

    @property
    def done(self) -> bool:
        return bool(self._optimizer.done)

    def step(self, n: int = STEPS_PER_UPDATE) -> None:
        self._optimizer.step(n)
        self._image = _as_rgb8(self._optimizer.image(0))

    @property
    def activation(self) -> float:
        value = self._optimizer.activation
        return float(np.asarray(value, dtype=np.float64).ravel()[0]) if value is not None else float("nan")

    def image(self) -> np.ndarray | None:
        return self._image


def _as_rgb8(image) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        scale = 255.0 if image.max(initial=0) <= 1.0 else 1.0
        image = np.clip(image * scale, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return np.ascontiguousarray(image)
