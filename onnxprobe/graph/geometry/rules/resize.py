"""Resampling: Resize / Upsample, DepthToSpace / SpaceToDepth (fractional strides).

* Resize (opset 10+) / Upsample: per spatial axis the exact source indices of every output index are
  enumerated (coordinate_transformation_mode, nearest_mode, linear = 2 taps, cubic = 4 taps, edge
  clamping), and the tightest envelope with slope ``1/scale`` is taken. Needs the input/output
  sizes. Nearest x2 (asymmetric/floor): size += stride/2; linear x2 (half_pixel): size += 1.5*stride.
  tf_crop_and_resize, antialiased downscaling, keep_aspect_ratio_policy != stretch -> None.
* DepthToSpace(b): stride /= b, size += (b-1)/b*stride, offset -= (b-1)/b*stride. SpaceToDepth(b):
  stride *= b, size += (b-1)*stride.

Where a tight affine box does not exist (nearest/linear upsampling, DepthToSpace) the RF is the
tightest box with the right fractional stride, looser than the support by less than one input stride.
"""

from __future__ import annotations

import math

import numpy as np

from ...opsem import nearest_index, resize_coords
from ..field import GiveUp, is_spatial
from ..registry import attr, norm_axis, register


def _resize_sources(mode: str, ctm: str, nearest_mode: str, in_size: int, out_size: int, scale: float,
                    cubic: bool = False):
    """For every output index, the (min, max) input index it reads; and the affine slope."""
    j = np.arange(out_size, dtype=np.float64)
    x = resize_coords(ctm, out_size, in_size, scale)
    slope = (x[-1] - x[0]) / (out_size - 1) if out_size > 1 else 1.0 / scale
    # exact-arithmetic ties (integers, halves) must not flip with float rounding: snap to them
    halves = np.round(x * 2) / 2
    x = np.where(np.abs(x - halves) <= 1e-9 * np.maximum(1.0, np.abs(x)), halves, x)
    if mode == "nearest":
        if nearest_mode == "any":  # Upsample: runtimes differ, take every candidate
            cands = np.stack([np.floor(x), np.ceil(x - 0.5), np.floor(x + 0.5)])
        else:
            cands = nearest_index(nearest_mode, x)[None]
    else:
        f = np.floor(x)
        nonzero = x > f  # an integer coordinate gives the right-hand tap weight 0
        taps = [f, np.where(nonzero, f + 1, f)]
        if cubic:
            taps += [np.where(nonzero, f - 1, f), np.where(nonzero, f + 2, f)]
        cands = np.stack(taps)
    cands = np.clip(cands, 0, in_size - 1)
    return cands.min(axis=0), cands.max(axis=0), slope, j


@register("Resize", "Upsample")
def _resize(ctx, node):
    x, y = node.input[0], node.output[0]
    g = ctx.data(node)
    rank = g.rank
    mode = attr(node, "mode", "nearest")
    if mode not in ("nearest", "linear", "bilinear", "cubic"):
        raise GiveUp
    if node.op_type == "Upsample":
        ctm, nearest_mode = "asymmetric", "any"
        scales = attr(node, "scales")
        if scales is None and len(node.input) > 1:
            scales = ctx.const(node.input[1])
        sizes = None
        axes = list(range(rank))
    else:
        ctm = attr(node, "coordinate_transformation_mode", "half_pixel" if ctx.opset >= 11 else "asymmetric")
        nearest_mode = attr(node, "nearest_mode", "round_prefer_floor")
        if ctx.opset < 11:
            ctm = "asymmetric"
            nearest_mode = "any"
        if attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
            raise GiveUp
        scale_index = 1 if ctx.opset < 11 else 2
        scales = ctx.const(node.input[scale_index]) if len(node.input) > scale_index and node.input[scale_index] else None
        if scales is not None and np.size(scales) == 0:
            scales = None
        sizes = ctx.const(node.input[3]) if len(node.input) > 3 and node.input[3] else None
        axes = attr(node, "axes")
        axes = list(range(rank)) if axes is None else [norm_axis(a, rank) for a in axes]
    if ctm == "tf_crop_and_resize":
        raise GiveUp
    scales = None if scales is None else [float(v) for v in np.asarray(scales).reshape(-1)]
    if scales is not None and len(scales) != len(axes):
        raise GiveUp
    in_shape, out_shape = ctx.shape(x), ctx.shape(y)
    labels = list(g.labels)
    rf = g.rf
    for i, axis in enumerate(axes):
        in_size = in_shape[axis] if in_shape is not None else None
        out_size = out_shape[axis] if out_shape is not None else None
        if sizes is not None and out_size is None:
            out_size = int(np.asarray(sizes).reshape(-1)[i])
        scale = scales[i] if scales is not None else None
        if out_size is None and scale is not None and in_size is not None:
            out_size = int(math.floor(in_size * scale))
        if scale is None and in_size and out_size is not None:
            scale = out_size / in_size
        if scale is not None and scale == 1 and (in_size is None or out_size is None or in_size == out_size) \
                and ctm != "tf_half_pixel_for_nn":
            continue  # untouched axis
        if not is_spatial(labels[axis]):
            labels[axis] = None
            continue
        if rf is None:
            continue
        if in_size is None or out_size is None or scale is None or scale <= 0 or out_size == 0:
            rf = None
            continue
        if attr(node, "antialias", 0) and scale < 1 and mode != "nearest":
            rf = None
            continue
        lo, hi, slope, j = _resize_sources("nearest" if mode == "nearest" else "linear", ctm, nearest_mode,
                                           in_size, out_size, scale, cubic=(mode == "cubic"))
        rf = rf._envelope(labels[axis], slope, float(np.min(lo - slope * j)), float(np.max(hi - slope * j)))
    return ctx.mk(labels, rf)


@register("DepthToSpace", "SpaceToDepth")
def _depth_space(ctx, node):
    g = ctx.geos[node.input[0]]
    if g.rank != 4 or is_spatial(g.labels[1]):
        raise GiveUp
    b = int(attr(node, "blocksize"))
    rf = g.rf
    for axis in (2, 3):
        lab = g.labels[axis]
        if not is_spatial(lab):
            return ctx.mk([g.labels[0], "C", None, None], None)
        if rf is None:
            continue
        if node.op_type == "DepthToSpace":
            rf = rf._envelope(lab, 1.0 / b, -(b - 1) / b, 0.0)
        else:
            rf = rf._envelope(lab, float(b), 0.0, float(b - 1))
    return ctx.mk([g.labels[0], "C"] + list(g.labels[2:]), rf)
