"""Feature visualization throughput: (a) a plain PyTorch eager loop, one unit at a time, the
seed's default preset (set3: lr 100, decay 1e-4, blur sigma 1 every 4 steps, valid-range clip)
against (b) onnxprobe's batched in-graph step, same units, same steps, same run.

    python bench/bench_optimize.py [--units 32] [--steps 200] [--size 224] [--batch 8] [--device cpu|cuda]

Also compares, on the same units, the in-graph step with the numpy-regularizer step (speed ratio
and largest difference). ResNet-18 at random init; say --size when the CPU is too slow for 224.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def export_resnet(size: int) -> Path:
    import torch
    import torchvision

    from tests.fixtures_torch import calibrate_batchnorm, export_module, seeded

    with seeded(0):
        module = torchvision.models.resnet18(weights=None)
    example = torch.randn(1, 3, size, size)
    calibrate_batchnorm(module, example)
    return export_module(module, example, name="resnet18"), module


def torch_loop(module, layer_module, units, steps, size, device):
    """What a user of Lucent-style code writes: one unit at a time, autograd, priors in torch."""
    import torch
    import torch.nn.functional as F

    from onnxprobe.optimize.priors import gaussian_kernel

    module = module.to(device).eval()
    for p in module.parameters():
        p.requires_grad_(False)
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)
    slope = 1.0 / (255.0 * std)
    low, high = (0 - 255 * mean), (255 - 255 * mean)
    taps = torch.tensor(gaussian_kernel(1.0), device=device)
    r = len(taps) // 2
    captured = {}
    layer_module.register_forward_hook(lambda m, i, o: captured.__setitem__("y", o))
    for unit in units:
        q = torch.randn(1, 3, size, size, device=device, generator=torch.Generator(device).manual_seed(unit)) * 10
        for step in range(steps):
            q = torch.max(torch.min(q, high), low).detach().requires_grad_(True)
            module(q * slope)
            y = captured["y"]
            obj = y[0, unit, y.shape[2] // 2, y.shape[3] // 2]
            (g,) = torch.autograd.grad(obj, q)
            with torch.no_grad():
                if step < steps - 1:
                    q = (q + 100.0 * g) * (1 - 1e-4)
                    if step % 4 == 0:
                        q = F.pad(q, (0, 0, r, r), mode="reflect")  # torch's reflect excludes the edge; close enough for timing
                        q = F.conv2d(q, taps.view(1, 1, -1, 1).repeat(3, 1, 1, 1), groups=3)
                        q = F.pad(q, (r, r, 0, 0), mode="reflect")
                        q = F.conv2d(q, taps.view(1, 1, 1, -1).repeat(3, 1, 1, 1), groups=3)
        if device == "cuda":
            torch.cuda.synchronize()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--layer", default="/layer3/layer3.1/relu_1/Relu_output_0")
    args = parser.parse_args()

    import torch

    from onnxprobe.model import ProbeModel
    from onnxprobe.optimize import Optimizer, RenderSettings, get_preset, objectives, render_units

    path, module = export_resnet(args.size)
    units = list(range(args.units))
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"ResNet-18 random init, input {args.size}x{args.size}, {args.units} units x {args.steps} steps, "
          f"layer {args.layer}, device {args.device}, torch threads {torch.get_num_threads()}")

    began = time.perf_counter()
    torch_loop(module, module.layer3[1].relu, units, args.steps, args.size, args.device)
    torch_seconds = time.perf_counter() - began
    print(f"(a) torch eager, one unit at a time : {torch_seconds:8.2f} s  {args.units / torch_seconds:8.3f} units/s")

    model = ProbeModel.load(path, device=args.device)
    began = time.perf_counter()
    render_units(model, args.layer, units, RenderSettings.resolve("set3", args.steps, seed=0, batch=args.batch))
    ours = time.perf_counter() - began
    print(f"(b) onnxprobe, batch {args.batch}, in-graph step: {ours:8.2f} s  {args.units / ours:8.3f} units/s  "
          f"({args.units * args.steps / ours:.1f} image-steps/s, {ours / args.units:.2f} s/unit)")
    print(f"ratio (b)/(a): {torch_seconds / ours:.2f}x")

    # in-graph vs numpy regularizers, same rows, a short run
    obj = objectives.stack([objectives.neuron(model, args.layer, u, pre_activation=True) for u in units[: args.batch]])
    short = max(8, args.steps // 10)
    timings, inputs = {}, {}
    for engine in ("graph", "numpy"):
        opt = Optimizer(model, obj, get_preset("set3", short), seed=0, batch=args.batch, engine=engine).start()
        opt.step()  # build and warm up
        t = time.perf_counter()
        opt.step(short - 1)
        timings[engine] = time.perf_counter() - t
        inputs[engine] = opt.current_input()
    diff = float(np.abs(inputs["graph"] - inputs["numpy"]).max() / max(1e-12, np.abs(inputs["numpy"]).max()))
    print(f"in-graph step vs numpy priors ({short} steps, batch {args.batch}): {timings['numpy'] / timings['graph']:.2f}x faster, "
          f"max relative difference {diff:.2e}")

    # throughput against the batch: the same 8 units, a short run each time
    sweep_units, sweep_steps = list(range(8)), max(10, args.steps // 10)
    rates = {}
    for batch in (1, 2, 4, 8):
        render_units(model, args.layer, sweep_units[:batch], RenderSettings.resolve("set3", 2, seed=0, batch=batch))  # warm-up
        t = time.perf_counter()
        render_units(model, args.layer, sweep_units, RenderSettings.resolve("set3", sweep_steps, seed=0, batch=batch))
        rates[batch] = len(sweep_units) / (time.perf_counter() - t)
    print(f"units/s by batch ({len(sweep_units)} units x {sweep_steps} steps): "
          + ", ".join(f"{b}: {r:.2f}" for b, r in rates.items()) + f"  (batch 8 / batch 1 = {rates[8] / rates[1]:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
