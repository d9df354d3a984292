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
    from onnxprobe.position import HELP as POSITION_HELP
    from onnxprobe.autodiff import BackMode
    from onnxprobe.render.backmaps import FILTERS

    parser = sub.add_parser("backprop", help=SUMMARY)
    add_model_args(parser)
    add_input_args(parser)
    parser.add_argument("--layer", required=True, help="layer of the unit")
    parser.add_argument("--unit", required=True, type=int, help="unit (channel) index")
    parser.add_argument("--position", metavar="Y,X|max|centre|mean", default="max",
                        help=f"{POSITION_HELP} (default max)")
    parser.add_argument("--mode", choices=[m.value for m in BackMode], default=BackMode.GRADIENT.value,
                        help=", ".join(f"{m.value} ({m.description})" for m in BackMode) + " (default %(default)s)")
    parser.add_argument("--filter", choices=FILTERS, default="raw",
                        help="display filter of the toolbox's back pane (default %(default)s)")
    parser.add_argument("--out", required=True, help="output PNG")
    parser.add_argument("--npy", metavar="FILE", help="also save the raw gradient w.r.t. the input tensor")
    parser.set_defaults(func=run)


def run(args) -> int:
    from onnxprobe.position import parse_position
    from onnxprobe.objectives import silence, unit_objective
    from onnxprobe.position import resolve
    from onnxprobe.render.backmaps import gradient_hwc, render_backmap

    model, x = model_and_input(args)
    layer = model.layer(args.layer)
    position, how = resolve(model, layer, args.unit, parse_position(args.position), x)
    objective = unit_objective(model, layer, args.unit, "mean" if position is None else position)
    if layer.is_spatial and position is not None:
        print(f"position {','.join(map(str, position))} of '{layer.name}': {how}")
    run = model.gradient(x, objective, mode=args.mode)
    grad = run.input
    image = render_backmap(gradient_hwc(grad[0], model.spec.layout), args.filter,
                           rgb_order=model.spec.channel_order == "RGB")
    write_map(args, image, grad, f"{args.mode} of the {objective.description} ({args.filter} filter)", "gradient",
              silence(model, objective, grad, f"the {args.mode} map", run.activations))
    return 0
