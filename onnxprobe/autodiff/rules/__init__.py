"""Backward rules, one small function per op, grouped by family. Importing this fills REGISTRY."""

from . import (  # noqa: F401
    activations,
    conv_pool,
    elementwise,
    matmul,
    nondiff,
    normalization,
    reduce,
    resize,
    shape,
)
