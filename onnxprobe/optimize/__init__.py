"""Feature visualization: regularized gradient ascent on the input (the seed's method, Yosinski et
al. 2015) and the modern parameterization (Lucid, Olah et al. 2017), for any ONNX CNN.

Library API (stable; the atlas builds on it)::

    from onnxprobe.model import ProbeModel
    from onnxprobe.optimize import RenderSettings, render_units, Optimizer, get_preset, objectives

    pm = ProbeModel.load("models/digits/digits-cnn.onnx")
    settings = RenderSettings.resolve(preset="lucid", steps=None, param=None, restarts=2, seed=0, batch=8)
    results = render_units(pm, "relu2", units=range(8), settings=settings, objective="neuron", position=None)
    results[0].images[0]            # restart 0's best image, HxWx3 uint8 RGB (display space)
    results[0].inputs[0]            # the optimized model input itself (the image's source)
    results[0].best_activation[0]   # and its numbers: initial_/best_/final_activation, seconds
    results[0].to_json()            # the record the command writes

    opt = Optimizer(pm, objectives.neuron(pm, "relu2", 3, pre_activation=True), get_preset("set3"), seed=0).start()
    opt.step(10); opt.image(0); opt.activation; opt.best_image(0); opt.best_activation; opt.history

- `render_units(model, layer, units, settings=None, *, objective="neuron", position=None,
  engine="auto", on_step=None) -> list[UnitResult]`: `settings` is a `RenderSettings` (a final
  Preset, restarts, seed, batch; `RenderSettings.resolve(preset="lucid", steps=None, param=None,
  restarts=1, seed=0, batch=8)` checks loose values once; None: those defaults).
  N (unit, restart) rows run as one batch of the gradient graph. Row (unit, restart) draws all its
  randomness from `row_seed(seed, layer, unit, restart)`, so its images do not depend on which
  other rows share its batch, their order, or the process that ran it. `objective` and
  `position` are read by `objectives.by_kind`: "neuron" at a position of onnxprobe.position (Y,X,
  "centre" = None, "mean" = the channel; "max" needs an image, so it is refused here), "channel",
  or "logit" (ignores `layer`: the pre-softmax class scores).
- Presets (`presets.PRESETS`): `lucid` (the default: with lucid-fast it measures best, bench/bench_quality.py;
  FFT spectrum + colour decorrelation + sigmoid + transformation robustness, Adam lr 0.05, 512
  steps), `lucid-fast` (the same in 256 steps: half the time; its class images are judged as
  lucid's, top-1 92 % on average over three runs on MobileNetV2's 50 judged classes) and
  `maco` (Fel et al. 2023, maco.py: only the Fourier phase is optimized, under the fixed mean
  magnitude spectrum of the project's photographs, shipped as package data; random crops of a
  canvas twice the input's size, noise, NAdam lr 1.0, the canvas's centred half shown (`view`
  0.5), 256 steps of 4 crops: each step costs 4
  forward+backward passes per unit where lucid's costs 1; its images keep natural images' 1/f
  power, so they cannot turn into a network family's high-frequency textures), and
  `set1`..`set4`, the paper's four hyperparameter sets. `param` is "pixel" or "fft";
  the seed's sets are pixel-only, `lucid` takes either (default fft). `presets.get_preset(name,
  steps, param)` resolves a preset once into a typed `Preset` (the command line does this at its
  boundary, inside `RenderSettings.resolve`); `render_units` and `Optimizer` take it as it is.
- Pictures from a photo (`photo.picture_from_photo(model, image, "accentuate" | "caricature" |
  "invert", layer=, unit=, objective=, position=, steps=, weight=)`, `optimize --from IMAGE`):
  feature accentuation (Hamblin et al. 2024: a unit or class pushed from the photo, staying close
  to it; `curve` is the unit's rise against the distance from the photo), Microscope's caricature
  (what a layer already sees, amplified) and feature inversion (Mahendran and Vedaldi 2015: the
  photo reconstructed from one layer's activation). Lucid parameterization; the objectives are
  `objectives.accentuation`, `caricature` and `inversion`.
- Objectives (`objectives`, the one objective module `onnxprobe.objectives`): `neuron`
  (channel at a position, the spatial centre by default), `channel` (mean), `logit` (pre-softmax),
  `direction` (weighted channels), `diversity` (across the batch, non-linear), combined with `+`,
  `-`, scalar `*`, and `stack` (one objective per row). `render_units` optimises a ReLU layer's
  units on the ReLU's input (`pre_activation=True`, `objectives.pre_relu`): a ReLU that is off at
  the start passes no gradient.

The seed's method in pixel units: images are optimised in 0..255 pixel units whose origin is the
model's input zero (the mean pixel for a mean-subtracting model: exactly the paper's Caffe input
space); the model input is `slope * q` per channel, with `slope` from the (linear) preprocessing,
so decay, blur and percentiles mean what they meant in the paper for every model. Each step:
clip to the valid pixel range, forward + backward, record the best, then (except on the last
step) x += lr g, decay, blur every k steps, zero small-norm pixels, zero small-contribution
pixels; rows whose gradient is exactly zero stop. The start is the mean pixel plus N(0, 10) noise.

What differs from the paper, and why (issue 14):
- The step is scale-free. The paper's constant lr (100 in set2 and set3, and set1's max_lr cap)
  was tuned to CaffeNet's gradient: what a step moves, lr * g, depends on the model. On the
  28x28 digits model and on MobileNetV2 the start's input gradient has an RMS of 4e-4 and 1.3e-4
  pixel units, so lr 100 moved the image by 0.01-0.04 units per step and set3's 1000 steps left
  it flat grey (1/10 digits recognized). Now each row measures its input gradient at the start
  and multiplies the constant lr and max_lr by `REFERENCE_GRADIENT_RMS / rms(g0)` (presets.py,
  0.1, a calibration chosen by measurement there): lr 100 means a first step of RMS 10 pixel
  units on every model. The rate stays constant
  during the run (as the paper's); the "progress" policy (set1 below its cap, set4) divides by
  ||g||^2 and was already scale-free; decay, blur radius and period, norm and contribution
  percentiles are the paper's values unchanged.
- The images are shown as the toolbox showed them: contrast-stretched around the mean pixel
  (`PixelSpace.to_display_stretched`, the toolbox's norm01c with centre 0, kept inside 0..255).
  `Optimizer.raw_image` and `UnitResult.inputs` (the command's .npy) are the optimized input as
  it is; `UnitResult.display` says which the PNG is.
For linear objectives the whole step runs as one ONNX graph (`stepgraph.py`), on CUDA with the
state kept on the GPU; `engine="numpy"` runs the same step with numpy priors (`priors.py`).
"""

import importlib

# what the package exports, by the module that holds it: imported on first use, so that the command
# line's parser can read the presets without importing the optimizer (and its scipy and onnx)
_HOMES = {"objectives": "onnxprobe.objectives", "Objective": "onnxprobe.objectives",
          "ENGINES": "onnxprobe.optimize.optimizer", "Optimizer": "onnxprobe.optimize.optimizer",
          "optimize": "onnxprobe.optimize.optimizer", "DEFAULT_PRESET": "onnxprobe.optimize.presets",
          "PARAMS": "onnxprobe.optimize.presets", "PRESETS": "onnxprobe.optimize.presets",
          "Preset": "onnxprobe.optimize.presets", "PICTURES": "onnxprobe.optimize.presets", "get_preset": "onnxprobe.optimize.presets",
          "RenderSettings": "onnxprobe.optimize.render", "UnitResult": "onnxprobe.optimize.render",
          "render_units": "onnxprobe.optimize.render", "row_seed": "onnxprobe.optimize.render"}

__all__ = [
    "DEFAULT_PRESET", "ENGINES", "PARAMS", "PICTURES", "PRESETS", "Objective", "Optimizer", "Preset", "RenderSettings", "UnitResult",
    "get_preset", "objectives", "optimize", "render_units", "row_seed",
]


def __getattr__(name: str):
    if name == "objectives":
        return importlib.import_module(_HOMES[name])
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
