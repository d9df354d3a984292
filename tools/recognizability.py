#!/usr/bin/env python
"""Are the bundled model's class visualizations recognizable? A second, independently trained
model judges them.

    python tools/recognizability.py [--steps 200] [--restarts 3] [--seed 0]
                                    [--presets set1,set2,set3,set4,lucid]

For every preset, each class c of `models/digits/digits-cnn.onnx` is visualized with objective
`logit` (its pre-softmax score) from `restarts` independent starts. Each best image goes through
display space (HxWx3 uint8, what the PNG holds) and the judge's own preprocessing (its sidecar),
and counts as recognized when the judge's (`tests/fixtures/digits-alt/digits-alt.onnx`) argmax
is c. Prints a Markdown table: per preset the classes recognized out of 10 for each restart, and
what the judge said for restart 0 (a judge that answers one class for everything is at chance). `--steps 0` uses each preset's own default step count.

Needs only onnxprobe (no torch); `judged_classes` is what tests/optimize/ calls.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from onnxprobe.model import ProbeModel  # noqa: E402
from onnxprobe.optimize import PRESETS, RenderSettings, render_units  # noqa: E402

MODEL = ROOT / "models" / "digits" / "digits-cnn.onnx"
JUDGE = ROOT / "tests" / "fixtures" / "digits-alt" / "digits-alt.onnx"
PRESET_PARAMS = {"set1": None, "set2": None, "set3": None, "set4": None, "lucid": "fft"}


def judge_predictions(judge: ProbeModel, images: list[np.ndarray]) -> np.ndarray:
    """The judge's class for each display image (uint8 HxWx3), through its own preprocessing."""
    x = np.concatenate([judge.preprocess(image) for image in images])
    probs = judge.activations(x, [judge.class_output], with_outputs=False)[judge.class_output]
    return probs.argmax(axis=1)


def judged_classes(model: ProbeModel, judge: ProbeModel, preset: str, steps: int | None, restarts: int,
                   seed: int, param: str | None = None, classes=range(10)) -> np.ndarray:
    """(restarts, len(classes)) ints: the judge's class for restart r's best image of class c."""
    classes = list(classes)
    settings = RenderSettings.resolve(preset, steps, param, restarts, seed, batch=len(classes) * restarts)
    results = render_units(model, None, classes, settings, objective="logit")
    return np.stack([judge_predictions(judge, result.images) for result in results], axis=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="steps per run; 0 = each preset's own default")
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--presets", default=",".join(PRESET_PARAMS))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    model = ProbeModel.load(MODEL, device=args.device)
    judge = ProbeModel.load(JUDGE, device=args.device)
    print(f"model {MODEL.relative_to(ROOT)}, judge {JUDGE.relative_to(ROOT)}, objective logit, "
          f"restarts {args.restarts}, seed {args.seed}\n")
    print("| preset | param | steps (preset default) | recognized of 10, per restart | mean | "
          "judge's classes for 0..9, restart 0 | seconds |")
    print("|---|---|---|---|---|---|---|")
    for name in args.presets.split(","):
        param = PRESET_PARAMS.get(name)
        steps = args.steps or PRESETS[name].steps
        began = time.perf_counter()
        judged = judged_classes(model, judge, name, steps, args.restarts, args.seed, param)
        seconds = time.perf_counter() - began
        counts = (judged == np.arange(judged.shape[1])).sum(axis=1)
        print(f"| {name} | {param or 'pixel'} | {steps} ({PRESETS[name].steps}) | {', '.join(map(str, counts))} "
              f"| {counts.mean():.1f} | `{''.join(map(str, judged[0]))}` | {seconds:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
