"""Gemm and MatMul (both operands may be dynamic, e.g. attention scores)."""

from __future__ import annotations

from ..registry import Ctx, register


@register("Gemm", diff=(0, 1, 2))
def _gemm(c: Ctx):
    """Y = alpha * op(A) @ op(B) + beta * C."""
    t, a, b, g = c.t, c.x(0), c.x(1), c.g()
    alpha, beta = c.attr("alpha", 1.0), c.attr("beta", 1.0)
    ta, tb = c.attr("transA", 0), c.attr("transB", 0)
    da = db = dc = None
    if c.needs(0):
        if not ta:  # dA = alpha * G @ op(B)^T
            da = t.op("Gemm", g, b, alpha=alpha, transB=1 - tb)
        else:  # dA = alpha * op(B) @ G^T
            da = t.op("Gemm", b, g, alpha=alpha, transA=tb, transB=1)
    if c.needs(1):
        if not tb:  # dB = alpha * op(A)^T @ G
            db = t.op("Gemm", a, g, alpha=alpha, transA=1 - ta)
        else:  # dB = alpha * G^T @ op(A)
            db = t.op("Gemm", g, a, alpha=alpha, transA=1, transB=ta)
    if c.needs(2) and c.x(2):
        gb = g if beta == 1.0 else t.op("Mul", g, t.scalar(beta, c.x(2)))
        dc = t.unbroadcast(gb, c.x(2), g_rank=2)
    return [da, db, dc]


def _swap_last(t, v: str, rank: int | None) -> str:
    if rank is None:
        raise ValueError
    perm = list(range(rank))
    perm[-1], perm[-2] = perm[-2], perm[-1]
    return t.op("Transpose", v, perm=perm)


@register("MatMul", diff=(0, 1))
def _matmul(c: Ctx):
    """dA = G @ B^T, dB = A^T @ G (numpy matmul semantics), then sum over broadcast batch axes.
    1-D operands are promoted (A: [K] -> [1, K], B: [K] -> [K, 1]) and the result reshaped back."""
    t, a, b, g = c.t, c.x(0), c.x(1), c.g()
    ra, rb = c.rank(a), c.rank(b)
    if ra is None or rb is None:
        c.fail("the operand ranks are unknown")
    a2, b2, g2 = a, b, g
    da_dims, db_dims = c.dims(a), c.dims(b)
    if ra == 1:
        a2 = t.op("Unsqueeze", a, t.i64([0]))
        g2 = t.op("Unsqueeze", g2, t.i64([-2]))
        da_dims = [1] + list(da_dims)
    if rb == 1:
        b2 = t.op("Unsqueeze", b, t.i64([1]))
        g2 = t.op("Unsqueeze", g2, t.i64([-1]))
        db_dims = list(db_dims) + [1]
    ra2, rb2 = max(ra, 2), max(rb, 2)
    rg = max(ra2, rb2)
    out = [None, None]
    if c.needs(0):
        da = t.op("MatMul", g2, _swap_last(t, b2, rb2))
        t.set_shape(da, [None] * rg)
        da = t.unbroadcast(da, a2, g_rank=rg, x_dims=da_dims)
        out[0] = t.reshape_like(da, a) if ra == 1 else da
    if c.needs(1):
        db = t.op("MatMul", _swap_last(t, a2, ra2), g2)
        t.set_shape(db, [None] * rg)
        db = t.unbroadcast(db, b2, g_rank=rg, x_dims=db_dims)
        out[1] = t.reshape_like(db, b) if rb == 1 else db
    return out
