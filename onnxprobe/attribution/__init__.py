"""Attribution maps for any ONNX classifier or any unit of any layer.

Library API (the viewer's back-pane modes use it)::

    from onnxprobe.attribution import attribute, render_attribution, METHODS
    pm = ProbeModel.load("model.onnx")
    x = pm.preprocess(image)                                   # (1, C, H, W) or (1, H, W, C)
    m = attribute(pm, x, "integrated_gradients", target=None, steps=50, rule="gausslegendre")
    m = attribute(pm, x, "saliency", layer="relu2", unit=3)     # where the unit fires most on x
    m = attribute(pm, x, "gradcam", target=281, cam_layer="layer4_out")
    rgb = render_attribution(pm, x, "integrated_gradients", m, overlay=True)   # HxWx3 uint8

`attribute(model, x, method, target=None, layer=None, unit=None, position=None, **options)`
returns a float32 map without the batch axis: input-shaped for the gradient methods, HxW (the
input's spatial size) for `gradcam` and `occlusion`.

The objective (onnxprobe.objectives, or any `Objective` passed as `objective=`) is the
logit of class `target` (default: the predicted class; the tensor before any final Softmax), or
unit `unit` of layer `layer` at `position` as onnxprobe.position reads it: (y, x), "centre",
"mean" (the channel's mean over all positions), "max"; None is "max", where the unit fires most
on `x`, as for the command line.

Methods and their options (defaults in brackets):

- `saliency`: |gradient|.   `gradient_x_input`: gradient * x.
- `guided_backprop`, `deconvnet`: the modified backward passes of the autodiff modes.
- `gradcam`: `cam_layer` [last spatial layer before the objective], `relu` [True],
  `interpolation` ["bilinear"; "nearest"; None keeps the layer's resolution].
- `guided_gradcam`: guided backprop * rectified Grad-CAM upsampled ["nearest"], as Captum does.
- `integrated_gradients`: `steps` [50], `rule` [gausslegendre, riemann_trapezoid, riemann_left,
  riemann_right, riemann_middle: the points and weights of Captum's methods], `baseline`
  ["zero", "black", "white", or an input-shaped array], `batch_size` [CPU 2, GPU: as many as the
  memory budget holds] path points per run, streamed and summed.
- `smoothgrad`: mean gradient over noisy copies: `samples` [25], `noise_level` [0.15 of the
  input's value range], `seed` [0], `batch_size` [as integrated_gradients'].
- `occlusion`: `window` [8] and `stride` [4] in pixels (one int or (h, w)), `baseline` [0.0]
  value of the occluded pixels, `batch_size` [32] forward passes per run.
Every `batch_size` is at most what the model's memory budget holds (`ProbeModel.rows_per_run`,
onnxprobe.budget): fewer rows per run, the same result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from onnxprobe.attribution.methods import IG_BASELINES, IG_RULES, METHODS, resize_map
from onnxprobe.errors import ParameterError, UsageError

if TYPE_CHECKING:
    from onnxprobe.objectives import Objective

__all__ = ["attribute", "make_objective", "render_attribution", "map_to_2d", "METHODS", "IG_RULES",
           "IG_BASELINES", "Objective", "resize_map"]


def make_objective(model, x: np.ndarray, target: int | None = None, layer: str | None = None,
                   unit: int | None = None, position=None) -> Objective:
    """What an attribution of `x` explains (see the module docstring)."""
    from onnxprobe import objectives

    if layer is not None or unit is not None:
        if target is not None:
            raise ParameterError("give either a class {target} or a {layer} and {unit}, not both", "target", "layer", "unit")
        if layer is None or unit is None:
            raise ParameterError("a unit objective needs both a {layer} and a {unit}", "layer", "unit")
        return objectives.unit_objective(model, layer, unit, position, model.check_input(x))
    if position is not None:
        raise ParameterError("a {position} needs a {layer} and {unit}", "position", "layer", "unit")
    if target is not None:
        return objectives.logit(model, target)
    logits = objectives.logit_layer(model).name
    predicted = int(np.argmax(model.activations(x, [logits], with_outputs=False)[logits][0].reshape(-1)))
    objective = objectives.logit(model, predicted)
    return objective.named(f"predicted {objective.description}")


def attribute(model, x: np.ndarray, method: str, target: int | None = None, layer: str | None = None,
              unit: int | None = None, position=None, objective: Objective | None = None, **options) -> np.ndarray:
    """The attribution map of `method` for one input (see the module docstring)."""
    if method not in METHODS:
        raise UsageError(f"unknown attribution method '{method}' (choose from {', '.join(METHODS)})")
    spec = METHODS[method]
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise UsageError(f"method '{method}' takes no option {', '.join(unknown)}"
                         + (f" (it takes {', '.join(spec.options)})" if spec.options else ""))
    x = model.check_input(x)
    if x.shape[0] != 1:
        raise UsageError(f"attribute explains one input at a time, got a batch of {x.shape[0]}")
    objective = objective or make_objective(model, x, target, layer, unit, position)
    return spec.run(model, x, objective, **options)


def map_to_2d(model, method: str, values: np.ndarray) -> np.ndarray:
    """An attribution map -> HxW: magnitude maps take the max of |value| over channels (as
    Simonyan et al. did), signed maps the sum over channels."""
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 2:
        return values
    axis = 0 if model.spec.layout == "NCHW" else 2
    if METHODS[method].signed:
        return values.sum(axis=axis)
    return np.abs(values).max(axis=axis)


def diverging(values: np.ndarray, outlier_perc: float = 0.0) -> np.ndarray:
    """Signed 2-D map -> RGB: blue (negative), white (0), red (positive), symmetric scale (outliers
    clipped as Captum's outlier_perc, render.backmaps.outlier_scale); NaN black (render's one way
    to bytes)."""
    from onnxprobe.render.backmaps import outlier_scale
    from onnxprobe.render.images import unit_to_uint8

    scale = outlier_scale(values, outlier_perc) or 1.0
    v = np.clip(values / scale, -1, 1)[:, :, None]
    white = np.ones(3, np.float32)
    red, blue = np.array([0.8, 0.0, 0.0], np.float32), np.array([0.0, 0.2, 0.8], np.float32)
    rgb = np.where(v >= 0, white + v * (red - white), white - v * (blue - white))
    return unit_to_uint8(rgb, in_place=True)


def render_attribution(model, x: np.ndarray, method: str, values: np.ndarray, overlay: bool = False,
                       alpha: float = 0.5) -> np.ndarray:
    """HxWx3 uint8: the map as a heat map (diverging colours for signed methods), optionally
    blended over the input image."""
    from onnxprobe.render.images import heatmap, overlay as blend

    from onnxprobe.render.backmaps import OUTLIER_PERC, outlier_scale

    flat = map_to_2d(model, method, values)
    if METHODS[method].signed:
        image = diverging(flat, OUTLIER_PERC)
    else:  # magnitudes: clip the top outliers (Captum's outlier_perc) before the colour map
        image = heatmap(np.minimum(flat, outlier_scale(flat, OUTLIER_PERC) or float(flat.max(initial=0))))
    if overlay:
        image = blend(model.spec.to_display(model.check_input(x)[0]), image, alpha)
    return image


def __getattr__(name: str):  # Objective, re-exported on first use (the objectives import the graph library)
    if name == "Objective":
        from onnxprobe.objectives import Objective

        return Objective
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
