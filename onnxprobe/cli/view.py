"""`onnxprobe view MODEL`: the live viewer (the Deep Visualization Toolbox for any ONNX CNN)."""

from __future__ import annotations

import os

from onnxprobe.cli.common import add_model_args, load_model_from_args
from onnxprobe.errors import ProbeError, UsageError


def register(sub) -> None:
    parser = sub.add_parser("view", help="live viewer: activations, back maps and unit visuals on a camera, video or images")
    add_model_args(parser)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--camera", type=int, metavar="N", help="webcam index (the default: camera 0)")
    source.add_argument("--video", metavar="FILE", help="video file (loops)")
    source.add_argument("--images", metavar="DIR", help="folder of images (e / w: next / previous)")
    source.add_argument("--image", metavar="FILE", help="one image")
    parser.add_argument("--atlas", metavar="DIR", help="atlas folder (manifest.json) for unit visuals and pattern mode")
    parser.add_argument("--save-dir", default="onnxprobe-snapshots", metavar="DIR", help="where p saves the panes")
    parser.add_argument("--quit-after", type=float, metavar="SECONDS", help="close after this long (scripted runs)")
    parser.add_argument("--keys", default="", metavar="KEYS", help="with --quit-after: type these keys first")
    parser.add_argument("--screenshot", metavar="PNG", help="with --quit-after: save the window as PNG before closing")
    parser.set_defaults(func=run, staged=False)  # snapshots are written while it runs


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
    source = _source(args)  # before loading anything: a bad path fails in a moment
    atlas = None
    if args.atlas:
        from onnxprobe.viewer.atlas_source import AtlasSource

        atlas = AtlasSource(args.atlas)
    model = load_model_from_args(args)
    from onnxprobe.viewer.controller import Viewer
    from onnxprobe.viewer.qt.app import run_window

    viewer = Viewer(model, source, atlas=atlas, camera_index=args.camera or 0, save_dir=args.save_dir)
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
