#!/usr/bin/env python
"""One gradient step -- forward + gradient of a logit w.r.t. the input -- in ONNX Runtime with
onnxprobe's gradient graph, against ONNX Runtime's own forward pass of the same model (the
headline: it does not depend on the machine) and against PyTorch eager autograd (parameters frozen).

    python bench/bench_gradient.py                      # CPU, ResNet-18, batch 8, 224x224
    python bench/bench_gradient.py --threads 4 --reps 10
    python bench/bench_gradient.py --device cuda        # needs ORT's CUDA provider and torch.cuda
    python bench/bench_gradient.py --arch mobilenet_v2  # the bundled network's architecture (ReLU6, depthwise)

ResNet-18 (or --arch, any torchvision classifier) at random init (seeded, BatchNorm with calibrated running statistics; exported with the
TorchScript exporter, which folds BatchNorm into the convolutions, as real exports do).
  floor  plain ONNX Runtime forward pass of the original model (the lower bound for ours)
  ours   build_gradient_model(...) in ONNX Runtime: forward + input gradient
  torch  PyTorch eager: forward + torch.autograd.grad w.r.t. the input, requires_grad False on params
floor and ours run in ONE process, alternating run by run, so that load from other work on the
machine hits both alike; the headline is ours / floor of the best runs (goal <= 2.2: the backward
pass w.r.t. the input costs about one forward), with the median ratio and the ratio of process CPU
times (thread-pool spinning off, so CPU time is work done) beside it. torch runs in its own process
(before and after the ORT one; best of both), so its peak memory is its own; ours / torch (goal
<= 0.65) depends on the machine. Both frameworks use the same thread count. Memory: peak RSS (and
the growth over the RSS right after the imports); ours' peak is taken before the floor session is
built. On CUDA also the device memory in use. Where the time goes per node type:
bench/profile_ops.py.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from common import interleaved_times  # noqa: E402  (bench/ is on the path when a bench runs)
CLASSES = (17, 503, 2, 999)  # logits seeded, one per batch row (cycled)


def _rss_mib() -> float:
    """Current RSS in MiB (from /proc; psutil when /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import psutil

        return psutil.Process().memory_info().rss / 2**20


def _peak_rss_mib() -> float:
    """Peak RSS of this process. VmHWM first: ru_maxrss survives execve on Linux, so a worker
    started from a big parent would report the parent's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _gpu_used_mib() -> float | None:
    """Device memory held by this process, from nvidia-smi (ORT's arena never shrinks, so at the
    end of the run this is its peak)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0] == str(os.getpid()):
            return float(parts[1])
    return None


def _timed(fn, warmup: int, reps: int, sync=lambda: None) -> list[float]:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def _seed(batch: int, classes: int = 1000):
    import numpy as np

    seed = np.zeros((batch, classes), np.float32)
    for row in range(batch):
        seed[row, CLASSES[row % len(CLASSES)]] = 1.0
    return seed


def _input(args):
    import numpy as np

    return np.random.default_rng(0).standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32)


# ---- the model -----------------------------------------------------------------------------------

def _torch_module(args):
    import torch
    import torchvision

    sys.path.insert(0, str(ROOT))
    from tests.fixtures_torch import calibrate_batchnorm, seeded

    with seeded(0):
        module = getattr(torchvision.models, args.arch)(weights=None)
    return calibrate_batchnorm(module, torch.zeros(2, 3, args.size, args.size))


def export_model(args) -> Path:
    """Export (once; cached in bench/.cache) the network the workers run."""
    import torch

    sys.path.insert(0, str(ROOT))
    from tests.fixtures_torch import export_module

    module = _torch_module(args)
    # cached under tests/.cache/onnx, keyed by a fingerprint of the weights (never a stale file)
    return export_module(module, torch.zeros(1, 3, args.size, args.size), name=f"bench_gradient-{args.arch}",
                         input_names=["input"], output_names=["logits"], dynamic_batch=True)


# ---- workers (each in its own process) -------------------------------------------------------------

def _ort_session(model_bytes: bytes, args):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # no spinning between runs: process CPU time then measures work, not waiting
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if args.device == "cuda":
        providers = [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    sess = ort.InferenceSession(model_bytes, so, providers=providers)
    if args.device == "cuda" and "CUDAExecutionProvider" not in sess.get_providers():
        raise SystemExit("onnxruntime has no working CUDA provider here")
    return sess


def _ort_runner(sess, feeds: dict, args):
    """A no-argument callable running `sess` once; on CUDA inputs and outputs stay on the device."""
    if args.device != "cuda":
        return lambda: sess.run(None, feeds)
    import onnxruntime as ort

    binding = sess.io_binding()
    for name, value in feeds.items():
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value, "cuda", 0))
    for out in sess.get_outputs():
        binding.bind_output(out.name, "cuda", 0)

    def run():
        sess.run_with_iobinding(binding)
        binding.synchronize_outputs()

    return run


def worker_ort(args) -> dict:
    """floor and ours (and before) in one process, alternating; ours' peak RSS is read before
    floor exists."""
    import numpy as np
    import onnx

    sys.path.insert(0, str(ROOT))
    from onnxprobe.autodiff import build_gradient_model, seed_name

    base = _rss_mib()
    model = onnx.load(str(args.model))
    x = _input(args)
    t0 = time.perf_counter()
    grad = build_gradient_model(model, targets=["logits"], mode="gradient")
    t_build = time.perf_counter() - t0
    if args.save_graph:
        from onnxprobe.fsutil import atomic_write_bytes

        atomic_write_bytes(args.save_graph, grad.SerializeToString())
    ours = _ort_session(grad.SerializeToString(), args)
    del grad
    feeds = {"input": x, seed_name("logits"): _seed(args.batch)}
    run_ours = _ort_runner(ours, feeds, args)
    for _ in range(args.warmup):
        run_ours()
    peak_ours, gpu_ours = _peak_rss_mib(), _gpu_used_mib()
    runs = {}
    diff = None
    if args.before:
        before = _ort_session(args.before.read_bytes(), args)
        names = [o.name for o in ours.get_outputs()]
        if sorted(names) != sorted(o.name for o in before.get_outputs()):
            raise SystemExit(f"--before {args.before}: its outputs differ from this tree's gradient graph")
        a = dict(zip(names, ours.run(None, feeds)))
        b = dict(zip(names, before.run(names, feeds)))
        diff = {k: float(np.abs(a[k] - b[k]).max() / max(float(np.abs(b[k]).max()), 1e-30)) for k in names}
        runs["before"] = _ort_runner(before, feeds, args)
    floor = _ort_session(model.SerializeToString(), args)
    del model
    run_floor = _ort_runner(floor, {"input": x}, args)
    wall, cpu = interleaved_times({"floor": run_floor, "ours": run_ours, **runs}, reps=args.reps, warmup=args.warmup)
    return {"times": wall, "cpu": cpu, "base_rss": base, "peak_rss_ours": peak_ours, "peak_rss": _peak_rss_mib(),
            "gpu_mib": gpu_ours, "build_s": t_build, "providers": ours.get_providers(), "before_diff": diff}


def worker_torch(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    base = _rss_mib()
    dev = torch.device(args.device)
    module = _torch_module(args).to(dev).eval()
    for p in module.parameters():
        p.requires_grad_(False)
    x = torch.from_numpy(_input(args)).to(dev)
    seed = torch.from_numpy(_seed(args.batch)).to(dev)

    def step():
        xx = x.detach().requires_grad_(True)
        y = module(xx)
        (g,) = torch.autograd.grad((y * seed).sum(), xx)
        return y, g

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = _timed(step, args.warmup, args.reps, sync)
    gpu = None
    if dev.type == "cuda":
        gpu = {"max_allocated": torch.cuda.max_memory_allocated() / 2**20,
               "max_reserved": torch.cuda.max_memory_reserved() / 2**20, "process": _gpu_used_mib()}
    return {"times": times, "base_rss": base, "peak_rss": _peak_rss_mib(), "gpu_mib": gpu}


# ---- driver --------------------------------------------------------------------------------------

def _run_worker(which: str, args, model: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", which, "--model", str(model),
           "--device", args.device, "--threads", str(args.threads), "--batch", str(args.batch),
           "--size", str(args.size), "--reps", str(args.reps), "--warmup", str(args.warmup), "--arch", args.arch]
    if which == "ort":
        cmd += ["--save-graph", str(args.save_graph)] if args.save_graph else []
        cmd += ["--before", str(args.before)] if args.before else []
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{which} worker failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for both frameworks")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--arch", default="resnet18", help="torchvision architecture (default resnet18, the headline)")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--save-graph", type=Path, help="write this tree's gradient graph here (the 'before' of a later run)")
    ap.add_argument("--before", type=Path, help="a gradient graph saved by --save-graph: run it interleaved as 'before'")
    ap.add_argument("--worker", choices=["ort", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        result = worker_torch(args) if args.worker == "torch" else worker_ort(args)
        print(json.dumps(result))
        return 0

    if args.device == "cuda":
        import onnxruntime as ort
        import torch

        if "CUDAExecutionProvider" not in ort.get_available_providers() or not torch.cuda.is_available():
            print("--device cuda needs onnxruntime's CUDAExecutionProvider and torch.cuda", file=sys.stderr)
            return 2
    import torchvision

    if not callable(getattr(torchvision.models, args.arch, None)) or args.arch.startswith("_"):
        print(f"--arch {args.arch}: not a torchvision model", file=sys.stderr)
        return 2
    if args.before is not None:
        import onnx

        try:
            onnx.load(str(args.before), load_external_data=False)
        except Exception as e:  # any unreadable file: one line, no traceback
            print(f"--before {args.before}: not an ONNX model ({type(e).__name__})", file=sys.stderr)
            return 2
    model = export_model(args)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > (os.cpu_count() or 1) - 0.5:
        print(f"warning: load average {load:.1f} on {os.cpu_count()} CPUs; timings (PyTorch's OpenMP threads "
              "especially) suffer badly from other work on the machine", flush=True)
    print(f"{args.arch} random init, batch {args.batch}, {args.size}x{args.size}, device {args.device}, "
          f"{args.threads} thread(s), median of {args.reps} after {args.warmup} warm-up runs; "
          f"load average {load:.1f} on {os.cpu_count()} CPUs", flush=True)
    torch_runs = [_run_worker("torch", args, model)]
    ort_res = _run_worker("ort", args, model)
    torch_runs.append(_run_worker("torch", args, model))
    times = {**ort_res["times"], "torch": [t for r in torch_runs for t in r["times"]]}
    best = {w: min(t) for w, t in times.items()}
    med = {w: statistics.median(t) for w, t in times.items()}
    cpu = {w: statistics.median(t) for w, t in ort_res["cpu"].items()}
    torch_mem = max(torch_runs, key=lambda r: r["peak_rss"])

    def mem(peak, base, g=None):
        text = f"peak RSS {peak:7.0f} MiB (+{peak - base:.0f} over imports)"
        if isinstance(g, dict):
            text += f", CUDA max allocated {g['max_allocated']:.0f} MiB, reserved {g['max_reserved']:.0f} MiB"
            if g.get("process") is not None:
                text += f", process {g['process']:.0f} MiB"
        elif g is not None:
            text += f", CUDA process {g:.0f} MiB"
        return text

    rows = [("ORT forward only (floor)", "floor", "(same process as ours)"),
            ("onnxprobe gradient (ORT)", "ours", mem(ort_res["peak_rss_ours"], ort_res["base_rss"], ort_res["gpu_mib"])),
            ("PyTorch eager autograd", "torch", mem(torch_mem["peak_rss"], torch_mem["base_rss"], torch_mem["gpu_mib"]))]
    for label, w, extra in rows:
        print(f"{label:<26} best {1000 * best[w]:8.1f} ms  median {1000 * med[w]:8.1f} ms  {extra}")
    print(f"gradient graph built in {ort_res['build_s']:.2f} s; ORT providers {ort_res['providers']}")
    head = best["ours"] / best["floor"]
    print(f"gradient step / ORT forward = {head:.2f} (best runs, interleaved; goal <= 2.2: "
          f"{'met' if head <= 2.2 else 'NOT met'});  median {med['ours'] / med['floor']:.2f};  "
          f"CPU time {cpu['ours'] / cpu['floor']:.2f}   [machine-independent]")
    if "before" in times:
        print(f"{'before (' + args.before.name + ')':<26} best {1000 * best['before']:8.1f} ms  median "
              f"{1000 * med['before']:8.1f} ms  (same process as ours)")
        hb = best["before"] / best["floor"]
        print(f"before: gradient step / ORT forward = {hb:.2f} (best);  median {med['before'] / med['floor']:.2f};  "
              f"CPU time {cpu['before'] / cpu['floor']:.2f}")
        print(f"after / before = {best['ours'] / best['before']:.3f} (best);  median {med['ours'] / med['before']:.3f};  "
              f"CPU time {cpu['ours'] / cpu['before']:.3f};  gradients differ by at most "
              + ", ".join(f"{v:.1e}" for v in ort_res["before_diff"].values()) + " (relative to the largest)")
    ratio = best["ours"] / best["torch"]
    print(f"gradient step / PyTorch eager = {ratio:.3f} (best runs; goal <= 0.65: {'met' if ratio <= 0.65 else 'NOT met'});"
          f"  median {med['ours'] / med['torch']:.3f}   [depends on the machine]")
    print(f"load average at the end {os.getloadavg()[0] if hasattr(os, 'getloadavg') else 0.0:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
