"""`onnxprobe backprop MODEL IMAGE --layer L --unit C`: the toolbox's back map of one unit."""

from __future__ import annotations

from onnxprobe.cli.common import add_input_args, add_model_args, model_and_input, write_map


SUMMARY = "gradient / deconv / guided backprop of one unit back to the input"  # the line in 'onnxprobe --help'
DESCRIPTION = """The gradient, deconvnet or guided-backprop map of one unit (a channel at a position, or a
class) back to the input image, through one of the toolbox's back filters."""
EXAMPLES = """examples:
  onnxprobe backprop models/imagenet/mobilenet_v2.onnx models/imagenet/samples/chelsea.jpg \\
      --layer logits --unit 285 --mode guided --filter norm --out cat-guided.png
  onnxprobe backprop models/digits/digits-cnn.onnx models/digits/samples/digit-3.png \\
      --layer relu2 --unit 5 --mode deconv --out deconv.png
"""


def register(sub) -> None:
    from onnxprobe.api.params import BACK_MODES, FILTERS, POSITION_HELP

    parser = sub.add_parser("backprop", help=SUMMARY)
    add_model_args(parser)
    add_input_args(parser)
    parser.add_argument("--layer", required=True, help="layer of the unit")
    parser.add_argument("--unit", required=True, type=int, help="unit (channel) index")
    parser.add_argument("--position", metavar="Y,X|max|centre|mean", default="max",
                        help=f"{POSITION_HELP} (default max)")
    parser.add_argument("--mode", choices=[m.value for m in BACK_MODES], default=BACK_MODES.GRADIENT.value,
                        help=", ".join(f"{m.value} ({m.description})" for m in BACK_MODES) + " (default %(default)s)")
    parser.add_argument("--filter", choices=FILTERS, default="raw",
                        help="display filter of the toolbox's back pane (default %(default)s)")
    parser.add_argument("--out", required=True, help="output PNG")
    parser.add_argument("--npy", metavar="FILE", help="also save the raw gradient w.r.t. the input tensor")
    parser.set_defaults(func=run)


def run(args) -> int:
    from onnxprobe.api.params import parse_position

    model, x = model_and_input(args)
    result = model.backprop(x, args.layer, args.unit, position=parse_position(args.position), mode=args.mode,
                            filter=args.filter)  # the notebook API's map: one path for both
    for note in result.notes:
        print(note)
    write_map(args, result, result.title, "gradient", raw=result.values[None])
    return 0
