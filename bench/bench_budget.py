"""The memory budget's per-row estimate against measured peak RSS (issue 23).

For each model: `ProbeModel.row_bytes` (the forward graph's batched tensors, x GRADIENT_FACTOR for a
gradient run, x SAFETY_FACTOR) against the peak RSS growth per row of one gradient run (and one
forward run exposing every layer) at batch B1 and B2, each in a fresh process:
(peak(B2) - peak(B1)) / (B2 - B1). Also the rows the default budget gives on this machine.

    PYTHONPATH=. python bench/bench_budget.py [MODEL ...]
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, resource, sys
import numpy as np
from onnxprobe.model import ProbeModel
from onnxprobe.objectives import logit
path, kind, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
model = ProbeModel.load(path, device="cpu", memory_budget="64G")
x = np.random.default_rng(0).normal(size=(rows, *model.input_shape[1:])).astype(np.float32)
if rows:
    if kind == "gradient":
        model.gradient(x, logit(model, 0))
    else:
        model.activations(x)
print(json.dumps({"peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def peak(path: str, kind: str, rows: int) -> int:
    done = subprocess.run([sys.executable, "-c", CHILD, path, kind, str(rows)], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "ONNXPROBE_THREADS": "1", "PATH": "/usr/bin:/bin"}, timeout=900)
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])["peak"]


def main(paths: list[str], b1: int = 2, b2: int = 10) -> None:
    """B1, B2: the two batches (growth between them per row; too few rows of a small model stay inside
    the arena ONNX Runtime already holds: measured 0, shown as None)."""
    from onnxprobe.budget import format_size
    from onnxprobe.model import ProbeModel

    for path in paths:
        model = ProbeModel.load(path, device="cpu")
        default = model.memory_budget
        line = {"model": Path(path).name, "tensor_row": format_size(model.tensor_row_bytes),
                "default_budget": default.describe()}
        for kind in ("forward", "gradient"):
            measured = (peak(path, kind, b2) - peak(path, kind, b1)) / (b2 - b1)
            estimate = model.row_bytes(kind)
            line[kind] = {"estimate_per_row": format_size(estimate), "measured_per_row": format_size(int(measured)),
                          "estimate/measured": round(estimate / measured, 2) if measured > 0 else None,
                          "rows_under_default": model.rows_per_run(kind)}
        line["step_rows_under_default"] = model.rows_per_run("step")
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or [str(ROOT / "models/imagenet/mobilenet_v2.onnx"),
                          str(ROOT / "bench/.cache/resnet18-224-dynamo.onnx")])
