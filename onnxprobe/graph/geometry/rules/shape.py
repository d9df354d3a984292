"""Ops that move, crop, pad, join or relabel axes.

* Pad (constant mode): ``offset -= pad_begin*stride`` on spatial axes (negative pads crop). reflect /
  edge / wrap: padded units read mirrored pixels outside their box -> None unless ``approximate``.
* Concat along a non-spatial axis: the union of the inputs' RFs. Along a spatial axis: None, except
  one image-dependent input with constants around it (padding by concatenation: offset shifts).
  Split along a spatial axis: each part is a Slice.
* Slice: on a spatial axis ``offset += start*stride``, ``stride *= step`` (step > 0 only; negative
  steps flip the axis -> the axis is lost). Gather with constant indices on a non-spatial axis (e.g.
  inception_v3's transform_input picking colour channels) keeps geometry; on a spatial axis -> lost.
* Transpose permutes labels (NHWC <-> NCHW). Squeeze/Unsqueeze drop/insert axes (squeezing a spatial
  axis loses the RF). Expand/Tile keep axes whose size is kept. Reshape and Flatten: reshape.py.
* Shape and Size depend on the image's shape only: constants as far as geometry goes (the driver
  reads Constant nodes itself).
"""

from __future__ import annotations

import numpy as np

from ..field import GiveUp, is_spatial, union
from ..registry import attr, norm_axis, register


@register("Pad")
def _pad(ctx, node):
    g = ctx.data(node)
    rank = g.rank
    pads = ctx.ints(node, "pads", 1)
    if pads is None:
        raise GiveUp
    axes = ctx.ints(node, "axes", 3) if ctx.opset >= 18 else None
    axes = list(range(rank)) if axes is None else [norm_axis(a, rank) for a in axes]
    if len(pads) != 2 * len(axes):
        raise GiveUp
    mode = attr(node, "mode", "constant")
    rf = g.rf
    for i, axis in enumerate(axes):
        begin, end = pads[i], pads[i + len(axes)]
        lab = g.labels[axis]
        if not is_spatial(lab) or (begin == 0 and end == 0) or rf is None:
            continue
        if mode != "constant" and not ctx.approximate:
            rf = None
            continue
        rf = rf._shift(lab, -begin)
    return ctx.mk(g.labels, rf)


@register("Concat")
def _concat(ctx, node):
    names = [n for n in node.input if n]
    deps = [n for n in names if ctx.dep(n)]
    rank = ctx.geos[deps[0]].rank
    axis = norm_axis(attr(node, "axis"), rank)
    geos = [ctx.geos[n] for n in deps]
    if any(g.rank != rank for g in geos):
        raise GiveUp
    labels = [geos[0].labels[a] if all(g.labels[a] == geos[0].labels[a] for g in geos) else None
              for a in range(rank)]
    cat_label = labels[axis]
    if any(is_spatial(g.labels[axis]) for g in geos):
        if len(deps) == 1 and geos[0].rf is not None:
            before = 0
            for n in names:
                if n == deps[0]:
                    break
                d = ctx.dim(n, axis)
                if d is None:
                    d = ctx.const_shape(n)[axis] if ctx.const(n) is not None else None
                if d is None:
                    return ctx.mk(labels, None)
                before += d
            return ctx.mk(labels, geos[0].rf._shift(cat_label, -before))
        labels[axis] = None
        return ctx.mk(labels, None)
    for a in range(rank):
        if any(is_spatial(g.labels[a]) for g in geos) and labels[a] is None:
            return ctx.mk(labels, None)
    return ctx.mk(labels, union([g.rf for g in geos]))


@register("Split")
def _split(ctx, node):
    x = node.input[0]
    g = ctx.data(node)
    axis = norm_axis(attr(node, "axis", 0), g.rank)
    lab = g.labels[axis]
    if not is_spatial(lab) or g.rf is None:
        return [g] * len(node.output)
    split = ctx.ints(node, "split", 1)
    if split is None:
        size = ctx.dim(x, axis)
        count = len(node.output)
        if size is None:
            return [ctx.mk(g.labels, None)] * count
        chunk = -(-size // count)
        split = [min(chunk, max(0, size - chunk * i)) for i in range(count)]
    starts = np.concatenate([[0], np.cumsum(split)[:-1]])
    return [ctx.mk(g.labels, g.rf._shift(lab, float(s))) for s in starts]


@register("Slice")
def _slice(ctx, node):
    x = node.input[0]
    g = ctx.data(node)
    rank = g.rank
    # where a slice starts and its step place its outputs; its ends only bound how many there are
    # (still read: ends that are no constant give up, as before)
    if ctx.opset < 10:
        starts, axes, steps = attr(node, "starts"), attr(node, "axes"), None
    else:
        starts, _ = ctx.ints(node, "", 1), ctx.ints(node, "", 2)
        axes, steps = ctx.ints(node, "", 3), ctx.ints(node, "", 4)
    if starts is None:
        raise GiveUp
    axes = list(range(len(starts))) if axes is None else [norm_axis(a, rank) for a in axes]
    steps = [1] * len(starts) if steps is None else steps
    labels, rf = list(g.labels), g.rf
    for axis, start, step in zip(axes, starts, steps):
        lab = labels[axis]
        if not is_spatial(lab):
            continue
        if step <= 0:
            labels[axis] = None  # reversed: the axis no longer maps forwards onto the image
            continue
        size = ctx.dim(x, axis)
        if start < 0:
            if size is None:
                rf = None
                continue
            start = max(start + size, 0)
        elif size is not None:
            start = min(start, size)
        if rf is not None:
            rf = rf._shift(lab, float(start), float(step))
    return ctx.mk(labels, rf)


@register("Gather")
def _gather(ctx, node):
    g = ctx.data(node)
    axis = norm_axis(attr(node, "axis", 0), g.rank)
    indices = ctx.shape(node.input[1])
    if indices is None:
        value = ctx.const(node.input[1])
        if value is None:
            raise GiveUp
        indices = value.shape
    lab = g.labels[axis]
    kept = [lab] if len(indices) == 1 and not is_spatial(lab) else [None] * len(indices)
    return ctx.mk(list(g.labels[:axis]) + kept + list(g.labels[axis + 1:]), g.rf)


@register("Transpose")
def _transpose(ctx, node):
    g = ctx.geos[node.input[0]]
    perm = attr(node, "perm", list(range(g.rank))[::-1])
    if sorted(perm) != list(range(g.rank)):
        raise GiveUp
    return ctx.mk([g.labels[p] for p in perm], g.rf)


@register("Squeeze")
def _squeeze(ctx, node):
    x = node.input[0]
    g = ctx.data(node)
    axes = ctx.ints(node, "axes", 1)
    if axes is None:
        shape = ctx.shape(x)
        if shape is None or any(d is None for d in shape):
            raise GiveUp
        axes = [a for a, d in enumerate(shape) if d == 1]
    axes = {norm_axis(a, g.rank) for a in axes}
    return ctx.mk([lab for a, lab in enumerate(g.labels) if a not in axes], g.rf)


@register("Unsqueeze")
def _unsqueeze(ctx, node):
    g = ctx.data(node)
    axes = ctx.ints(node, "axes", 1)
    if axes is None:
        raise GiveUp
    rank = g.rank + len(axes)
    axes = {norm_axis(a, rank) for a in axes}
    it = iter(g.labels)
    return ctx.mk([None if a in axes else next(it) for a in range(rank)], g.rf)


@register("Expand", "Tile")
def _expand(ctx, node):
    x, y = node.input[0], node.output[0]
    g = ctx.data(node)
    in_shape, out_shape = ctx.shape(x), ctx.shape(y)
    if out_shape is None or len(out_shape) < g.rank:
        raise GiveUp
    labels = [None] * (len(out_shape) - g.rank) + list(g.labels)
    in_dims = [None] * (len(out_shape) - g.rank) + list(in_shape or [None] * g.rank)
    for a in range(len(out_shape)):
        if labels[a] is not None and (in_dims[a] is None or in_dims[a] != out_shape[a]):
            labels[a] = None
    return ctx.mk(labels, g.rf)


@register("Shape", "Size")
def _shape_only(ctx, node):
    return None  # depends on the shape only: a constant as far as geometry goes
