"""Small adapters over `onnxprobe.optimize`'s step-at-a-time APIs, for watching an optimization live.

The optimize package offers an `Optimizer` with `start()`, `step(n)`, `image(i)` and `activation`,
and pictures from a photo one step at a time (`photo.start_picture` -> `PictureRun`). The viewer
only needs: build one cheaply on the GUI thread, `start()` and `step()` it a few iterations at a
time on its optimize worker, and show `image()` (with `progress`, what the pane's title says).
"""

from __future__ import annotations

import numpy as np

from onnxprobe.objectives import neuron
from onnxprobe.optimize.optimizer import Optimizer
from onnxprobe.optimize.photo import PictureRun, start_picture
from onnxprobe.optimize.presets import DEFAULT_PRESET, PHOTO_PRESET, Preset, get_preset
from onnxprobe.render.compose import row
from onnxprobe.viewer.state import PictureProgress

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
        self.progress: PictureProgress | None = None  # not a picture from the frame

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


    def finished(self) -> str:
        return f"optimization of {self.layer}:{self.unit} finished (activation {self.activation:.4g})"


class LivePicture:
    """A picture from the current frame (`x`, the model input the viewer shows), live: `kind` of
    optimize.photo's PICTURES, the accentuation of (layer, unit) or the caricature of / inversion
    from `layer`, as optimize.photo.picture_from_photo draws it (the same preset and seed). `image()` is
    the frame as the model sees it beside the picture now; `progress` what the pane's title says.
    `start()` reads the frame's activations: it runs on the worker, not the GUI thread."""

    def __init__(self, model, x: np.ndarray, kind: str, layer: str, unit: int, label: str | None = None,
                 preset: Preset | None = None, seed: int = 0):
        self.model = model
        self.x = x
        self.kind = kind
        self.layer = layer
        self.unit = unit
        self.label = label or layer
        self.preset = get_preset(PHOTO_PRESET) if preset is None else preset
        self.seed = seed
        self.run: PictureRun | None = None
        self._image: np.ndarray | None = None
        self.progress: PictureProgress | None = None

    def start(self) -> None:
        self.run = start_picture(self.model, None, self.kind, x=self.x, layer=self.layer,
                                 unit=self.unit if self.kind == "accentuate" else None, preset=self.preset,
                                 seed=self.seed)

    @property
    def steps_done(self) -> int:
        return int(self.run.optimizer.steps_done) if self.run is not None else 0

    @property
    def done(self) -> bool:
        return self.run is not None and self.run.done

    def step(self, n: int = STEPS_PER_UPDATE) -> None:
        step, value, distance = self.run.step(n)
        self._image = row([self.run.image(photo=True), self.run.image()], pad=4)
        self.progress = PictureProgress(self.kind, self.label, self.unit if self.kind == "accentuate" else None, step,
                                        self.run.preset.steps, value, self.run.photo_value, distance)

    def image(self) -> np.ndarray | None:
        return self._image

    def finished(self) -> str:
        return f"{self.progress.what} finished ({self.progress.numbers})" if self.progress else f"{self.kind} finished"
