"""`onnxprobe demo`: the main job on the bundled model, headless: predictions, every layer's
activation grid, and a gradient map, written to a folder that is reported at the end."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from onnxprobe.errors import UsageError

REPO_MODELS = Path(__file__).resolve().parents[2] / "models"
DEFAULT_MODEL = REPO_MODELS / "digits" / "digits-cnn.onnx"


def register(sub) -> None:
    parser = sub.add_parser("demo", help="run the main job on the bundled digits model (or MODEL) headlessly")
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="ONNX model (default: the bundled digits CNN)")
    parser.add_argument("--images", nargs="*", help="images to probe (default: the model's samples/ folder)")
    parser.add_argument("--out", default="onnxprobe-out", help="output folder (default: ./onnxprobe-out)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--view", action="store_true", help="afterwards open the live viewer (needs a display)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from onnxprobe.cli.activations import write_layer_grid
    from onnxprobe.cli.common import warn_nonfinite
    from onnxprobe.fsutil import atomic_write_json, checkpoint, inside, make_output_folder, safe_name
    from onnxprobe.model import ProbeModel
    from onnxprobe.preprocess import read_image

    model = ProbeModel.load(args.model, device=args.device)
    images = [Path(p) for p in args.images] if args.images else sorted((Path(args.model).parent / "samples").glob("*.png"))
    if not images:
        raise UsageError(f"no images given and no samples/ folder next to {args.model}; pass --images FILE ...")
    out = make_output_folder(args.out)  # removed again if the demo fails (staged by the CLI)
    print(f"model {model.path}: {len(model.layers)} layers, device {model.device}")
    summary = []
    warned = False
    for image_path in images:
        x = model.preprocess(read_image(image_path))
        acts = model.activations(x)
        warned = warned or warn_nonfinite(acts, f"the activations for {image_path.name}")
        stem = safe_name(image_path.stem)
        folder = inside(out, stem)
        entry = {"image": str(image_path), "grids": {}}
        if model.class_output:
            probs = acts[model.class_output][0]
            top = np.argsort(-probs)[:5]
            labels = model.spec.labels or tuple(str(i) for i in range(len(probs)))
            entry["top5"] = [{"class": int(c), "label": labels[c] if c < len(labels) else str(c), "score": float(probs[c])} for c in top]
            print(f"{image_path.name}: " + ", ".join(f"{p['label']} {p['score']:.3f}" for p in entry["top5"]))
        for layer in model.layers:
            path = write_layer_grid(model, layer, acts[layer.name], inside(folder, f"grid-{safe_name(layer.name)}.png"))
            entry["grids"][layer.name] = str(path.relative_to(out.resolve()))
        entry["backprop"] = _write_backprop(model, x, acts, folder, out)
        summary.append(entry)
    atomic_write_json(out / "demo.json", {"model": str(model.path), "results": summary})
    print(f"wrote activation grids of {len(model.layers)} layers for {len(images)} image(s) to {out.resolve()}/ "
          f"(index: {out.resolve() / 'demo.json'})")
    if args.view:
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise UsageError("--view needs a display (DISPLAY or WAYLAND_DISPLAY is not set)")
        from onnxprobe.cli import main as cli_main

        checkpoint()  # the demo's files are on disk before the viewer starts

        return cli_main(["view", str(model.path), "--images", str(images[0].parent)])
    return 0


def _write_backprop(model, x, acts, folder: Path, out: Path) -> str | None:
    """Gradient of the top class's logit (before the softmax) w.r.t. the input, norm filter."""
    if not model.class_output:
        return None
    try:
        from onnxprobe.autodiff.objectives import pre_softmax_tensor, unit_seed
        from onnxprobe.render.backmaps import gradient_hwc, render_backmap
        from onnxprobe.render.images import upscale, write_png
    except ImportError:
        return None
    target = pre_softmax_tensor(model.proto, model.class_output)
    layer = model.layer(target)
    if layer.differentiable is False:
        return None
    cls = int(np.argmax(acts[model.class_output][0]))
    session = model.gradient_session([target], mode="gradient")
    seed = unit_seed((1, *layer.shape[1:]), cls, channel_axis=layer.channel_axis)
    grad = session.run(x, {target: seed})["grad"][0]
    image = upscale(render_backmap(gradient_hwc(grad, model.spec.layout), "norm"), 112)
    path = write_png(folder / "backprop-top-class.png", image)
    return str(path.relative_to(out.resolve()))
