"""Atlas throughput: units per second for a whole layer of a ResNet-18 (224x224, random weights) at
the default preset, in one process vs a local Dask cluster of two worker processes, and the
projection for a whole network (every channel of every layer).

The default preset (set3) runs 1000 steps per unit, about 5 hours per 64-channel layer on a 2-core
machine, so the bench runs `--steps` (default 4) and scales every time by 1000 / steps (per-task
overheads, model loading and session building included, are scaled too: a slight over-estimate).
For the projection, the cost of one unit-step is measured at the last layer of every stage (stem,
layer1..layer4, logits) and charged to every layer of that stage.
usage: python bench/bench_atlas.py [--layer NAME] [--steps N] [--device auto|cpu|cuda]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import torchvision_onnx
from onnxprobe.atlas import build_atlas
from onnxprobe.model import ProbeModel
from onnxprobe.optimize import DEFAULT_PRESET, RenderSettings, get_preset, render_units

STAGE_ENDS = ("relu", "layer1.1.relu_1", "layer2.1.relu_1", "layer3.1.relu_1", "layer4.1.relu_1", "logits")


def whole_layer(path: Path, layer: str, steps: int, device: str, scheduler: str | None, out: Path) -> float:
    result = build_atlas(str(path), [layer], out, settings=RenderSettings.resolve(steps=steps), device=device, scheduler=scheduler)
    return result.units_per_second


def step_costs(path: Path, device: str, rows: int = 8, steps: int = 2) -> dict[str, float]:
    """Seconds per unit-step at the end of each stage (after a warm-up that builds the sessions)."""
    model = ProbeModel.load(path, device=device)
    costs = {}
    for layer in STAGE_ENDS:
        render_units(model, layer, range(rows), RenderSettings.resolve(steps=1))
        start = time.perf_counter()
        render_units(model, layer, range(rows), RenderSettings.resolve(steps=steps))
        costs[layer] = (time.perf_counter() - start) / (rows * steps)
    return costs


def projection(path: Path, costs: dict[str, float], preset_steps: int) -> tuple[int, int, float]:
    """(layers, channels, seconds) for every channel of every differentiable layer, one process."""
    model = ProbeModel.load(path)
    layers = [layer for layer in model.layers if layer.differentiable is not False]
    seconds, stage = 0.0, 0
    for layer in layers:
        seconds += layer.units * costs[STAGE_ENDS[stage]] * preset_steps
        if layer.name == STAGE_ENDS[stage] and stage + 1 < len(STAGE_ENDS):
            stage += 1
    return len(layers), sum(layer.units for layer in layers), seconds


def _duration(seconds: float) -> str:
    return f"{seconds / 86400:.1f} days" if seconds > 2 * 86400 else f"{seconds / 3600:.1f} h"


def main() -> None:
    from distributed import LocalCluster

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", default="layer1.1.relu_1", help="the whole layer to render (default: layer1's output)")
    parser.add_argument("--steps", type=int, default=4, help="steps per unit for the bench (scaled to the preset's)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    path = torchvision_onnx("resnet18")
    preset_steps = get_preset(DEFAULT_PRESET).steps
    scale = args.steps / preset_steps
    units = ProbeModel.load(path).layer(args.layer).units
    with tempfile.TemporaryDirectory() as tmp:
        single = whole_layer(path, args.layer, args.steps, args.device, None, Path(tmp) / "single")
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            clustered = whole_layer(path, args.layer, args.steps, args.device, cluster.scheduler_address,
                                    Path(tmp) / "cluster")
    print(f"ResNet-18 224x224, layer {args.layer} ({units} units), preset {DEFAULT_PRESET} with {args.steps} of its "
          f"{preset_steps} steps, 1 restart:")
    for label, rate in (("one process", single), ("local cluster, 2 workers x 1 thread", clustered)):
        print(f"  {label}: {rate:.3f} units/s at {args.steps} steps -> {rate * scale:.5f} units/s at {preset_steps} "
              f"steps ({units / (rate * scale) / 3600:.1f} h for the layer)")
    ratio = clustered / single
    print(f"  cluster / one process throughput ratio: {ratio:.2f}")
    costs = step_costs(path, args.device)
    layers, channels, seconds = projection(path, costs, preset_steps)
    print("seconds per unit-step by stage: " + ", ".join(f"{k} {v:.3f}" for k, v in costs.items()))
    print(f"whole network ({layers} layers, {channels} channels, {preset_steps} steps, 1 restart): "
          f"one process {_duration(seconds)}, local 2-worker cluster {_duration(seconds / ratio)}; "
          f"N such machines (2 workers each): about {_duration(seconds / ratio)} / N")


if __name__ == "__main__":
    main()
