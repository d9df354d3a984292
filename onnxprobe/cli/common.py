"""Arguments shared by commands, and loading a model from them."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np



DEVICE_HELP = "execution provider: auto = CUDA when a GPU is usable, else CPU (default %(default)s)"


def add_model_args(parser: argparse.ArgumentParser, device: bool = True) -> None:
    parser.add_argument("model", help="ONNX model file")
    parser.add_argument("--input-shape", metavar="N,C,H,W",
                        help="fix the input shape (needed for dynamic H/W; default: the model's own dims, else the "
                             "preprocessing's input size)")
    if device:
        parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help=DEVICE_HELP)
    group = parser.add_argument_group("preprocessing (default: the sidecar file, else the model's metadata; these "
                                      "flags override both)")
    group.add_argument("--layout", choices=("NCHW", "NHWC"), help="axis order of the input tensor")
    group.add_argument("--channel-order", choices=("RGB", "BGR"), help="channel order the model expects")
    group.add_argument("--value-range", metavar="LO,HI", help="pixel 0..255 maps to LO..HI, e.g. 0,1 or 0,255")
    group.add_argument("--mean", metavar="M[,M,M]", help="per-channel mean subtracted after scaling")
    group.add_argument("--std", metavar="S[,S,S]", help="per-channel std divided after the mean")
    group.add_argument("--labels", metavar="FILE", help="class labels, one per line")
    group.add_argument("--resize", choices=("crop", "stretch"), help="centre-crop to the aspect ratio, or stretch")
    group.add_argument("--invert", action="store_true", default=None, help="invert pixels (255 - p) first")


def add_budget_arg(parser: argparse.ArgumentParser) -> None:
    """--memory-budget SIZE: what the command's batched work may hold at once (onnxprobe.budget)."""
    parser.add_argument("--memory-budget", metavar="SIZE", type=_size,
                        help="memory the batched work may hold at once, e.g. 4G or 512M (default: half the available "
                             "memory; on CUDA, half the GPU's free memory); internal batches are cut to fit")


def _size(text: str) -> int:
    """An argparse type: a size ('4G') in bytes; a bad one is argparse's one line, exit 2."""
    from onnxprobe.budget import parse_size
    from onnxprobe.errors import ParameterError

    try:
        return parse_size(text)
    except ParameterError as exc:
        raise argparse.ArgumentTypeError(exc.in_words({"memory_budget": "the budget"})) from None


_size.__name__ = "size"


def count_arg(minimum: int):
    """An argparse type: a whole number >= minimum (argparse reports anything else in one line)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"whole number >= {minimum}"
    return parse


def _floats(text):
    return None if text is None else tuple(float(v) for v in text.split(","))


def preprocess_overrides(args) -> dict:
    from onnxprobe.errors import UsageError

    try:
        return {
            "layout": args.layout, "channel_order": args.channel_order, "value_range": _floats(args.value_range),
            "mean": _floats(args.mean), "std": _floats(args.std), "labels": args.labels, "resize": args.resize,
            "invert": args.invert,
        }
    except ValueError as exc:
        raise UsageError(f"preprocessing flags take comma-separated numbers: {exc}") from None


def load_model_from_args(args, device: str | None = None, threads: int | None = None):
    from onnxprobe.graph.loading import parse_shape
    from onnxprobe.model import ProbeModel

    return ProbeModel.load(
        args.model,
        input_shape=parse_shape(args.input_shape) if args.input_shape is not None else None,
        device=device or getattr(args, "device", "auto"),
        preprocess=preprocess_overrides(args),
        threads=threads,
        memory_budget=getattr(args, "memory_budget", None),
    )


# ---- an image (or a ready tensor) in, a map out: attribute and backprop ----------------------------

def add_input_args(parser: argparse.ArgumentParser) -> None:
    """IMAGE or --input-npy FILE: what `load_input` reads."""
    parser.add_argument("image", nargs="?", help="image file (or give --input-npy)")
    parser.add_argument("--input-npy", metavar="FILE", help="a ready input tensor (.npy) instead of IMAGE")


def load_input(model, args):
    """The input tensor from IMAGE or --input-npy (exactly one of them)."""
    from onnxprobe.errors import InputError, UsageError

    if (args.image is None) == (args.input_npy is None):
        raise UsageError("give either IMAGE or --input-npy FILE (exactly one)")
    if args.image is not None:
        from onnxprobe.preprocess import read_image

        return model.preprocess(read_image(args.image))
    from onnxprobe.preprocess import read_array

    x = model.check_input(read_array(args.input_npy, "--input-npy"))
    if x.shape[0] != 1:
        raise InputError(f"--input-npy holds a batch of {x.shape[0]} inputs; give one")
    return x


def model_and_input(args):
    """The model and its input tensor (IMAGE or --input-npy), after checking the --npy name."""
    from onnxprobe.errors import UsageError

    if args.npy is not None and not args.npy.endswith(".npy"):
        raise UsageError(f"--npy needs a .npy file name, got '{args.npy}'")
    model = load_model_from_args(args)
    return model, load_input(model, args)


def write_map(args, image, raw, what: str, raw_name: str, silent: str | None = None) -> None:
    """The map's picture at --out, upscaled to at least MAP_MIN_SIDE pixels (the raw array keeps
    the model's size at --npy, when asked); with `silent` (objectives.silence's line) the one
    no-signal picture instead, and the line as a warning."""
    from onnxprobe.fsutil import atomic_save_npy
    from onnxprobe.render.compose import no_signal
    from onnxprobe.render.images import MAP_MIN_SIDE, upscale, write_png

    image = upscale(image, MAP_MIN_SIDE)
    if silent is not None:
        warn(silent)
        image = no_signal(*image.shape[:2])
    path = write_png(args.out, image)
    print(f"{what}: wrote {path}")
    if args.npy:
        atomic_save_npy(args.npy, raw)
        print(f"wrote the raw {raw_name} {raw.shape} to {args.npy}")


# ---- a layer's grid as a file: demo, view, activations ----------------------------------------------

def write_layer_grid(model, layer, activation: np.ndarray, path, boost_indiv=0.0, boost_gamma=1.0) -> Path:
    """The layer pane as a PNG a person can read (`onnxprobe.api.results.layer_grid_image`, the
    picture a notebook shows for `Model.activations`)."""
    from onnxprobe.api.results import layer_grid_image
    from onnxprobe.render.images import write_png

    return write_png(path, layer_grid_image(model, layer, activation, boost_indiv, boost_gamma))


def layer_grid_image(model, layer, activation: np.ndarray, boost_indiv=0.0, boost_gamma=1.0) -> np.ndarray:
    """The layer pane as a picture: `onnxprobe.api.results.layer_grid_image` (its one home, what a
    notebook shows for `Model.activations`)."""
    from onnxprobe.api.results import layer_grid_image as picture

    return picture(model, layer, activation, boost_indiv, boost_gamma)


def parse_units(texts: list[str], layer) -> list[int]:
    """'--unit 3 --unit 0-15 --unit all' -> sorted unique unit indices, each checked against the
    layer's units (onnxprobe.position.check_unit)."""
    from onnxprobe.errors import UsageError
    from onnxprobe.position import check_unit

    count = layer.units

    units: list[int] = []
    for text in texts:
        for part in str(text).split(","):
            part = part.strip()
            if part == "all":
                units.extend(range(count))
                continue
            try:
                if "-" in part[1:]:
                    lo, hi = part.split("-", 1) if not part.startswith("-") else (None, None)
                    if int(hi) < int(lo):
                        raise UsageError(f"--unit range '{part}' is reversed: write {int(hi)}-{int(lo)}")
                    units.extend(range(int(lo), int(hi) + 1))
                else:
                    units.append(int(part))
            except (TypeError, ValueError):
                raise UsageError(f"--unit takes indices, ranges like 0-15, or 'all'; got '{part}'") from None
    return sorted(dict.fromkeys(check_unit(layer, u) for u in units))


def add_render_args(parser: argparse.ArgumentParser, default_preset: str | None) -> None:
    """--preset, --param, --restarts, --steps, --seed, --batch: the settings of
    `optimize.render_units` (`render_settings(args)` resolves them). `default_preset=None`: the
    project default (optimize.DEFAULT_PRESET)."""
    from onnxprobe.optimize.presets import DEFAULT_PRESET, PARAMS, PRESETS

    parser.add_argument("--preset", default=default_preset or DEFAULT_PRESET,
                        help=f"hyperparameters: {', '.join(PRESETS)} (default {default_preset or DEFAULT_PRESET}: "
                             "it measures best; set1-set4 are the paper's four sets, their step made scale-free)")
    own = lambda field: ", ".join(f"{name} {getattr(p, field)}" for name, p in PRESETS.items())  # noqa: E731
    parser.add_argument("--param", choices=PARAMS,
                        help="pixel (the paper) or fft (Lucid's spectrum parameterization, with the lucid preset; "
                             f"default: the preset's own: {own('param')})")
    parser.add_argument("--restarts", type=int, default=1, help="random restarts per unit (default %(default)s)")
    parser.add_argument("--steps", type=int, help=f"optimization steps (default: the preset's own: {own('steps')})")
    parser.add_argument("--seed", type=count_arg(0), default=0,
                        help="random seed (each unit/restart derives its own; default %(default)s)")
    parser.add_argument("--batch", type=int, default=8,
                        help="(unit, restart) rows optimised together in one run of the gradient graph "
                             "(default %(default)s)")


def render_settings(args):
    """The one resolution of the render flags (--preset, --steps, --param, --restarts, --seed,
    --batch) into the library's typed `RenderSettings`: bad values fail here, before any work."""
    from onnxprobe.optimize import RenderSettings

    return RenderSettings.resolve(args.preset, args.steps, args.param, args.restarts, args.seed, args.batch)


def warn_nonfinite(arrays: dict, what: str) -> bool:
    """One warning line on stderr when any of the named arrays holds NaN or infinities (a model
    that overflows, NaN weights); True when it warned. The outputs are still written: the files
    say null where JSON cannot hold the value."""
    import numpy as np

    bad = [name for name, value in arrays.items()
           if np.issubdtype(np.asarray(value).dtype, np.floating) and not np.isfinite(value).all()]
    return warn_nonfinite_names(bad, what)


def warn_nonfinite_names(bad: list[str], what: str) -> bool:
    """The warning line of `warn_nonfinite` for names already found to hold NaN or infinities."""
    from onnxprobe.errors import printable

    if not bad:
        return False
    listed = ", ".join(printable(name) for name in bad[:4]) + (f" and {len(bad) - 4} more" if len(bad) > 4 else "")
    warn(f"NaN or infinite values in {what} ({listed}); check the model's weights and the preprocessing")
    return True


def warn(line: str) -> None:
    """The one warning line on stderr: the output is written, but says less than it seems to."""
    from onnxprobe.errors import printable

    print(f"onnxprobe: warning: {printable(line)}", file=sys.stderr)


def Progress(total: int, unit: str = "it", enabled: bool | None = None, label: str = ""):
    """The commands' text progress bar on stderr: `onnxprobe.progress.Progress` (the one home of
    the bars the commands and the notebook API draw), imported when a command starts working."""
    from onnxprobe.progress import Progress as TextBar

    return TextBar(total, unit=unit, enabled=enabled, label=label)
