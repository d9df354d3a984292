"""Layer grids (the toolbox's boosts), back-map filters and montages."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprobe.render.backmaps import FILTERS, render_backmap
from onnxprobe.render.grid import GridLayout, layer_grid, normalize_tiles, units_first
from onnxprobe.render.images import montage


def test_whole_layer_normalisation_without_boost():
    tiles = np.array([[[0.0, 2.0]], [[1.0, 4.0]]], np.float32)  # 2 units of 1x2
    out = normalize_tiles(tiles)[..., 0]
    np.testing.assert_allclose(out, [[[0.0, 0.5]], [[0.25, 1.0]]], atol=1e-6)


@pytest.mark.parametrize("boost_indiv", [0.0, 0.3, 0.5, 0.8, 1.0])
def test_per_unit_boost_follows_the_toolbox_formula(boost_indiv):
    tiles = np.array([[[0.0, 2.0]], [[1.0, 4.0]]], np.float32)
    out = normalize_tiles(tiles, boost_indiv=boost_indiv)[..., 0]
    scaled = tiles / 4.0
    peaks = np.array([0.5, 1.0])
    expected = scaled * (peaks ** -boost_indiv)[:, None, None]
    np.testing.assert_allclose(out, np.clip(expected, 0, 1), atol=1e-5)
    if boost_indiv == 1.0:  # each unit normalised on its own
        assert out[0].max() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("gamma", [1.0, 0.7, 0.5, 0.3])
def test_gamma_boost(gamma):
    tiles = np.array([[[0.0, 1.0, 4.0]]], np.float32)
    out = normalize_tiles(tiles, boost_gamma=gamma)[..., 0]
    np.testing.assert_allclose(out, np.array([[[0, 0.25, 1.0]]]) ** gamma, atol=1e-5)


def test_grid_layout_picks_the_unit_under_the_mouse():
    tiles = np.random.default_rng(0).random((10, 5, 7)).astype(np.float32)
    image, layout = layer_grid(tiles, pad=1)
    assert image.shape[:2] == layout.size
    for unit in range(10):
        y, x, h, w = layout.tile_rect(unit)
        assert layout.unit_at(y + h // 2, x + w // 2) == unit
        np.testing.assert_array_equal(image[y:y + h, x:x + w, 0], (normalize_tiles(tiles)[unit, ..., 0] * 255).astype(np.uint8))
    assert layout.unit_at(layout.tile_h, 0) is None  # padding row
    assert layout.unit_at(*layout.size) is None


def test_units_first_handles_nchw_nhwc_and_vectors():
    act = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    assert units_first(act, 1, (2, 3)).shape == (2, 3, 4)
    nhwc = np.transpose(act, (1, 2, 0))
    np.testing.assert_array_equal(units_first(nhwc, 3, (1, 2)), act)
    assert units_first(np.arange(10.0), 1, ()).shape == (10, 1, 1)


@pytest.mark.parametrize("name", FILTERS)
def test_back_filters_render_rgb(name):
    grad = np.random.default_rng(1).standard_normal((12, 9, 3)).astype(np.float32)
    out = render_backmap(grad, name)
    assert out.shape == (12, 9, 3) and out.dtype == np.uint8
    if name in ("norm", "normblur"):
        assert out.max() == 255
    if name == "raw":  # zero gradient stays mid-gray
        assert render_backmap(np.zeros_like(grad), "raw").max() == 127


def test_gray_filter_is_the_channel_mean():
    grad = np.zeros((2, 2, 3), np.float32)
    grad[0, 0] = [1, 1, 1]
    grad[1, 1] = [-3, 0, 0]
    out = render_backmap(grad, "gray")[..., 0].astype(int)
    # channel means +1 and -1 scale symmetrically around mid-gray
    assert out[0, 0] == 255 and out[1, 1] == 0 and out[0, 1] == 127


def test_montage_places_tiles():
    tiles = [np.full((4, 4, 3), i * 20, np.uint8) for i in range(9)]
    out = montage(tiles, columns=3, pad=2)
    assert out.shape == (16, 16, 3)
    assert out[6, 6, 0] == 80 and out[14, 14, 0] == 160


def test_outlier_scale_is_a_percentile_of_the_nonzero_values():
    from onnxprobe.render.backmaps import outlier_scale

    values = np.zeros((40, 30))
    values[:10] = np.random.default_rng(3).standard_cauchy((10, 30))  # a receptive field, heavy tails
    assert outlier_scale(values, 5.0) == pytest.approx(np.percentile(np.abs(values[:10]), 95), rel=1e-12)
    assert outlier_scale(values, 0.0) == np.abs(values).max()
    assert outlier_scale(np.zeros((3, 3))) == 0.0


def test_one_outlier_no_longer_washes_out_a_backmap():
    """A single value 40x the rest's spread: scaled by the max, the rest stays within 15 levels of
    mid-grey; with outliers clipped it spans the range."""
    grad = np.random.default_rng(2).standard_normal((32, 32, 3)).astype(np.float32)
    grad[5, 5, 0] = 40.0
    by_max = render_backmap(grad, "raw", outlier_perc=0.0).astype(int)
    clipped = render_backmap(grad, "raw").astype(int)
    rest = np.ones((32, 32), bool)
    rest[5, 5] = False
    assert np.abs(by_max[rest] - 127).max() <= 15
    assert clipped[rest].min() <= 10 and clipped[rest].max() >= 245


def test_labelled_grid_upscales_and_captions():
    from onnxprobe.render.grid import labelled_grid

    tiles = np.random.default_rng(0).random((10, 1, 1)).astype(np.float32)  # a 10-unit vector layer
    out = labelled_grid(tiles, "logits Nx10", [f"class {i}" for i in range(10)], min_tile=24)
    plain = labelled_grid(tiles, "logits Nx10", None, min_tile=24)
    assert out.dtype == np.uint8 and out.ndim == 3
    assert out.shape[0] >= 22 + 4 * (24 + 14) and out.shape[1] > plain.shape[1]  # wider cells for names
    # the top-left tile is a uniform 24x24 square (its unit's value), its caption has text under it
    tile = out[22:22 + 24, 3:3 + 48]
    assert (tile == tile[0, 0]).all()
    caption = out[22 + 24:22 + 24 + 14, 3:3 + 48]
    assert caption.max() > 100 and (out[:22] > 100).any()  # caption and title drawn


@pytest.mark.parametrize("boost_indiv,boost_gamma,min_tile", [(0.0, 1.0, 12), (0.5, 0.7, 24), (1.0, 0.3, 1)])
def test_grid_tiles_are_the_normalised_units_upscaled(boost_indiv, boost_gamma, min_tile):
    """The viewer's grid (gray, tiled on one channel) holds each unit's normalize_tiles image,
    upscaled by a whole factor (nearest), in all three channels, with black padding between."""
    tiles = np.random.default_rng(2).standard_normal((7, 5, 3)).astype(np.float32)
    image, layout = layer_grid(tiles, boost_indiv, boost_gamma, min_tile=min_tile, pad=2)
    expected = (normalize_tiles(tiles, boost_indiv, boost_gamma) * 255).astype(np.uint8)
    scale = layout.tile_h // 5
    assert scale == max(1, -(-min_tile // 3)) and layout.tile_w == 3 * scale
    mask = np.zeros(image.shape[:2], bool)
    for unit in range(7):
        y, x, h, w = layout.tile_rect(unit)
        up = np.repeat(np.repeat(expected[unit], scale, axis=0), scale, axis=1)
        np.testing.assert_array_equal(image[y:y + h, x:x + w], up)
        mask[y:y + h, x:x + w] = True
    assert not image[~mask].any()  # padding and empty cells are black


def test_display_bytes_are_defined_for_nan():
    """NaN (a model that yields NaN) reads as 0 on every path to display bytes; finite values give
    the truncating cast the displays always used."""
    from onnxprobe.attribution import diverging
    from onnxprobe.render.images import unit_to_uint8
    from onnxprobe.viewer.panes import unit_pane

    values = np.array([np.nan, -0.5, 0.0, 0.25, 0.999, 1.0, 3.0], np.float32)
    assert unit_to_uint8(values).tolist() == [0, 0, 0, 63, 254, 255, 255]
    scratch = values.copy()
    assert unit_to_uint8(scratch, in_place=True).tolist() == [0, 0, 0, 63, 254, 255, 255]
    assert not np.isnan(scratch).any()  # in place: the caller's scratch was used

    signed = np.array([[np.nan, -1.0, 0.0, 1.0]], np.float32)
    rgb = diverging(signed)
    assert rgb[0, 0].tolist() == [0, 0, 0]
    assert rgb[0, 1:].tolist() == [[0, 50, 204], [255, 255, 255], [204, 0, 0]]  # truncated, as before
    grad = np.full((4, 4, 3), np.nan, np.float32)
    grad[0, 0] = 1.0
    for name in FILTERS:
        assert render_backmap(grad, name).dtype == np.uint8
    tiles = np.array([[[np.nan, 1.0]], [[0.5, 2.0]]], np.float32)
    grid, _ = layer_grid(tiles)
    assert grid.dtype == np.uint8
    pane = unit_pane(np.array([[np.nan, 1.0], [0.0, 2.0]], np.float32), np.zeros((8, 8, 3), np.uint8), True)
    assert pane.dtype == np.uint8


def test_unit_values_become_bytes_one_way():
    """Values in 0..1 become display bytes only through render.images.unit_to_uint8 (clip_unit: NaN
    to 0): a bare `* 255).astype(np.uint8)` elsewhere casts NaN to an undefined byte."""
    import re
    from pathlib import Path

    import onnxprobe

    root = Path(onnxprobe.__file__).parent
    bare = re.compile(r"\*\s*255(\.0)?\)\.astype\((np\.)?uint8\)")
    found = [f"{p.relative_to(root)}:{n}" for p in sorted(root.rglob("*.py"))
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if bare.search(line)]
    assert found == [], "casts to display bytes outside render.images.unit_to_uint8: " + ", ".join(found)
