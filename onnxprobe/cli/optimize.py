"""`onnxprobe optimize MODEL --layer L --unit C --out DIR`: feature visualization per unit."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from onnxprobe.cli.common import add_budget_arg, add_model_args, add_render_args, load_model_from_args, \
    render_keywords, warn, warn_nonfinite
from onnxprobe.errors import UsageError


SUMMARY = "synthesize images that maximise units (regularized gradient ascent)"  # the line in 'onnxprobe --help'
DESCRIPTION = """Feature visualization: images that maximise a unit, a channel or a class score, by the paper's
regularized gradient ascent (presets set1..set4) or the lucid parameterization. Reruns resume."""
EXAMPLES = """examples:
  onnxprobe optimize models/imagenet/mobilenet_v2.onnx --objective logit --unit 285 --preset lucid --out vis/
  onnxprobe optimize models/imagenet/mobilenet_v2.onnx --layer features.13.conv.0.2/Clip --objective channel \\
      --unit 0-7 --preset lucid --steps 256 --out vis/
  onnxprobe optimize models/digits/digits-cnn.onnx --layer logits --unit all --preset set4 --out vis/
  onnxprobe optimize models/imagenet/mobilenet_v2.onnx --from cat.jpg --picture invert --layer features.9/Add --out pics/
  onnxprobe optimize models/imagenet/mobilenet_v2.onnx --from cat.jpg --picture accentuate --objective logit \
      --unit 281 --out pics/
"""


def register(sub) -> None:
    from onnxprobe.api.params import POSITION_HELP_WITHOUT_IMAGE

    parser = sub.add_parser("optimize", help=SUMMARY)
    add_model_args(parser)
    add_budget_arg(parser)
    parser.add_argument("--layer", help="layer (ONNX tensor name or module path); not needed for --objective logit")
    parser.add_argument("--unit", action="append",
                        help="unit index, range like 0-15, or 'all' (repeatable); with --from, one unit or class")
    parser.add_argument("--objective", default="neuron", choices=("neuron", "channel", "logit"),
                        help="neuron: channel at --position; channel: its mean; logit: pre-softmax class score "
                             "(default %(default)s)")
    parser.add_argument("--position", metavar="Y,X|centre|mean",
                        help=f"for --objective neuron: {POSITION_HELP_WITHOUT_IMAGE} (default centre; mean is "
                             "--objective channel)")
    add_render_args(parser, default_preset=None)
    parser.add_argument("--from", dest="photo", metavar="IMAGE",
                        help="a picture from this photo (--picture): accentuate a unit or class in it, a caricature "
                             "of what --layer sees in it, or its reconstruction from --layer alone (lucid preset)")
    parser.add_argument("--picture", choices=("accentuate", "caricature", "invert"), default="accentuate",
                        help="with --from: accentuate (default; push --unit from the photo, staying close to it), "
                             "caricature (amplify what --layer sees), invert (reconstruct from --layer's activation)")
    parser.add_argument("--closeness", type=float, default=1.0,
                        help="with --picture accentuate: weight of the mean squared distance from the photo (default 1)")
    parser.add_argument("--fresh", action="store_true", help="redo units already finished in --out by the same settings")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    from onnxprobe.api.params import parse_position, parse_units

    if args.photo is not None:
        return _from_photo(args)
    if not args.unit:
        raise UsageError("optimize needs --unit (or --from IMAGE for a picture from a photo)")
    render = render_keywords(args)  # the render flags checked once: the API takes them as they are
    position = parse_position(args.position)  # read by the objective module: no image here, so no max
    units = parse_units(args.unit, "unit")
    out = Path(args.out)
    if os.path.lexists(out) and not os.path.isdir(out):  # (os.path: no OSError on a name too long)
        raise UsageError(f"--out must be a folder, got the file {out}")
    model = load_model_from_args(args)
    # the layer, the units and the first unit's objective checked before anything is written
    plan = model.render_plan(args.layer, units, objective=args.objective, position=position, out=out, **render)
    layer = plan.layer
    if args.objective != "logit" and plan.target != layer.name:
        print(f"note: optimizing '{plan.target}', the pre-activation input of '{layer.name}' (its {layer.op} passes "
              "no gradient where it is off; same maximiser where the unit fires); values shown are the pre-activation's")

    def started(kept: list[int]) -> None:  # the folder is held: what an earlier run finished is kept
        if kept:
            print(f"resuming: {len(kept)} unit(s) already finished with these settings are kept "
                  "(--fresh redoes them)")

    results = plan.run(fresh=args.fresh, progress=not args.quiet, on_start=started)
    return _report(plan, results)


def _report(plan, results) -> int:
    import numpy as np

    from onnxprobe.api.params import DEFAULT_PRESET

    layer, restarts, preset = plan.layer, plan.settings.restarts, plan.settings.preset
    warn_nonfinite({f"{layer.name}:{r.unit}": np.asarray(r.best_activation, np.float64) for r in results},
                   "the optimized activations")
    still = [r.unit for r in results if list(r.best_activation) == list(r.initial_activation)]
    if still:  # no step moved the objective: no gradient reached the image
        warn(plan.why_unmoved(still[0]) + (f" (units {', '.join(map(str, still))})" if len(still) > 1 else ""))
    for result in results:
        print(f"{layer.name}:{result.unit}  initial {max(result.initial_activation):.4g}  "
              f"best {max(result.best_activation):.4g}  ({result.seconds:.2f} s)")
    print(f"wrote {len(results)} unit(s) x {restarts} restart(s) to {plan.folder}")
    if results and preset.method == "seed" and _barely_moved(results):
        print(f"note: {preset.name} barely raised the units here (the paper's priors hold the image near the "
              f"start); try --preset {DEFAULT_PRESET} (the default)", file=sys.stderr)
    return 0


def _barely_moved(results) -> bool:
    """Every unit rose by less than half the typical starting magnitude of the units."""
    import numpy as np

    scale = max(float(np.median([abs(max(r.initial_activation)) for r in results])), 1e-3)
    return all(max(r.best_activation) - max(r.initial_activation) < 0.5 * scale for r in results)


def _from_photo(args) -> int:
    """optimize --from IMAGE: one picture from a photo (`Model.picture_from_photo`)."""
    from onnxprobe.api.params import DEFAULT_PRESET, parse_position, parse_units, read_image

    read_image(args.photo, "--from image")  # an unreadable photo fails before the model is loaded
    out = Path(args.out)
    if os.path.lexists(out) and not os.path.isdir(out):
        raise UsageError(f"--out must be a folder, got the file {out}")
    model = load_model_from_args(args)
    unit = None
    if args.unit:
        units = parse_units(args.unit, "unit")
        if units == "all" or len(units) != 1:
            raise UsageError(f"--from takes one --unit, got {'all' if units == 'all' else len(units)}")
        unit = units[0]
    preset = None if args.preset == DEFAULT_PRESET else args.preset  # not given: the photo's engine
    pic = model.picture_from_photo(args.photo, args.picture, layer=args.layer, unit=unit, objective=args.objective,
                                   position=parse_position(args.position), preset=preset, steps=args.steps,
                                   seed=args.seed, closeness=args.closeness)
    path = pic.write(out, Path(args.photo).stem)
    print(f"{pic.objective}: {pic.photo_value:.4g} on the photo, {pic.value:.4g} on the picture "
          f"(RMS distance from the photo {pic.distance:.1f} of 255; {pic.seconds:.1f} s)")
    if args.picture == "accentuate":
        print("step  value  distance (the unit's rise against the distance from the photo)")
        for step, value, distance in pic.curve:
            print(f"{step:4d}  {value:.4g}  {distance:.1f}")
    print(f"wrote {path}")
    return 0
