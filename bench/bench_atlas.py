"""Atlas throughput: units per minute for a whole layer, in one process and on a local Dask cluster
of 1 and 2 worker processes, the scaling between them, and a projection for every unit of the
network on N machines.

The default is the bundled ImageNet network (MobileNetV2) at `lucid-fast` (256 steps per unit) on
its 14x14 stage `features.10.conv.0.2/Clip` (384 units); `--model resnet18` measures a torchvision
ResNet-18 at random init. A whole layer at the full step count takes most of an hour on a 2-core
machine, so the bench runs `--steps` (default 16) and scales every time by preset steps / steps
(per-task overheads, model loading and session building included, are scaled too: a slight
over-estimate). For the projection, the cost of one unit-step is measured at `--samples` layers
spread through the network and charged to every layer up to the next sampled one.

usage: python bench/bench_atlas.py [--model bundled|resnet18|FILE] [--layer NAME] [--preset NAME]
                                   [--steps N] [--workers 1,2] [--machines 10] [--device auto|cpu|cuda]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import torchvision_onnx
from onnxprobe.atlas import build_atlas
from onnxprobe.model import ProbeModel
from onnxprobe.optimize import RenderSettings, get_preset, render_units
from onnxprobe.resources import default_model

DEFAULT_LAYERS = {"bundled": "features.10.conv.0.2/Clip", "resnet18": "layer1.1.relu_1"}


def whole_layer(path: Path, layer: str, preset: str, steps: int, device: str, scheduler: str | None, out: Path) -> float:
    result = build_atlas(str(path), [layer], out, settings=RenderSettings.resolve(preset=preset, steps=steps), device=device,
                         scheduler=scheduler)
    return result.units_per_second


def sampled_layers(model: ProbeModel, samples: int) -> list[str]:
    layers = [layer.name for layer in model.layers if layer.differentiable is not False]
    picks = sorted({round(i * (len(layers) - 1) / max(samples - 1, 1)) for i in range(samples)})
    return [layers[i] for i in picks]


def step_costs(model: ProbeModel, layers: list[str], preset: str, rows: int = 8, steps: int = 2) -> dict[str, float]:
    """Seconds per unit-step at each layer (after a warm-up that builds the sessions)."""
    costs = {}
    for layer in layers:
        units = range(min(rows, model.layer(layer).units))
        render_units(model, layer, units, RenderSettings.resolve(preset=preset, steps=1))
        start = time.perf_counter()
        render_units(model, layer, units, RenderSettings.resolve(preset=preset, steps=steps))
        costs[layer] = (time.perf_counter() - start) / (len(units) * steps)
    return costs


def projection(model: ProbeModel, costs: dict[str, float], preset_steps: int) -> tuple[int, int, float]:
    """(layers, units, seconds) for every unit of every differentiable layer, one process: each
    layer is charged the cost of the next sampled layer at or after it."""
    layers = [layer for layer in model.layers if layer.differentiable is not False]
    sampled = list(costs)
    seconds, stage = 0.0, 0
    for layer in layers:
        seconds += layer.units * costs[sampled[stage]] * preset_steps
        if layer.name == sampled[stage] and stage + 1 < len(sampled):
            stage += 1
    return len(layers), sum(layer.units for layer in layers), seconds


def _duration(seconds: float) -> str:
    if seconds > 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    return f"{seconds / 3600:.1f} h" if seconds > 2 * 3600 else f"{seconds / 60:.0f} min"


def main() -> None:
    from distributed import LocalCluster

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bundled", help="bundled, resnet18 or an ONNX file")
    parser.add_argument("--layer", help="the whole layer to render (default: a middle stage of the model)")
    parser.add_argument("--preset", default="lucid-fast")
    parser.add_argument("--steps", type=int, default=16, help="steps per unit for the bench (scaled to the preset's)")
    parser.add_argument("--workers", default="1,2", help="local cluster sizes, worker processes x 1 thread")
    parser.add_argument("--samples", type=int, default=6, help="layers whose step cost the projection measures")
    parser.add_argument("--machines", type=int, default=10, help="machines in the projection")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    path = {"bundled": default_model(), "resnet18": None}.get(args.model, Path(args.model))
    if path is None:
        path = torchvision_onnx("resnet18")
    layer = args.layer or DEFAULT_LAYERS.get(args.model)
    preset_steps = get_preset(args.preset).steps
    scale = args.steps / preset_steps
    model = ProbeModel.load(path, device=args.device)
    units = model.layer(layer).units
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        rates["one process"] = whole_layer(path, layer, args.preset, args.steps, args.device, None, Path(tmp) / "single")
        for workers in (int(w) for w in args.workers.split(",")):
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
                rates[f"local cluster, {workers} worker(s) x 1 thread"] = whole_layer(
                    path, layer, args.preset, args.steps, args.device, cluster.scheduler_address, Path(tmp) / f"c{workers}")
    print(f"{Path(path).name}, layer {layer} ({units} units), preset {args.preset} with {args.steps} of its "
          f"{preset_steps} steps, 1 restart:")
    base = rates["one process"]
    for label, rate in rates.items():
        per_minute = rate * scale * 60
        print(f"  {label}: {per_minute:.2f} units/min at {preset_steps} steps ({units / per_minute:.0f} min for the layer); "
              f"{rate / base:.2f}x one process")
    best = max(rates.values())
    costs = step_costs(model, sampled_layers(model, args.samples), args.preset)
    layers, all_units, seconds = projection(model, costs, preset_steps)
    print("seconds per unit-step at the sampled layers: " + ", ".join(f"{k} {v:.3f}" for k, v in costs.items()))
    print(f"every unit of the network ({layers} layers, {all_units} units, {preset_steps} steps, 1 restart): "
          f"one process {_duration(seconds)}; on {args.machines} machines like this one at the best rate above "
          f"({best / base:.2f}x one process each): about {_duration(seconds * base / best / args.machines)}")


if __name__ == "__main__":
    main()
