"""Plain forward vs forward with every activation exposed, same model, input and run.

Prints frames per second of both and the overhead ratio (goal: at most 1.10), on the bundled
digits model and on a torchvision ResNet-18 exported at 224x224 (random weights).
usage: python bench/bench_expose.py [--device auto|cpu|cuda] [--repeats N]
"""

from __future__ import annotations

import argparse

import numpy as np

from common import BUNDLED, interleaved_medians, torchvision_onnx
from onnxprobe.model import ProbeModel
from onnxprobe.runtime.session import Session


def measure(path, device: str, repeats: int) -> dict:
    model = ProbeModel.load(path, device=device)
    x = np.random.default_rng(0).standard_normal(model.input_shape).astype(np.float32)
    plain = Session(model.proto, device=model.device, threads=model.threads)  # same runtime layer, nothing exposed
    feeds = {model.input_name: x}
    model.activations(x)  # builds the exposed session
    times = interleaved_medians({
        "plain": lambda: plain.run(feeds),
        "exposed": lambda: model.activations(x),
    }, repeats=repeats)
    return {"layers": len(model.layers), "device": model.device, **times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    for label, path in (("bundled digits CNN", BUNDLED), ("ResNet-18 224x224", torchvision_onnx("resnet18"))):
        r = measure(path, args.device, args.repeats)
        ratio = r["exposed"] / r["plain"]
        print(f"{label} [{r['device']}]: plain {1 / r['plain']:.1f} fps, all {r['layers']} activations exposed "
              f"{1 / r['exposed']:.1f} fps, overhead ratio {ratio:.3f} (goal <= 1.10)")


if __name__ == "__main__":
    main()
