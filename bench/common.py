"""Shared helpers for the benchmarks: timing, peak memory, cached test networks."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
BUNDLED = ROOT / "models" / "digits" / "digits-cnn.onnx"


def median_seconds(fn, repeats: int = 20, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_times(fns: dict, reps: int = 20, warmup: int = 3, sync=lambda: None) -> tuple[dict, dict]:
    """Wall and process-CPU seconds of each function per run, {name: [seconds]} twice. The functions
    alternate run by run, so that load from other work hits them alike, and every other round runs
    in reverse order, so that no function always runs right after the same other one (an A/A run of
    the same gradient graph read 0.96 CPU time with a fixed order under load). `sync` waits for a
    device after each run."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync()
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    order = list(fns)
    for rep in range(reps):
        for k in order if rep % 2 == 0 else order[::-1]:
            t0, c0 = time.perf_counter(), time.process_time()
            fns[k]()
            sync()
            cpu[k].append(time.process_time() - c0)
            wall[k].append(time.perf_counter() - t0)
    return wall, cpu


def interleaved_medians(fns: dict, repeats: int = 20, warmup: int = 3) -> dict[str, float]:
    """Median wall time of each function, measured in alternation (`interleaved_times`)."""
    wall, _ = interleaved_times(fns, repeats, warmup)
    return {name: statistics.median(values) for name, values in wall.items()}


def torchvision_onnx(name: str, size: int = 224) -> Path:
    """A torchvision network at random init exported to ONNX (cached; nothing is downloaded)."""
    sys.path.insert(0, str(ROOT))
    from tools.export_torch import export_torchvision

    path = CACHE / f"{name}-{size}.onnx"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        export_torchvision(name, path, input_size=(size, size), weights=None)
    return path


def load_line() -> str:
    """The machine's load, printed beside wall-time ratios (which other work on the machine moves)."""
    import os

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"load average {load:.1f} on {os.cpu_count()} CPUs"
