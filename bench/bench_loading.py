"""Opening a model at session cost: `onnxprobe layers F` against a bare ONNX Runtime session of F
that runs one batch, each in a fresh process, best of `--repeats` (time) and their peak resident
memory, for PyTorch's default (dynamo) exports and the legacy exports of the issue's networks.

Both ratios (ours / bare) are printed per model, measured in one run. `--code DIR` (repeatable)
also measures another checkout of onnxprobe (e.g. the commit before a change, unpacked with `git
archive`), so before and after come from the same run on the same machine.

Measured 2026-12-06, 2-core machine, load about 1, session start (8b2cb31, `--code`) against
the tree of the commit that wrote this; load = ProbeModel.load + the layer list against an InferenceSession + one run, best of 2:
  model / exporter         load x before -> after   memory x before -> after   whole process x after
  resnet18 dynamo            1.38 -> 0.34             1.12 -> 0.64               2.95
  resnet18 legacy            1.57 -> 0.43             0.78 -> 0.50               2.61
  convnext_tiny dynamo       2.32 -> 0.46             1.40 -> 0.61               2.31
  convnext_tiny legacy       3.01 -> 0.69             1.35 -> 0.71               2.25
  vit_b_16 dynamo            2.74 -> 0.28             1.68 -> 0.26               1.37
  vit_b_16 legacy            2.10 -> 0.87             1.52 -> 1.15               1.55
(The whole process adds the imports: about 0.6 s of onnx and onnxprobe against onnxruntime's.)

usage: python bench/bench_loading.py [--size 224] [--repeats 2] [--code DIR ...] [NAME ...]
  NAME: resnet18, convnext_tiny, vit_b_16 (torchvision, random init; exports cached in bench/.cache)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from common import CACHE, ROOT

BARE = """
import sys, time, numpy as np, onnxruntime as ort
start = time.perf_counter()
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
first = session.get_inputs()[0]
shape = [d if isinstance(d, int) and d > 0 else 1 for d in first.shape]
session.run(None, {first.name: np.zeros(shape, np.float32)})
print(time.perf_counter() - start, file=sys.stderr)
"""
OURS = """
import contextlib, io, sys, time
from onnxprobe.cli import main
import onnxprobe.cli.layers, onnxprobe.model  # the imports, as the bare script's, before the clock
start = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    code = main(["layers", sys.argv[1], "--json"])
print(time.perf_counter() - start, file=sys.stderr)
sys.exit(code)
"""


def export(name: str, size: int, exporter: str) -> Path:
    """The random-init torchvision network (seed 0) exported with batch 1, as a user does:
    `torch.onnx.export(model, (x,), path)` (default: the dynamo exporter, weights in path.data)."""
    path = CACHE / f"{name}-{size}-{exporter}.onnx"
    if not path.exists():  # in a process of its own: this one stays small, so that the peak memory
        # of the processes it starts (forked from it) is theirs alone
        subprocess.run([sys.executable, __file__, "--export", name, str(size), exporter], check=True,
                       stdout=subprocess.DEVNULL)
    return path


def _export(name: str, size: int, exporter: str) -> None:
    path = CACHE / f"{name}-{size}-{exporter}.onnx"
    import torch
    import torchvision

    CACHE.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = torchvision.models.get_model(name, weights=None).eval()
    x = torch.zeros(1, 3, size, size)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            torch.onnx.export(net, (x,), str(path))
        else:
            torch.backends.mha.set_fastpath_enabled(False)  # the fused attention has no legacy symbolic
            torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=18)


NEUTRAL = tempfile.mkdtemp(prefix="bench-loading-")


def measure(argv: list[str], env: dict) -> tuple[float, float, float]:
    """Wall seconds, the seconds of the measured part (the script prints them last on stderr) and
    the peak resident memory (GB) of one process."""
    start = time.perf_counter()
    # run outside any checkout: `python -c` puts the working folder first on sys.path, ahead of
    # PYTHONPATH, so run from a clone's root every --code tree would import that clone's onnxprobe
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=NEUTRAL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if status != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {err.strip()[-400:]}")
    return seconds, float(err.strip().splitlines()[-1]), usage.ru_maxrss / 1e6  # ru_maxrss: KB on Linux


def best(argv: list[str], env: dict, repeats: int) -> tuple[float, float, float]:
    runs = [measure(argv, env) for _ in range(repeats)]
    return tuple(min(values) for values in zip(*runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=["resnet18", "convnext_tiny", "vit_b_16"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--exporters", default="dynamo,legacy")
    parser.add_argument("--code", action="append", default=[], metavar="DIR",
                        help="another onnxprobe checkout to measure beside this one")
    args = parser.parse_args()
    codes = [("this", str(ROOT))] + [(Path(c).name, str(Path(c).resolve())) for c in args.code]
    env0 = {**os.environ, "ONNXPROBE_ORT_SPIN": "0"}
    print("time: the load (ours: ProbeModel.load and the layer list, the `layers` command's work; bare: an\n"
          "InferenceSession and one run) after the imports, and the whole process (imports included);\n"
          "memory: the process's peak resident memory; best of --repeats fresh processes each")
    print(f"{'model':14s} {'exporter':8s} {'code':8s} {'bare s':>7s} {'ours s':>7s} {'load x':>7s} "
          f"{'proc bare':>9s} {'proc ours':>9s} {'proc x':>6s} {'bare GB':>8s} {'ours GB':>8s} {'memory x':>8s}")
    for name in args.names:
        for exporter in args.exporters.split(","):
            try:
                path = export(name, args.size, exporter)
            except Exception as exc:  # the legacy exporter cannot export every network
                print(f"{name:16s} {exporter:8s} cannot export: {' '.join(str(exc).split())[:100]}")
                continue
            bare_p, bare_t, bare_m = best([sys.executable, "-c", BARE, str(path)], env0, args.repeats)
            for label, code in codes:
                env = {**env0, "PYTHONPATH": code}
                p, t, m = best([sys.executable, "-c", OURS, str(path)], env, args.repeats)
                print(f"{name:14s} {exporter:8s} {label:8s} {bare_t:7.2f} {t:7.2f} {t / bare_t:7.2f} {bare_p:9.2f} "
                      f"{p:9.2f} {p / bare_p:6.2f} {bare_m:8.2f} {m:8.2f} {m / bare_m:8.2f}", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if sys.argv[1:2] == ["--export"]:
        _export(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        main()
