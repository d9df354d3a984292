"""`onnxprobe view MODEL`: the live viewer (the Deep Visualization Toolbox for any ONNX CNN)."""

from __future__ import annotations

from onnxprobe.cli.common import add_model_args, preprocess_overrides
from onnxprobe.cli.flags import VIEWER_WORDS

SUMMARY = "live viewer: activations, back maps and unit visuals on a camera, video or images"  # the line in 'onnxprobe --help'
DESCRIPTION = """The Deep Visualization Toolbox's live window for MODEL (default: the bundled ImageNet
MobileNetV2, on its sample photos unless a source is given): every unit of a layer reacting to
the input, back maps, unit visuals and live optimization."""
EXAMPLES = """examples:
  onnxprobe view                                                # the bundled ImageNet network on its sample photos
  onnxprobe view models/imagenet/mobilenet_v2.onnx --camera 0   # live, on a webcam
  onnxprobe view model.onnx --images photos/ --atlas atlas/     # with unit visuals from 'onnxprobe atlas'
"""


def examples() -> str:
    """The epilog of view's --help: the viewer's keys (read from its key table only when the help is
    asked for: the table imports the viewer) and EXAMPLES."""
    from onnxprobe.api.params import viewer_key_help

    keys = "\n".join("  " + line for line in viewer_key_help(arrows=False, words=VIEWER_WORDS))
    return f"keys (h in the window shows them too):\n{keys}\n\n{EXAMPLES}"


def register(sub) -> None:
    parser = sub.add_parser("view", help=SUMMARY)
    add_model_args(parser)
    _make_model_optional(parser)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--camera", type=int, metavar="N", help="webcam index (default: camera 0 when MODEL is given and no other source; "
                                                                   "key c switches between camera and files)")
    source.add_argument("--video", metavar="FILE", help="video file (loops)")
    source.add_argument("--images", metavar="DIR", help="folder of images (e / w: next / previous)")
    source.add_argument("--image", metavar="FILE", help="one image")
    parser.add_argument("--atlas", metavar="DIR", help="atlas folder (manifest.json) for unit visuals and pattern mode")
    parser.add_argument("--save-dir", default="onnxprobe-snapshots", metavar="DIR", help="where p saves the panes (default %(default)s)")
    parser.add_argument("--quit-after", type=float, metavar="SECONDS", help="close after this long (scripted runs)")
    parser.add_argument("--keys", default="", metavar="KEYS", help="with --quit-after: type these keys first")
    parser.add_argument("--screenshot", metavar="PNG", help="with --quit-after: save the window as PNG before closing")
    parser.set_defaults(func=run, staged=False)  # snapshots are written while it runs


def _make_model_optional(parser) -> None:
    """MODEL may be left out: the bundled ImageNet network (argparse has no public way to relax a
    positional that a shared helper added, so the action is adjusted here)."""
    for action in parser._actions:
        if action.dest == "model":
            action.nargs = "?"
            action.default = None
            action.help = "ONNX model file (default: the bundled ImageNet MobileNetV2, models/imagenet/)"


def run(args) -> int:
    from onnxprobe.api.model import view

    return view(args.model, args.images, image=args.image, camera=args.camera, video=args.video, atlas=args.atlas,
                save_dir=args.save_dir, quit_after=args.quit_after, screenshot=args.screenshot, keys=args.keys,
                words=VIEWER_WORDS, input_shape=args.input_shape, device=args.device, **preprocess_overrides(args))
