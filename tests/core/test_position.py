"""`--position`: one parser and one resolution for backprop, attribute, optimize (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprobe.errors import UsageError
from onnxprobe.graph.layers import LayerInfo
from onnxprobe.position import check_position, check_unit, parse_position, resolve, strongest


def _layer(shape, channel_axis, spatial_axes):
    return LayerInfo("t", "Conv", shape, channel_axis, spatial_axes, None)


def test_parse():
    assert parse_position(None) is None
    assert parse_position("3,4") == (3, 4)
    assert parse_position("Max") == "max" and parse_position("center") == "centre" and parse_position("mean") == "mean"
    with pytest.raises(UsageError, match="^position takes Y,X integers, max, centre or mean"):
        parse_position("a,b")


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_strongest_finds_the_largest_position_in_either_layout(layout):
    act = np.zeros((1, 4, 5, 6), np.float32)  # NCHW
    act[0, 2, 3, 1] = 5.0
    act[0, 1, 0, 0] = 9.0  # another channel's larger value must not count
    if layout == "NHWC":
        info, act = _layer((None, 5, 6, 4), 3, (1, 2)), act.transpose(0, 2, 3, 1)
    else:
        info = _layer((None, 4, 5, 6), 1, (2, 3))
    assert strongest(info, act, 2) == (3, 1)


def test_resolve_keywords_and_checks():
    info = _layer((None, 4, 5, 6), 1, (2, 3))
    assert resolve(None, info, 0, "centre")[0] == (2, 3)
    assert resolve(None, info, 0, "mean")[0] is None
    assert resolve(None, info, 0, (4, 5))[0] == (4, 5)
    with pytest.raises(UsageError, match="position 5,0 is outside layer 't'"):
        check_position(info, (5, 0))
    with pytest.raises(UsageError, match="needs an image"):
        resolve(None, info, 0, "max")
    vector = _layer((None, 10), 1, ())
    assert resolve(None, vector, 0, "max")[0] == ()
    assert resolve(None, vector, 0, None)[0] == ()
    with pytest.raises(UsageError, match="not spatial"):
        resolve(None, vector, 0, (1, 1))


def test_no_position_means_max_with_an_image_and_centre_without():
    """One meaning of "no position" everywhere: where the unit fires most on the image given,
    else the centre (the toolbox's choice for optimize, which has no image)."""
    info = _layer((None, 3, 5, 6), 1, (2, 3))
    act = np.zeros((1, 3, 5, 6), np.float32)
    act[0, 1, 4, 0] = 2.0
    model = type("M", (), {"activations": lambda self, x, names, with_outputs: {"t": act}})()
    assert resolve(model, info, 1, None, x=np.zeros((1, 3, 8, 8), np.float32))[0] == (4, 0)
    assert resolve(model, info, 1, None)[0] == (2, 3)


def test_one_unit_out_of_range_message():
    info = _layer((None, 64, 5, 6), 1, (2, 3))
    assert check_unit(info, 63) == 63
    for bad in (64, 70, -1):
        with pytest.raises(UsageError, match=rf"^unit {bad} out of range for layer 't' \(64 units: 0-63\)$"):
            check_unit(info, bad)
    with pytest.raises(UsageError, match="class 64 out of range for layer 't' \\(64 classes"):
        check_unit(info, 64, what="class")
    with pytest.raises(UsageError, match="unit 64 out of range"):  # resolve checks the unit before reading it
        resolve(None, info, 64, "centre")
