"""A small adapter over `onnxprobe.optimize`'s step-at-a-time API, for watching an optimization live.

The optimize package offers an `Optimizer` with `start()`, `step(n)`, `image(i)` and `activation`.
The viewer only needs: build one for (layer, unit), step it a few iterations at a time, and show
image 0.
"""

from __future__ import annotations

import numpy as np

from onnxprobe.objectives import neuron
from onnxprobe.optimize.optimizer import Optimizer
from onnxprobe.optimize.presets import DEFAULT_PRESET, Preset, get_preset

STEPS_PER_UPDATE = 4
PRESET = DEFAULT_PRESET  # lucid: legible on any model within a few dozen steps; set3 depends on the gradient scale


class LiveOptimization:
    """The toolbox's objective: the unit at the spatial centre of the selected channel (on the
    ReLU's input for a ReLU layer, as render_units optimises it)."""

    def __init__(self, model, layer: str, unit: int, preset: Preset | None = None):
        self.model = model
        self.layer = layer
        self.unit = unit
        preset = get_preset(PRESET) if preset is None else preset
        self._optimizer = Optimizer(model, neuron(model, layer, unit, pre_activation=True), preset=preset)
        self._image: np.ndarray | None = None

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
        self._image = self._optimizer.image(0)  # HxWx3 uint8 RGB

    @property
    def activation(self) -> float:
        value = self._optimizer.activation
        return float(np.asarray(value, dtype=np.float64).ravel()[0]) if value is not None else float("nan")

    def image(self) -> np.ndarray | None:
        return self._image

