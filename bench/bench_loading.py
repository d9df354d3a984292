"""Loading a fixed-batch export vs the same network exported with a dynamic batch axis.

A file whose batch is fixed (`torch.onnx.export` without `dynamic_axes`) costs more to load: its
batch-size constants are found and rewritten and the result is proved on the model (a batch of 2
against two single runs, every batch-carrying tensor exposed). This prints, per network, the
median load time of each export (interleaved, so machine noise hits both alike) and their ratio.
usage: python bench/bench_loading.py [--size 224] [--repeats 5] [NAME ...]   (torchvision names)
"""

from __future__ import annotations

import argparse
import warnings

from common import CACHE, interleaved_medians, torchvision_onnx
from onnxprobe.model import ProbeModel


def fixed_export(name: str, size: int):
    """The same random-init network as `torchvision_onnx` (seed 0), exported the way most files come."""
    import torch
    import torchvision

    path = CACHE / f"{name}-{size}-fixed-batch.onnx"
    if not path.exists():
        torch.manual_seed(0)
        net = torchvision.models.get_model(name, weights=None).eval()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, torch.zeros(1, 3, size, size), str(path), opset_version=18, dynamo=False)  # the dynamic export's opset: no conversion in the ratio
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=["mobilenet_v2", "resnet18", "shufflenet_v2_x0_5"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'network':22s} {'dynamic s':>10s} {'fixed s':>10s} {'ratio':>6s}  batch handling of the fixed export")
    for name in args.names:
        dynamic, fixed = torchvision_onnx(name, args.size), fixed_export(name, args.size)
        kind = ProbeModel.load(fixed, device="cpu").batch.describe()
        times = interleaved_medians({"dynamic": lambda: ProbeModel.load(dynamic, device="cpu"),
                                     "fixed": lambda: ProbeModel.load(fixed, device="cpu")},
                                    repeats=args.repeats, warmup=1)
        print(f"{name:22s} {times['dynamic']:10.2f} {times['fixed']:10.2f} {times['fixed'] / times['dynamic']:6.2f}  {kind}")


if __name__ == "__main__":
    main()
