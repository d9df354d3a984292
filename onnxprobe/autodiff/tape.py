"""The emitter ("tape") that backward rules and the optimisation step graph write to.

`Tape` hands out unique names, records the nodes and initializers emitted, and offers the small
building blocks every rule needs (shapes at run time, typed scalars, unbroadcasting). Static facts
about tensors come from the model's `GraphFacts` (onnxprobe.graph.facts); the tape writes the facts
of what it emits on a scratch view of them, never into the shared facts. Static shapes are only
*hints*: rules use Shape ops at run time and read static dims only for element types, ranks, and
optional shortcuts.
"""

from __future__ import annotations

import itertools

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..graph.facts import GraphFacts

class Tape:
    """Collects emitted nodes and initializers, with unique names under one prefix. `info`: the facts
    of the graph it extends (the tape works on a scratch view); names it hands out avoid every name
    the graph defines and `taken`."""

    def __init__(self, facts: GraphFacts, taken: set[str] = frozenset(), prefix: str = "onnxprobe.bw/"):
        self.info = facts.scratch()
        self.opset = facts.opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._taken = facts.names() | set(taken)
        self._prefix = prefix
        self._count = itertools.count()
        self._const_cache: dict[tuple, str] = {}

    # ---- names and raw emission -------------------------------------------------------------
    def fresh(self, hint: str = "t") -> str:
        while True:
            name = f"{self._prefix}{hint}_{next(self._count)}"
            if name not in self._taken:
                self._taken.add(name)
                return name

    def op(self, op_type: str, *inputs: str | None, outputs: int = 1, hint: str | None = None,
           **attrs) -> str | list[str]:
        """Emit one default-domain node with fresh output names (from `hint`, else the op);
        returns its output name (a list when outputs > 1)."""
        outs = [self.fresh(hint or op_type.lower()) for _ in range(outputs)]
        self.emit(op_type, inputs, outs, name=outs[0], **attrs)
        return outs[0] if outputs == 1 else outs

    def emit(self, op_type: str, inputs, outputs: list[str], name: str | None = None, **attrs) -> None:
        """Emit one default-domain node whose outputs have the names given (graph outputs: a
        fresh node name then); None inputs are omitted ones; attributes set to None are left out."""
        ins = ["" if i is None else i for i in inputs]
        while ins and ins[-1] == "":
            ins.pop()
        self._taken.update(outputs)
        attrs = {k: v for k, v in attrs.items() if v is not None}
        name = name or self.fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, ins, list(outputs), name=name, **attrs))

    def take(self) -> list[onnx.NodeProto]:
        """The nodes emitted so far, handed over: the tape goes on with none (its names stay taken),
        for a caller that places these before other nodes (the step graph's input prefix)."""
        nodes, self.nodes = self.nodes, []
        return nodes

    def const(self, value, dtype=None, hint: str = "c") -> str:
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key in self._const_cache:
            return self._const_cache[key]
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(arr, name))
        self._const_cache[key] = name
        self.info.elem[name] = helper.np_dtype_to_tensor_dtype(arr.dtype)
        self.info.dims[name] = list(arr.shape)
        return name

    def i64(self, values) -> str:
        return self.const(np.asarray(values, dtype=np.int64), hint="i")

    # ---- types ------------------------------------------------------------------------------
    def elem(self, like: str | None) -> int:
        return self.info.elem.get(like, TensorProto.FLOAT) if like else TensorProto.FLOAT

    def np_dtype(self, like: str | None):
        return helper.tensor_dtype_to_np_dtype(self.elem(like))

    def scalar(self, v: float, like: str | None = None) -> str:
        """A 0-d constant with the element type of `like` (float32 when unknown)."""
        return self.const(np.asarray(v, dtype=self.np_dtype(like)), hint="s")

    def cast_like(self, x: str, like: str) -> str:
        return self.op("Cast", x, to=self.elem(like))

    def mask(self, cond: str, like: str) -> str:
        """Boolean -> 0/1 in the element type of `like`."""
        return self.cast_like(cond, like)

    # ---- shapes at run time -----------------------------------------------------------------
    def shape(self, x: str, start: int | None = None, end: int | None = None) -> str:
        return self.op("Shape", x, start=start, end=end)

    def zeros_like(self, x: str) -> str:
        zero = helper.make_tensor("value", self.elem(x), [1], [0])
        return self.op("ConstantOfShape", self.shape(x), value=zero)

    def flat(self, x: str) -> str:
        return self.op("Reshape", x, self.i64([-1]))

    def reshape_like(self, g: str, x: str) -> str:
        return self.op("Reshape", g, self.shape(x))

    # ---- gradient plumbing --------------------------------------------------------------------
    def unbroadcast(self, g: str, x: str, g_rank: int | None = None, x_dims=None) -> str:
        """Sum `g` (shaped like a broadcast result) down to the shape of `x`.

        Static dims of `x` decide the reduced axes when they are known; otherwise the axes are
        found at run time (ReduceSum with noop_with_empty_axes=1 over the axes where x has 1).
        """
        x_dims = self.info.shape(x) if x_dims is None else x_dims
        g_rank = self.info.rank(g) if g_rank is None else g_rank
        g_dims = self.info.shape(g) if g_rank is None or self.info.rank(g) == g_rank else None
        g_dims = g_dims or [None] * (g_rank or 0)
        static = x_dims is not None and g_rank is not None and all(
            d is not None or (i == 0 and len(x_dims) == g_rank and g_dims[0] is None)  # the batch axis
            for i, d in enumerate(x_dims))
        if static:
            lead = g_rank - len(x_dims)
            axes = list(range(lead))
            for i, d in enumerate(x_dims):
                if d == 1 and g_dims[lead + i] != 1:
                    axes.append(lead + i)
            if not axes:
                return g
            r = self.op("ReduceSum", g, self.i64(axes), keepdims=1)
            return self.reshape_like(r, x)
        # dynamic: left-pad Shape(x) with ones to Shape(g)'s length, reduce where it is 1
        sg, sx = self.shape(g), self.shape(x)
        pad = self.op("Sub", self.op("Size", sg), self.op("Size", sx))
        ones = self.op("Expand", self.i64([1]), self.op("Reshape", pad, self.i64([1])))
        sxp = self.op("Concat", ones, sx, axis=0)
        is_one = self.op("Equal", sxp, self.i64(1))
        differs = self.op("Not", self.op("Equal", sxp, sg))
        axes = self.op("Reshape", self.op("NonZero", self.op("And", is_one, differs)), self.i64([-1]))
        r = self.op("ReduceSum", g, axes, keepdims=1, noop_with_empty_axes=1)
        return self.op("Reshape", r, sx)

    def set_shape(self, name: str, dims, elem: int | None = None) -> str:
        """Record static facts about an emitted tensor (so later helpers can use them)."""
        if dims is not None:
            self.info.dims[name] = list(dims)
        if elem is not None:
            self.info.elem[name] = elem
        return name
