"""Lucid variants on a fixed class subset, judged by both ImageNet judges of bench_quality.py.

    python bench/sweep_lucid.py OBJECTIVE:STEPS[:key=value,...] ... [--classes 10] [--save DIR]

OBJECTIVE: logit | contrast[A] (the logit minus A times the mean of the other 999, a linear
`direction`) | logsoftmax (the log-probability, non-linear: a forward run, then the gradient) |
mix[B] (logit + B * logsoftmax). key=value override fields of the lucid preset (tuples with `/`:
`scales=0.8/1.0/1.2`). Prints, per configuration, each judge's top-1 / top-5 / median rank,
seconds per unit and the load average. The results of every configuration tried are in
bench_quality.py's docstring. The log-softmax objective lives here, not in
onnxprobe/objectives/units.py: it measured far worse than the logit and is not offered.
"""
from __future__ import annotations
import argparse, os, sys, time
from dataclasses import replace
from pathlib import Path
import numpy as np
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.bench_quality import MODEL, imagenet_classes, judged, judged_cells, load_judges  # noqa
from onnxprobe.model import ProbeModel  # noqa
from onnxprobe.optimize import PRESETS  # noqa
from onnxprobe.objectives import Objective, direction, logit, logit_layer, stack  # noqa
from onnxprobe.optimize.optimizer import Optimizer  # noqa
from onnxprobe.optimize.render import row_seed  # noqa


def logsoftmax(model, c):
    info = logit_layer(model)
    layer = info.name
    shape = (1, info.units)
    def value(acts):
        z = acts[layer].astype(np.float64)
        z = z - z.max(axis=1, keepdims=True)
        return z[:, c] - np.log(np.exp(z).sum(axis=1))
    def seed(acts, batch):
        z = acts[layer].astype(np.float64)
        p = np.exp(z - z.max(axis=1, keepdims=True)); p /= p.sum(axis=1, keepdims=True)
        g = -p; g[:, c] += 1
        return {layer: g.astype(np.float32)}
    return Objective({layer: shape}, seed, f"logsoftmax {c}", linear=False, value_fn=value)


def make(model, kind, c):
    if kind == "logit":
        return logit(model, c)
    if kind.startswith("contrast"):  # logit minus a * mean of the others
        a = float(kind[len("contrast"):] or 1)
        w = np.full(1000, -a / 999.0); w[c] = 1.0
        return direction(model, logit_layer(model), w)
    if kind == "logsoftmax":
        return logsoftmax(model, c)
    if kind.startswith("mix"):  # logit + b * logsoftmax
        b = float(kind[3:] or 1)
        return logit(model, c) + logsoftmax(model, c) * b
    raise SystemExit(kind)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("configs", nargs="+", help="objective:steps[:key=value,...]")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save")
    a = p.parse_args()
    model = ProbeModel.load(MODEL); judges = load_judges()
    classes = imagenet_classes(a.classes)
    layer = logit_layer(model).name
    print(f"classes {classes}; load {os.getloadavg()[0]:.1f}\n", flush=True)
    print(f"| configuration | {' | '.join(judges)} (top-1 / top-5 / median rank) | s / unit | load |")
    print("|---|" + "---|" * len(judges) + "---|---|")
    for cfg in a.configs:
        parts = cfg.split(":")
        kind, steps = parts[0], int(parts[1])
        over = {}
        for kv in (parts[2].split(",") if len(parts) > 2 else []):
            k, v = kv.split("=")
            cur = getattr(PRESETS["lucid"], k)
            over[k] = tuple(float(x) for x in v.split("/")) if isinstance(cur, tuple) else type(cur)(v)
        if "jitter" in over: over["jitter"] = tuple(int(j) for j in over["jitter"])
        preset = replace(PRESETS["lucid"], name=cfg, steps=steps, **over)
        began = time.perf_counter(); load0 = os.getloadavg()[0]
        images = []
        for s in range(0, len(classes), a.batch):
            chunk = classes[s:s + a.batch]
            opt = Optimizer(model, stack([make(model, kind, c) for c in chunk]), preset,
                            seed=[row_seed(a.seed, layer, c, 0) for c in chunk]).run()
            images += [opt.best_image(i) for i in range(len(chunk))]
        sec = (time.perf_counter() - began) / len(classes)
        print(f"| {cfg} | {judged_cells(judged(judges, images, classes))} | {sec:.1f} | "
              f"{(load0 + os.getloadavg()[0]) / 2:.1f} |", flush=True)
        if a.save:
            from onnxprobe.render.images import write_png
            out = Path(a.save) / cfg.replace(":", "_").replace("/", "-"); out.mkdir(parents=True, exist_ok=True)
            for c, im in zip(classes, images): write_png(out / f"{c:04d}.png", im)


if __name__ == "__main__":
    main()
