"""Pictures from a photo: what a network sees in one photograph, by optimization (the lucid
parameterization; the objectives are onnxprobe.objectives. `accentuation`, `caricature`
and `inversion`).

    from onnxprobe.optimize.photo import picture_from_photo
    pic = picture_from_photo(pm, read_image("cat.jpg"), "invert", layer="features.9/Add")
    pic.image, pic.photo, pic.value, pic.photo_value, pic.distance, pic.curve, pic.to_json()

    run = start_picture(pm, None, "caricature", x=frame_x, layer=...)   # step at a time (the viewer)
    run.step(4); run.image(); run.curve; run.done; run.result()

- "accentuate" (feature accentuation, Hamblin et al. 2024): start from the photo and push a unit or
  a class (`objective` neuron / channel / logit, `unit`, `position`: a neuron may take `max`, the
  photo's own peak) while staying close to the photo (`weight` on the mean squared distance in
  display space). `curve` is the unit's rise against the distance from the photo along the run.
- "caricature" (OpenAI Microscope's): amplify what `layer` already sees in the photo (the dot
  product with the photo's activation, normalized), from the preset's random start.
- "invert" (feature inversion, Mahendran and Vedaldi 2015): reconstruct an image from `layer`'s
  activation of the photo alone, from the preset's random start. The preset's transformation
  robustness is switched off: the photo's activation is spatially fixed, a shifted or rotated view
  of the image would be compared with it at the wrong places.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from onnxprobe import objectives
from onnxprobe.errors import ParameterError
from onnxprobe.optimize.optimizer import Optimizer
from onnxprobe.optimize.presets import PHOTO_PRESET, PICTURES, Preset, get_preset


@dataclass
class PhotoPicture:
    """One picture from a photo. Images are HxWx3 uint8 RGB at the model's input size; `distance`
    is the RMS difference from the photo in 0..255 pixel units; `value` / `photo_value` the
    objective (without the closeness term) on the result and on the photo; `curve` rows are
    (step, value, distance) along the run."""

    kind: str
    layer: str | None
    unit: int | None
    objective: str
    preset: str
    steps: int
    image: np.ndarray
    photo: np.ndarray
    input: np.ndarray
    value: float
    photo_value: float
    distance: float
    curve: list[tuple[int, float, float]] = field(default_factory=list)
    weight: float | None = None
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {"picture": self.kind, "layer": self.layer, "unit": self.unit, "objective": self.objective,
                "preset": self.preset, "steps": self.steps, "weight": self.weight, "value": self.value,
                "photo_value": self.photo_value, "distance": self.distance,
                "curve": [{"step": s, "value": v, "distance": d} for s, v, d in self.curve],
                "seconds": round(self.seconds, 3)}


def still(preset: Preset) -> Preset:
    """The preset without its transformation robustness (what an inversion runs: the photo's
    activation is spatially fixed)."""
    return replace(preset, pad=0, jitter=(), scales=(), max_rotate=0.0)


def invert_photos(model, images, layer: str, *, preset: str | Preset = PHOTO_PRESET, steps: int | None = None,
                  seed: int = 0) -> list[PhotoPicture]:
    """`picture_from_photo(..., "invert")` of many photos as the rows of one batch (one gradient
    run per step for all of them; row i draws from SeedSequence([seed, 2, i])). No curve."""
    chosen = get_preset(preset, steps)
    if chosen.method != "lucid":
        raise ParameterError(f"pictures from a photo run on the lucid parameterization; {{preset}} "
                             f"{chosen.name} is not one (use {PHOTO_PRESET})", "preset")
    chosen = still(chosen)
    began = time.perf_counter()
    shown = [photo_display(model, image) for image in images]
    x = np.concatenate([s[0] for s in shown])
    a0 = model.activations(x, [layer], with_outputs=False)[layer]
    goals = [objectives.inversion(model, layer, a0[i:i + 1]) for i in range(len(images))]
    opt = Optimizer(model, objectives.stack(goals), chosen,
                    seed=[np.random.SeedSequence([int(seed), PICTURES.index("invert"), i]) for i in range(len(images))])
    opt.run()
    final = opt.current_input(best=True)
    values = objectives.stack(goals).value(model.activations(final, [layer], with_outputs=False))
    result = opt.display_images(best=True)
    share = (time.perf_counter() - began) / len(images)
    return [PhotoPicture(kind="invert", layer=layer, unit=None, objective=goals[i].description, preset=chosen.name,
                         steps=chosen.steps, image=_rgb(result[i]), photo=_rgb(shown[i][1][0]), input=final[i],
                         value=float(values[i]), photo_value=0.0,
                         distance=float(np.sqrt(np.mean((result[i].astype(np.float64) - shown[i][1][0]) ** 2)) * 255.0),
                         seconds=share)
            for i in range(len(images))]


def photo_display(model, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An image as `preprocess` takes it -> (the model input (1, ...), the photo as the model sees
    it in display space: (1, C, H, W) float32 in 0..1)."""
    x = model.preprocess(image)
    return x, input_display(model, x)


def input_display(model, x: np.ndarray) -> np.ndarray:
    """A model input (1, ...) as the model sees it in display space: (1, C, H, W) float32 in 0..1."""
    rgb = model.spec.to_display(x[0])
    if rgb.ndim == 2:
        rgb = rgb[:, :, None]
    channels = model.spec.channels
    planes = rgb[:, :, :1] if channels == 1 else rgb[:, :, :channels]
    return planes.transpose(2, 0, 1)[None].astype(np.float32) / 255.0


def _value(model, objective, x: np.ndarray) -> np.ndarray:
    acts = model.activations(x, list(objective.targets), with_outputs=False)
    return objective.value(acts)


def _rgb(display01: np.ndarray) -> np.ndarray:
    rgb = np.clip(np.rint(display01.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)
    return np.repeat(rgb, 3, axis=2) if rgb.shape[2] == 1 else rgb


@dataclass
class PictureRun:
    """A picture from a photo one step at a time (what `picture_from_photo` runs to the end, and a
    live viewer shows as it goes): `optimizer` (started), the objective it measures (`measure`:
    without the closeness term), the photo as the model input `x` and in display space `photo`."""

    kind: str
    layer: str | None
    unit: int | None
    preset: Preset
    optimizer: Optimizer
    measure: objectives.Objective
    x: np.ndarray
    photo: np.ndarray
    photo_value: float
    weight: float | None
    began: float
    curve: list[tuple[int, float, float]] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.optimizer.done

    def step(self, n: int) -> tuple[int, float, float]:
        """`n` more steps; the (step, value, distance) of the current image, added to `curve`."""
        self.optimizer.step(n)
        current = self.optimizer.current_input(best=False)
        point = (self.optimizer.steps_done, float(_value(self.optimizer.model, self.measure, current)[0]),
                 self._distance(self.optimizer.display_images(best=False)))
        self.curve.append(point)
        return point

    def image(self, best: bool = False, photo: bool = False) -> np.ndarray:
        """The current (or best) picture, or with `photo` the photo as the model sees it: HxWx3 uint8 RGB."""
        return _rgb(self.photo[0] if photo else self.optimizer.display_images(best=best)[0])

    def _distance(self, shown: np.ndarray) -> float:
        return float(np.sqrt(np.mean((shown.astype(np.float64) - self.photo) ** 2)) * 255.0)

    def result(self) -> PhotoPicture:
        opt = self.optimizer
        final = opt.current_input(best=True)
        shown = opt.display_images(best=True)
        return PhotoPicture(kind=self.kind, layer=self.layer, unit=self.unit, objective=self.measure.description,
                            preset=self.preset.name, steps=self.preset.steps, image=_rgb(shown[0]),
                            photo=_rgb(self.photo[0]), input=final[0],
                            value=float(_value(opt.model, self.measure, final)[0]), photo_value=self.photo_value,
                            distance=self._distance(shown), curve=list(self.curve), weight=self.weight,
                            seconds=time.perf_counter() - self.began)


def start_picture(model, image: np.ndarray | None, kind: str, *, x: np.ndarray | None = None,
                  layer: str | None = None, unit: int | None = None, objective: str = "neuron", position=None,
                  preset: str | Preset = PHOTO_PRESET, steps: int | None = None, seed: int = 0,
                  weight: float = 1.0) -> PictureRun:
    """A `PictureRun` started on a photo: `image` as `model.preprocess` takes it, or `x` the model
    input already made (1, ...) (a viewer's frame). The other arguments as `picture_from_photo`."""
    if kind not in PICTURES:
        raise ParameterError(f"unknown {{picture}} '{kind}' (known: {', '.join(PICTURES)})", "picture")
    chosen = get_preset(preset, steps)
    if chosen.method != "lucid":
        raise ParameterError(f"pictures from a photo run on the lucid parameterization; {{preset}} "
                             f"{chosen.name} is not one (use {PHOTO_PRESET})", "preset")
    began = time.perf_counter()
    if x is None:
        x, photo = photo_display(model, image)
    else:
        photo = input_display(model, x)
    start = None
    if kind == "accentuate":
        if unit is None:
            raise ParameterError("accentuation pushes one unit or class: give {unit}", "unit")
        base = (objectives.logit(model, unit) if objective == "logit" else
                objectives.channel(model, layer, unit, pre_activation=False) if objective == "channel" else
                objectives.unit_objective(model, layer, unit, position, x))
        measure = base
        goal = objectives.accentuation(base, photo, weight)
        start = photo
    else:
        if layer is None:
            raise ParameterError(f"a {kind} reads one layer: give {{layer}}", "layer")
        a0 = model.activations(x, [layer], with_outputs=False)[layer]
        goal = (objectives.caricature if kind == "caricature" else objectives.inversion)(model, layer, a0)
        measure = goal
        if kind == "invert":
            chosen = still(chosen)
    opt = Optimizer(model, goal, chosen, seed=[np.random.SeedSequence([int(seed), PICTURES.index(kind)])],
                    start=start).start()
    return PictureRun(kind, layer if kind != "accentuate" or objective != "logit" else None, unit, chosen, opt, measure,
                      x, photo, float(_value(model, measure, x)[0]), weight if kind == "accentuate" else None, began)


def picture_from_photo(model, image: np.ndarray, kind: str, *, layer: str | None = None, unit: int | None = None,
                       objective: str = "neuron", position=None, preset: str | Preset = PHOTO_PRESET,
                       steps: int | None = None, seed: int = 0, weight: float = 1.0,
                       checkpoints: int = 8) -> PhotoPicture:
    """See the module docstring. `image` as `model.preprocess` takes it (HxWx3 BGR uint8 as OpenCV
    reads, or HxW). The run to the end, `checkpoints` points on its curve."""
    run = start_picture(model, image, kind, layer=layer, unit=unit, objective=objective, position=position,
                        preset=preset, steps=steps, seed=seed, weight=weight)
    steps_total = run.preset.steps
    marks = sorted({int(round(s)) for s in np.linspace(0, steps_total, max(checkpoints, 1) + 1)[1:]})
    for mark in marks:
        run.step(mark - run.optimizer.steps_done)
    return run.result()


__all__ = ["PICTURES", "PhotoPicture", "PictureRun", "input_display", "invert_photos", "picture_from_photo",
           "photo_display", "start_picture", "still"]
