"""`onnxprobe demo`: the main job, headless, on the bundled ImageNet network (or MODEL): for each
image its top-5 predictions, activation grids, Grad-CAM and guided backprop maps, then what the
predicted classes look like to the network (feature visualization), all written as pictures to a
folder with an index page and a summary image whose paths are printed at the end."""

from __future__ import annotations

import html
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from onnxprobe.cli.common import DEFAULT_MODEL, sample_images
from onnxprobe.errors import UsageError

if TYPE_CHECKING:
    import numpy as np

ALL_LAYERS_UP_TO = 16  # models with at most this many layers get every layer's grid; larger ones a selection
DEFAULT_STEPS = 128  # lucid steps per class visualization: 4 ImageNet classes in ~30 s on 2 cores (models/README.md)
DEFAULT_CLASSES = 4
# grids drawn with the toolbox's boosts (keys T and t): each unit scaled to its own peak, gamma 0.5,
# so that weak units show their pattern too (a layer-wide scale leaves most tiles black)
GRID_BOOST_INDIV, GRID_BOOST_GAMMA = 1.0, 0.5
SUMMARY = "the main job on the bundled ImageNet network (or MODEL), headless, as pictures"  # the line in 'onnxprobe --help'
DESCRIPTION = """The main job, headless. For each image: top-5 predictions, activation grids, Grad-CAM and
guided backprop; then feature visualizations of the predicted classes (lucid preset). Writes
PNGs, index.html and summary.png to --out and prints their paths."""
EXAMPLES = """examples:
  onnxprobe demo                                         # the bundled ImageNet MobileNetV2 on its sample photos
  onnxprobe demo --model models/digits/digits-cnn.onnx   # the small digits CNN (a few seconds)
  onnxprobe demo --images cat.jpg dog.jpg --steps 256 --out my-demo
"""


def register(sub) -> None:
    parser = sub.add_parser("demo", help=SUMMARY)
    parser.add_argument("--model", default=str(DEFAULT_MODEL),
                        help="ONNX model (default: the bundled ImageNet MobileNetV2, models/imagenet/)")
    parser.add_argument("--images", nargs="*", help="images to probe (default: the model's samples/ folder)")
    parser.add_argument("--out", default="onnxprobe-out", help="output folder (default: ./onnxprobe-out)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                        help=f"optimization steps per class visualization (default {DEFAULT_STEPS}; 0: none)")
    parser.add_argument("--classes", type=int, default=DEFAULT_CLASSES, metavar="K",
                        help=f"visualize the first K distinct predicted classes (default {DEFAULT_CLASSES})")
    parser.add_argument("--view", action="store_true", help="afterwards open the live viewer (needs a display)")
    parser.set_defaults(func=run)


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


def run(args) -> int:
    from onnxprobe.cli.common import warn_nonfinite, write_layer_grid
    from onnxprobe.fsutil import atomic_write_json, atomic_write_text, checkpoint, inside, make_output_folder, safe_name
    from onnxprobe.model import ProbeModel
    from onnxprobe.preprocess import read_image
    from onnxprobe.render.images import write_png

    if args.steps < 0:
        raise UsageError("--steps must be 0 or more")
    if args.classes < 0:
        raise UsageError("--classes must be 0 or more")
    if args.view and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UsageError("--view needs a display (DISPLAY or WAYLAND_DISPLAY is not set)")
    started = time.perf_counter()
    images = [Path(p) for p in args.images] if args.images else sample_images(Path(args.model))
    if not images:
        raise UsageError(f"no images given and no samples/ folder next to {args.model}; pass --images FILE ...")
    model = ProbeModel.load(args.model, device=args.device)
    decoded = [(path, read_image(path)) for path in images]  # every image read before anything is written
    out = make_output_folder(args.out)  # removed again if the demo fails (staged by the CLI)
    root = out.resolve()
    print(f"model {model.path}: {len(model.layers)} layers, device {model.device}")
    shown = grid_layers(model)
    summary = []
    folders: set[str] = set()
    warned = False
    for image_path, image in decoded:
        x = model.preprocess(image)
        acts = model.activations(x, [layer.name for layer in shown])
        warned = warned or warn_nonfinite(acts, f"the activations for {image_path.name}")
        name = base = safe_name(image_path.stem)
        suffix = 1
        while name in folders:  # two cat.jpg from two folders get two output folders
            suffix += 1
            name = f"{base}-{suffix}"
        folders.add(name)
        folder = inside(out, name)
        entry = {"image": str(image_path), "grids": {}}
        display = model.spec.to_display(x[0])
        entry["input"] = _rel(write_png(folder / "input.png", display), root)
        if model.class_output:
            entry["top5"] = _top5(model, acts[model.class_output][0])
            print(f"{image_path.name}: " + ", ".join(f"{p['label']} {p['score']:.3f}" for p in entry["top5"]))
        for layer in shown:
            path = write_layer_grid(model, layer, acts[layer.name], inside(folder, f"grid-{safe_name(layer.name)}.png"),
                                    GRID_BOOST_INDIV, GRID_BOOST_GAMMA)
            entry["grids"][layer.name] = _rel(path, root)
        entry["backprop"] = _write_backprop(model, x, acts, folder, root)
        entry["gradcam"] = _write_gradcam(model, x, folder, root)
        summary.append(entry)
    classes = _classes_to_show(summary, args.classes) if args.steps else []
    visuals = _write_class_visuals(model, classes, args.steps, out, root) if classes else []
    index = {"model": str(model.path), "results": summary, "class_visualizations": visuals,
             "grid_layers": [layer.name for layer in shown]}
    atomic_write_json(out / "demo.json", index)
    write_png(out / "summary.png", _summary_image(model, summary, visuals, root))
    atomic_write_text(out / "index.html", _index_html(model, summary, visuals))
    print(f"wrote predictions, activation grids of {len(shown)} layer(s), Grad-CAM and guided backprop maps for "
          f"{len(decoded)} image(s)" + (f" and {len(visuals)} class visualization(s)" if visuals else "")
          + f" in {time.perf_counter() - started:.0f} s:")
    print(f"  {root / 'index.html'}   (open in a browser)")
    print(f"  {root / 'summary.png'}")
    print(f"  {root / 'demo.json'}")
    if args.view:
        from onnxprobe.cli import main as cli_main

        checkpoint()  # the demo's files are on disk before the viewer starts

        return cli_main(["view", str(model.path), "--images", str(images[0].parent)])
    return 0


def _rel(path: Path, root: Path) -> str:
    return Path(path).resolve().relative_to(root).as_posix()


def _top5(model, scores: np.ndarray) -> list[dict]:
    import numpy as np

    from onnxprobe.viewer.panes import softmax_if_needed

    probs = softmax_if_needed(scores)
    labels = model.spec.labels or ()
    top = np.argsort(-probs, kind="stable")[:5]
    return [{"class": int(c), "label": labels[c] if c < len(labels) else str(int(c)), "score": float(probs[c])}
            for c in top]


def _classes_to_show(summary: list[dict], count: int) -> list[tuple[int, str]]:
    seen: dict[int, str] = {}
    for entry in summary:
        for rank in entry.get("top5", [])[:1]:
            seen.setdefault(rank["class"], rank["label"])
    return list(seen.items())[:count]


def _write_backprop(model, x, acts, folder: Path, root: Path) -> str | None:
    """Guided backprop of the top class's logit (before the softmax) w.r.t. the input, norm filter.
    The norm is capped at its 99.5th percentile first, so that a few extreme pixels do not leave
    the rest of the map black."""
    import numpy as np

    if not model.class_output:
        return None
    from onnxprobe.autodiff import BackMode
    from onnxprobe.autodiff.objectives import logit, pre_softmax_tensor
    from onnxprobe.render.backmaps import gradient_hwc, render_backmap
    from onnxprobe.render.images import upscale, write_png

    if model.layer(pre_softmax_tensor(model.facts, model.class_output)).differentiable is False:
        return None
    objective = logit(model, int(np.argmax(acts[model.class_output][0])))
    session = model.gradient_session(objective.targets, mode=BackMode.GUIDED)
    grad = gradient_hwc(session.run(x, objective.seeds(None, 1))["grad"][0], model.spec.layout)
    norm = np.linalg.norm(grad, axis=2, keepdims=True)
    cap = float(np.percentile(norm, 99.5))
    if cap > 0:
        grad = grad * np.minimum(1.0, cap / np.maximum(norm, 1e-30))
    image = upscale(render_backmap(grad, "norm"), 112)
    return _rel(write_png(folder / "backprop-top-class.png", image), root)


def _write_gradcam(model, x, folder: Path, root: Path) -> str | None:
    """Grad-CAM of the predicted class, blended over the input (None for models without a class
    output or without a spatial layer on the class's path)."""
    if not model.class_output:
        return None
    from onnxprobe.attribution import attribute, render_attribution
    from onnxprobe.errors import ProbeError
    from onnxprobe.render.images import upscale, write_png

    try:
        values = attribute(model, x, "gradcam")
    except ProbeError:
        return None
    image = render_attribution(model, x, "gradcam", values, overlay=True)
    return _rel(write_png(folder / "gradcam.png", upscale(image, 112)), root)


def _write_class_visuals(model, classes: list[tuple[int, str]], steps: int, out: Path, root: Path) -> list[dict]:
    """What each class looks like to the network: the default (lucid) preset on its pre-softmax score."""
    from onnxprobe.fsutil import safe_name
    from onnxprobe.optimize import DEFAULT_PRESET, render_units
    from onnxprobe.render.images import upscale, write_png

    units = [c for c, _ in classes]
    print(f"visualizing {len(units)} class(es) ({', '.join(label for _, label in classes)}): {DEFAULT_PRESET} preset, "
          f"{steps} steps ...", flush=True)
    results = render_units(model, None, units, preset=DEFAULT_PRESET, steps=steps, objective="logit", batch=len(units))
    written = []
    for (cls, label), result in zip(classes, results):
        path = write_png(out / "classes" / f"class-{cls}-{safe_name(label)}.png", upscale(result.images[0], 224))
        written.append({"class": cls, "label": label, "image": _rel(path, root), "steps": steps,
                        "initial_logit": result.initial_activation[0], "best_logit": result.best_activation[0]})
    return written


def _caption(image: np.ndarray, text: str, width: int | None = None) -> np.ndarray:
    import cv2
    import numpy as np

    from onnxprobe.viewer.panes import text_image

    image = np.ascontiguousarray(image)
    width = width or image.shape[1]
    if image.shape[1] != width:
        image = cv2.resize(image, (width, max(1, round(image.shape[0] * width / image.shape[1]))),
                           interpolation=cv2.INTER_AREA if image.shape[1] > width else cv2.INTER_NEAREST)
    return np.vstack([image, text_image([text[: max(8, width // 7)]], width, line_height=20, scale=0.5)])


def _hstack(tiles: list[np.ndarray], pad: int = 8, background: int = 16) -> np.ndarray:
    """Tiles side by side, top-aligned, `pad` pixels apart."""
    import numpy as np

    height = max(t.shape[0] for t in tiles)
    out = []
    for i, tile in enumerate(tiles):
        out.append(np.pad(tile, ((0, height - tile.shape[0]), (0, 0 if i == len(tiles) - 1 else pad), (0, 0)),
                          constant_values=background))
    return np.hstack(out)


def _summary_image(model, summary: list[dict], visuals: list[dict], root: Path) -> np.ndarray:
    """One picture: a row per image (input, top-5, Grad-CAM, guided backprop, the first activation
    grid) and a row of class images."""
    import cv2
    import numpy as np

    from onnxprobe.fsutil import written_file
    from onnxprobe.render.images import montage
    from onnxprobe.viewer.panes import predictions_image

    side = 224

    def load(rel: str | None) -> np.ndarray | None:
        if rel is None:
            return None
        image = cv2.imread(str(written_file(root / rel)), cv2.IMREAD_COLOR)  # our own PNG, still staged
        return image[:, :, ::-1]  # BGR -> RGB

    rows = []
    for entry in summary:
        tiles = [_caption(load(entry["input"]), Path(entry["image"]).name, side)]
        if entry.get("top5"):
            preds = predictions_image([(p["label"], p["score"]) for p in entry["top5"]], width=side + 40)
            tiles.append(preds)
        for key, what in (("gradcam", "Grad-CAM"), ("backprop", "guided backprop")):
            if entry.get(key):
                tiles.append(_caption(load(entry[key]), what, side))
        if entry["grids"]:  # the first (most legible) grid; index.html links every one
            name, rel = next(iter(entry["grids"].items()))
            tiles.append(_caption(load(rel), f"grid {name}", side))
        rows.append(_hstack(tiles))
    if visuals:
        rows.append(_hstack([_caption(load(v["image"]), v["label"], side) for v in visuals]))
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=16) for r in rows]
    return montage(padded, columns=1, pad=10, background=16)


def _index_html(model, summary: list[dict], visuals: list[dict]) -> str:
    e = html.escape
    parts = [f"<!doctype html><meta charset='utf-8'><title>onnxprobe demo: {e(model.path.name)}</title>",
             "<style>body{font-family:sans-serif;background:#111;color:#ddd;margin:1.5em}"
             "img{image-rendering:pixelated;border:1px solid #333;max-width:100%}"
             "figure{display:inline-block;margin:.4em;vertical-align:top}figcaption{font-size:.85em;color:#aaa}"
             "table{border-collapse:collapse}td{padding:.1em .6em}.bar{background:#5a5;height:.7em}</style>",
             f"<h1>onnxprobe demo</h1><p>model <code>{e(str(model.path))}</code>, {len(model.layers)} layers</p>"]
    if visuals:
        parts.append("<h2>What the predicted classes look like to the network</h2>"
                     "<p>Feature visualization (lucid preset) of each class's score before the softmax.</p>")
        for v in visuals:
            parts.append(f"<figure><img src='{e(v['image'])}' width=224><figcaption>{e(v['label'])} "
                         f"(class {v['class']}, {v['steps']} steps)</figcaption></figure>")
    for entry in summary:
        parts.append(f"<h2>{e(Path(entry['image']).name)}</h2>")
        parts.append(f"<figure><img src='{e(entry['input'])}' width=224><figcaption>input</figcaption></figure>")
        for key, what in (("gradcam", "Grad-CAM of the top class"), ("backprop", "guided backprop of the top class")):
            if entry.get(key):
                parts.append(f"<figure><img src='{e(entry[key])}' width=224><figcaption>{what}</figcaption></figure>")
        if entry.get("top5"):
            rows = "".join(f"<tr><td>{p['score'] * 100:.1f}%</td><td>{e(p['label'])}</td>"
                           f"<td><div class=bar style='width:{max(1, round(p['score'] * 200))}px'></div></td></tr>"
                           for p in entry["top5"])
            parts.append(f"<figure><table>{rows}</table><figcaption>top 5</figcaption></figure>")
        parts.append(f"<h3>activation grids</h3><p>every unit of a layer as a tile, each scaled to its own peak "
                     f"(per-unit boost {GRID_BOOST_INDIV:g}, gamma {GRID_BOOST_GAMMA:g})</p>")
        for name, rel in entry["grids"].items():
            parts.append(f"<figure><a href='{e(rel)}'><img src='{e(rel)}' style='max-width:420px'></a>"
                         f"<figcaption>{e(name)}</figcaption></figure>")
    return "\n".join(parts) + "\n"
