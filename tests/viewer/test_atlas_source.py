"""The atlas manifest reader: the format the atlas writes, read tolerantly."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from onnxprobe.viewer.atlas_source import AtlasError, AtlasSource
from tests.viewer.conftest import atlas_color, write_atlas


def test_reads_unit_images_and_stats(tmp_path):
    atlas = AtlasSource(write_atlas(tmp_path / "atlas", "relu1", 4))
    assert atlas.layer_names == ["relu1"] and atlas.model == "m"
    images = atlas.unit_images("relu1", 2)
    for k, kind in enumerate(("optimized", "top9", "top9_deconv")):
        assert images[kind].shape == (20, 20, 3)
        assert tuple(images[kind][0, 0]) == atlas_color(2, k)  # RGB, as written
    assert atlas.stats("relu1", 3) == {"max": 3.0}
    assert atlas.unit_images("relu1", 1) == {"optimized": None, "top9": None, "top9_deconv": None}


def test_pattern_tiles_put_each_units_image_in_its_slot(tmp_path):
    atlas = AtlasSource(write_atlas(tmp_path / "atlas", "relu1", 4))
    tiles, found = atlas.pattern_tiles("relu1", 5, (8, 6))
    assert tiles.shape == (5, 8, 6, 3) and found == 3  # unit 1 has no image, unit 4 is not in the atlas
    assert tuple(tiles[3, 4, 3]) == atlas_color(3)
    assert tuple(tiles[1, 4, 3]) == tuple(tiles[4, 4, 3]) == (24, 24, 24)


def _manifest(tmp_path, data) -> AtlasSource:
    root = tmp_path / "atlas"
    root.mkdir()
    cv2.imwrite(str(root / "ok.png"), np.full((4, 4, 3), 200, np.uint8))
    (root / "broken.png").write_bytes(b"\x89PNG broken")
    (tmp_path / "outside.png").write_bytes((root / "ok.png").read_bytes())
    (root / "manifest.json").write_text(data if isinstance(data, str) else json.dumps(data))
    return AtlasSource(root)


TOLERATED = [
    ("no layers", {"model": "m"}),
    ("layers not a dict", {"layers": [1, 2]}),
    ("units missing", {"layers": {"L": {}}}),
    ("units not a dict", {"layers": {"L": {"units": "x"}}}),
    ("unit key not a number", {"layers": {"L": {"units": {"first": {"optimized": "ok.png"}}}}}),
    ("entry not a dict", {"layers": {"L": {"units": {"0": "ok.png"}}}}),
    ("file missing", {"layers": {"L": {"units": {"0": {"optimized": "gone.png"}}}}}),
    ("file broken", {"layers": {"L": {"units": {"0": {"optimized": "broken.png"}}}}}),
    ("path outside the atlas", {"layers": {"L": {"units": {"0": {"optimized": "../outside.png"}}}}}),
    ("absolute path", {"layers": {"L": {"units": {"0": {"optimized": "/etc/passwd"}}}}}),
    ("path not a string", {"layers": {"L": {"units": {"0": {"optimized": 7}}}}}),
]


@pytest.mark.parametrize("why,data", TOLERATED, ids=[w for w, _ in TOLERATED])
def test_malformed_parts_mean_no_image(tmp_path, why, data):
    atlas = _manifest(tmp_path, data)
    assert atlas.image("L", 0, "optimized") is None
    assert atlas.pattern_tiles("L", 2, (4, 4))[1] == 0


def test_units_as_a_list_and_extra_keys(tmp_path):
    atlas = _manifest(tmp_path, {"model": "m", "version": 3, "layers": {"L": {"units": [{"optimized": "ok.png", "new": 1}],
                                                                              "extra": True}}})
    assert atlas.image("L", 0)[0, 0].tolist() == [200, 200, 200]


@pytest.mark.parametrize("setup,needle", [
    (lambda root: None, "not found"),
    (lambda root: root.mkdir(), "no manifest.json"),
    (lambda root: (root.mkdir(), (root / "manifest.json").write_text("{not json")), "cannot read"),
    (lambda root: (root.mkdir(), (root / "manifest.json").write_text("[1, 2]")), "JSON object"),
])
def test_unusable_atlas_is_one_line_error(tmp_path, setup, needle):
    root = tmp_path / "atlas"
    setup(root)
    with pytest.raises(AtlasError, match=needle) as info:
        AtlasSource(root)
    assert "\n" not in str(info.value)
