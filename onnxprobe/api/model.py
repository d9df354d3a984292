"""`load` and `Model`: onnxprobe from Python, one method per thing the toolbox shows.

The methods compose the library's own pieces (`model.ProbeModel`, `attribution.attribute`,
`optimize.render_units`, `maxact.run_maxact`, `atlas.build_atlas`, the viewer). The command line
is a client of this module (each command builds these arguments from its flags and calls it;
pyproject.toml's "one path" contract keeps `onnxprobe.cli` from importing anything else of the
library), so the two cannot drift. Errors are `onnxprobe.ProbeError`s with one line in the
library's words (a bad value names its parameter: `ParameterError`; the command line says its
flag instead). Jobs that write files (`render_into`, `top_k`, `atlas`, `picture_from_photo`)
leave nothing half-written: they stage their writes, or join the caller's staged output.

>>> import onnxprobe
>>> model = onnxprobe.load("models/digits/digits-cnn.onnx", device="cpu")
>>> model.predict("models/digits/samples/digit-3.png").labels
['3']
>>> model.activations("models/digits/samples/digit-3.png", "relu2").numpy().shape
(1, 32, 14, 14)
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxprobe.api.inputs import Images, ImageLike, as_bgr, names_of, to_tensor
from onnxprobe.api.objectives import ObjectiveSpec, stack
from onnxprobe.api.results import Activations, Atlas, FromPhoto, Layers, Map, Pictures, Predictions, TopK
from onnxprobe.errors import InputError, ParameterError, UsageError

if TYPE_CHECKING:
    import onnx

    from onnxprobe.api.demo import DemoReport
    from onnxprobe.graph.layers import LayerInfo
    from onnxprobe.model import ProbeModel

__all__ = ["Model", "RenderPlan", "Rendered", "load", "view"]

Units = int | Iterable[int] | str


def load(model: str | os.PathLike | bytes | onnx.ModelProto | None = None, *,
         input_shape: Sequence[int] | str | None = None,
         device: str = "auto", threads: int | None = None, memory_budget: str | int | None = None,
         **preprocess: Any) -> "Model":
    """Open a model: a path to an ONNX file, the file's bytes, or an `onnx.ModelProto`; None is the
    bundled ImageNet network (MobileNetV2, 1,000 classes; `onnxprobe.resources.default_model()`).

    `preprocess`: the sidecar's keys as keywords (`input_size`, `layout`, `channels`,
    `channel_order`, `value_range`, `mean`, `std`, `labels` (a file or a list of names),
    `resize`, `invert`); they override a sidecar file next to the model and the model's metadata.
    A preprocessing key given as None counts as not given. `input_shape` fixes dynamic height and
    width (N,C,H,W: a sequence, or text like "1,3,224,224"); `device` is "auto" (CUDA when usable),
    "cpu" or "cuda" (it is also the device the workers of a cluster job load the model on:
    `top_k`, `atlas`); `threads` fixes ONNX Runtime's thread count (default: $ONNXPROBE_THREADS,
    else one per core). `memory_budget`: what batched work (render, attribute, top_k, atlas) may
    hold at once, a size such as "4G" or bytes (None: half the memory there is, the GPU's free
    memory on CUDA; onnxprobe.budget); internal batches are cut to fit.

    >>> model = load("models/digits/digits-cnn.onnx", device="cpu")
    >>> model.input_size, len(model.labels)
    ((28, 28), 10)
    >>> import onnx
    >>> load(onnx.load("models/digits/digits-cnn.onnx"), device="cpu", labels=list("0123456789")).labels[3]
    '3'
    """
    from onnxprobe.model import ProbeModel
    from onnxprobe.preprocess import KEYS

    unknown = sorted(set(preprocess) - set(KEYS))
    if unknown:
        raise UsageError(f"unknown preprocessing key(s) {', '.join(unknown)} (the sidecar's keys: {', '.join(KEYS)})")

    if isinstance(input_shape, str):
        from onnxprobe.graph.loading import parse_shape

        input_shape = parse_shape(input_shape)
    keep = None
    if model is None:
        from onnxprobe.resources import default_model

        model = default_model()
    if not isinstance(model, (str, os.PathLike, bytes, bytearray)) and type(model).__name__ != "ModelProto":
        raise InputError(f"a model is a file path, bytes or an onnx.ModelProto, got {type(model).__name__}")
    try:
        if not isinstance(model, (str, os.PathLike)):  # the library reads files: a copy of its own
            keep = tempfile.mkdtemp(prefix="onnxprobe-model-")
            path = Path(keep) / "model.onnx"
            if isinstance(model, (bytes, bytearray)):
                path.write_bytes(bytes(model))
            else:  # weights over protobuf's 2 GB limit go to a file beside it, as the exporters write them
                import onnx

                onnx.save_model(model, str(path), save_as_external_data=model.ByteSize() > 2_000_000_000)
            model = path
        probe = ProbeModel.load(model, input_shape=input_shape, device=device, preprocess=preprocess, threads=threads,
                                memory_budget=memory_budget)
    except BaseException:
        if keep is not None:  # no Model owns the copy: it goes now
            shutil.rmtree(keep, ignore_errors=True)
        raise
    return Model(probe, temporary=keep, device=device)


def _map(values: np.ndarray, drawn: np.ndarray, shown: np.ndarray, title: str, notes: list[str],
         silent: str | None) -> Map:
    """A Map as the commands write it: the drawing upscaled to at least MAP_MIN_SIDE pixels, the one
    "no signal" picture when the map holds none (`silent` says why)."""
    from onnxprobe.render.compose import no_signal
    from onnxprobe.render.images import MAP_MIN_SIDE, upscale

    drawn = upscale(drawn, MAP_MIN_SIDE)
    if silent is not None:
        drawn = no_signal(*drawn.shape[:2])
    return Map(values, drawn, shown, title, notes=notes, silent=silent)


def _one(x: np.ndarray) -> np.ndarray:
    if x.shape[0] != 1:
        raise InputError(f"this takes one image, got {x.shape[0]}")
    return x


@contextmanager
def _bar(total: int, label: str, unit: str, show: bool):
    from onnxprobe.progress import progress_bar

    bar = progress_bar(total, label, unit) if show and total else None
    try:
        yield (bar.update if bar is not None else (lambda n=1: None))
    finally:
        if bar is not None:
            bar.close()


def _bars(show: bool):
    """The `progress(total, label)` factory the maxact and atlas jobs take."""
    if not show:
        return None
    from onnxprobe.progress import progress_bar

    return lambda total, label: progress_bar(total, label, "img" if label.startswith("scan") else "unit")


class Model:
    """A loaded model (see `load`). `probe` is the library's `ProbeModel` underneath, for what the
    API does not cover; `asked_device` the device `load` was asked for ("auto" too: what the workers
    of a cluster job resolve for themselves)."""

    def __init__(self, probe: "ProbeModel", temporary: str | None = None, device: str | None = None):
        self.probe = probe
        self.asked_device = device or probe.device  # what `load` was asked for ("auto" too): the workers' device
        if temporary is not None:  # the copy of a model given as bytes goes with the object
            weakref.finalize(self, shutil.rmtree, temporary, True)

    # ---- what the model is --------------------------------------------------------------------
    @property
    def path(self) -> Path:
        """The model's file (a temporary copy for a model given as bytes or a ModelProto)."""
        return Path(self.probe.path)

    @property
    def labels(self) -> tuple[str, ...] | None:
        """Class names (the sidecar's `labels`), None when the model has none."""
        return self.probe.spec.labels

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the model's input."""
        return tuple(self.probe.spec.input_size)

    @property
    def layers(self) -> Layers:
        """The probeable layers, in graph order, each a `LayerInfo` (name, op, shape, units,
        receptive field, whether a gradient reaches the input); shown as a table."""
        return Layers(self.probe.layers)

    @property
    def device(self) -> str:
        """Where the model runs: "cpu" or "cuda" (what `load`'s "auto" chose)."""
        return self.probe.device

    @property
    def input_name(self) -> str:
        """The name of the model's image input."""
        return self.probe.input_name

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The input tensor's shape at batch 1, in the model's layout (N,C,H,W or N,H,W,C)."""
        return tuple(self.probe.input_shape)

    @property
    def class_output(self) -> str | None:
        """The name of the output that holds class scores (N, classes), None when the model has none."""
        return self.probe.class_output

    def display(self, x: np.ndarray) -> np.ndarray:
        """One input tensor (with or without its batch axis of 1) as the picture the model sees:
        HxWx3 uint8 RGB, the preprocessing undone."""
        x = np.asarray(x)
        return self.probe.spec.to_display(x[0] if x.ndim == len(self.probe.input_shape) else x)

    def summary(self) -> list[str]:
        """What `onnxprobe layers` prints above its table: the input (name, shape, layout,
        channels), where the layer shapes came from, the count of layers, how the batch axis
        is handled, and why there is no layer when there is none.

        >>> load("models/digits/digits-cnn.onnx", device="cpu").summary()[0]
        "models/digits/digits-cnn.onnx: input 'image' [1, 1, 28, 28] (NCHW, 1 channel(s)); shapes by inference; 11 layers"
        """
        from onnxprobe.errors import printable

        probe = self.probe
        lines = [f"{printable(probe.path)}: input '{printable(probe.input_name)}' {list(probe.input_shape)} "
                 f"({probe.spec.layout}, {probe.spec.channels} channel(s)); shapes by {probe.shape_source}; "
                 f"{len(probe.layers)} layers", probe.batch.describe()]
        if not probe.layers:
            lines.append(f"no probeable layer: {probe.why_no_layers()}")
        return lines

    def check_input(self, x: np.ndarray) -> np.ndarray:
        """`x` (a ready input tensor, (N, ...) or without the batch axis) checked against the
        model's input shape, as float32 with a batch axis (a wrong shape: a one-line InputError)."""
        return self.probe.check_input(x)

    def layer(self, name: str) -> "LayerInfo":
        """One layer by its ONNX tensor name (a wrong name: a ProbeError with suggestions)."""
        return self.probe.layer(name)

    @property
    def samples(self) -> list[Path]:
        """The sample images shipped in a `samples/` folder beside the model (empty when none)."""
        from onnxprobe.resources import sample_images

        return sample_images(self.path)

    def tensor(self, images: Images) -> np.ndarray:
        """The model's input batch (N, ...) float32 for one image or a list (see
        `onnxprobe.api.inputs`: paths, PIL images, RGB arrays; a 4-D array is taken as it is)."""
        return to_tensor(self.probe, images)

    def __repr__(self) -> str:
        shape = "x".join(str(d) for d in self.probe.input_shape[1:])
        return f"Model({self.path.name}, input {shape}, {len(self.probe.layers)} layers, {self.probe.device})"

    # ---- forward --------------------------------------------------------------------------------
    def predict(self, images: Images, top: int = 5) -> Predictions:
        """The `top` most likely classes of each image (softmax applied when the scores are not
        probabilities already).

        >>> model = load("models/digits/digits-cnn.onnx", device="cpu")
        >>> p = model.predict(["models/digits/samples/digit-3.png", "models/digits/samples/digit-7.png"], top=2)
        >>> p.labels, p.numpy().shape
        (['3', '7'], (2, 10))
        """
        from onnxprobe.model import softmax_if_needed, top_predictions

        if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
            raise ParameterError(f"{{top}} must be at least 1, got {top!r}", "top")
        k = int(top)
        output = self.probe.class_output
        if output is None:
            raise UsageError("the model has no class-score output (N, classes)")
        x = self.tensor(images)
        scores = self.probe.activations(x, [], with_outputs=True)[output].reshape(len(x), -1)
        probs = np.stack([softmax_if_needed(row) for row in scores])
        return Predictions(names_of(images), [top_predictions(row, self.labels, k) for row in scores], probs)

    def activations(self, images: Images, layers: str | Sequence[str] | None = None) -> Activations:
        """Activations of `layers` (one name, a list, or None: every layer) for one image or a
        list; shown as the toolbox's layer pane of the first image.

        >>> model = load("models/digits/digits-cnn.onnx", device="cpu")
        >>> acts = model.activations("models/digits/samples/digit-3.png", ["conv1", "relu2"])
        >>> acts.layers, acts["conv1"].shape
        (['conv1', 'relu2'], (1, 16, 28, 28))
        """
        x = self.tensor(images)
        names = [layers] if isinstance(layers, str) else layers
        names = [self.probe.layer(n).name for n in names] if names is not None else None
        values = self.probe.activations(x, names, with_outputs=False)
        order = names if names is not None else [layer.name for layer in self.probe.layers]
        return Activations(self.probe, {n: values[n] for n in order}, names_of(images))

    # ---- backward ---------------------------------------------------------------------------------
    def backprop(self, image: ImageLike, layer: str, unit: int, *, position=None, mode: str = "gradient",
                 filter: str = "raw") -> Map:
        """The toolbox's back map of one unit: the gradient ("gradient"), deconvnet ("deconv") or
        guided backprop ("guided") of unit `unit` of `layer` back to the input, drawn through a
        back filter ("raw", "gray", "norm", "normblur"). `position`: (Y, X), "max" (None: where the
        unit fires most on the image), "centre" or "mean" (the channel).

        >>> model = load("models/digits/digits-cnn.onnx", device="cpu")
        >>> m = model.backprop("models/digits/samples/digit-3.png", "logits", 3, mode="guided")
        >>> m.numpy().shape, m.image.shape  # the drawing upscaled for display, as the command writes it
        ((1, 28, 28), (224, 224, 3))
        """
        from onnxprobe.objectives import silence, unit_objective
        from onnxprobe.position import resolve
        from onnxprobe.render.backmaps import gradient_hwc, render_backmap

        probe = self.probe
        x = _one(self.tensor(image))
        info = probe.layer(layer)
        where, how = resolve(probe, info, unit, position, x)
        objective = unit_objective(probe, info, unit, "mean" if where is None else where)
        notes = [f"position {','.join(map(str, where))} of '{info.name}': {how}"] if info.is_spatial and where else []
        run = probe.gradient(x, objective, mode=mode)
        grad = run.input
        drawn = render_backmap(gradient_hwc(grad[0], probe.spec.layout), filter,
                               rgb_order=probe.spec.channel_order == "RGB")
        silent = silence(probe, objective, grad, f"the {mode} map", run.activations)
        return _map(grad[0], drawn, probe.spec.to_display(x[0]), f"{mode} of the {objective.description} ({filter} filter)",
                    notes, silent)

    def attribute(self, image: ImageLike, method: str = "gradcam", *, target: int | None = None,
                  layer: str | None = None, unit: int | None = None, position=None, overlay: bool = False,
                  **options: Any) -> Map:
        """An attribution map of one image: `method` is one of `onnxprobe.METHODS` (saliency,
        gradient_x_input, guided_backprop, deconvnet, gradcam, guided_gradcam,
        integrated_gradients, smoothgrad, occlusion). It explains the logit of class `target`
        (default: the predicted class) or unit `unit` of `layer` at `position` (None: where it
        fires most). `options` are the method's own (steps, rule, baseline, samples, noise_level,
        seed, window, stride, batch_size, cam_layer, interpolation: see `onnxprobe.attribution`).
        `overlay` draws the map over the image.

        >>> model = load("models/digits/digits-cnn.onnx", device="cpu")
        >>> m = model.attribute("models/digits/samples/digit-3.png", "integrated_gradients", steps=8)
        >>> m.numpy().shape
        (1, 28, 28)
        >>> print(m.title)
        integrated_gradients of the predicted class 3 (3), logit 'logits'
        """
        from onnxprobe.attribution import METHODS, attribute, make_objective, render_attribution
        from onnxprobe.objectives import silence
        from onnxprobe.position import resolve

        probe = self.probe
        x = _one(self.tensor(image))
        notes = []
        if layer is not None and unit is not None and target is None:
            info = probe.layer(layer)
            where, how = resolve(probe, info, unit, position, x)
            if info.is_spatial and where is not None:
                notes.append(f"position {','.join(map(str, where))} of '{info.name}': {how}")
            position = "mean" if where is None else where
        objective = make_objective(probe, x, target, layer, unit, position)
        values = attribute(probe, x, method, objective=objective, **options)
        drawn = render_attribution(probe, x, method, values, overlay=overlay)
        silent = silence(probe, objective, values, f"the {method} map", cause=METHODS[method].empty)
        return _map(values, drawn, probe.spec.to_display(x[0]), f"{method} of the {objective.description}", notes, silent)

    # ---- feature visualization ------------------------------------------------------------------------
    def render(self, objective: ObjectiveSpec | Sequence[ObjectiveSpec], *, preset: str | None = None,
               steps: int | None = None, batch: int | None = None, seed: int = 0, param: str | None = None,
               progress: bool = True) -> Pictures:
        """Feature visualization of a composable objective (`onnxprobe.channel`, `neuron`,
        `logit`, `direction`, `diversity`, `stack`, combined with `+`, `-`, `*`): `batch` images
        (a `stack`, or a list of objectives, renders one image per objective), each row drawing
        its randomness from (`seed`, row). `preset`: one of `onnxprobe.PRESETS` (None: the default,
        "lucid"; "maco", "lucid-fast", the paper's "set1".."set4"); `steps` overrides the preset's;
        `param`: "fft" or "pixel".

        >>> import onnxprobe
        >>> model = load("models/digits/digits-cnn.onnx", device="cpu")
        >>> pics = model.render(onnxprobe.logit(3) - 0.1 * onnxprobe.channel("conv2", 0), steps=16, progress=False)
        >>> pics.numpy().shape, pics.values[0] > pics.initial[0]
        ((1, 28, 28, 3), True)
        """
        from onnxprobe.api.params import render_settings
        from onnxprobe.optimize import Optimizer

        if not isinstance(objective, ObjectiveSpec):
            objective = stack(objective)
        rows = objective.rows
        if rows is not None and batch is not None and batch != rows:
            raise ParameterError(f"a stack of {rows} objectives renders {rows} images; leave out {{batch}} or give "
                                 f"{rows}", "batch")
        settings = render_settings(preset, steps, param, 1, seed, batch or rows or 1)
        bound = objective.bind(self.probe)
        opt = Optimizer(self.probe, bound, settings.preset, seed=settings.seed, batch=settings.batch)
        with _bar(settings.batch * settings.preset.steps, "render ", "img-steps", progress) as update:
            opt.run(on_step=lambda o: update(settings.batch))
        parts = objective.text.removeprefix("stack[").removesuffix("]").split(", ") if rows else None
        captions = [parts[i] if parts and len(parts) == rows else f"{objective.text} #{i}" for i in range(opt.batch)]
        inputs = opt.current_input(best=True)
        return Pictures(opt.images(best=True), captions, [float(v) for v in opt.best_activation],
                        [float(v) for v in opt.initial_activation], [np.asarray(i) for i in inputs])

    def render_plan(self, layer: str | None, units: Units, *, objective: str = "channel", position=None,
                    preset: str | None = None, steps: int | None = None, restarts: int = 1, seed: int = 0,
                    batch: int = 8, param: str | None = None, out: str | os.PathLike | None = None) -> "RenderPlan":
        """A feature-visualization job of units of one layer, checked and not yet run (what
        `render_units` and `render_into` run; `onnxprobe optimize` shows what it holds before it
        runs it). The arguments are `render_units`'s (`preset` None: `onnxprobe.api.params.DEFAULT_PRESET`);
        every value is checked here, the position against the first unit's objective, before any work.

        >>> model = load("models/digits/digits-cnn.onnx", device="cpu")
        >>> plan = model.render_plan("relu2", "0-2", objective="channel")
        >>> plan.units, plan.target  # the pre-activation input of the ReLU is what is optimized
        ([0, 1, 2], 'conv2')
        """
        from onnxprobe.api.params import render_settings
        from onnxprobe.objectives import by_kind, objective_layer

        settings = render_settings(preset, steps, param, restarts, seed, batch)
        info = objective_layer(self.probe, objective, layer)
        chosen = self._units(info, units)
        first = by_kind(self.probe, objective, info, chosen[0], position, pre_activation=True)  # a bad position: here
        if out is not None and os.path.lexists(out) and not os.path.isdir(out):  # (no OSError on a name too long)
            raise ParameterError(f"{{out_dir}} must be a folder, got the file {out}", "out_dir")
        return RenderPlan(self, info, chosen, settings, objective, position, first.targets[0], out)

    def render_units(self, layer: str | None, units: Units, *, objective: str = "channel", position=None,
                     preset: str | None = None, steps: int | None = None, restarts: int = 1, seed: int = 0,
                     batch: int = 8, param: str | None = None, out: str | os.PathLike | None = None,
                     fresh: bool = False, progress: bool = True) -> Pictures:
        """What units want to see: one image per (unit, restart) of `layer`, by `objective`
        "channel" (the channel's mean, the default), "neuron" (at `position`: (Y, X), "centre" or
        "mean") or "logit" (class scores; `layer` is not needed). `units`: an index, a list, a
        range, text ("0-15", "0,3,7") or "all". Settings: `preset` (None: the default, "lucid"),
        `steps` (None: the preset's), `param` ("fft" or "pixel"; None: the preset's), `restarts`
        per unit, `seed`, `batch` (rows optimised together). Each (unit, restart) draws its
        randomness from (`seed`, layer, unit, restart), so its image does not depend on `batch`.
        With `out` (a folder) the job is resumable as `onnxprobe optimize` is: finished units are
        kept there and read back (not rendered again) when the same call runs again (`fresh` redoes
        them), also after an interrupt.

        >>> model = load("models/digits/digits-cnn.onnx", device="cpu")
        >>> pics = model.render_units("relu2", [0, 1], steps=8, progress=False)
        >>> pics.captions, pics.numpy().shape
        (['relu2:0', 'relu2:1'], (2, 28, 28, 3))
        """
        plan = self.render_plan(layer, units, objective=objective, position=position, preset=preset, steps=steps,
                                restarts=restarts, seed=seed, batch=batch, param=param, out=out)
        rendered = plan.run(fresh=fresh, progress=progress)
        results = plan.every_result(rendered) if out is not None else rendered
        return self._pictures(results, plan.layer, objective, plan.folder)

    def render_classes(self, classes: Units, **options: Any) -> Pictures:
        """What classes look like to the network: `render_units` with objective "logit" (the class
        scores before the softmax), captioned with the class names. `options` as `render_units`."""
        return self.render_units(None, classes, objective="logit", **options)

    def render_into(self, out: str | os.PathLike, layer: str | None, units: Units, *, objective: str = "channel",
                    position=None, preset: str | None = None, steps: int | None = None, restarts: int = 1,
                    seed: int = 0, batch: int = 8, param: str | None = None, fresh: bool = False,
                    progress: bool = False, on_step=None) -> "Rendered":
        """The resumable form of `render_units` (what `onnxprobe optimize` runs), with its
        arguments: units finished in `out` by the same settings are kept, the others rendered and
        written unit by unit. `on_step(rows)` is called after each optimization step. Returns
        `Rendered(results, folder, kept)`: the library's UnitResults rendered now, the layer's
        folder, how many units were kept."""
        plan = self.render_plan(layer, units, objective=objective, position=position, preset=preset, steps=steps,
                                restarts=restarts, seed=seed, batch=batch, param=param, out=out)
        results = plan.run(fresh=fresh, progress=progress, on_step=on_step)
        return Rendered(results, plan.folder, len(plan.units) - len(results))

    def picture_from_photo(self, photo: ImageLike, kind: str = "accentuate", *, layer: str | None = None,
                           unit: int | None = None, objective: str = "neuron", position=None,
                           preset: str | None = None, steps: int | None = None, seed: int = 0,
                           closeness: float = 1.0) -> FromPhoto:
        """A picture made from a photo (`onnxprobe.optimize.photo`), by `kind`: "accentuate" (push
        unit `unit` of `layer`, by `objective` "neuron" (at `position`; None: where it fires most on
        the photo), "channel" or "logit" (a class: `layer` not needed), starting from the photo
        and staying close to it: `closeness` weighs the mean squared distance), "caricature"
        (amplify what `layer` sees in it) or "invert" (reconstruct it from `layer`'s activation
        alone). `preset` (None: "lucid", the engine these run on), `steps`, `seed` as `render_units`.

        >>> model = load("models/digits/digits-cnn.onnx", device="cpu")
        >>> pic = model.picture_from_photo("models/digits/samples/digit-3.png", unit=8, objective="logit", steps=4)
        >>> pic.numpy().shape, pic.value > pic.photo_value
        ((28, 28, 3), True)
        """
        from onnxprobe.objectives import logit_layer
        from onnxprobe.optimize.photo import picture_from_photo
        from onnxprobe.optimize.presets import PHOTO_PRESET
        from onnxprobe.position import check_unit

        image = as_bgr(photo)
        if unit is not None:
            if objective == "logit":
                check_unit(logit_layer(self.probe), unit)
            elif layer is None:
                raise ParameterError("{unit} needs {layer} (or {objective} logit)", "unit", "layer", "objective")
            else:
                check_unit(self.probe.layer(layer), unit)
        pic = picture_from_photo(self.probe, image, kind, layer=layer, unit=unit, objective=objective,
                                 position=position, preset=preset or PHOTO_PRESET, steps=steps, seed=seed,
                                 weight=closeness)
        return FromPhoto(pic)

    def _units(self, info, units: Units) -> list[int]:
        from onnxprobe.api.params import parse_units
        from onnxprobe.position import check_unit

        if isinstance(units, str):
            units = parse_units(units)
            if units == "all":
                return list(range(info.units))
        chosen = [units] if isinstance(units, (int, np.integer)) else list(units)
        if not chosen:
            raise ParameterError("{units} selects no unit", "units")
        return list(dict.fromkeys(check_unit(info, int(u)) for u in chosen))

    def _pictures(self, results, info, objective: str, folder) -> Pictures:
        labels = self.labels if objective == "logit" else None
        images, captions, values, initial, inputs = [], [], [], [], []
        for r in results:
            name = f"{r.unit} {labels[r.unit]}" if labels and r.unit < len(labels) else f"{info.name}:{r.unit}"
            for i, image in enumerate(r.images):
                images.append(image)
                captions.append(name if r.restarts == 1 else f"{name} r{i}")
                values.append(r.best_activation[i])
                initial.append(r.initial_activation[i])
                inputs.append(r.inputs[i])
        return Pictures(images, captions, values, initial, inputs, folder)

    # ---- datasets ----------------------------------------------------------------------------------------
    def top_k(self, data: str | os.PathLike, layers: str | Sequence[str], *, top: int = 9, by: str = "max",
              units: Units | None = None, out: str | os.PathLike | None = None, crops: bool = True,
              deconv: bool = False, fresh: bool = False, scheduler: str | None = None, batch_size: int = 32,
              shard_size: int = 256, every: int = 1, threads: int | None = None, ship_data: bool = False,
              ship_model: bool | None = None, progress: bool = True) -> TopK:
        """The `top` images of a dataset (a folder, searched recursively; a text file listing
        images; a video, of which every `every`-th frame is used) that excite each unit of
        `layers` most, ranked by the unit's spatial "max" or "mean", with the patches under its
        receptive field (`crops`; `deconv` adds their deconv and backprop maps and implies
        `crops`). `units`: draw the montages of these units only (the scan covers all). The job
        keeps its state in `out` (default: a new temporary folder): run again with the same `out`,
        it resumes from the shards (`shard_size` images each, `batch_size` per run of the model) it
        finished, also after an interrupt; `fresh` discards that state.
        `scheduler`: a Dask scheduler address to run on; `threads`: ONNX Runtime threads per
        session (on a cluster: per task; default: one per core here, 1 per task there);
        `ship_data`: send the images' bytes to the workers (no shared path); `ship_model`: send
        the model's bytes (default: only when some worker cannot read its file).
        """
        from onnxprobe.api.params import check_top_k
        from onnxprobe.maxact import run_maxact

        names = [layers] if isinstance(layers, str) else list(layers)
        check_top_k(names, top, by, batch_size, shard_size)
        names = [self.probe.layer(n).name for n in names]
        chosen = None if units is None else self._units(self.probe.layer(names[0]), units)
        if out is None:
            out = tempfile.mkdtemp(prefix="onnxprobe-topk-")
        with _stage():
            result = run_maxact(self.probe, data, names, top=top, by=by, out_dir=out, scheduler=scheduler,
                                crops=crops or deconv, deconv=deconv, batch_size=batch_size, shard_size=shard_size,
                                every=every, threads=threads, fresh=fresh, ship_data=ship_data, ship_model=ship_model,
                                units=chosen, progress=_bars(progress))
        return TopK(result, list(dict.fromkeys(names)), chosen)

    def atlas(self, layers: str | Sequence[str] | None, out: str | os.PathLike, *, data: str | os.PathLike | None = None,
              all_layers: bool = False, units: Units | None = None, position=None, preset: str | None = None,
              steps: int | None = None, restarts: int = 1, seed: int = 0, batch: int = 8, param: str | None = None,
              top: int = 9, scheduler: str | None = None, worker_device: str | None = None, threads: int | None = None,
              ship_model: bool | None = None, fresh: bool = False, progress: bool = True,
              photo_pictures: bool | Sequence[str | os.PathLike] = False) -> Atlas:
        """Render units of `layers` (or, with `all_layers` or `layers` None, every layer with a
        gradient path) into a static, browsable site in `out` (`Atlas.index`) and a manifest the
        viewer reads: each unit's optimized image (settings as `render_units`; `position` where
        each unit is optimized: (Y, X), "centre" (the default) or "mean"), and with `data` its
        top-`top` dataset patches and statistics. `units` (as `render_units`'s) are checked against
        the widest chosen layer and taken from each layer that has them. Resumable: finished units
        are kept in `out`, also after an interrupt (`fresh` deletes the atlas there first); another
        call adds layers or units to it. On a Dask `scheduler` the workers load the model on
        `worker_device` (default: the device `load` was asked for) with `threads` threads per task;
        `ship_model` as `top_k`'s. `photo_pictures`: True (the model's sample photos) or photo
        paths: each unit accentuated on each photo, each layer's caricature and inversion of it (as
        `picture_from_photo` draws them; costly, see docs/atlas.md)."""
        from onnxprobe.api.params import render_settings
        from onnxprobe.atlas import build_atlas, choose_layers

        settings = render_settings(preset, steps, param, restarts, seed, batch)
        names = [layers] if isinstance(layers, str) else (None if layers is None else list(layers))
        names = choose_layers(self.probe, names, all_layers or names is None)
        chosen = None
        if units is not None:
            chosen = self._units(max((self.probe.layer(n) for n in names), key=lambda layer: layer.units), units)
        with _stage():
            result = build_atlas(self.probe, names, out, data, settings=settings, units=chosen, top=top,
                                 scheduler=scheduler, device=worker_device or self.asked_device, threads=threads,
                                 ship_model=ship_model, fresh=fresh, position=position, progress=_bars(progress),
                                 photo_pictures=photo_pictures)
        return Atlas(result)

    # ---- the demo report --------------------------------------------------------------------------------------
    def demo(self, images: Sequence[str | os.PathLike] | None = None, out: str | os.PathLike = "onnxprobe-out", *,
             steps: int | None = None, classes: int | None = None, say=None, warn=None) -> "DemoReport":
        """The toolbox's main job, headless, written as pictures into the folder `out` (what
        `onnxprobe demo` writes): for each of `images` (files; default: the model's sample images)
        its top-5 predictions, activation grids (every layer of a small model, one per stage of a
        larger one), Grad-CAM and guided backprop of the predicted class; then what the first
        `classes` (None: 4) distinct predicted classes look like to the network (`steps` steps of
        the maco preset, None: 64; 0: none). Writes index.html, summary.png and demo.json (`DemoReport`).
        `say(line)` hears the progress lines and `warn(line)` the warnings (a map without signal,
        NaN activations); both silent by default.

        >>> model = load("models/digits/digits-cnn.onnx", device="cpu")
        >>> import tempfile
        >>> report = model.demo(model.samples[:2], tempfile.mkdtemp(), steps=0)
        >>> [r["top5"][0]["label"] for r in report.results], report.index.name
        (['0', '1'], 'index.html')
        """
        from onnxprobe.api.demo import DEFAULT_CLASSES, DEFAULT_STEPS, demo_report

        with _stage():
            return demo_report(self, self.samples if images is None else images, out,
                               steps=DEFAULT_STEPS if steps is None else steps,
                               classes=DEFAULT_CLASSES if classes is None else classes, say=say, warn=warn)

    # ---- the live viewer ------------------------------------------------------------------------------------
    def view(self, images: str | os.PathLike | Sequence[str | os.PathLike] | None = None, *,
             image: str | os.PathLike | None = None, camera: int | None = None, video: str | os.PathLike | None = None,
             atlas: str | os.PathLike | Atlas | None = None, save_dir: str | os.PathLike = "onnxprobe-snapshots",
             quit_after: float | None = None, screenshot: str | os.PathLike | None = None, keys: str = "",
             words: dict[str, str] | None = None) -> int:
        """Open the live viewer window on this model and wait until it is closed (it needs a
        display). Source, one of: `images` (a folder, or a list of files; default: the model's
        sample images, else camera 0), `image` (one file), `camera` (an index) or `video` (a file,
        looped). `atlas`: unit visuals from `atlas` (an `Atlas` or its folder); key `p` saves the
        panes into `save_dir`. `quit_after` seconds closes it (after typing `keys` and saving a
        `screenshot`), for scripted runs. `words`: how the viewer's hints name its inputs
        ("atlas", "files"; default: these parameter names)."""
        if images is None and image is None and camera is None and video is None and self.samples:
            images = self.samples
        if isinstance(images, (str, os.PathLike)) and Path(images).is_file():  # one file given as images
            images, image = None, images
        source, found = _viewer_inputs(images, image, camera, video, atlas, quit_after, screenshot, keys)
        return _open_viewer(self.probe, source, found, camera, save_dir, quit_after, screenshot, keys, words)


@dataclass
class Rendered:
    """What `Model.render_into` returns (it unpacks as `results, folder, kept`): `results` the
    library's UnitResults rendered now, in unit order; `folder` the layer's folder in the output
    folder; `kept` how many of the units were finished there already (not rendered again)."""

    results: list
    folder: Path
    kept: int

    def __iter__(self):
        return iter((self.results, self.folder, self.kept))


class RenderPlan:
    """A checked feature-visualization job (`Model.render_plan`): `layer` (the LayerInfo whose
    units are rendered), `units`, `target` (the tensor optimized: a ReLU-like layer's input, its
    pre-activation, where the unit would pass no gradient while off), `settings` (the library's
    RenderSettings), `folder` (the layer's folder in `out`, None without one)."""

    def __init__(self, model: Model, layer, units: list[int], settings, objective: str, position, target: str,
                 out: str | os.PathLike | None):
        self.model, self.layer, self.units, self.settings = model, layer, units, settings
        self.objective, self.position, self.target = objective, position, target
        self.out = None if out is None else Path(out)
        self.store = self.job = self.folder = None
        if self.out is not None:
            from onnxprobe.optimize.store import UnitStore, job_key, optimize_job

            self.job = optimize_job(model.probe, layer.name, objective, position, settings)  # its key: what resumes
            self.store = UnitStore(self.out, job_key(self.job))
            self.folder = self.store.folder(layer.name)

    def pending(self, fresh: bool = False) -> list[int]:
        """The units a run renders: all of them, or (with `out`, unless `fresh`) those not finished there."""
        return list(self.units) if fresh or self.store is None else self.store.pending(self.layer.name, self.units)

    def run(self, *, fresh: bool = False, progress: bool = True, on_start=None, on_step=None) -> list:
        """Render the pending units; returns their UnitResults (the library's: `unit`, `images`,
        `inputs`, `initial_activation`, `best_activation` per restart, `seconds`). With `out`, each
        unit is written as it finishes, one run per folder at a time (a second is refused);
        `on_start(kept)` is called once the folder is held, with the units kept from an earlier
        run. `progress`: a bar of image-steps; `on_step(rows)` after each step."""
        from onnxprobe.optimize import render_units
        from onnxprobe.optimize.store import render_into

        probe, name, settings = self.model.probe, self.layer.name, self.settings

        def render(units, update):
            def step(rows):
                update(rows)
                if on_step is not None:
                    on_step(rows)

            if self.store is None:
                return render_units(probe, name, units, settings, objective=self.objective, position=self.position,
                                    on_step=step)
            return render_into(self.store, probe, name, units, settings, self.job, objective=self.objective,
                               position=self.position, on_step=step)

        if self.out is None:
            pending = self.pending(fresh)
            if on_start is not None:
                on_start([])
            with _bar(len(pending) * settings.restarts * settings.preset.steps, f"{name} ", "img-steps",
                      progress) as update:
                return render(pending, update)
        from onnxprobe.fsutil import make_output_folder, output_lock

        make_output_folder(self.out)
        with output_lock(self.out), _stage():  # an interrupt keeps the finished units only
            pending = self.pending(fresh)
            if on_start is not None:
                on_start([u for u in self.units if u not in pending])
            with _bar(len(pending) * settings.restarts * settings.preset.steps, f"{name} ", "img-steps",
                      progress) as update:
                return render(pending, update)

    def every_result(self, rendered: list) -> list:
        """Every unit's UnitResult in `units` order: those in `rendered` and those kept in `out`."""
        from onnxprobe.optimize.store import read_result

        now = {r.unit: r for r in rendered}
        return [now[u] if u in now else read_result(self.store, self.layer.name, u) for u in self.units]

    def why_unmoved(self, unit: int, what: str = "the image gradient") -> str:
        """The line saying why the objective of `unit` did not move: no gradient (`what`) reached
        the image, and the likely cause (`onnxprobe.objectives.silence`)."""
        from onnxprobe.objectives import by_kind, silence

        objective = by_kind(self.model.probe, self.objective, self.layer, unit, self.position, pre_activation=True)
        return silence(self.model.probe, objective, np.zeros(1), what)


@contextmanager
def _stage():
    """The caller's staged output when there is one (the command line's, which commits when the
    command succeeds), else one of our own: an error or interrupt leaves no half-written file."""
    from onnxprobe.fsutil import current_stage, staged

    if current_stage() is not None:
        yield
        return
    with staged():
        yield


def _viewer_inputs(images, image, camera, video, atlas, quit_after, screenshot, keys):
    """The viewer's source and atlas, checked (before a model is loaded: a bad path fails at once)."""
    from onnxprobe.viewer.sources import CameraSource, ImageFilesSource, check_video

    if not display_available():
        raise UsageError("no display: set DISPLAY or WAYLAND_DISPLAY, or QT_QPA_PLATFORM=offscreen")
    if (screenshot or keys) and quit_after is None:
        raise ParameterError("{screenshot} and {keys} need {quit_after}", "screenshot", "keys", "quit_after")
    if quit_after is not None and quit_after <= 0:
        raise ParameterError("{quit_after} must be positive", "quit_after")
    if sum(s is not None for s in (images, image, camera, video)) > 1:
        raise ParameterError("give one source: {images}, {image}, {camera} or {video}", "images", "image", "camera",
                             "video")
    if video is not None:
        source = check_video(video)
    elif isinstance(images, (list, tuple)):
        source = ImageFilesSource([Path(p) for p in images], Path(images[0]).parent.name)
    elif images is not None:
        source = ImageFilesSource.folder(images)
    elif image is not None:
        source = ImageFilesSource.single(image)
    else:
        if camera is not None and camera < 0:
            raise ParameterError("{camera} takes a camera index (0, 1, ...)", "camera")
        source = CameraSource(camera or 0)
    found = None
    if atlas is not None:
        from onnxprobe.viewer.atlas_source import AtlasSource

        found = AtlasSource(atlas.folder if isinstance(atlas, Atlas) else atlas)
    return source, found


def _open_viewer(probe, source, atlas, camera, save_dir, quit_after, screenshot, keys, words) -> int:
    from onnxprobe.viewer.controller import Viewer
    from onnxprobe.viewer.qt.app import run_window

    viewer = Viewer(probe, source, atlas=atlas, camera_index=camera or 0, save_dir=save_dir, words=words)
    return run_window(viewer, quit_after=quit_after, screenshot=screenshot, keys=keys)


def view(model: str | os.PathLike | None = None, images: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
         *, image: str | os.PathLike | None = None, camera: int | None = None, video: str | os.PathLike | None = None,
         atlas: str | os.PathLike | Atlas | None = None, save_dir: str | os.PathLike = "onnxprobe-snapshots",
         quit_after: float | None = None, screenshot: str | os.PathLike | None = None, keys: str = "",
         words: dict[str, str] | None = None, input_shape: Sequence[int] | str | None = None, device: str = "auto",
         **preprocess: Any) -> int:
    """`Model.view` from a model file (None: the bundled ImageNet network, on its sample photos
    unless a source is given), as `onnxprobe view` opens it: the source and the atlas are checked
    before the model is loaded (a bad path fails at once), and the model is loaded with
    ONNX Runtime threads on every core but one (the rest are the window's and the grabber's).
    The other arguments are `load`'s and `Model.view`'s."""
    from onnxprobe.resources import default_model, sample_images
    from onnxprobe.viewer.workers import inference_threads

    if model is None:
        model = default_model()
        if images is None and image is None and camera is None and video is None:
            samples = sample_images(model)
            images = str(samples[0].parent) if samples else None
    source, found = _viewer_inputs(images, image, camera, video, atlas, quit_after, screenshot, keys)
    loaded = load(model, input_shape=input_shape, device=device, threads=inference_threads(), **preprocess)
    return _open_viewer(loaded.probe, source, found, camera, save_dir, quit_after, screenshot, keys, words)


def display_available() -> bool:
    """Whether a window can open: a display (X11, Wayland) or Qt's offscreen platform."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                or os.environ.get("QT_QPA_PLATFORM", "").startswith("offscreen"))
