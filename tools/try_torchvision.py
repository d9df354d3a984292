#!/usr/bin/env python
"""First contact with your own PyTorch model, tried on torchvision's families as a new user would:
export with PyTorch's DEFAULT exporter (`torch.onnx.export(model, (x,), path)`: the dynamo exporter
in torch >= 2.9, opset 20, weights in `path.data`, batch fixed at 1) plus a sidecar, then run every
command of onnxprobe on the file from the command line, and print one table row per model:

    python tools/try_torchvision.py                        # the six models of issue 21, random weights
    python tools/try_torchvision.py --arch resnet18 --arch vit_b_16 --size 224 --work .cache/try

Columns: the batch kind `layers` reports, module paths found / probeable layers, then each
command's outcome (`ok`, `ok!` = it printed a warning line, or the exit status and the first line it
printed on stderr) and its wall time. Weights are random (`weights=None`: nothing is downloaded), so
the predictions mean nothing; what is checked is that each command works, says what it should and
leaves its files.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

ARCHS = ("resnet18", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny", "regnet_y_400mf", "vit_b_16")
CAT = REPO / "models" / "imagenet" / "samples" / "chelsea.jpg"
SAMPLES = REPO / "models" / "imagenet" / "samples"


def export_default(arch: str, folder: Path, size: int) -> Path:
    """torchvision `arch` (random weights, eval mode) through PyTorch's default exporter, plus the sidecar."""
    import torch
    import torchvision

    from tools.export_torch import IMAGENET_MEAN, IMAGENET_STD, make_spec, write_sidecar

    path = folder / f"{arch}.onnx"
    if not path.exists():
        torch.manual_seed(0)
        model = getattr(torchvision.models, arch)(weights=None).eval()
        x = torch.randn(1, 3, size, size)
        torch.onnx.export(model, (x,), str(path))  # the default exporter, as a user types it
    write_sidecar(path, make_spec((size, size), mean=IMAGENET_MEAN, std=IMAGENET_STD))
    return path


def run(command: list[str], cwd: Path) -> tuple[str, float]:
    start = time.perf_counter()
    result = subprocess.run(["onnxprobe", *command], cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if result.returncode != 0:
        return f"exit {result.returncode}: {lines[-1] if lines else ''}"[:90], seconds
    if "Traceback" in result.stderr:
        return "ok, but a traceback", seconds
    return ("ok!" if lines else "ok"), seconds


def try_model(path: Path, work: Path) -> dict:
    layers = json.loads(subprocess.run(["onnxprobe", "layers", str(path), "--json"], capture_output=True, text=True,
                                       check=True).stdout)
    text = subprocess.run(["onnxprobe", "layers", str(path)], capture_output=True, text=True, check=True).stdout
    batch = text.splitlines()[1]
    named = [entry for entry in layers if entry.get("module_path")]
    spatial = [entry for entry in layers if len(entry["shape"]) == 4]
    middle = spatial[len(spatial) // 2] if spatial else layers[len(layers) // 2]
    mid = middle.get("module_path") or middle["name"]
    out = work / path.stem
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    model = str(path)
    commands = {
        "activations": ["activations", model, str(CAT), "--layer", mid, "--out", "acts.npz", "--grid", "grid.png"],
        "backprop": ["backprop", model, str(CAT), "--layer", mid, "--unit", "0", "--mode", "guided", "--out", "bp.png"],
        "gradcam": ["attribute", model, str(CAT), "--method", "gradcam", "--out", "cam.png"],
        "IG": ["attribute", model, str(CAT), "--method", "integrated_gradients", "--steps", "8", "--out", "ig.png"],
        "optimize": ["optimize", model, "--layer", mid, "--unit", "0", "--objective", "channel", "--preset", "lucid-fast",
                     "--steps", "16", "--out", "vis"],
        "maxact": ["maxact", model, str(SAMPLES), "--layer", mid, "--top", "2", "--crops", "--out", "top"],
        "atlas": ["atlas", model, "--layer", mid, "--units", "0-1", "--steps", "8", "--data", str(SAMPLES), "--out", "atlas"],
        "demo": ["demo", "--model", model, "--images", *map(str, sorted(SAMPLES.glob("*.jpg"))), "--steps", "0",
                 "--out", "demo"],
    }
    row = {"batch": batch.strip(), "module paths": f"{len(named)} / {len(layers)}", "layer": mid}
    for name, command in commands.items():
        row[name] = run(command, out)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", action="append", help=f"torchvision model (default: {', '.join(ARCHS)})")
    parser.add_argument("--size", type=int, default=224, help="input height and width (default 224)")
    parser.add_argument("--work", type=Path, default=REPO / ".cache" / "try-torchvision", help="working folder")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if shutil.which("onnxprobe") is None:
        parser.error("onnxprobe is not on PATH (activate the venv)")
    os.environ.setdefault("ONNXPROBE_THREADS", "2")
    rows = {}
    for arch in args.arch or ARCHS:
        path = export_default(arch, args.work, args.size)
        rows[arch] = try_model(path, args.work)
        print(arch, json.dumps(rows[arch]), flush=True)
    commands = [k for k in next(iter(rows.values())) if k not in ("batch", "module paths", "layer")]
    print("\n| model | batch | module paths / layers | " + " | ".join(commands) + " |")
    print("|---|---|---|" + "---|" * len(commands))
    for arch, row in rows.items():
        cells = [f"{outcome} ({seconds:.0f} s)" for outcome, seconds in (row[c] for c in commands)]
        print(f"| {arch} | {row['batch']} | {row['module paths']} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
