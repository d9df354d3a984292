#!/usr/bin/env python
"""Regenerate the README's gallery (docs/gallery/*.png) from onnxprobe's own commands, run on the
bundled ImageNet network:

    python tools/make_gallery.py                     # ~15 min on 2 free CPU cores; a minute on a GPU
    python tools/make_gallery.py --steps 128         # a quick, rougher version
    python tools/make_gallery.py --only demo --only photo   # only these pictures

What it runs (the commands' outputs stay in --work, a cache; only the composed PNGs are written
to --out):

1. `onnxprobe demo` on the sample photos -> docs/gallery/demo.png (its summary.png);
2. `onnxprobe optimize --objective logit --preset lucid` for a few classes -> classes.png;
3. `tools/gather_photos.py` (photos from pinned wheels), `onnxprobe maxact --crops` on a hidden
   layer and `onnxprobe optimize --objective channel --preset lucid` for some of its units ->
   units.png: each unit's feature visualization beside its top-9 patches among those photos;
4. `onnxprobe optimize --from` the cat: class 282 (tiger cat) accentuated and a caricature of
   features.9/Add (64 steps), its inversion from features.6/Add (128 steps) -> photo-pictures.png
   (photo, accentuation, caricature, inversion).

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
INVERSION_LAYER = "features.6/Add"  # 28 x 28: the reconstructions a judge of another family names best
PARTS = ("demo", "classes", "units", "photo")


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


def captioned(image: np.ndarray, text: str, width: int = TILE, scale: float = 0.5) -> np.ndarray:
    import cv2

    from onnxprobe.viewer.panes import text_image

    if image.shape[1] != width:
        height = max(1, round(image.shape[0] * width / image.shape[1]))
        image = cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=cv2.INTER_AREA)
    return np.vstack([image, text_image([text], width, line_height=20, scale=scale)])


def write_small_png(path: Path, rgb: np.ndarray) -> None:
    """A gallery picture as a 256-colour PNG (median-cut palette, Floyd-Steinberg dithering: a
    third of the bytes of the full-colour file, which the README's readers download) where Pillow
    is installed (it is not a dependency of onnxprobe); else the full-colour PNG."""
    from onnxprobe.render.images import write_png

    try:
        from PIL import Image
    except ImportError:
        write_png(path, rgb)
        return
    image = Image.fromarray(np.ascontiguousarray(rgb))
    small = image.quantize(palette=image.quantize(colors=256, method=Image.Quantize.MEDIANCUT),
                           dither=Image.Dither.FLOYDSTEINBERG)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    small.save(temporary, format="PNG", optimize=True)
    temporary.replace(path)


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
    ap.add_argument("--only", action="append", choices=PARTS, help="only this picture (repeatable; default all)")
    args = ap.parse_args(argv)
    parts = args.only or PARTS
    model, steps, work, device = str(MODEL), str(args.steps), args.work, args.device
    labels = MODEL.with_name("mobilenet_v2.labels.txt").read_text().splitlines()

    written = []
    if "demo" in parts:  # 1. the demo's summary
        demo(args, work, device)
        written.append("demo.png")
    if "classes" in parts:
        classes(args, model, steps, work, device, labels)
        written.append("classes.png")
    if "units" in parts:
        hidden_units(args, model, steps, work, device)
        written.append("units.png")
    if "photo" in parts:
        photo_pictures(args, model, work, device, labels)
        written.append("photo-pictures.png")
    for name in written:
        print(f"wrote {args.out / name}")
    return 0


def demo(args, work: Path, device: str) -> None:
    onnxprobe("demo", "--out", str(work / "demo"), "--device", device)
    write_small_png(args.out / "demo.png", read_rgb(work / "demo" / "summary.png"))


def classes(args, model: str, steps: str, work: Path, device: str, labels: list[str]) -> None:
    from onnxprobe.render.images import montage

    onnxprobe("optimize", model, "--objective", "logit", "--unit", ",".join(map(str, CLASSES)), "--preset", "lucid",
              "--steps", steps, "--batch", str(len(CLASSES)), "--device", device, "--out", str(work / "classes"),
              "--quiet")
    tiles = [captioned(read_rgb(the_one(work / "classes", f"unit_{c:05d}_restart00.png")), labels[c]) for c in CLASSES]
    write_small_png(args.out / "classes.png", montage(tiles, columns=4, pad=6, background=16))


def hidden_units(args, model: str, steps: str, work: Path, device: str) -> None:
    """What hidden units want to see, and what excites them most among real photos."""
    from onnxprobe.fsutil import safe_name
    from onnxprobe.render.images import montage
    from tools.gather_photos import gather

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
    write_small_png(args.out / "units.png", montage(rows, columns=2, pad=16, background=16))


def photo_pictures(args, model: str, work: Path, device: str, labels: list[str]) -> None:
    """The cat, the class "tiger cat" accentuated in it, a caricature of what a middle layer sees
    in it and its inversion from an earlier one (the inversion montages of many photos:
    bench/bench_quality.py --sections inversion --save)."""
    import cv2

    cat = str(REPO / "models" / "imagenet" / "samples" / "chelsea.jpg")
    out = str(work / "photo")
    onnxprobe("optimize", model, "--from", cat, "--picture", "accentuate", "--objective", "logit", "--unit", "282",
              "--steps", "64", "--device", device, "--out", out)
    onnxprobe("optimize", model, "--from", cat, "--picture", "caricature", "--layer", PHOTO_LAYER, "--steps", "64",
              "--device", device, "--out", out)
    onnxprobe("optimize", model, "--from", cat, "--picture", "invert", "--layer", INVERSION_LAYER, "--steps", "128",
              "--device", device, "--out", out)
    size = 160
    shown = (("caricature-chelsea-photo.png", "the photo"), ("accentuate-chelsea.png", f"+ {labels[282]}"),
             ("caricature-chelsea.png", f"caricature {PHOTO_LAYER}"), ("invert-chelsea.png", f"inverted {INVERSION_LAYER}"))
    tiles = [captioned(cv2.resize(read_rgb(work / "photo" / name), (size, size), interpolation=cv2.INTER_AREA), text,
                       size, scale=0.42) for name, text in shown]
    write_small_png(args.out / "photo-pictures.png", np.hstack(tiles))


if __name__ == "__main__":
    sys.exit(main())
