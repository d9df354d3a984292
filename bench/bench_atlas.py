"""Atlas throughput: units per minute for a layer, in one process (1 and 2 ONNX Runtime threads)
and on a local Dask cluster of 1 and 2 worker processes of 1 thread, the scaling between them, the
fixed cost of a run, and a projection for every unit of the network on N machines.

The default is the bundled ImageNet network (MobileNetV2) at `lucid-fast` (256 steps per unit) on
its 14x14 stage `features.10.conv.0.2/Clip` (384 units), of which the bench renders the first
`--units` (64: 8 tasks of 8 units). A run's time is fixed + per_step x steps: each configuration
runs at the two `--steps` (4 and 16), each run on a fresh model or a fresh cluster, and the fit
gives both; units per minute are at the preset's steps from the per-step rate, the fixed cost
(connecting, shipping, each worker's first model load, sessions, each task's set-up and PNGs) is
shown apart. 1 worker x 1 thread is read against one process at 1 thread, 2 workers against one
process at 2 threads (the 2-core machine either way). `--before` (on by default) adds 1 worker
with Dask's allocator settings as they were before `distributed.worker_allocator`. For the
projection, the cost of one unit-step is measured at `--samples` layers spread through the network
(one process, default threads) and charged to every layer up to the next sampled one.

Measured (2-core machine shared with other jobs, load average 5.9-7.8 over the run; 64 of the 384
units, fits from 4 and 16 steps, 10 min; wall per unit-step can move 2x with the load, the CPU
figures far less), units/min at 256 steps, scaling, fixed cost of a run, CPU per unit-step:
  one process, 1 thread           4.17   1.00x            10.9 s   0.027 s
  one process, 2 threads          2.16   0.52x            16.6 s   0.054 s (ONNX Runtime's pool spins)
  cluster, 1 worker x 1 thread    3.70   0.89x            10.9 s   0.037 s
  cluster, 2 workers x 1 thread   8.23   1.97x (3.80x against 2 threads in one process)  16.2 s   0.032 s
  cluster, 1 worker, Dask's allocator as before worker_allocator  3.25   0.78x  13.9 s   0.048 s
The layer at 256 steps: 93 min in one process at 1 thread, 48 min on 2 workers. Every unit of the
network (100 layers, 36960 units, 256 steps): one process at its default threads 17.2 days; 10
machines like this one, 2 workers each: about 10.8 h. Bound by the per-step compute (the fixed
cost, 11-16 s a run, 1.4-4 s a task, is under 5 % of a 256-step task); on the cluster each step
costs 1.2-1.4x the CPU of one process (not traced yet: the workers' and the scheduler's event
loops are counted in it), and a run of the
same bench before the per-step fit read 1 worker at 2x one process at 1 thread: the order of those
two is within the noise, 2 workers at about 2x one thread is not.

usage: python bench/bench_atlas.py [--model bundled|resnet18|FILE] [--layer NAME] [--units N] [--preset NAME]
                                   [--steps 4,16] [--threads 1,2] [--workers 1,2] [--no-before] [--samples N]
                                   [--machines 10] [--device auto|cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import torchvision_onnx
from onnxprobe.atlas import build_atlas
from onnxprobe.model import ProbeModel
from onnxprobe.optimize import RenderSettings, get_preset, render_units
from onnxprobe.resources import default_model

DEFAULT_LAYERS = {"bundled": "features.10.conv.0.2/Clip", "resnet18": "layer1.1.relu_1"}
# Dask's own worker allocator settings with glibc's mmap threshold pinned at its default (128 KiB), so
# that distributed.worker_allocator leaves them: the cluster as it ran before that fix
DASK_ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": "131072"}


@dataclass(frozen=True)
class Config:
    label: str
    threads: int
    workers: int = 0  # 0: one process, no cluster
    env: tuple[tuple[str, str], ...] = ()  # the workers' environment (DASK_ALLOCATOR)


@dataclass
class Fit:
    """time = fixed + per_step x steps, from the runs at two step counts."""

    times: dict[int, float]

    @property
    def per_step(self) -> float:
        (s1, t1), (s2, t2) = sorted(self.times.items())
        return (t2 - t1) / (s2 - s1)

    @property
    def fixed(self) -> float:
        s1, t1 = min(self.times.items())
        return t1 - self.per_step * s1


def _cpu_seconds() -> float:
    return time.process_time()


def timed_atlas(path: Path, layer: str, units: list[int], preset: str, steps: int, device: str, config: Config,
                out: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of the atlas's rendering (tasks, and for a cluster: connecting, shipping,
    each worker's first model load), on a fresh model or a fresh cluster: nothing warm from an earlier
    run. CPU: this process's, and the workers' over the same span (ONNX Runtime's spinning pool
    threads included: a 2-thread process spends more than its work)."""
    from distributed import Client, LocalCluster

    settings = RenderSettings.resolve(preset=preset, steps=steps)
    cpu = time.process_time()
    if not config.workers:
        wall = build_atlas(str(path), [layer], out, settings=settings, units=units, device=device,
                           threads=config.threads).seconds_render
        return wall, time.process_time() - cpu
    with LocalCluster(n_workers=config.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40, env=dict(config.env)) as cluster, Client(cluster, set_as_default=False) as client:
        workers = sum(client.run(_cpu_seconds).values())
        cpu = time.process_time()
        wall = build_atlas(str(path), [layer], out, settings=settings, units=units, device=device,
                           threads=config.threads, scheduler=cluster.scheduler_address).seconds_render
        return wall, time.process_time() - cpu + sum(client.run(_cpu_seconds).values()) - workers


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bundled", help="bundled, resnet18 or an ONNX file")
    parser.add_argument("--layer", help="the layer to render (default: a middle stage of the model)")
    parser.add_argument("--units", type=int, default=64, help="units of the layer rendered (its first N; 0: all)")
    parser.add_argument("--preset", default="lucid-fast")
    parser.add_argument("--steps", default="4,16", help="the two step counts of the fit (projected to the preset's)")
    parser.add_argument("--threads", default="1,2", help="ONNX Runtime threads of the one-process runs")
    parser.add_argument("--workers", default="1,2", help="local cluster sizes, worker processes x 1 thread")
    parser.add_argument("--before", action=argparse.BooleanOptionalAction, default=True,
                        help="also 1 worker with Dask's allocator settings as they were before worker_allocator")
    parser.add_argument("--samples", type=int, default=6, help="layers whose step cost the projection measures")
    parser.add_argument("--machines", type=int, default=10, help="machines in the projection")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    path = {"bundled": default_model(), "resnet18": None}.get(args.model, Path(args.model))
    if path is None:
        path = torchvision_onnx("resnet18")
    layer = args.layer or DEFAULT_LAYERS.get(args.model)
    preset_steps = get_preset(args.preset).steps
    step_counts = sorted(int(s) for s in args.steps.split(","))
    assert len(step_counts) == 2 and step_counts[0] < step_counts[1], "--steps takes two different step counts"
    model = ProbeModel.load(path, device=args.device)
    layer_units = model.layer(layer).units
    units = list(range(min(args.units or layer_units, layer_units)))
    tasks = -(-len(units) // RenderSettings.resolve(preset=args.preset).units_per_chunk)
    configs = [Config(f"one process, {t} thread(s)", t) for t in (int(t) for t in args.threads.split(","))]
    configs += [Config(f"local cluster, {w} worker(s) x 1 thread", 1, w) for w in (int(w) for w in args.workers.split(","))]
    if args.before:
        configs.append(Config("local cluster, 1 worker x 1 thread, Dask's allocator (before the fix)", 1, 1,
                              tuple(DASK_ALLOCATOR.items())))
    fits = {config: Fit({}) for config in configs}
    cpu_fits = {config: Fit({}) for config in configs}
    loads = [os.getloadavg()[0]]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up: this process's lazy imports (PNG, the site) are no one configuration's fixed cost
        timed_atlas(path, layer, units[:1], args.preset, 1, args.device, configs[0], Path(tmp) / "warm-up")
        for steps in step_counts:  # each step count over every configuration: the load drifts over all alike
            for n, config in enumerate(configs):
                wall, cpu = timed_atlas(path, layer, units, args.preset, steps, args.device, config,
                                        Path(tmp) / f"{steps}-{n}")
                fits[config].times[steps], cpu_fits[config].times[steps] = wall, cpu
                loads.append(os.getloadavg()[0])
    print(f"{Path(path).name}, layer {layer} ({layer_units} units; the bench renders {len(units)} of them, "
          f"{tasks} task(s) of up to {RenderSettings.resolve(preset=args.preset).units_per_chunk} units), preset "
          f"{args.preset} ({preset_steps} steps) fitted from runs of {step_counts[0]} and {step_counts[1]} steps, "
          f"1 restart; load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores; "
          f"{(time.perf_counter() - started) / 60:.1f} min:")
    one_process = configs[len(args.threads.split(",")) - 1]  # the most threads
    for config, fit in fits.items():
        rate = len(units) / (fit.per_step * preset_steps) * 60
        layer_min = (fit.fixed + fit.per_step * preset_steps) * layer_units / len(units) / 60
        per_worker = fit.fixed * min(max(config.workers, 1), tasks) / tasks
        against = fits[configs[0]].per_step / fit.per_step
        print(f"  {config.label}: {rate:.2f} units/min at {preset_steps} steps ({fit.per_step / len(units):.3f} s per "
              f"unit-step); fixed {fit.fixed:.1f} s a run ({per_worker:.1f} s a task, counted per task); the whole "
              f"layer {layer_min:.0f} min; {against:.2f}x one process at 1 thread, "
              f"{fits[one_process].per_step / fit.per_step:.2f}x at {one_process.threads}; "
              f"times {', '.join(f'{t:.1f} s at {s}' for s, t in sorted(fit.times.items()))}; CPU "
              f"{cpu_fits[config].per_step / len(units):.3f} s per unit-step, fixed {cpu_fits[config].fixed:.1f} s")
    best = min(configs, key=lambda c: fits[c].per_step)
    costs = step_costs(model, sampled_layers(model, args.samples), args.preset)
    layers, all_units, seconds = projection(model, costs, preset_steps)
    # the step costs are measured as the model loads by default (its threads); each machine runs the best configuration
    speedup = fits[one_process].per_step / fits[best].per_step if model.threads in (None, 0) else float("nan")
    print("seconds per unit-step at the sampled layers (one process, default threads): "
          + ", ".join(f"{k} {v:.3f}" for k, v in costs.items()))
    print(f"every unit of the network ({layers} layers, {all_units} units, {preset_steps} steps, 1 restart): "
          f"one process {_duration(seconds)}; on {args.machines} machines like this one, each as the best "
          f"configuration above ({best.label}: {speedup:.2f}x one process at {one_process.threads} threads), "
          f"fixed costs left out: about {_duration(seconds / speedup / args.machines)}")


if __name__ == "__main__":
    main()
