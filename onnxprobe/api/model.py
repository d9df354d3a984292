"""`load` and `Model`: onnxprobe from Python, one method per thing the toolbox shows.

The methods compose the library's own pieces (`model.ProbeModel`, `attribution.attribute`,
`optimize.render_units`, `maxact.run_maxact`, `atlas.build_atlas`, the viewer); the command line
calls the same methods, so the two cannot drift. Errors are `onnxprobe.ProbeError`s with one line
in the library's words (a bad value names its parameter: `ParameterError`).

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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxprobe.api.inputs import Images, ImageLike, names_of, to_tensor
from onnxprobe.api.objectives import ObjectiveSpec, stack
from onnxprobe.api.results import Activations, Atlas, Layers, Map, Pictures, Predictions, TopK
from onnxprobe.errors import InputError, ParameterError, UsageError

if TYPE_CHECKING:
    import onnx

    from onnxprobe.graph.layers import LayerInfo
    from onnxprobe.model import ProbeModel

__all__ = ["Model", "load"]

Units = int | Iterable[int] | str


def load(model: str | os.PathLike | bytes | onnx.ModelProto | None = None, *, input_shape: Sequence[int] | None = None,
         device: str = "auto", threads: int | None = None, memory_budget: str | int | None = None,
         **preprocess: Any) -> "Model":
    """Open a model: a path to an ONNX file, the file's bytes, or an `onnx.ModelProto`; None is the
    bundled ImageNet network (MobileNetV2, 1,000 classes; `onnxprobe.resources.default_model()`).

    `preprocess`: the sidecar's keys as keywords (`input_size`, `layout`, `channels`,
    `channel_order`, `value_range`, `mean`, `std`, `labels` (a file or a list of names),
    `resize`, `invert`); they override a sidecar file next to the model and the model's metadata.
    `input_shape` fixes dynamic height and width (N,C,H,W); `device` is "auto" (CUDA when usable),
    "cpu" or "cuda"; `threads` fixes ONNX Runtime's thread count. `memory_budget`: what batched work
    (render, attribute, top_k, atlas) may hold at once, a size such as "4G" or bytes (None: half the
    memory there is, the GPU's free memory on CUDA; onnxprobe.budget); internal batches are cut to fit.

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

    keep = None
    if model is None:
        from onnxprobe.resources import default_model

        model = default_model()
    if isinstance(model, (bytes, bytearray)) or type(model).__name__ == "ModelProto":
        keep = tempfile.mkdtemp(prefix="onnxprobe-model-")  # the library reads files: one of its own
        path = Path(keep) / "model.onnx"
        if isinstance(model, (bytes, bytearray)):
            path.write_bytes(bytes(model))
        else:  # weights over protobuf's 2 GB limit go to a file beside it, as the exporters write them
            import onnx

            onnx.save_model(model, str(path), save_as_external_data=model.ByteSize() > 2_000_000_000)
        model = path
    elif not isinstance(model, (str, os.PathLike)):
        raise InputError(f"a model is a file path, bytes or an onnx.ModelProto, got {type(model).__name__}")
    probe = ProbeModel.load(model, input_shape=input_shape, device=device, preprocess=preprocess, threads=threads,
                            memory_budget=memory_budget)
    return Model(probe, temporary=keep)


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
    API does not cover."""

    def __init__(self, probe: "ProbeModel", temporary: str | None = None):
        self.probe = probe
        if temporary is not None:  # the copy of a model given as bytes goes with the object
            weakref.finalize(self, shutil.rmtree, temporary, True)

    # ---- what the model is --------------------------------------------------------------------
    @property
    def path(self) -> Path:
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
    def render(self, objective: ObjectiveSpec | Sequence[ObjectiveSpec], *, preset: str = "lucid",
               steps: int | None = None, batch: int | None = None, seed: int = 0, param: str | None = None,
               progress: bool = True) -> Pictures:
        """Feature visualization of a composable objective (`onnxprobe.channel`, `neuron`,
        `logit`, `direction`, `diversity`, `stack`, combined with `+`, `-`, `*`): `batch` images
        (a `stack`, or a list of objectives, renders one image per objective), each row drawing
        its randomness from (`seed`, row). `preset`: "lucid" (the default), "lucid-fast" or the
        paper's "set1".."set4"; `steps` overrides the preset's; `param`: "fft" or "pixel".

        >>> import onnxprobe
        >>> model = load("models/digits/digits-cnn.onnx", device="cpu")
        >>> pics = model.render(onnxprobe.logit(3) - 0.1 * onnxprobe.channel("conv2", 0), steps=16, progress=False)
        >>> pics.numpy().shape, pics.values[0] > pics.initial[0]
        ((1, 28, 28, 3), True)
        """
        from onnxprobe.optimize import Optimizer, RenderSettings

        if not isinstance(objective, ObjectiveSpec):
            objective = stack(objective)
        rows = objective.rows
        if rows is not None and batch is not None and batch != rows:
            raise ParameterError(f"a stack of {rows} objectives renders {rows} images; leave out {{batch}} or give "
                                 f"{rows}", "batch")
        settings = RenderSettings.resolve(preset, steps, param, 1, seed, batch or rows or 1)
        bound = objective.bind(self.probe)
        opt = Optimizer(self.probe, bound, settings.preset, seed=settings.seed, batch=settings.batch)
        with _bar(settings.batch * settings.preset.steps, "render ", "img-steps", progress) as update:
            opt.run(on_step=lambda o: update(settings.batch))
        parts = objective.text.removeprefix("stack[").removesuffix("]").split(", ") if rows else None
        captions = [parts[i] if parts and len(parts) == rows else f"{objective.text} #{i}" for i in range(opt.batch)]
        inputs = opt.current_input(best=True)
        return Pictures(opt.images(best=True), captions, [float(v) for v in opt.best_activation],
                        [float(v) for v in opt.initial_activation], [np.asarray(i) for i in inputs])

    def render_units(self, layer: str | None, units: Units, *, objective: str = "channel", position=None,
                     preset: str = "lucid", steps: int | None = None, restarts: int = 1, seed: int = 0,
                     batch: int = 8, param: str | None = None, out: str | os.PathLike | None = None,
                     fresh: bool = False, progress: bool = True) -> Pictures:
        """What units want to see: one image per (unit, restart) of `layer`, by `objective`
        "channel" (the channel's mean, the default), "neuron" (at `position`: (Y, X), "centre" or
        "mean") or "logit" (class scores; `layer` is not needed). `units`: an index, a list, a
        range, or "all". Each (unit, restart) draws its randomness from (`seed`, layer, unit,
        restart), so its image does not depend on `batch`. With `out` (a folder) the job is
        resumable as `onnxprobe optimize` is: finished units are kept there and read back (not
        rendered again) when the same call runs again (`fresh` redoes them), also after an
        interrupt.

        >>> model = load("models/digits/digits-cnn.onnx", device="cpu")
        >>> pics = model.render_units("relu2", [0, 1], steps=8, progress=False)
        >>> pics.captions, pics.numpy().shape
        (['relu2:0', 'relu2:1'], (2, 28, 28, 3))
        """
        from onnxprobe.objectives import by_kind, objective_layer
        from onnxprobe.optimize import RenderSettings, render_units

        settings = RenderSettings.resolve(preset, steps, param, restarts, seed, batch)
        info = objective_layer(self.probe, objective, layer)
        chosen = self._units(info, units)
        by_kind(self.probe, objective, info, chosen[0], position, pre_activation=True)  # a bad position: before work
        total = len(chosen) * settings.restarts * settings.preset.steps
        folder = None
        with _bar(total, f"{info.name} ", "img-steps", progress) as update:
            if out is None:
                results = render_units(self.probe, info.name, chosen, settings, objective=objective, position=position,
                                       on_step=update)
            else:
                results, folder, _ = self.render_into(out, info.name, chosen, settings, objective=objective,
                                                      position=position, fresh=fresh, on_step=update)
                results = self._with_kept(out, info.name, chosen, results, objective, position, settings)
        return self._pictures(results, info, objective, folder)

    def render_classes(self, classes: Units, **options: Any) -> Pictures:
        """What classes look like to the network: `render_units` with objective "logit" (the class
        scores before the softmax), captioned with the class names. `options` as `render_units`."""
        return self.render_units(None, classes, objective="logit", **options)

    def render_into(self, out, layer: str, units: list[int], settings, *, objective: str = "channel", position=None,
                    fresh: bool = False, on_step=None):
        """The resumable form of `render_units` (what `onnxprobe optimize` runs): units finished in
        `out` by the same settings are kept, the others rendered and written unit by unit. Returns
        (the UnitResults rendered now, the layer's folder, how many were kept)."""
        from onnxprobe.fsutil import make_output_folder, output_lock, staged
        from onnxprobe.optimize.store import UnitStore, job_key, optimize_job, render_into

        out = Path(out)
        if os.path.lexists(out) and not os.path.isdir(out):
            raise ParameterError(f"{{out_dir}} must be a folder, got the file {out}", "out_dir")
        job = optimize_job(self.probe, layer, objective, position, settings)
        store = UnitStore(out, job_key(job))
        pending = units if fresh else store.pending(layer, units)
        make_output_folder(out)
        with output_lock(out), staged():  # one run per folder; an interrupt keeps the finished units only
            results = render_into(store, self.probe, layer, pending, settings, job, objective=objective,
                                  position=position, on_step=on_step)
        return results, store.folder(layer), len(units) - len(pending)

    def _with_kept(self, out, layer: str, units: list[int], rendered, objective, position, settings) -> list:
        """Every unit's result in `units` order: the ones rendered now and those kept in `out`."""
        from onnxprobe.optimize.store import UnitStore, job_key, optimize_job, read_result

        now = {r.unit: r for r in rendered}
        store = UnitStore(out, job_key(optimize_job(self.probe, layer, objective, position, settings)))
        return [now[u] if u in now else read_result(store, layer, u) for u in units]

    def _units(self, info, units: Units) -> list[int]:
        from onnxprobe.position import check_unit

        if isinstance(units, str):
            if units != "all":
                raise ParameterError(f"{{units}} is an index, a list, a range or 'all', got {units!r}", "units")
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
              shard_size: int = 256, progress: bool = True) -> TopK:
        """The `top` images of a dataset (a folder, searched recursively; a text file listing
        images; a video) that excite each unit of `layers` most, ranked by the unit's spatial
        "max" or "mean", with the patches under its receptive field (`crops`; `deconv` adds their
        deconv and backprop maps). `units`: draw the montages of these units only (the scan covers
        all). The job keeps its state in `out` (default: a new temporary folder): run again with
        the same `out`, it resumes from the shards (`shard_size` images each) it finished, also
        after an interrupt.
        `scheduler`: a Dask scheduler address to run on.
        """
        from onnxprobe.fsutil import staged
        from onnxprobe.maxact import run_maxact

        names = [layers] if isinstance(layers, str) else list(layers)
        names = [self.probe.layer(n).name for n in names]
        chosen = None if units is None else self._units(self.probe.layer(names[0]), units)
        if out is None:
            out = tempfile.mkdtemp(prefix="onnxprobe-topk-")
        with staged():
            result = run_maxact(self.probe, data, names, top=top, by=by, out_dir=out, scheduler=scheduler,
                                crops=crops or deconv, deconv=deconv, batch_size=batch_size, shard_size=shard_size, fresh=fresh,
                                units=chosen, progress=_bars(progress))
        return TopK(result, names, chosen)

    def atlas(self, layers: str | Sequence[str] | None, out: str | os.PathLike, *, data: str | os.PathLike | None = None,
              units: Units | None = None, position=None, preset: str = "lucid", steps: int | None = None,
              restarts: int = 1, seed: int = 0, batch: int = 8, param: str | None = None, top: int = 9,
              scheduler: str | None = None, fresh: bool = False, progress: bool = True,
              photo_pictures: bool | Sequence[str | os.PathLike] = False) -> Atlas:
        """Render units of `layers` (None: every layer with a gradient path) into a static,
        browsable site in `out` (`Atlas.index`) and a manifest the viewer reads: each unit's
        optimized image (settings as `render_units`; `position` where each unit is optimized),
        and with `data` its top-`top` dataset patches and statistics. `photo_pictures`: True (the
        model's sample photos) or photo paths: each unit accentuated on each photo, each layer's
        caricature and inversion of it (as `picture_from_photo` draws them; costly, see
        docs/atlas.md). Resumable: finished units are kept in `out`, also after an interrupt;
        another call adds layers or units to it."""
        from onnxprobe.atlas import build_atlas
        from onnxprobe.fsutil import staged
        from onnxprobe.optimize import RenderSettings

        settings = RenderSettings.resolve(preset, steps, param, restarts, seed, batch)
        names = [layers] if isinstance(layers, str) else (None if layers is None else list(layers))
        chosen = None
        if units is not None:
            widest = max((self.probe.layer(n) for n in names or [l.name for l in self.probe.layers]),
                         key=lambda layer: layer.units)
            chosen = self._units(widest, units)
        with staged():
            result = build_atlas(self.probe, names, out, data, all_layers=names is None, settings=settings,
                                 units=chosen, top=top, scheduler=scheduler, fresh=fresh, position=position,
                                 progress=_bars(progress), photo_pictures=photo_pictures)
        return Atlas(result)

    # ---- the live viewer ------------------------------------------------------------------------------------
    def view(self, images: str | os.PathLike | Sequence[str | os.PathLike] | None = None, *, camera: int | None = None,
             video: str | os.PathLike | None = None, atlas: str | os.PathLike | Atlas | None = None,
             save_dir: str | os.PathLike = "onnxprobe-snapshots", quit_after: float | None = None,
             screenshot: str | os.PathLike | None = None, keys: str = "") -> int:
        """Open the live viewer window on this model and wait until it is closed (it needs a
        display). Source: `images` (a folder, one file or a list of files; default: the model's
        sample images, else camera 0), `camera` (an index) or `video` (a file). `atlas`: unit
        visuals from `atlas` (an `Atlas` or its folder); key `p` saves the panes into `save_dir`. `quit_after` seconds closes it (after
        typing `keys` and saving a `screenshot`), for scripted runs."""
        from onnxprobe.viewer.sources import CameraSource, ImageFilesSource, check_video

        if not display_available():
            raise UsageError("no display: set DISPLAY or WAYLAND_DISPLAY, or QT_QPA_PLATFORM=offscreen")
        given = [s for s in (images, camera, video) if s is not None]
        if len(given) > 1:
            raise UsageError("give one source: images, camera or video")
        if video is not None:
            source = check_video(video)
        elif camera is not None:
            source = CameraSource(int(camera))
        else:
            if images is None and self.samples:
                images = self.samples
            if images is None:
                source = CameraSource(0)
            elif isinstance(images, (list, tuple)):
                source = ImageFilesSource([Path(p) for p in images], Path(images[0]).parent.name)
            elif Path(images).is_dir():
                source = ImageFilesSource.folder(images)
            else:
                source = ImageFilesSource.single(images)
        found = None
        if atlas is not None:
            from onnxprobe.viewer.atlas_source import AtlasSource

            found = AtlasSource(atlas.folder if isinstance(atlas, Atlas) else atlas)
        from onnxprobe.viewer.controller import Viewer
        from onnxprobe.viewer.qt.app import run_window

        viewer = Viewer(self.probe, source, atlas=found, camera_index=camera or 0, save_dir=save_dir)
        return run_window(viewer, quit_after=quit_after, screenshot=screenshot, keys=keys)


def display_available() -> bool:
    """Whether a window can open: a display (X11, Wayland) or Qt's offscreen platform."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                or os.environ.get("QT_QPA_PLATFORM", "").startswith("offscreen"))
