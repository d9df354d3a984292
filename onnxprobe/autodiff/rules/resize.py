"""Resize (nearest, linear; every coordinate_transformation_mode but tf_crop_and_resize).

Along each resized axis the op is a constant matrix: Y = A_h X A_w^T, so dX = A_h^T G A_w.
The matrices are built at build time from static spatial sizes (fixed at load time for images);
resizing the batch/channel axes or unknown sizes fail with a clear message.
"""

from __future__ import annotations

import numpy as np

from ...graph.opsem import nearest_index, resize_coords
from ..registry import Ctx, register


def resize_matrix(mode: str, coord_mode: str, nearest_mode: str, n_out: int, n_in: int, scale: float) -> np.ndarray:
    """A with Y = A @ X along one axis (shape [n_out, n_in])."""
    src = resize_coords(coord_mode, n_out, n_in, scale)
    a = np.zeros((n_out, n_in), dtype=np.float64)
    rows = np.arange(n_out)
    if mode == "nearest":
        a[rows, np.clip(nearest_index(nearest_mode, src), 0, n_in - 1).astype(int)] = 1.0
        return a
    src = np.clip(src, 0, n_in - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    w = src - lo
    np.add.at(a, (rows, lo), 1 - w)
    np.add.at(a, (rows, hi), w)
    return a


@register("Resize", nodiff=(1, 2, 3))
def _resize(c: Ctx):
    t, x = c.t, c.x()
    mode = c.attr("mode", "nearest")
    coord = c.attr("coordinate_transformation_mode", "half_pixel")
    if mode not in ("nearest", "linear"):
        c.fail(f"mode={mode} is not supported (nearest, linear are)")
    if coord == "tf_crop_and_resize" or c.attr("antialias", 0):
        c.fail("tf_crop_and_resize and antialias are not supported")
    dims = c.dims()
    if not dims or any(d is None for d in dims[2:]):
        c.fail("needs static spatial sizes of the input")
    r = len(dims)
    axes = [a % r for a in (c.attr("axes") or range(r))]
    scales_v, sizes_v = c.const(2), c.const(3)
    scales = [1.0] * r
    outs = list(dims)
    if sizes_v is not None and sizes_v.size:
        policy = c.attr("keep_aspect_ratio_policy", "stretch")
        ratios = [float(s) / dims[a] for a, s in zip(axes, sizes_v) if dims[a]]
        for a, s in zip(axes, sizes_v):
            scales[a] = float(s) / dims[a] if dims[a] else 1.0
        if policy != "stretch":
            k = min(ratios) if policy == "not_larger" else max(ratios)
            for a in axes:
                scales[a] = k
                outs[a] = int(np.floor(dims[a] * k + 0.5))
        else:
            for a, s in zip(axes, sizes_v):
                outs[a] = int(s)
    elif scales_v is not None and scales_v.size:
        for a, s in zip(axes, scales_v):
            scales[a] = float(s)
            outs[a] = int(np.floor(dims[a] * float(s))) if dims[a] is not None else None
    else:
        y_dims = c.dims(c.y())
        if not y_dims or any(d is None for d in y_dims[2:]):
            c.fail("needs constant scales/sizes or static output sizes")
        outs = list(dims[:2]) + list(y_dims[2:])
        scales = [1.0, 1.0] + [o / i for o, i in zip(outs[2:], dims[2:])]
    moved = [a for a in range(r) if scales[a] != 1.0 or (dims[a] is not None and outs[a] != dims[a])]
    if any(a < r - 2 for a in moved):
        c.fail("only the last two axes may be resized")
    g = c.g()
    np_dt = t.np_dtype(x)
    nearest_mode = c.attr("nearest_mode", "round_prefer_floor")
    if r - 1 in moved:  # G @ A_w
        a_w = resize_matrix(mode, coord, nearest_mode, outs[r - 1], dims[r - 1], scales[r - 1])
        g = t.op("MatMul", g, t.const(a_w.astype(np_dt)))
    if r - 2 in moved:  # A_h^T @ G
        a_h = resize_matrix(mode, coord, nearest_mode, outs[r - 2], dims[r - 2], scales[r - 2])
        g = t.op("MatMul", t.const(a_h.T.astype(np_dt).copy()), g)
    return [g, None, None, None]
