"""`onnxprobe attribute MODEL IMAGE --method NAME`: an attribution map as PNG (and raw .npy)."""

from __future__ import annotations

from onnxprobe.cli.common import add_budget_arg, add_input_args, add_model_args, count_arg, model_and_input, write_map
from onnxprobe.errors import UsageError

# flags that carry a method option of the same name; their default None means "not given"
METHOD_FLAGS = ("cam_layer", "interpolation", "steps", "rule", "baseline", "batch_size", "samples", "noise_level",
                "seed", "window", "stride")


SUMMARY = "attribution map (saliency, Grad-CAM, integrated gradients, ...)"  # the line in 'onnxprobe --help'
DESCRIPTION = """Which input pixels explain a class score (default: the predicted class) or a unit: saliency,
gradient x input, guided backprop, deconvnet, (guided) Grad-CAM, integrated gradients,
SmoothGrad or occlusion, written as a heat map."""
EXAMPLES = """examples:
  onnxprobe attribute models/imagenet/mobilenet_v2.onnx models/imagenet/samples/coffee.jpg --method gradcam --overlay --out cam.png
  onnxprobe attribute models/imagenet/mobilenet_v2.onnx models/imagenet/samples/chelsea.jpg \\
      --method integrated_gradients --steps 32 --target 285 --out ig.png
"""


def register(sub) -> None:
    from onnxprobe.api.params import IG_RULES, METHODS, POSITION_HELP

    parser = sub.add_parser("attribute", help=SUMMARY)
    add_model_args(parser)
    add_budget_arg(parser)
    add_input_args(parser)
    parser.add_argument("--method", required=True, choices=tuple(METHODS), help="attribution method")
    what = parser.add_argument_group("objective (default: the logit of the predicted class)")
    what.add_argument("--target", type=int, metavar="CLASS", help="class index whose logit to explain")
    what.add_argument("--layer", help="explain a unit of this layer instead of a class")
    what.add_argument("--unit", type=int, help="unit (channel) of --layer")
    what.add_argument("--position", metavar="Y,X|max|centre|mean",
                      help=f"for a spatial --layer: {POSITION_HELP} (default max)")
    opts = parser.add_argument_group("method options")
    opts.add_argument("--cam-layer", help="gradcam, guided_gradcam: layer to weight (default: last spatial layer)")
    opts.add_argument("--interpolation", choices=("bilinear", "nearest"), help="gradcam, guided_gradcam: upsampling (default bilinear)")
    opts.add_argument("--steps", type=int, help="integrated_gradients: integration points (default 50)")
    opts.add_argument("--rule", choices=IG_RULES, help="integrated_gradients: quadrature (default gausslegendre)")
    opts.add_argument("--baseline", help="integrated_gradients: zero, black, white or FILE.npy (default zero); "
                                         "occlusion: the value of occluded pixels (default 0)")
    opts.add_argument("--samples", type=int, help="smoothgrad: noisy samples (default 25)")
    opts.add_argument("--noise-level", type=float, help="smoothgrad: noise sigma / input value range (default 0.15)")
    opts.add_argument("--seed", type=count_arg(0), help="smoothgrad: random seed (default 0)")
    opts.add_argument("--window", metavar="H[,W]", help="occlusion: window in pixels (default 8)")
    opts.add_argument("--stride", metavar="S[,S]", help="occlusion: stride in pixels (default 4)")
    opts.add_argument("--batch-size", type=int, help="integrated_gradients, smoothgrad, occlusion: inputs per run (default: 2 on the CPU, 32 on "
                                                            "CUDA; occlusion 32)")
    parser.add_argument("--out", required=True, help="output PNG: the map as a heat map")
    parser.add_argument("--overlay", action="store_true", help="blend the heat map over the input image")
    parser.add_argument("--npy", metavar="FILE", help="also save the raw map as .npy")
    parser.set_defaults(func=run)


def _ints(flag: str, text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{flag} takes one or two integers like 8 or 8,16, got '{text}'") from None
    if len(values) not in (1, 2):
        raise UsageError(f"{flag} takes one or two integers like 8 or 8,16, got '{text}'")
    return values if len(values) == 2 else values * 2


def method_options(args, model, method: str) -> dict:
    """The method flags the user gave, converted; a flag the method does not take is an error."""
    from onnxprobe.api.params import METHODS

    given = {name: getattr(args, name) for name in METHOD_FLAGS if getattr(args, name) is not None}
    unknown = sorted(set(given) - set(METHODS[method].options))
    if unknown:
        flags = ", ".join("--" + name.replace("_", "-") for name in unknown)
        raise UsageError(f"{flags} do(es) not apply to --method {method}")
    for name in ("window", "stride"):
        if name in given:
            given[name] = _ints("--" + name, given[name])
    if "baseline" in given:
        text = given["baseline"]
        if method == "occlusion":
            try:
                given["baseline"] = float(text)
            except ValueError:
                raise UsageError(f"--baseline for occlusion is a number, got '{text}'") from None
        elif text.endswith(".npy"):
            from onnxprobe.api.params import read_array

            given["baseline"] = model.check_input(read_array(text, "--baseline"))
    return given


def run(args) -> int:
    from onnxprobe.api.params import parse_position

    model, x = model_and_input(args)
    options = method_options(args, model, args.method)
    result = model.attribute(x, args.method, target=args.target, layer=args.layer, unit=args.unit,
                             position=parse_position(args.position), overlay=args.overlay,
                             **options)  # the notebook API's map: one path for both
    for note in result.notes:
        print(note)
    write_map(args, result, result.title, "map")
    return 0
