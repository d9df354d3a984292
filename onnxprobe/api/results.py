"""What the notebook API returns: values a notebook shows.

Every result has `.numpy()` (its numbers), `.picture()` (HxWx3 uint8 RGB: what Jupyter shows, via
`_repr_png_`, or inside `_repr_html_`) and `.save(path)` (that picture as a PNG file, written
atomically; `.npy` saves `.numpy()` instead).
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Activations", "Atlas", "FromPhoto", "Layers", "Map", "Pictures", "Predictions", "Result", "TopK", "save_array",
           "save_picture"]

TILE = 160  # the width pictures are shown at in strips


def save_picture(path: str | Path, image: np.ndarray) -> Path:
    """`image` (HxWx3 uint8 RGB, or gray) written atomically as an image file (PNG, or what the
    suffix names), whatever the suffix; the path written. What every result's `save` uses."""
    from onnxprobe.render.images import write_png

    return write_png(path, image)


def save_array(path: str | Path, array) -> Path:
    """`array` written atomically as .npy at `path`; the path written."""
    from onnxprobe.fsutil import atomic_save_npy

    return atomic_save_npy(path, np.asarray(array))


class Result:
    """The shared behaviour: `_repr_png_`, `save`."""

    def picture(self) -> np.ndarray:  # pragma: no cover - every result defines it
        raise NotImplementedError

    def numpy(self):  # pragma: no cover
        raise NotImplementedError

    def _repr_png_(self) -> bytes:
        from onnxprobe.render.images import encode_png

        return encode_png(self.picture())

    def save(self, path: str | Path) -> Path:
        """Write the picture as PNG (any other image suffix OpenCV knows), or `.numpy()` when
        `path` ends in `.npy`. Returns the path."""
        path = Path(path)
        if path.suffix.lower() == ".npy":
            return save_array(path, self.numpy())
        return save_picture(path, self.picture())


def nonfinite_names(arrays: dict) -> list[str]:
    """The names of the float arrays in `arrays` that hold NaN or infinities."""
    return [name for name, value in arrays.items()
            if np.issubdtype(np.asarray(value).dtype, np.floating) and not np.isfinite(value).all()]


def nonfinite_line(bad: list[str], what: str) -> str | None:
    """The one warning line for arrays (`bad`: their names) of `what` that hold NaN or infinities;
    None when there is none. The outputs are still written: files say null where JSON cannot hold
    the value."""
    from onnxprobe.errors import printable

    if not bad:
        return None
    listed = ", ".join(printable(name) for name in bad[:4]) + (f" and {len(bad) - 4} more" if len(bad) > 4 else "")
    return f"NaN or infinite values in {what} ({listed}); check the model's weights and the preprocessing"


def _png_tag(image: np.ndarray) -> str:
    from onnxprobe.render.images import encode_png

    return f'<img src="data:image/png;base64,{base64.b64encode(encode_png(image)).decode()}">'


def _strip(images: list[np.ndarray], captions: list[str], width: int | None = None, columns: int = 8) -> np.ndarray:
    """Captioned tiles, `columns` to a row, `width` pixels wide (default: the images' own width,
    between TILE and 224)."""
    from onnxprobe.render.compose import caption, column, row
    from onnxprobe.render.images import upscale

    width = width or max(TILE, min(224, max(im.shape[1] for im in images)))
    tiles = [caption(upscale(im, width), text, width) for im, text in zip(images, captions)]
    rows = [row(tiles[i:i + columns]) for i in range(0, len(tiles), columns)]
    return column(rows) if len(rows) > 1 else rows[0]


# ---- layers --------------------------------------------------------------------------------------

class Layers(list):
    """The model's probeable layers (`LayerInfo`s, in graph order), shown as a table."""

    def __getitem__(self, index):
        found = super().__getitem__(index)
        return Layers(found) if isinstance(index, slice) else found

    def names(self) -> list[str]:
        return [layer.name for layer in self]

    def __repr__(self) -> str:
        return f"Layers({len(self)}: {', '.join(self.names()[:6])}{', ...' if len(self) > 6 else ''})"

    def json(self) -> str:
        """The layers as a strict JSON list (non-finite numbers as null), one layer a line: what
        `onnxprobe layers --json` prints (each `LayerInfo.to_json()`)."""
        from onnxprobe.fsutil import json_text

        return "[\n" + ",\n".join(json_text(layer.to_json(), indent=None) for layer in self) + "\n]"

    def numpy(self) -> np.ndarray:
        """The unit count of each layer."""
        return np.array([layer.units for layer in self])

    def _repr_html_(self) -> str:
        modules = any(layer.module_path for layer in self)  # where the file records them
        rows = []
        for layer in self:
            shape = "x".join("N" if d is None else str(d) for d in layer.shape)
            rf = layer.receptive_field
            field_text = "" if rf is None else "x".join(f"{v:g}" for v in rf.size)
            module = f"<td>{html.escape(layer.module_path or '')}</td>" if modules else ""
            rows.append(f"<tr><td><code>{html.escape(layer.name)}</code></td>{module}<td>{html.escape(layer.op)}</td>"
                        f"<td>{shape}</td><td>{layer.units}</td><td>{field_text}</td>"
                        f"<td>{'' if layer.differentiable is not False else 'no'}</td></tr>")
        return ("<table><tr><th>layer</th>" + ("<th>module</th>" if modules else "") + "<th>op</th><th>shape</th>"
                "<th>units</th><th>receptive field</th><th>gradient</th></tr>" + "".join(rows) + "</table>")


# ---- predictions -----------------------------------------------------------------------------------

@dataclass
class Predictions(Result):
    """The top classes of each image: `top[i]` is [Prediction(cls, label, score), ...] best first
    (`onnxprobe.model.top_predictions`); `probabilities` (N, classes) the model's scores as
    probabilities (softmax when they are not)."""

    names: list[str]
    top: list[list]
    probabilities: np.ndarray

    @property
    def labels(self) -> list[str]:
        """The top-1 label of each image."""
        return [t[0].label if t else "" for t in self.top]

    @property
    def classes(self) -> list[list[int]]:
        """The class indices of `top`, per image."""
        return [[p.cls for p in t] for t in self.top]

    def numpy(self) -> np.ndarray:
        return self.probabilities

    def picture(self) -> np.ndarray:
        from onnxprobe.render.compose import caption, predictions_image, row

        return row([caption(predictions_image(t, width=260), name, 260) for name, t in zip(self.names, self.top)])

    def _repr_html_(self) -> str:
        cells = []
        for name, top in zip(self.names, self.top):
            lines = "".join(f"<tr><td>{p.score * 100:.1f}%</td><td>{html.escape(p.label)}</td></tr>" for p in top)
            cells.append(f"<td style='vertical-align:top'><b>{html.escape(name)}</b><table>{lines}</table></td>")
        return f"<table><tr>{''.join(cells)}</tr></table>"

    def __repr__(self) -> str:
        return "Predictions(" + "; ".join(f"{n}: {t[0].label} {t[0].score:.2f}" for n, t in zip(self.names, self.top) if t) + ")"


# ---- activations -----------------------------------------------------------------------------------

class Activations(Result):
    """Activations of layers for a batch of images: `values[layer]` is (N, ...) float32. Shown as
    the toolbox's layer pane (every unit a tile) of the first image, for up to `SHOWN` layers."""

    SHOWN = 4

    def __init__(self, model, values: dict[str, np.ndarray], names: list[str]):
        self._model = model
        self.values = values
        self.names = names

    @property
    def layers(self) -> list[str]:
        return list(self.values)

    def __getitem__(self, layer: str) -> np.ndarray:
        return self.values[self._model.layer(layer).name]

    def numpy(self, layer: str | None = None) -> np.ndarray:
        """One layer's activations (N, ...); `layer` may be left out when there is one."""
        if layer is None:
            if len(self.values) != 1:
                from onnxprobe.errors import UsageError

                raise UsageError(f"these activations hold {len(self.values)} layers: name one (.numpy(layer))")
            return next(iter(self.values.values()))
        return self[layer]

    def save(self, path: str | Path) -> Path:
        """`.npz`: every layer's activations keyed by layer name (without the batch axis for one
        image, as `onnxprobe activations` writes them); `.npy`: `.numpy()`; else the picture."""
        path = Path(path)
        if path.suffix.lower() == ".npz":
            return self.save_npz(path)
        return super().save(path)

    def save_npz(self, path: str | Path) -> Path:
        """Every layer's activations as .npz keyed by layer name, without the batch axis for one
        image (what `onnxprobe activations --out` writes), whatever the suffix of `path`."""
        from onnxprobe.fsutil import atomic_save_npz

        one = len(self.names) == 1
        return atomic_save_npz(path, {name: value[0] if one else value for name, value in self.values.items()})

    def grid(self, layer: str | None = None, image: int = 0, boost_indiv: float = 0.0, boost_gamma: float = 1.0):
        """The layer pane of one layer (default: the first) for image `image`, HxWx3 uint8;
        `boost_indiv` (0..1) and `boost_gamma` (> 0) are the toolbox's boosts (keys T and t)."""
        from onnxprobe.errors import ParameterError

        if not 0 <= boost_indiv <= 1:
            raise ParameterError(f"{{boost_indiv}} must be between 0 and 1, got {boost_indiv}", "boost_indiv")
        if boost_gamma <= 0:
            raise ParameterError(f"{{boost_gamma}} must be positive, got {boost_gamma}", "boost_gamma")
        name = self._model.layer(layer).name if layer is not None else self.layers[0]
        return layer_grid_image(self._model, self._model.layer(name), self.values[name][image:image + 1],
                                boost_indiv, boost_gamma)

    def picture(self) -> np.ndarray:
        from onnxprobe.render.compose import column

        return column([self.grid(name) for name in self.layers[:self.SHOWN]])

    def __repr__(self) -> str:
        return "Activations(" + ", ".join(f"{n}: {tuple(v.shape)}" for n, v in self.values.items()) + ")"


def layer_grid_image(model, layer, activation: np.ndarray, boost_indiv: float = 0.0, boost_gamma: float = 1.0):
    """The layer pane as a picture a person can read (the `activations --grid` PNG): upscaled
    tiles, unit captions (class names on a layer with one unit per class), the layer's name and
    shape on top (render.grid.labelled_grid). `activation` has a batch axis; its first row is drawn."""
    from onnxprobe.render.grid import labelled_grid, units_first

    tiles = units_first(activation[0], layer.channel_axis, layer.spatial_axes)
    labels = model.spec.labels
    unit_labels = None
    if labels and len(labels) == layer.units and not layer.is_spatial:
        unit_labels = [name if name == str(u) else f"{u} {name}" for u, name in enumerate(labels)]
    shape = "x".join("N" if d is None else str(d) for d in layer.shape)
    title = f"{layer.label}  {shape}  {layer.units} units"
    return labelled_grid(tiles, title, unit_labels, boost_indiv, boost_gamma, min_tile=48 if layer.is_spatial else 24)


# ---- maps over an image ------------------------------------------------------------------------------

@dataclass
class Map(Result):
    """A map over one input image (a back map or an attribution): `values` the raw map (input-shaped,
    or HxW for Grad-CAM and occlusion), `image` the map drawn (HxWx3 uint8, at least
    `render.images.MAP_MIN_SIDE` pixels: small maps upscaled; the one "no signal" picture when the
    map is all zero or not finite), `input_image` the input as the model saw it, `silent` the line
    saying why a map has no signal (None when it has), `notes` lines worth reading (where a unit
    was read); shown side by side with a caption."""

    values: np.ndarray
    image: np.ndarray
    input_image: np.ndarray
    title: str
    notes: list[str] = field(default_factory=list)  # how a position was chosen, why a map is empty
    silent: str | None = None  # objectives.silence's line: the map holds no signal, and why

    def numpy(self) -> np.ndarray:
        return self.values

    def picture(self) -> np.ndarray:
        from onnxprobe.render.compose import caption, row
        from onnxprobe.render.images import upscale

        side = max(224, self.input_image.shape[1])
        return row([caption(upscale(self.input_image, side), "input", side), caption(self.image, self.title, side)])

    def save(self, path: str | Path) -> Path:
        """The map alone as PNG (as the command writes it), or the raw values for a `.npy` path."""
        path = Path(path)
        if path.suffix.lower() == ".npy":
            return super().save(path)
        return save_picture(path, self.image)

    def __repr__(self) -> str:
        silent = f"; {self.silent}" if self.silent else ""
        return f"Map({self.title}, values {tuple(self.values.shape)}{silent})"


# ---- pictures ------------------------------------------------------------------------------------------

@dataclass
class Pictures(Result):
    """Synthesized images (feature visualization): `images[i]` HxWx3 uint8 RGB, `captions[i]`,
    `values[i]` the objective each reached (`initial[i]` where it started); `inputs[i]` the
    optimized model input itself. Shown as a captioned strip."""

    images: list[np.ndarray]
    captions: list[str]
    values: list[float]
    initial: list[float] = field(default_factory=list)
    inputs: list[np.ndarray] = field(default_factory=list)
    folder: Path | None = None  # where a resumable render keeps its files

    def numpy(self) -> np.ndarray:
        """(n, H, W, 3) uint8."""
        return np.stack(self.images)

    def picture(self) -> np.ndarray:
        return _strip(self.images, self.captions)

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return f"Pictures({len(self.images)}: " + ", ".join(self.captions[:4]) + (", ..." if len(self) > 4 else "") + ")"


class FromPhoto(Result):
    """A picture from a photo (`Model.picture_from_photo`): `image` and `photo` (HxWx3 uint8 RGB at
    the model's input size), `value` / `photo_value` (the objective on each), `distance` (RMS from
    the photo, 0..255), `curve` ((step, value, distance) rows), `objective` (its text), `seconds`;
    `record` is the library's `optimize.photo.PhotoPicture`. Shown as the photo beside the picture."""

    def __init__(self, record):
        self.record = record
        self.kind, self.image, self.photo = record.kind, record.image, record.photo
        self.value, self.photo_value, self.distance = record.value, record.photo_value, record.distance
        self.curve, self.objective, self.seconds = record.curve, record.objective, record.seconds

    def numpy(self) -> np.ndarray:
        return self.image

    def picture(self) -> np.ndarray:
        return _strip([self.photo, self.image], ["photo", f"{self.kind}: {self.objective}"], columns=2)

    def to_json(self) -> dict:
        return self.record.to_json()

    def write(self, folder: str | Path, name: str) -> Path:
        """The picture, the photo as the model saw it and the record (JSON) in `folder` (made when
        missing; one writer at a time): `KIND-NAME.png`, `KIND-NAME-photo.png`, `KIND-NAME.json`
        (NAME made safe for a file name). Returns the picture's path."""
        from onnxprobe.fsutil import atomic_write_json, make_output_folder, output_lock, safe_name

        stem = f"{self.kind}-{safe_name(name)}"
        folder = make_output_folder(folder)
        with output_lock(folder):
            save_picture(folder / f"{stem}.png", self.image)
            save_picture(folder / f"{stem}-photo.png", self.photo)
            atomic_write_json(folder / f"{stem}.json", self.to_json())
        return folder / f"{stem}.png"

    def __repr__(self) -> str:
        return f"FromPhoto({self.kind}, {self.objective}: {self.photo_value:.4g} -> {self.value:.4g})"


# ---- top-k patches ----------------------------------------------------------------------------------------

class TopK(Result):
    """The top-k dataset images of every unit of the scanned layers (`onnxprobe.maxact`'s job in
    `folder`). `unit(u)` is one unit's record (scores, hits, montage paths); shown as the patch
    montages of the first `SHOWN` units of the first layer (by default)."""

    SHOWN = 8

    def __init__(self, result, layers: list[str], shown_units: list[int] | None = None):
        self.result = result
        self.layers = layers
        self.folder = Path(result.out_dir)
        self._shown = shown_units

    @property
    def summary(self) -> dict:
        """The job's summary (maxact.json): `images`, `images_used`, `skipped` files, `layers`
        (layer -> its records file), `notes`."""
        return self.result.summary

    def nonfinite(self) -> list[str]:
        """The scanned layers with a unit whose statistics are not finite (NaN or infinite
        activations: the records hold null there)."""
        return [name for name in self.result.layers
                if any(u["max"] is None for u in self.result.record(name)["unit_records"])]

    def unit(self, unit: int, layer: str | None = None):
        return self.result.unit(layer or self.layers[0], unit)

    def scores(self, layer: str | None = None) -> np.ndarray:
        """(units, k) float: each unit's top-k scores, best first (NaN where the dataset had fewer images)."""
        records = self.result.record(layer or self.layers[0])["unit_records"]
        k = max((len(r["hits"]) for r in records), default=0)
        out = np.full((len(records), k), np.nan)
        for u, r in enumerate(records):
            for i, hit in enumerate(r["hits"]):
                out[u, i] = np.nan if hit["score"] is None else hit["score"]
        return out

    def numpy(self, layer: str | None = None) -> np.ndarray:
        return self.scores(layer)

    def patches(self, unit: int, layer: str | None = None) -> np.ndarray | None:
        """The unit's patch montage (HxWx3 uint8), None when no crops were drawn."""
        from onnxprobe.preprocess import read_image

        path = self.unit(unit, layer).patches
        return None if path is None else read_image(path)[:, :, ::-1]

    def picture(self) -> np.ndarray:
        layer = self.layers[0]
        units = self._shown if self._shown is not None else range(len(self.result.record(layer)["unit_records"]))
        images, captions = [], []
        for u in list(units)[:self.SHOWN]:
            montage = self.patches(u, layer)
            if montage is not None:
                record = self.unit(u, layer)
                images.append(montage)
                captions.append(f"{u}  max {record.max:.3g}" if record.max is not None else str(u))
        if not images:
            from onnxprobe.render.compose import text_image

            return text_image([f"{layer}: no patches drawn (crops=False)"])
        return _strip(images, captions, width=TILE, columns=4)

    def __repr__(self) -> str:
        return f"TopK({', '.join(self.layers)} in {self.folder})"


# ---- atlas ---------------------------------------------------------------------------------------------------

class Atlas(Result):
    """A built atlas (`onnxprobe.atlas`): `index` is its site's front page; shown as a link and the
    optimized images of the first layer's first units."""

    SHOWN = 16

    def __init__(self, result):
        import json

        self.result = result
        self.folder = Path(result.out_dir)
        self.index = self.folder / "index.html"
        self.manifest = json.loads(Path(result.manifest).read_text(encoding="utf-8"))

    def images(self, layer: str | None = None) -> dict[int, np.ndarray]:
        """unit -> its optimized image (HxWx3 uint8) for `layer` (default: the first)."""
        from onnxprobe.fsutil import inside
        from onnxprobe.preprocess import read_image

        layer = layer or next(iter(self.manifest["layers"]))
        units = self.manifest["layers"][layer]["units"]
        return {int(u): read_image(inside(self.folder, e["optimized"]))[:, :, ::-1] for u, e in units.items()}

    def numpy(self, layer: str | None = None) -> np.ndarray:
        """(units, H, W, 3) uint8: the optimized images of `layer`, in unit order."""
        images = self.images(layer)
        return np.stack([images[u] for u in sorted(images)])

    def picture(self) -> np.ndarray:
        images = self.images()
        units = sorted(images)[:self.SHOWN]
        return _strip([images[u] for u in units], [str(u) for u in units], width=96, columns=8)

    def _repr_html_(self) -> str:
        r = self.result
        return (f"<p>atlas of {len(r.layers)} layer(s), {r.units_total} unit(s) ({r.units_rendered} rendered now): "
                f"<a href='{html.escape(self.index.as_posix())}' target='_blank'>{html.escape(str(self.index))}</a></p>"
                + _png_tag(self.picture()))

    def __repr__(self) -> str:
        return f"Atlas({self.index}, {self.result.units_total} units)"
