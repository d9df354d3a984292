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
  axis loses the RF). Reshape keeps an axis only where it provably maps 1:1 onto an output axis of the
  same size (from the shapes, or symbolically from Shape -> Gather/Concat targets); Flatten merges axes
  (merged groups holding the channels are the unit axis). Expand/Tile keep axes whose size is kept.
* Shape and Size depend on the image's shape only: constants as far as geometry goes (the driver
  reads Constant nodes itself).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..field import GiveUp, is_spatial, union
from ..registry import attr, norm_axis, register


@register("Pad")
def _pad(ctx, node):
    ctx.only_dep(node, [0])
    g = ctx.geos[node.input[0]]
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
    ctx.only_dep(node, [0])
    x = node.input[0]
    g = ctx.geos[x]
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
    ctx.only_dep(node, [0])
    x = node.input[0]
    g = ctx.geos[x]
    rank = g.rank
    if ctx.opset < 10:
        starts, ends, axes = attr(node, "starts"), attr(node, "ends"), attr(node, "axes")
        steps = None
    else:
        starts, ends = ctx.ints(node, "", 1), ctx.ints(node, "", 2)
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
    ctx.only_dep(node, [0])
    g = ctx.geos[node.input[0]]
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
    ctx.only_dep(node, [0])
    x = node.input[0]
    g = ctx.geos[x]
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
    ctx.only_dep(node, [0])
    g = ctx.geos[node.input[0]]
    axes = ctx.ints(node, "axes", 1)
    if axes is None:
        raise GiveUp
    rank = g.rank + len(axes)
    axes = {norm_axis(a, rank) for a in axes}
    it = iter(g.labels)
    return ctx.mk([None if a in axes else next(it) for a in range(rank)], g.rf)


def _merge(labels: Sequence) -> object:
    if len(labels) == 1:
        return labels[0]
    if "C" in labels and "N" not in labels:
        return "C"  # channels merged with other axes: still the unit axis
    return None


@register("Flatten")
def _flatten(ctx, node):
    g = ctx.geos[node.input[0]]
    axis = attr(node, "axis", 1)
    axis = axis + g.rank if axis < 0 else axis
    if not 0 <= axis <= g.rank:
        raise GiveUp
    first = _merge(g.labels[:axis]) if axis > 0 else None
    second = _merge(g.labels[axis:]) if axis < g.rank else None
    return ctx.mk([first, second], g.rf)


@register("Reshape")
def _reshape(ctx, node):
    ctx.only_dep(node, [0])
    x, y = node.input[0], node.output[0]
    g = ctx.geos[x]
    in_dims = [ctx.dim_key(x, a) for a in range(g.rank)]
    out_shape = ctx.shape(y)
    target = ctx.symdims.get(node.input[1])
    if target is None and ctx.const(node.input[1]) is not None:
        target = [int(v) for v in ctx.const(node.input[1]).reshape(-1)]
    if target is not None:
        out_dims = []
        for k, e in enumerate(target):
            if e == 0 and not attr(node, "allowzero", 0):
                out_dims.append(in_dims[k])
            elif isinstance(e, int) and e > 0 and out_shape is not None and out_shape[k] is not None:
                out_dims.append(out_shape[k])
            else:
                out_dims.append(e if e != -1 else None)
        if out_shape is not None and len(out_shape) == len(out_dims):
            out_dims = [d if d is not None or out_shape[k] is None else out_shape[k] for k, d in enumerate(out_dims)]
    elif out_shape is not None:
        out_dims = [d if d is not None else ("out", k) for k, d in enumerate(out_shape)]
    else:
        raise GiveUp
    # symbols become distinct large primes so that products of groups still identify them
    primes = iter([1_000_003, 1_000_033, 1_000_037, 1_000_039, 1_000_081, 1_000_099, 1_000_117, 1_000_121])
    table: dict = {}

    def num(d):
        if isinstance(d, int):
            return d
        if d not in table:
            table[d] = next(primes)
        return table[d]

    try:
        in_dims = [num(d) for d in in_dims]
        out_dims = [None if d is None else num(d) for d in out_dims]
    except StopIteration:
        raise GiveUp from None
    if out_dims.count(None) > 1:
        raise GiveUp
    if None in out_dims:  # the -1 (symbols are primes, so a symbolic quotient stays exact)
        known = int(np.prod([d for d in out_dims if d is not None], dtype=object))
        total = int(np.prod(in_dims, dtype=object))
        if known == 0 or total % known:
            raise GiveUp
        out_dims[out_dims.index(None)] = total // known
    labels = [None] * len(out_dims)
    i = j = 0
    ni, no = len(in_dims), len(out_dims)
    while i < ni or j < no:
        # size-1 axes carry nothing: dropping or inserting them is free
        if i < ni and in_dims[i] == 1 and (j >= no or out_dims[j] != 1):
            i += 1
            continue
        if j < no and out_dims[j] == 1 and (i >= ni or in_dims[i] != 1):
            j += 1
            continue
        if i >= ni or j >= no:
            break
        gi, gj = [i], [j]
        pi, pj = in_dims[i], out_dims[j]
        i, j = i + 1, j + 1
        while pi != pj:
            if pi < pj:
                if i >= ni:
                    return ctx.mk([None] * no, None)
                pi *= in_dims[i]
                gi.append(i)
                i += 1
            else:
                if j >= no:
                    return ctx.mk([None] * no, None)
                pj *= out_dims[j]
                gj.append(j)
                j += 1
        if len(gj) == 1:
            labels[gj[0]] = _merge([g.labels[a] for a in gi])
        # an input axis split over several output axes: roles lost
    return ctx.mk(labels, g.rf)


@register("Expand", "Tile")
def _expand(ctx, node):
    ctx.only_dep(node, [0])
    x, y = node.input[0], node.output[0]
    g = ctx.geos[x]
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
