"""Feature visualization: regularized gradient ascent on the input (the seed's method, Yosinski et
al. 2015) and the modern parameterization (Lucid, Olah et al. 2017), for any ONNX CNN.

Library API (stable; the atlas builds on it)::

    from onnxprobe.model import ProbeModel
    from onnxprobe.optimize import render_units, Optimizer, objectives

    pm = ProbeModel.load("models/digits/digits-cnn.onnx")
    results = render_units(pm, "relu2", units=range(8), preset="set3", restarts=2, steps=None,
                           seed=0, batch=8, param=None, objective="neuron", position=None)
    results[0].images[0]            # restart 0's best image, HxWx3 uint8 RGB (display space)
    results[0].best_activation[0]   # and its numbers: initial_/best_/final_activation, seconds
    results[0].to_json()            # the record the command writes

    opt = Optimizer(pm, objectives.neuron(pm, "relu2", 3), preset="set3", seed=0).start()
    opt.step(10); opt.image(0); opt.activation; opt.best_image(0); opt.best_activation; opt.history

- `render_units(model, layer, units, preset="set3", restarts=1, steps=None, seed=0, batch=8,
  param=None, objective="neuron", position=None, engine="auto", on_step=None) -> list[UnitResult]`:
  N (unit, restart) rows run as one batch of the gradient graph. Row (unit, restart) draws all its
  randomness from `row_seed(seed, layer, unit, restart)`, so its images do not depend on which
  other rows share its batch, their order, or the process that ran it. `objective="logit"`
  ignores `layer` and uses the pre-softmax class scores.
- Presets (`presets.PRESETS`): `set1`..`set4`, the paper's four hyperparameter sets (`set3` the
  default), and `lucid` (FFT spectrum + colour decorrelation + sigmoid + transformation
  robustness, Adam lr 0.05, 512 steps). `param` is "pixel" or "fft"; the seed's sets are pixel-only,
  `lucid` takes either (default fft).
- Objectives (`objectives`): `neuron` (channel at a position, the spatial centre by default),
  `channel` (mean), `logit` (pre-softmax), `direction` (weighted channels), `diversity` (across the
  batch, non-linear), combined with `+`, `-`, scalar `*`, and `stack` (one objective per row).

The seed's method in pixel units: images are optimised in 0..255 pixel units whose origin is the
model's input zero (the mean pixel for a mean-subtracting model: exactly the paper's Caffe input
space); the model input is `slope * q` per channel, with `slope` from the (linear) preprocessing,
so decay, blur and percentiles mean what they meant in the paper for every model. The constant lr
(set2, set3; set1 caps its lr at 100) is in the paper's units too, but what a step achieves,
lr * ||g||^2, depends on the model's gradient size: on the bundled 28x28 digits model ||g|| is
about 0.014 and set3 gains 0.02 logit per step (its class images stay near the start, see
models/README.md), while the "progress" policy (set4, and set1 below its cap) and lucid's Adam are
scale-free. Each step:
clip to the valid pixel range, forward + backward, record the best, then (except on the last
step) x += lr g, decay, blur every k steps, zero small-norm pixels, zero small-contribution
pixels; rows whose gradient is exactly zero stop. The start is the mean pixel plus N(0, 10) noise.
For linear objectives the whole step runs as one ONNX graph (`stepgraph.py`), on CUDA with the
state kept on the GPU; `engine="numpy"` runs the same step with numpy priors (`priors.py`).
"""

from onnxprobe.optimize import objectives
from onnxprobe.optimize.objectives import Objective
from onnxprobe.optimize.optimizer import ENGINES, Optimizer, optimize
from onnxprobe.optimize.presets import DEFAULT_PRESET, PARAMS, PRESETS, Preset, get_preset
from onnxprobe.optimize.render import UnitResult, render_units, row_seed

__all__ = [
    "DEFAULT_PRESET", "ENGINES", "PARAMS", "PRESETS", "Objective", "Optimizer", "Preset", "UnitResult",
    "get_preset", "objectives", "optimize", "render_units", "row_seed",
]
