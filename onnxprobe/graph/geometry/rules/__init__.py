"""Geometry rules, one small function per op or kind of op, grouped by family. Importing this fills REGISTRY."""

from . import (  # noqa: F401
    conv_pool,
    elementwise,
    matmul,
    normalization,
    reduce,
    reshape,
    resize,
    shape,
)
