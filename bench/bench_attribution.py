#!/usr/bin/env python
"""Integrated gradients, 50 steps, ResNet-18 (random init) at 224x224 on the CPU: onnxprobe vs
Captum in the same run, each in its own subprocess (wall time of the attribution call, and the
process's peak resident memory).

    python bench/bench_attribution.py [--steps 50] [--batch-size N] [--repeats 2]

Prints one line per side and the ratio onnxprobe / Captum of the steady-state wall time (goal:
at most 0.7). onnxprobe's first call also builds the gradient graph and its session: shown apart.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZE = 224


def _export() -> Path:
    import torch
    import torchvision

    from tests.fixtures_torch import export_module, seeded

    with seeded(0):
        module = torchvision.models.resnet18(weights=None).eval()
    return export_module(module, torch.zeros(1, 3, SIZE, SIZE), name="bench-resnet18")


def _input():
    import numpy as np

    return np.random.default_rng(0).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)


def _peak_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child_onnxprobe(args) -> dict:
    import time

    from onnxprobe.attribution import attribute
    from onnxprobe.model import ProbeModel

    model = ProbeModel.load(args.model, device="cpu")
    x = _input()
    times = []
    for _ in range(args.repeats + 1):
        start = time.perf_counter()
        attribute(model, x, "integrated_gradients", target=0, steps=args.steps, rule="gausslegendre",
                  batch_size=args.batch_size)
        times.append(time.perf_counter() - start)
    return {"first_s": times[0], "steady_s": min(times[1:]), "peak_mib": _peak_mib()}


def child_captum(args) -> dict:
    import time

    import torch
    import torchvision
    from captum.attr import IntegratedGradients

    from tests.fixtures_torch import seeded

    with seeded(0):
        module = torchvision.models.resnet18(weights=None).eval()
    x = torch.from_numpy(_input())
    ig = IntegratedGradients(module)
    times = []
    for _ in range(args.repeats + 1):
        start = time.perf_counter()
        ig.attribute(x, baselines=0.0, target=0, n_steps=args.steps, method="gausslegendre")
        times.append(time.perf_counter() - start)
    return {"first_s": times[0], "steady_s": min(times[1:]), "peak_mib": _peak_mib(),
            "torch_threads": torch.get_num_threads()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=None, help="onnxprobe: path points per run (default: the library's)")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls after the first")
    parser.add_argument("--child", choices=("onnxprobe", "captum"), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.child:
        result = (child_onnxprobe if args.child == "onnxprobe" else child_captum)(args)
        print(json.dumps(result))
        return 0
    model = _export()
    results = {}
    for side in ("onnxprobe", "captum"):
        cmd = [sys.executable, __file__, "--child", side, "--model", str(model), "--steps", str(args.steps),
               "--repeats", str(args.repeats)] + (["--batch-size", str(args.batch_size)] if args.batch_size else [])
        done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
        results[side] = json.loads(done.stdout.strip().splitlines()[-1])
        r = results[side]
        print(f"{side:9s}: steady {r['steady_s']:.2f} s, first call {r['first_s']:.2f} s, peak RSS {r['peak_mib']:.0f} MiB")
    ratio = results["onnxprobe"]["steady_s"] / results["captum"]["steady_s"]
    print(f"integrated gradients, {args.steps} steps, ResNet-18 {SIZE}x{SIZE}, CPU: onnxprobe / Captum wall time "
          f"= {ratio:.2f} (goal <= 0.7); peak memory {results['onnxprobe']['peak_mib']:.0f} vs "
          f"{results['captum']['peak_mib']:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
