"""Reshape and Flatten: which output axes are input axes.

Reshape keeps an axis only where it provably maps 1:1 onto an output axis of the same size (from the
shapes, or symbolically from Shape -> Gather/Concat targets, batch axes sharing one symbol); Flatten
merges axes (merged groups holding the channels are the unit axis). The RF itself is unchanged: it
survives while every image axis is still there.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..field import GiveUp
from ..registry import attr, register


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
    x, y = node.input[0], node.output[0]
    g = ctx.data(node)
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
