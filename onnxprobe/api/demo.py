"""The demo report: the main job of the Deep Visualization Toolbox, headless, as pictures in a folder
(what `onnxprobe demo` writes; `Model.demo`). For each image its top-5 predictions, activation
grids, Grad-CAM and guided backprop maps of the predicted class; then what the predicted classes
look like to the network (feature visualization); an index page (index.html), a summary image
(summary.png) and the record of it all (demo.json)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onnxprobe.api.results import Result

ALL_LAYERS_UP_TO = 16  # models with at most this many layers get every layer's grid; larger ones a selection
# the class pictures: MACO at 64 steps (each step 4 crops), 4 ImageNet classes in ~70 s of CPU, the
# demo within a minute on two cores. Judged by a classifier of another family (SqueezeNet 1.1), the
# demo's classes rank 2, 2, 2, 10 (top-5 75 %) where lucid at 128 steps ranked them 544, 11, 135, 67
# (top-5 0 %), and more lucid steps did not help (bench/bench_demo_classes.py).
DEFAULT_STEPS = 64
CLASS_PRESET = "maco"
DEFAULT_CLASSES = 4
# grids drawn with the toolbox's boosts (keys T and t): each unit scaled to its own peak, gamma 0.5,
# so that weak units show their pattern too (a layer-wide scale leaves most tiles black)
GRID_BOOST_INDIV, GRID_BOOST_GAMMA = 1.0, 0.5


@dataclass
class DemoReport(Result):
    """What `Model.demo` wrote in `folder`: `index` (the page to open), `summary` (one image of it
    all), `record` (demo.json); `results` (per image: its file, top5, the pictures' paths relative
    to `folder`, "no_signal" lines), `classes` (the class visualizations), `grid_layers`. Shown as
    the summary image."""

    folder: Path
    results: list[dict]
    classes: list[dict]
    grid_layers: list[str]

    @property
    def index(self) -> Path:
        return self.folder / "index.html"

    @property
    def summary(self) -> Path:
        return self.folder / "summary.png"

    @property
    def record(self) -> Path:
        return self.folder / "demo.json"

    def numpy(self) -> np.ndarray:
        return self.picture()

    def picture(self) -> np.ndarray:
        from onnxprobe.preprocess import read_image

        return read_image(self.summary)[:, :, ::-1]

    def __repr__(self) -> str:
        return f"DemoReport({self.index}: {len(self.results)} image(s), {len(self.classes)} class picture(s))"


def _quiet(line: str) -> None:
    pass


def demo_report(model, images: Sequence[str | Path], out: str | Path, *, steps: int = DEFAULT_STEPS,
                classes: int = DEFAULT_CLASSES, say: Callable[[str], None] | None = None,
                warn: Callable[[str], None] | None = None) -> DemoReport:
    """`Model.demo`'s work (see there); `model` is the API's `Model`."""
    from onnxprobe.errors import ParameterError
    from onnxprobe.fsutil import atomic_write_json, atomic_write_text, file_word, make_output_folder
    from onnxprobe.preprocess import read_image
    from onnxprobe.render.compose import column, predictions_image, row
    from onnxprobe.render.images import write_png

    if steps < 0:
        raise ParameterError("{steps} must be 0 or more", "steps")
    if classes < 0:
        raise ParameterError("{classes} must be 0 or more", "classes")
    say, warn = say or _quiet, warn or _quiet
    images = [Path(p) for p in images]
    if not images:
        raise ParameterError("{images} names no image", "images")
    for path in images:  # every image read before anything is written
        read_image(path)
    out = make_output_folder(out)  # removed again if the demo fails (staged output)
    root = out.resolve()
    say(f"model {model.path}: {len(model.layers)} layers, device {model.device}")
    shown = grid_layers(model)
    place = {layer.name: n for n, layer in enumerate(model.layers)}
    files = _Files(root, warn)
    summary, rows = [], []
    folders: set[str] = set()
    warned = False
    for image_path in images:
        x = model.tensor(image_path)
        acts = model.activations(x, [layer.name for layer in shown])
        if not warned and _warn_nonfinite(acts.values, f"the activations for {image_path.name}", warn):
            warned = True
            files.warned.add("non-finite")  # the maps' NaN follows from it: recorded, not said again
        name = base = file_word(image_path.stem)
        suffix = 1
        while name in folders:  # two cat.jpg from two folders get two output folders
            suffix += 1
            name = f"{base}-{suffix}"
        folders.add(name)
        entry = {"image": str(image_path), "grids": {}}
        tiles = [files.write(entry, "input", f"{name}/input.png", model.display(x), image_path.name)]
        if model.class_output:
            (predictions,) = model.predict(x).top
            entry["top5"] = [{"class": p.cls, "label": p.label, "score": p.score} for p in predictions]
            say(f"{image_path.name}: " + ", ".join(f"{p.label} {p.score:.3f}" for p in predictions))
            tiles.append(predictions_image(predictions, width=SIDE + 40))
        tiles += _write_maps(model, x, name, entry, files)
        for n, layer in enumerate(shown):
            tile = files.write(entry["grids"], layer.name, f"{name}/grid-{place[layer.name]:03d}-{file_word(layer.name)}.png",
                               acts.grid(layer.name, boost_indiv=GRID_BOOST_INDIV, boost_gamma=GRID_BOOST_GAMMA),
                               f"grid {layer.label}")
            if n == 0:  # the first (most legible) grid in the summary; index.html shows every one
                tiles.append(tile)
        summary.append(entry)
        rows.append(row(tiles))
    shown_classes = _classes_to_show(summary, classes) if steps else []
    visuals = _write_class_visuals(model, shown_classes, steps, files, say) if shown_classes else []
    if visuals:
        rows.append(row([files.tiles[v["image"]] for v in visuals]))
    index = {"model": str(model.path), "results": summary, "class_visualizations": visuals,
             "grid_layers": [layer.name for layer in shown]}
    atomic_write_json(out / "demo.json", index)
    write_png(out / "summary.png", column(rows))
    atomic_write_text(out / "index.html", _index_html(model, summary, visuals))
    return DemoReport(root, summary, visuals, [layer.name for layer in shown])


def _warn_nonfinite(arrays: dict, what: str, warn) -> bool:
    from onnxprobe.api.results import nonfinite_line, nonfinite_names

    line = nonfinite_line(nonfinite_names(arrays), what)
    if line is not None:
        warn(line)
    return line is not None


def grid_layers(model) -> list:
    """Every layer of a small model; for a larger one, the last nonlinearity (else the last layer)
    at each spatial size, in order: one legible grid per stage of the network."""
    layers = list(model.layers)
    if len(layers) <= ALL_LAYERS_UP_TO:
        return layers
    stages: dict[tuple, list] = {}
    for layer in layers:
        if layer.is_spatial:
            size = tuple(int(layer.shape[a]) for a in layer.spatial_axes)
            stages.setdefault(size, []).append(layer)
    chosen = []
    for group in stages.values():
        nonlinear = [layer for layer in group if layer.op in NONLINEAR_OPS]
        chosen.append((nonlinear or group)[-1])
    return chosen or layers[-1:]


NONLINEAR_OPS = {"Relu", "Clip", "LeakyRelu", "PRelu", "Elu", "Selu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
                 "Softplus", "Gelu", "Mish", "MaxPool"}


SIDE = 224  # the summary's tile width; maps and class pictures are upscaled to at least this (MAP_MIN_SIDE)


class _Files:
    """The demo's pictures: written under the output folder (names: lowercase words joined by '-',
    numbered where two could meet), their paths recorded relative to it, and each one's captioned
    tile kept for the summary image. A map without signal is drawn as `no_signal` and its warning
    printed once per kind of map, NaN once in all (every one is in demo.json under "no_signal")."""

    def __init__(self, root: Path, warn: Callable[[str], None]):
        self.root = root
        self.warn = warn
        self.tiles: dict[str, np.ndarray] = {}
        self.warned: set[str] = set()

    def write(self, record: dict, key: str, relative: str, image: np.ndarray, title: str) -> np.ndarray:
        from onnxprobe.fsutil import inside
        from onnxprobe.render.compose import caption
        from onnxprobe.render.images import write_png

        write_png(inside(self.root, *relative.split("/")), image)
        record[key] = relative
        self.tiles[relative] = tile = caption(image, title, SIDE)
        return tile

    def no_signal(self, record: dict, key: str, line: str | None, image: np.ndarray) -> np.ndarray:
        """`image`, or the no-signal picture of its size when `line` (the warning) is given."""
        from onnxprobe.render.compose import no_signal

        if line is None:
            return image
        record.setdefault("no_signal", {})[key] = line
        said = "non-finite" if line.startswith("NaN") else key  # NaN anywhere is one warning, said once
        if said not in self.warned:
            self.warned.add(said)
            self.warn(line)
        return no_signal(*image.shape[:2])


# the attribution maps of the predicted class: (demo.json key, method, file, caption)
MAPS = (("gradcam", "gradcam", "gradcam.png", "Grad-CAM"),
        ("backprop", "guided_backprop", "guided-backprop.png", "guided backprop"))


def _write_maps(model, x, name: str, entry: dict, files: _Files) -> list[np.ndarray]:
    """Grad-CAM (over the input) and guided backprop of the predicted class, from `Model.attribute`
    (none for a model without a class output, a class score no gradient reaches, or, for Grad-CAM,
    without a spatial layer on the class's path)."""
    if not model.class_output:
        return []
    from onnxprobe.errors import ProbeError

    tiles = []
    for key, method, file, title in MAPS:
        try:
            found = model.attribute(x, method, overlay=method == "gradcam")
        except ProbeError:
            entry[key] = None
            continue
        image = files.no_signal(entry, key, found.silent, found.image)
        tiles.append(files.write(entry, key, f"{name}/{file}", image, title))
    return tiles


def _classes_to_show(summary: list[dict], count: int) -> list[tuple[int, str]]:
    seen: dict[int, str] = {}
    for entry in summary:
        for rank in entry.get("top5", [])[:1]:
            seen.setdefault(rank["class"], rank["label"])
    return list(seen.items())[:count]


def _write_class_visuals(model, classes: list[tuple[int, str]], steps: int, files: _Files, say) -> list[dict]:
    """What each class looks like to the network: the CLASS_PRESET on its pre-softmax score. A class
    whose score never moves (no gradient reaches the picture) is drawn as no signal."""
    from onnxprobe.fsutil import file_word
    from onnxprobe.render.images import MAP_MIN_SIDE, upscale

    units = [c for c, _ in classes]
    say(f"visualizing {len(units)} class(es) ({', '.join(label for _, label in classes)}): {CLASS_PRESET} preset, "
        f"{steps} steps ...")
    plan = model.render_plan(None, units, objective="logit", preset=CLASS_PRESET, steps=steps, batch=len(units))
    results = plan.run(progress=False)
    written = []
    for (cls, label), result in zip(classes, results):
        record = {"class": cls, "label": label, "steps": steps, "initial_logit": result.initial_activation[0],
                  "best_logit": result.best_activation[0]}
        still = result.best_activation[0] == result.initial_activation[0]
        line = plan.why_unmoved(cls, "the class picture's gradient") if still else None
        image = files.no_signal(record, "image", line, upscale(result.images[0], MAP_MIN_SIDE))
        files.write(record, "image", f"classes/class-{cls}-{file_word(label)}.png", image, label)
        written.append(record)
    return written


def _index_html(model, summary: list[dict], visuals: list[dict]) -> str:
    from onnxprobe.render.site import escape, figure, page

    here = "index.html"
    parts = [f"<h1>onnxprobe demo</h1><p>model <code>{escape(model.path)}</code>, {len(model.layers)} layers</p>"]
    if visuals:
        parts.append("<h2>What the predicted classes look like to the network</h2>"
                     f"<p>Feature visualization ({CLASS_PRESET} preset) of each class's score before the softmax.</p>"
                     '<div class="views">' + "".join(figure(here, v["image"], f"{v['label']} (class {v['class']}, "
                                                           f"{v['steps']} steps)") for v in visuals) + "</div>")
    for entry in summary:
        views = [figure(here, entry["input"], "input")]
        views += [figure(here, entry[key], f"{title} of the top class") for key, _, _, title in MAPS if entry.get(key)]
        parts.append(f"<h2>{escape(Path(entry['image']).name)}</h2>")
        if entry.get("top5"):
            rows = "".join(f"<tr><td class=num>{p['score'] * 100:.1f}%</td><td>{escape(p['label'])}</td>"
                           f"<td><div class=bar style='width:{max(1, round(p['score'] * 200))}px'></div></td></tr>"
                           for p in entry["top5"])
            views.append(f"<figure><table>{rows}</table><figcaption>top 5</figcaption></figure>")
        parts.append('<div class="views">' + "".join(views) + "</div>")
        parts.append(f"<h3>activation grids</h3><p>every unit of a layer as a tile, each scaled to its own peak "
                     f"(per-unit boost {GRID_BOOST_INDIV:g}, gamma {GRID_BOOST_GAMMA:g})</p>")
        parts.append('<div class="views">' + "".join(figure(here, rel, model.layer(name).label, link=True)
                                                     for name, rel in entry["grids"].items()) + "</div>")
    return page(f"onnxprobe demo: {model.path.name}", "\n".join(parts))
