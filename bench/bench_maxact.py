"""The top-k job vs bare inference of the same images, and a 2-worker local Dask cluster vs one process.

Same run, same images (scikit-image samples, flipped/shifted to make a few hundred files), same
batch size. Prints images per second of
  - bare inference: read + decode + preprocess + the plain model, batched (the floor of any scan);
  - the whole scan of `run_maxact` (top-k of every unit of two layers, statistics, resumable
    state on disk; no crops) -> overhead ratio, goal: at most 1.15;
  - the crop phase (patch, deconv and backprop montages) on its own, for information;
  - the scan on distributed.LocalCluster(n_workers=2, threads_per_worker=1) vs one process.
usage: python bench/bench_maxact.py [--model resnet18] [--size 128] [--images 256] [--no-cluster]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from common import torchvision_onnx
from onnxprobe.maxact import run_maxact
from onnxprobe.model import ProbeModel


def write_images(folder: Path, count: int) -> list[Path]:
    import skimage.data

    names = ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "moon", "page", "horse", "text")
    samples = []
    for name in names:
        image = getattr(skimage.data, name)()
        image = image.astype(np.uint8) * 255 if image.dtype == bool else image
        samples.append(cv2.cvtColor(image[:, :, :3], cv2.COLOR_RGB2BGR) if image.ndim == 3 else image)
    paths = []
    for n in range(count):
        image = samples[n % len(samples)]
        image = np.roll(image[:, ::-1] if n // len(samples) % 2 else image, 7 * n, axis=1)
        path = folder / f"img_{n:05d}.jpg"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


def bare_inference(model: ProbeModel, paths: list[Path], batch: int) -> float:
    session = model.forward_session()
    start = time.perf_counter()
    for i in range(0, len(paths), batch):
        x = np.concatenate([model.preprocess(cv2.imread(str(p), cv2.IMREAD_UNCHANGED)) for p in paths[i:i + batch]])
        session.run({model.input_name: x})
    return time.perf_counter() - start


def scan(model, data, layers, out, batch, **kwargs) -> float:
    start = time.perf_counter()
    run_maxact(model, data, layers, top=9, out_dir=out, crops=False, deconv=False, batch_size=batch, fresh=True, **kwargs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--no-cluster", action="store_true")
    args = parser.parse_args()

    model_path = torchvision_onnx(args.model, args.size)
    model = ProbeModel.load(model_path, device="cpu")
    spatial = [layer for layer in model.layers if layer.is_spatial and layer.op in ("Relu", "Add", "Concat")]
    layers = [spatial[len(spatial) // 3].name, spatial[-1].name]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        data.mkdir()
        paths = write_images(data, args.images)
        n = len(paths)
        bare_inference(model, paths[:args.batch], args.batch)  # warm-up: session built, caches hot
        scan(model, data, layers, tmp / "warm", args.batch, shard_size=args.batch)
        bare, job = [], []
        for _ in range(3):  # interleaved, median
            bare.append(bare_inference(model, paths, args.batch))
            job.append(scan(model, data, layers, tmp / "out", args.batch, shard_size=256))
        bare_s, job_s = float(np.median(bare)), float(np.median(job))
        print(f"{args.model} {args.size}x{args.size}, {n} images, batch {args.batch}, layers {layers}, device {model.device}")
        print(f"bare inference:   {n / bare_s:8.1f} images/s")
        print(f"maxact scan:      {n / job_s:8.1f} images/s   overhead ratio {job_s / bare_s:.3f} (goal <= 1.15)")
        start = time.perf_counter()  # crops of the first layer only: each unit is 2 x k backward passes
        run_maxact(model, data, layers[:1], top=9, out_dir=tmp / "crops", crops=True, deconv=True,
                   batch_size=args.batch, shard_size=256)
        crop_s = time.perf_counter() - start - job_s / len(layers)
        units = model.layer(layers[0]).units
        print(f"crops (patch+deconv+backprop montages, approx.): {crop_s:.1f} s for {units} units ({units / crop_s:.1f} units/s)")
        if args.no_cluster:
            return
        from distributed import LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=40) as cluster:
            kwargs = dict(scheduler=cluster.scheduler_address, shard_size=args.batch * 2)
            scan(model_path, data, layers, tmp / "cwarm", args.batch, **kwargs)  # workers load the model once
            one = scan(model, data, layers, tmp / "one", args.batch, shard_size=args.batch * 2)
            two = scan(model_path, data, layers, tmp / "two", args.batch, **kwargs)
        print(f"one process:      {n / one:8.1f} images/s")
        print(f"2-worker cluster: {n / two:8.1f} images/s   speed-up {one / two:.2f}x")


if __name__ == "__main__":
    main()
