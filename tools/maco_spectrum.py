#!/usr/bin/env python
"""The natural-image magnitude spectrum that MACO (onnxprobe/optimize/maco.py) keeps fixed, from
the project's own photographs: written to onnxprobe/optimize/data/maco_spectrum.npy (package data).

    python tools/gather_photos.py          # the photo set, into .cache/photos/
    python tools/maco_spectrum.py          # -> onnxprobe/optimize/data/maco_spectrum.npy

Each colour photograph (the gathered set, except foolbox's ImageNet validation photos: they are
the inversion bench's test set, and their terms forbid redistribution, also of derived data; plus
models/imagenet/samples) is centre-cropped to a square, resized to SIZE x SIZE (area), scaled to
0..1, its mean removed, and mapped into lucid's decorrelated colour space (the inverse of
lucid.COLOR_MATRIX, as xplique's spectrum is "decorrelated"); the spectrum is the mean of
|rfft2| over the photographs, float16 (3, SIZE, SIZE//2+1). Only its shape matters: MACO
standardizes the image after the inverse FFT.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SIZE = 256
OUT = REPO / "onnxprobe" / "optimize" / "data" / "maco_spectrum.npy"
PHOTOS = REPO / ".cache" / "photos"
SAMPLES = REPO / "models" / "imagenet" / "samples"


def photo_files(folder: Path = PHOTOS) -> list[Path]:
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")
                   and not p.name.startswith("foolbox-"))
    return files + sorted(SAMPLES.glob("*.jpg"))


def mean_spectrum(files: list[Path], size: int = SIZE) -> tuple[np.ndarray, int]:
    import cv2

    from onnxprobe.optimize.lucid import COLOR_MATRIX

    inverse = np.linalg.inv(COLOR_MATRIX.astype(np.float64))
    total, count = np.zeros((3, size, size // 2 + 1)), 0
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None or image.ndim != 3 or image.shape[2] < 3:
            continue  # grey or unreadable: not a colour photograph
        rgb = image[:, :, 2::-1].astype(np.float64) / (65535.0 if image.dtype == np.uint16 else 255.0)
        h, w = rgb.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = cv2.resize(rgb[top:top + side, left:left + side], (size, size), interpolation=cv2.INTER_AREA)
        chw = square.transpose(2, 0, 1)
        chw = chw - chw.mean(axis=(1, 2), keepdims=True)
        decorrelated = np.einsum("cd,dhw->chw", inverse, chw)
        total += np.abs(np.fft.rfft2(decorrelated))
        count += 1
    if count == 0:
        raise SystemExit("error: no colour photographs found (run tools/gather_photos.py first)")
    return (total / count).astype(np.float16), count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=PHOTOS)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    spectrum, count = mean_spectrum(photo_files(args.photos))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, spectrum)
    print(f"{args.out}: mean |rfft2| of {count} photographs, {spectrum.shape}, {args.out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
