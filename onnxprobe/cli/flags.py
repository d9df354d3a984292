"""The one table from the library's parameter names to this command line's flags: a library error
(`errors.ParameterError`) names parameters, and `main()` prints it with the flags a user typed."""

from __future__ import annotations

from onnxprobe.errors import ParameterError, ProbeError

# parameter (as the library's functions name it) -> the flag that gives it on the command line
FLAGS = {
    "input_shape": "--input-shape",
    "layer": "--layer",
    "layers": "--layer",
    "all_layers": "--all",
    "units": "--units",
    "objective": "--objective",
    "position": "--position",
    "preset": "--preset",
    "param": "--param",
    "steps": "--steps",
    "samples": "--samples",
    "seed": "--seed",
    "restarts": "--restarts",
    "batch": "--batch",
    "out_dir": "--out",
    "fresh": "--fresh",
    "scheduler": "--scheduler",
    "every": "--every",
    "top": "--top",
    "by": "--by",
    "batch_size": "--batch-size",
    "samples": "--samples",
    "noise_level": "--noise-level",
    # attribution (attribute)
    "target": "--target",
    "interpolation": "--interpolation",
    "rule": "--rule",
    "baseline": "--baseline",
    "window": "--window",
    "stride": "--stride",
    "cam_layer": "--cam-layer",
    "shard_size": "--shard-size",
    "memory_budget": "--memory-budget",
    # pictures from a photo (optimize --from)
    "photo": "--from",
    "picture": "--picture",
    "unit": "--unit",
    "photo_activation": "--from",
    "weight": "--closeness",
    "photo_pictures": "--photo-pictures",
    # the viewer's inputs (view)
    "atlas": "--atlas",
    "images": "--images",
    "image": "--image",
    "video": "--video",
    "camera": "--camera",
    "screenshot": "--screenshot",
    "keys": "--keys",
    "quit_after": "--quit-after",
    # the demo
    "classes": "--classes",
    # the layer pane's boosts (activations)
    "boost_indiv": "--boost-indiv",
    "boost_gamma": "--boost-gamma",
}
# how the view command names the viewer's inputs in its hints (viewer.state.INPUT_WORDS)
VIEWER_WORDS = {"atlas": f"{FLAGS['atlas']} DIR", "files": f"{FLAGS['images']}, {FLAGS['image']} or {FLAGS['video']}"}


def in_cli_words(exc: ProbeError) -> str:
    """The error's line as a command-line user reads it: parameters named by their flags."""
    return exc.in_words(FLAGS) if isinstance(exc, ParameterError) else str(exc)
