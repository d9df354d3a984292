"""`onnxprobe demo`: the main job, headless, on the bundled ImageNet network (or MODEL): for each
image its top-5 predictions, activation grids, Grad-CAM and guided backprop maps, then what the
predicted classes look like to the network (feature visualization), all written as pictures to a
folder with an index page and a summary image whose paths are printed at the end."""

from __future__ import annotations

import os
import time
from pathlib import Path

from onnxprobe.cli.common import DEVICE_HELP
from onnxprobe.errors import UsageError

SUMMARY = "the main job on the bundled ImageNet network (or MODEL), headless, as pictures"  # the line in 'onnxprobe --help'
DESCRIPTION = """The main job, headless. For each image: top-5 predictions, activation grids, Grad-CAM and
guided backprop; then feature visualizations of the predicted classes (maco preset). Writes
PNGs, index.html and summary.png to --out and prints their paths."""
EXAMPLES = """examples:
  onnxprobe demo                                         # the bundled ImageNet MobileNetV2 on its sample photos
  onnxprobe demo --model models/digits/digits-cnn.onnx   # the small digits CNN (a few seconds)
  onnxprobe demo --images cat.jpg dog.jpg --steps 256 --out my-demo
"""


def register(sub) -> None:
    from onnxprobe.api.params import DEMO_CLASSES, DEMO_STEPS, default_model

    parser = sub.add_parser("demo", help=SUMMARY)
    parser.add_argument("--model", default=str(default_model()),
                        help="ONNX model (default: the bundled ImageNet MobileNetV2, models/imagenet/)")
    parser.add_argument("--images", nargs="*", help="images to probe (default: the model's samples/ folder)")
    parser.add_argument("--out", default="onnxprobe-out", help="output folder (default: ./onnxprobe-out)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help=DEVICE_HELP)
    parser.add_argument("--steps", type=int, default=DEMO_STEPS,
                        help=f"optimization steps per class visualization (default {DEMO_STEPS}; 0: none)")
    parser.add_argument("--classes", type=int, default=DEMO_CLASSES, metavar="K",
                        help=f"visualize the first K distinct predicted classes (default {DEMO_CLASSES})")
    parser.add_argument("--view", action="store_true", help="afterwards open the live viewer (needs a display)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from onnxprobe.api.model import load
    from onnxprobe.api.params import sample_images
    from onnxprobe.cli.common import warn

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
    model = load(args.model, device=args.device)
    report = model.demo(images, args.out, steps=args.steps, classes=args.classes,
                        say=lambda line: print(line, flush=True), warn=warn)
    visuals = report.classes
    print(f"wrote predictions, activation grids of {len(report.grid_layers)} layer(s), Grad-CAM and guided backprop "
          f"maps for {len(images)} image(s)" + (f" and {len(visuals)} class visualization(s)" if visuals else "")
          + f" in {time.perf_counter() - started:.0f} s:")
    print(f"  {report.index}   (open in a browser)")
    print(f"  {report.summary}")
    print(f"  {report.record}")
    if args.view:
        from onnxprobe.cli import main as cli_main
        from onnxprobe.fsutil import checkpoint

        checkpoint()  # the demo's files are on disk before the viewer starts

        return cli_main(["view", str(model.path), "--images", str(images[0].parent)])
    return 0
