"""Arguments shared by commands, and loading a model from them."""

from __future__ import annotations

import argparse
import sys
import time

from onnxprobe.graph.loading import parse_shape


def add_model_args(parser: argparse.ArgumentParser, device: bool = True) -> None:
    parser.add_argument("model", help="ONNX model file")
    parser.add_argument("--input-shape", metavar="N,C,H,W", help="fix the input shape (needed for dynamic H/W)")
    if device:
        parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                            help="execution provider: auto = CUDA when a GPU is usable, else CPU")
    group = parser.add_argument_group("preprocessing (overrides the sidecar file and the model's metadata)")
    group.add_argument("--layout", choices=("NCHW", "NHWC"))
    group.add_argument("--channel-order", choices=("RGB", "BGR"))
    group.add_argument("--value-range", metavar="LO,HI", help="pixel 0..255 maps to LO..HI, e.g. 0,1 or 0,255")
    group.add_argument("--mean", metavar="M[,M,M]", help="per-channel mean subtracted after scaling")
    group.add_argument("--std", metavar="S[,S,S]", help="per-channel std divided after the mean")
    group.add_argument("--labels", metavar="FILE", help="class labels, one per line")
    group.add_argument("--resize", choices=("crop", "stretch"), help="centre-crop to the aspect ratio, or stretch")
    group.add_argument("--invert", action="store_true", default=None, help="invert pixels (255 - p) first")


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


def load_model_from_args(args, device: str | None = None):
    from onnxprobe.model import ProbeModel

    return ProbeModel.load(
        args.model,
        input_shape=parse_shape(args.input_shape) if args.input_shape else None,
        device=device or getattr(args, "device", "auto"),
        preprocess=preprocess_overrides(args),
    )


def parse_units(texts: list[str], count: int) -> list[int]:
    """'--unit 3 --unit 0-15 --unit all' -> sorted unique unit indices, each checked against count."""
    from onnxprobe.errors import UsageError

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
                    units.extend(range(int(lo), int(hi) + 1))
                else:
                    units.append(int(part))
            except (TypeError, ValueError):
                raise UsageError(f"--unit takes indices, ranges like 0-15, or 'all'; got '{part}'") from None
    bad = [u for u in units if not 0 <= u < count]
    if bad:
        raise UsageError(f"unit {bad[0]} is out of range: the layer has {count} units (0-{count - 1})")
    return sorted(dict.fromkeys(units))


def parse_position(text: str | None):
    """'--position Y,X | max | centre | mean' -> (y, x) or the keyword; None when not given
    (one meaning for every command: onnxprobe.position)."""
    from onnxprobe.position import parse_position as parse

    return parse(text)


def add_render_args(parser: argparse.ArgumentParser, default_preset: str | None) -> None:
    """--preset, --param, --restarts, --steps, --seed, --batch: the settings of
    `optimize.render_units`. `default_preset=None`: the project default (optimize.DEFAULT_PRESET)."""
    from onnxprobe.optimize.presets import DEFAULT_PRESET, PARAMS, PRESETS

    parser.add_argument("--preset", default=default_preset or DEFAULT_PRESET,
                        help=f"hyperparameters: {', '.join(PRESETS)} (default {default_preset or DEFAULT_PRESET}: "
                             "it measures best; set1-set4 are the paper's four sets, their step made scale-free)")
    parser.add_argument("--param", choices=PARAMS,
                        help="pixel (the paper) or fft (Lucid's spectrum parameterization, with the lucid preset)")
    parser.add_argument("--restarts", type=int, default=1, help="random restarts per unit (default 1)")
    parser.add_argument("--steps", type=int, help="override the preset's number of steps")
    parser.add_argument("--seed", type=int, default=0, help="random seed (each unit/restart derives its own)")
    parser.add_argument("--batch", type=int, default=8,
                        help="(unit, restart) rows optimised together in one run of the gradient graph (default 8)")


class Progress:
    """A plain-text progress bar on stderr: done/total, rate and ETA (no extra dependency)."""

    def __init__(self, total: int, unit: str = "it", enabled: bool | None = None, label: str = ""):
        self.total = total
        self.unit = unit
        self.label = label
        self.done = 0
        self.start = time.monotonic()
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._last = 0.0

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.2 or self.done >= self.total):
            self._last = now
            sys.stderr.write("\r" + self.text() + " " * 4)
            sys.stderr.flush()

    def rate(self) -> float:
        elapsed = time.monotonic() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def text(self) -> str:
        rate = self.rate()
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        width = 24
        filled = int(width * self.done / self.total) if self.total else width
        eta_text = f"{eta:5.0f}s" if eta != float("inf") else "    ?"
        return f"{self.label}[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {rate:.2f} {self.unit}/s ETA {eta_text}"

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()
