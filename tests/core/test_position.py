"""`--position`: one parser and one resolution for backprop, attribute, optimize (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprobe.errors import UsageError
from onnxprobe.graph.layers import LayerInfo
from onnxprobe.position import check_position, parse_position, resolve, strongest


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
    with pytest.raises(UsageError, match="not spatial"):
        resolve(None, vector, 0, (1, 1))
