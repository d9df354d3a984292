"""Rendering many units: batches of (unit, restart) rows, each row reproducible on its own."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from onnxprobe.objectives import by_kind, objective_layer, stack
from onnxprobe.errors import ParameterError
from onnxprobe.optimize.optimizer import Optimizer
from onnxprobe.optimize.presets import DEFAULT_PRESET, Preset, get_preset
from onnxprobe.position import Position


def row_seed(seed: int, layer: str, unit: int, restart: int) -> np.random.SeedSequence:
    """The random stream of one (unit, restart): independent of batching, order and process."""
    layer_key = int.from_bytes(hashlib.blake2b(layer.encode("utf-8"), digest_size=8).digest(), "little")
    return np.random.SeedSequence([int(seed), layer_key, int(unit), int(restart)])


@dataclass
class UnitResult:
    """One unit's visualizations: `images[r]` is restart r's best image (display RGB uint8; for
    the paper's presets contrast-stretched around the mean pixel, `display == "stretched"`),
    `inputs[r]` the optimized model input itself (no batch axis, the model's layout)."""

    layer: str
    unit: int
    objective: str
    preset: str
    param: str
    hyperparameters: dict
    seed: int
    steps: int
    images: list[np.ndarray] = field(default_factory=list)
    final_images: list[np.ndarray] = field(default_factory=list)
    inputs: list[np.ndarray] = field(default_factory=list)
    display: str = "raw"  # "stretched" (the paper's presets, as the toolbox showed them) or "raw"
    initial_activation: list[float] = field(default_factory=list)
    best_activation: list[float] = field(default_factory=list)
    final_activation: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def restarts(self) -> int:
        return len(self.images)

    def to_json(self) -> dict:
        return {
            "layer": self.layer, "unit": self.unit, "objective": self.objective, "preset": self.preset,
            "param": self.param, "hyperparameters": self.hyperparameters, "seed": self.seed, "steps": self.steps,
            "restarts": self.restarts, "display": self.display, "initial_activation": self.initial_activation,
            "best_activation": self.best_activation, "final_activation": self.final_activation,
            "seconds": round(self.seconds, 4),
        }


@dataclass(frozen=True)
class RenderSettings:
    """How units are rendered, resolved once by the caller (the command line at its boundary,
    `RenderSettings.resolve` for loose values): a final Preset (steps and parameterization included),
    restarts per unit, the random seed and the batch of (unit, restart) rows run together. The
    one place restarts and batch are checked."""

    preset: Preset
    restarts: int = 1
    seed: int = 0
    batch: int = 8

    def __post_init__(self):
        if not isinstance(self.preset, Preset):
            raise TypeError(f"RenderSettings.preset is a Preset (see RenderSettings.resolve), got {self.preset!r}")
        if not _count(self.restarts):
            raise ParameterError(f"{{restarts}} must be at least 1, got {self.restarts!r}", "restarts")
        if not _count(self.batch):
            raise ParameterError(f"{{batch}} must be at least 1, got {self.batch!r}", "batch")
        if not _count(self.seed, minimum=0):
            raise ParameterError(f"{{seed}} must be a whole number of at least 0, got {self.seed!r}", "seed")

    @classmethod
    def resolve(cls, preset: str | Preset = DEFAULT_PRESET, steps: int | None = None, param: str | None = None,
                restarts: int = 1, seed: int = 0, batch: int = 8) -> "RenderSettings":
        """Loose values (a preset name, overrides) -> the typed settings; bad values: one ParameterError."""
        return cls(get_preset(preset, steps, param), restarts, seed, batch)

    @property
    def units_per_chunk(self) -> int:
        """Units whose (unit, restart) rows fill one batch."""
        return max(1, self.batch // self.restarts)

    def identity(self) -> dict:
        """What decides a unit's images (not the batch: a row does not depend on its batch)."""
        return {"preset": self.preset.to_json(), "param": self.preset.param, "restarts": self.restarts,
                "seed": self.seed}


def _count(value, minimum: int = 1) -> bool:
    """A whole number of at least `minimum`."""
    return not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= minimum


def render_units(model, layer: str | None, units: Sequence[int], settings: RenderSettings | None = None, *,
                 objective: str = "neuron", position: Position = None, engine: str = "auto",
                 on_step: Callable[[int], None] | None = None) -> list[UnitResult]:
    """Visualize `units` of `layer` (see the package docstring); one UnitResult per unit, in order.
    `settings` as resolved by the caller (`RenderSettings.resolve(preset, steps, param, restarts,
    seed, batch)`; None: the defaults). `objective` and `position` as
    `objectives.by_kind` reads them (a neuron at a position of onnxprobe.position: Y,X, "centre"
    (None: the same), "mean" (the channel); "max" needs an image, which a synthesized one has not).

    `on_step(rows)` is called after every optimisation step with the number of rows stepped
    (for progress bars: total work is len(units) * restarts * steps)."""
    settings = RenderSettings.resolve() if settings is None else settings
    chosen, restarts, seed, batch = settings.preset, settings.restarts, settings.seed, settings.batch
    batch = model.rows_per_run("step", limit=batch)  # no more rows than the memory budget holds
    param = chosen.param
    layer = objective_layer(model, objective, layer).name
    objectives = {u: by_kind(model, objective, layer, u, position, pre_activation=True) for u in units}
    jobs = [(u, r) for u in units for r in range(restarts)]
    results: dict[int, UnitResult] = {}
    for start in range(0, len(jobs), batch):
        chunk = jobs[start:start + batch]
        began = time.perf_counter()
        opt = Optimizer(model, stack([objectives[u] for u, _ in chunk]), chosen,
                        seed=[row_seed(seed, layer, u, r) for u, r in chunk], engine=engine)
        opt.run(on_step=(lambda o: on_step(len(chunk))) if on_step else None)
        share = (time.perf_counter() - began) / len(chunk)
        best = opt.best_activation
        inputs = opt.current_input(best=True)
        for i, (unit, restart) in enumerate(chunk):
            result = results.get(unit)
            if result is None:
                result = results[unit] = UnitResult(
                    layer=layer, unit=unit, objective=objectives[unit].description, preset=chosen.name, param=param,
                    hyperparameters=opt.hyperparameters() | {"batch": batch}, seed=seed, steps=chosen.steps,
                    display="stretched" if opt.stretched else "raw")
            result.images.append(opt.best_image(i))
            result.final_images.append(opt.image(i))
            result.inputs.append(np.asarray(inputs[i], np.float32))
            result.initial_activation.append(float(opt.initial_activation[i]))
            result.best_activation.append(float(best[i]))
            result.final_activation.append(float(opt.final_activation[i]))
            result.seconds += share
    return [results[u] for u in units]
