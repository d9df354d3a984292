"""`onnxprobe activations MODEL IMAGE`: activations to .npz and the toolbox's layer grid to PNG."""

from __future__ import annotations

from onnxprobe.cli.common import add_model_args, load_model_from_args, warn_nonfinite
from onnxprobe.errors import UsageError


SUMMARY = "save the activations of layers for one image"  # the line in 'onnxprobe --help'
DESCRIPTION = """The activations of one image at the chosen layers (default: all) saved to .npz, keyed by
layer name (a name that would be unsafe to unzip, with '..', a leading '/' or a control character,
is stored under a safe name, mapped back in the member .onnxprobe-names.json; onnxprobe.fsutil.load_npz
reads every array back by its layer name); --grid draws one layer as the toolbox's layer pane."""
EXAMPLES = """examples:
  onnxprobe activations models/imagenet/mobilenet_v2.onnx models/imagenet/samples/chelsea.jpg \\
      --layer features.2.conv.0.2/Clip --out acts.npz --grid grid.png
  onnxprobe activations models/digits/digits-cnn.onnx models/digits/samples/digit-3.png --out acts.npz
"""


def register(sub) -> None:
    parser = sub.add_parser("activations", help=SUMMARY)
    add_model_args(parser)
    parser.add_argument("image", help="image file (any size and channel count)")
    parser.add_argument("--layer", action="append", default=None, help="layer to save (repeatable; default: all)")
    parser.add_argument("--out", required=True, help="output .npz, keyed by layer name")
    parser.add_argument("--grid", help="also draw the layer pane of the (first) chosen layer as PNG")
    parser.add_argument("--boost-indiv", type=float, default=0.0, help="per-unit boost exponent (toolbox key T): 0..1 (default %(default)s)")
    parser.add_argument("--boost-gamma", type=float, default=1.0, help="gamma boost (toolbox key t): e.g. 1, .7, .5, .3 (default %(default)s)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from onnxprobe.api.results import save_picture

    if not 0 <= args.boost_indiv <= 1:
        raise UsageError("--boost-indiv must be between 0 and 1")
    if args.boost_gamma <= 0:
        raise UsageError("--boost-gamma must be positive")
    model = load_model_from_args(args)  # the notebook API's Model: the same activations and grid
    acts = model.activations(args.image, args.layer)
    warn_nonfinite(acts.values, "the activations")
    acts.save_npz(args.out)
    print(f"wrote {len(acts.values)} activations to {args.out}")
    if args.grid:
        layer = model.layer(args.layer[0]) if args.layer else _default_grid_layer(model)
        path = save_picture(args.grid, acts.grid(layer.name, boost_indiv=args.boost_indiv, boost_gamma=args.boost_gamma))
        named = f"'{layer.module_path}' ('{layer.name}')" if layer.module_path else f"'{layer.name}'"
        print(f"wrote the grid of {named} ({layer.units} units) to {path}")
    return 0


def _default_grid_layer(model):
    spatial = [layer for layer in model.layers if layer.is_spatial]
    return spatial[0] if spatial else model.layers[0]
