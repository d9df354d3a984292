"""Plain forward vs forward with every activation exposed, same model, input and run.

For the bundled digits CNN and a torchvision ResNet-18 at 224x224 (random weights), at batch 1
and 8: the plain forward (the model's own outputs, same runtime layer) and ProbeModel.activations
of every probeable layer, alternating run by run so load from other work hits both alike. Then, at
batch 1, every layer as the Caffe toolbox listed them (a pre-activation whose only consumer is an
elementwise activation -- Caffe's in-place ReLU -- left out: the activation's output is that layer),
and only the viewer's grid layer (and the outputs) exposed. Prints
frames per second and the overhead ratio exposed / plain (goal: at most 1.05) of the best runs,
with the median ratio and the ratio of process CPU times (thread-pool spinning off, so CPU time is
work done, the number that moves least under load) beside it.
usage: python bench/bench_expose.py [--device auto|cpu|cuda] [--repeats N] [--batch 1 8]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

from common import BUNDLED, interleaved_times, load_line, torchvision_onnx
from onnxprobe.model import ProbeModel
from onnxprobe.runtime.session import Session


# elementwise activations, which Caffe ran in place (cli/demo.py's NONLINEAR_OPS also holds MaxPool)
IN_PLACE = {"Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Clip",
            "Softplus", "Gelu", "Mish"}


def caffe_layers(model: ProbeModel) -> list[str]:
    """The probeable layers less the pre-activations that Caffe computed in place (a tensor whose
    only consumer is an elementwise activation and which is no graph output)."""
    consumers = model.facts.consumers
    outputs = set(model.output_names)
    return [l.name for l in model.layers
            if l.name in outputs or not (len(consumers.get(l.name, [])) == 1 and consumers[l.name][0].op_type in IN_PLACE)]


def measure(path, device: str, repeats: int, batch: int, which: str = "all") -> dict:
    one_layer = which == "grid"
    model = ProbeModel.load(path, device=device)
    x = np.random.default_rng(0).standard_normal((batch, *model.input_shape[1:])).astype(np.float32)
    plain = Session(model.proto, device=model.device, threads=model.threads)  # same runtime layer, nothing exposed
    feeds = {model.input_name: x}
    # one_layer: what the viewer asks for, its grid layer (the first spatial one) and the outputs
    layers = ([next(l.name for l in model.layers if l.is_spatial)] if one_layer
              else caffe_layers(model) if which == "caffe" else None)
    fns = {"plain": lambda: plain.run(feeds), "exposed": lambda: model.activations(x, layers)}
    wall, cpu = interleaved_times(fns, reps=repeats, warmup=2)
    best = {k: min(v) for k, v in wall.items()}
    med = {k: statistics.median(v) for k, v in wall.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    return {"layers": len(layers) if layers is not None else len(model.layers), "device": model.device, "best": best,
            "ratio": best["exposed"] / best["plain"], "median_ratio": med["exposed"] / med["plain"],
            "cpu_ratio": cpu_med["exposed"] / cpu_med["plain"]}


def main() -> None:
    import os

    os.environ.setdefault("ONNXPROBE_ORT_SPIN", "0")  # CPU time = work done (before any session)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    print(f"start: {load_line()}", flush=True)
    for label, path in (("bundled digits CNN", BUNDLED), ("ResNet-18 224x224", torchvision_onnx("resnet18"))):
        for batch, which in [(b, "all") for b in args.batch] + [(1, "caffe"), (1, "grid")]:
            reps = args.repeats if batch == 1 else max(5, args.repeats // 4)
            r = measure(path, args.device, reps, batch, which)
            what = {"all": "all", "caffe": "as Caffe listed them (in-place activations folded):", "grid": "the grid layer:"}[which]
            print(f"{label} batch {batch} [{r['device']}]: plain {batch / r['best']['plain']:.1f} fps, {what} {r['layers']} "
                  f"activations exposed {batch / r['best']['exposed']:.1f} fps; exposed / plain = {r['ratio']:.3f} "
                  f"(best runs; goal <= 1.05: {'met' if r['ratio'] <= 1.05 else 'NOT met'}), median {r['median_ratio']:.3f}, "
                  f"CPU time {r['cpu_ratio']:.3f}  [machine-independent]", flush=True)
    print(f"end: {load_line()}", flush=True)


if __name__ == "__main__":
    main()
