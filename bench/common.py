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


def interleaved_medians(fns: dict, repeats: int = 20, warmup: int = 3) -> dict[str, float]:
    """Median time of each function, measured in alternation so machine noise hits all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


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
