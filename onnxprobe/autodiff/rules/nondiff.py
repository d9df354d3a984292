"""Ops whose outputs carry no gradient: shape arithmetic, comparisons, logic, rounding, indices."""

from ..registry import nondiff

nondiff(
    "Shape", "Size", "Constant", "ConstantOfShape", "Range",
    "Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "Not", "And", "Or", "Xor",
    "Mod", "NonZero", "Floor", "Ceil", "Round", "Sign", "ArgMax", "ArgMin", "IsNaN", "IsInf",
)
