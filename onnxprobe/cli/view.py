"""`onnxprobe view MODEL`: the live viewer (the Deep Visualization Toolbox for any ONNX CNN)."""

from __future__ import annotations

import os

from onnxprobe.cli.common import add_model_args, load_model_from_args
from onnxprobe.cli.flags import VIEWER_WORDS
from onnxprobe.errors import ProbeError, UsageError
from onnxprobe.resources import default_model, sample_images

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
    from onnxprobe.viewer.keys import help_lines

    keys = "\n".join("  " + line for line in help_lines(arrows=False, words=VIEWER_WORDS))
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


def display_available() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                or os.environ.get("QT_QPA_PLATFORM", "").startswith("offscreen"))


def run(args) -> int:
    if not display_available():
        raise ProbeError("no display: set DISPLAY or WAYLAND_DISPLAY, or QT_QPA_PLATFORM=offscreen")
    if (args.screenshot or args.keys) and args.quit_after is None:
        raise UsageError("--screenshot and --keys need --quit-after")
    if args.quit_after is not None and args.quit_after <= 0:
        raise UsageError("--quit-after must be positive")
    if args.model is None:  # the bundled network, on its own sample photos unless a source is given
        args.model = str(default_model())
        if args.video is None and args.images is None and args.image is None and args.camera is None:
            samples = sample_images(default_model())
            args.images = str(samples[0].parent) if samples else None
    source = _source(args)  # before loading anything: a bad path fails in a moment
    atlas = None
    if args.atlas:
        from onnxprobe.viewer.atlas_source import AtlasSource

        atlas = AtlasSource(args.atlas)
    from onnxprobe.viewer.controller import Viewer
    from onnxprobe.viewer.qt.app import run_window
    from onnxprobe.viewer.workers import inference_threads

    model = load_model_from_args(args, threads=inference_threads())

    viewer = Viewer(model, source, atlas=atlas, camera_index=args.camera or 0, save_dir=args.save_dir, words=VIEWER_WORDS)
    return run_window(viewer, quit_after=args.quit_after, screenshot=args.screenshot, keys=args.keys)


def _source(args):
    from onnxprobe.viewer.sources import CameraSource, ImageFilesSource, check_video

    if args.video:
        return check_video(args.video)
    if args.images:
        return ImageFilesSource.folder(args.images)
    if args.image:
        return ImageFilesSource.single(args.image)
    if args.camera is not None and args.camera < 0:
        raise UsageError("--camera takes a camera index (0, 1, ...)")
    return CameraSource(args.camera or 0)
