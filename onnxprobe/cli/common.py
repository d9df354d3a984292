"""Arguments shared by commands, and the API's values built from them (`load_model_from_args` ->
`onnxprobe.api.model.load`, the render keywords, an input tensor), and the warning lines."""

from __future__ import annotations

import argparse
import sys

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
    from onnxprobe.api.params import parse_size
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
    """The API's `Model` (`onnxprobe.api.model.load`) of MODEL and the model flags."""
    from onnxprobe.api.model import load

    return load(args.model, input_shape=args.input_shape, device=device or getattr(args, "device", "auto"),
                threads=threads, memory_budget=getattr(args, "memory_budget", None), **preprocess_overrides(args))


# ---- an image (or a ready tensor) in, a map out: attribute and backprop ----------------------------

def add_input_args(parser: argparse.ArgumentParser) -> None:
    """IMAGE or --input-npy FILE: what `load_input` reads."""
    parser.add_argument("image", nargs="?", help="image file (or give --input-npy)")
    parser.add_argument("--input-npy", metavar="FILE", help="a ready input tensor (.npy) instead of IMAGE")


def load_input(model, args):
    """The input tensor from IMAGE or --input-npy (exactly one of them); `model` is the API's `Model`."""
    from onnxprobe.errors import InputError, UsageError

    if (args.image is None) == (args.input_npy is None):
        raise UsageError("give either IMAGE or --input-npy FILE (exactly one)")
    if args.image is not None:
        return model.tensor(args.image)
    from onnxprobe.api.params import read_array

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


def write_map(args, result, what: str, raw_name: str, raw=None) -> None:
    """The map's picture (`result`: the API's `Map`, drawn at least MAP_MIN_SIDE pixels, the one
    no-signal picture when it holds none) at --out; the raw array (default `result.values`) at
    --npy, when asked. A map without signal: its line as a warning."""
    from onnxprobe.api.results import save_array, save_picture

    if result.silent is not None:
        warn(result.silent)
    path = save_picture(args.out, result.image)
    print(f"{what}: wrote {path}")
    if args.npy:
        raw = result.values if raw is None else raw
        save_array(args.npy, raw)
        print(f"wrote the raw {raw_name} {raw.shape} to {args.npy}")


def add_render_args(parser: argparse.ArgumentParser, default_preset: str | None) -> None:
    """--preset, --param, --restarts, --steps, --seed, --batch: the render keywords of the API
    (`Model.render_units`, `Model.atlas`); `render_keywords(args)` checks and gives them.
    `default_preset=None`: the project default (DEFAULT_PRESET)."""
    from onnxprobe.api.params import DEFAULT_PRESET, PARAMS, PRESETS

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


def render_keywords(args) -> dict:
    """The render flags (--preset, --steps, --param, --restarts, --seed, --batch) as the API's
    keywords, checked once here (`api.params.render_settings`): bad values fail before any work."""
    from onnxprobe.api.params import render_settings

    given = {"preset": args.preset, "steps": args.steps, "param": args.param, "restarts": args.restarts,
             "seed": args.seed, "batch": args.batch}
    render_settings(**given)
    return given


def warn_nonfinite(arrays: dict, what: str) -> bool:
    """One warning line on stderr when any of the named arrays holds NaN or infinities (a model
    that overflows, NaN weights); True when it warned. The outputs are still written: the files
    say null where JSON cannot hold the value."""
    from onnxprobe.api.results import nonfinite_names

    return warn_nonfinite_names(nonfinite_names(arrays), what)


def warn_nonfinite_names(bad: list[str], what: str) -> bool:
    """The warning line of `warn_nonfinite` (`api.results.nonfinite_line`) for names already found
    to hold NaN or infinities."""
    from onnxprobe.api.results import nonfinite_line

    line = nonfinite_line(bad, what)
    if line is not None:
        warn(line)
    return line is not None


def warn(line: str) -> None:
    """The one warning line on stderr: the output is written, but says less than it seems to."""
    from onnxprobe.errors import printable

    print(f"onnxprobe: warning: {printable(line)}", file=sys.stderr)
