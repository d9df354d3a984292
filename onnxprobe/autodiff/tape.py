"""The emitter ("tape") that backward rules write to, and static facts about forward tensors.

`Tape` hands out unique names, records the nodes and initializers that rules emit, and offers
the small building blocks every rule needs (shapes at run time, typed scalars, unbroadcasting).
Static shapes are only *hints*: rules use Shape ops at run time and read static dims only for
element types, ranks, and optional shortcuts.
"""

from __future__ import annotations

import itertools

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}


class TensorInfo:
    """Element types, (partial) shapes and constant values of the forward graph's tensors."""

    def __init__(self, model: onnx.ModelProto):
        try:
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
        except Exception:  # shape inference is a hint only
            inferred = model
        self.elem: dict[str, int] = {}
        self.dims: dict[str, list[int | None]] = {}
        g = inferred.graph
        for vi in itertools.chain(g.input, g.value_info, g.output):
            tt = vi.type.tensor_type
            if not vi.type.HasField("tensor_type"):
                continue
            if tt.elem_type:
                self.elem[vi.name] = tt.elem_type
            if tt.HasField("shape"):
                self.dims[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        self.consts: dict[str, np.ndarray] = {}
        self._lazy: dict[str, onnx.TensorProto] = {}  # weights are converted only when a rule asks
        for init in model.graph.initializer:
            self._lazy[init.name] = init
            self.elem[init.name] = init.data_type
            self.dims[init.name] = list(init.dims)
        for node in model.graph.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                for a in node.attribute:
                    if a.name == "value":
                        arr = numpy_helper.to_array(a.t)
                    elif a.name in ("value_float", "value_int"):
                        arr = np.array(helper.get_attribute_value(a))
                    elif a.name in ("value_floats", "value_ints"):
                        arr = np.array(helper.get_attribute_value(a))
                    else:
                        continue
                    self.consts[node.output[0]] = arr
                    self.dims[node.output[0]] = list(arr.shape)
                    self.elem[node.output[0]] = helper.np_dtype_to_tensor_dtype(arr.dtype)

    def rank(self, name: str) -> int | None:
        d = self.dims.get(name)
        return None if d is None else len(d)

    def shape(self, name: str) -> list[int | None] | None:
        return self.dims.get(name)

    def const(self, name: str) -> np.ndarray | None:
        if name not in self.consts and name in self._lazy:
            self.consts[name] = numpy_helper.to_array(self._lazy[name])
        return self.consts.get(name)


class Tape:
    """Collects emitted nodes and initializers, with unique names under one prefix."""

    def __init__(self, info: TensorInfo, taken: set[str], opset: int, prefix: str = "onnxprobe.bw/"):
        self.info = info
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._taken = set(taken)
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

    def op(self, op_type: str, *inputs: str | None, outputs: int = 1, **attrs) -> str | list[str]:
        """Emit one default-domain node; returns its output name (a list when outputs > 1)."""
        outs = [self.fresh(op_type.lower()) for _ in range(outputs)]
        ins = ["" if i is None else i for i in inputs]
        while ins and ins[-1] == "":
            ins.pop()
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(helper.make_node(op_type, ins, outs, name=outs[0], **attrs))
        return outs[0] if outputs == 1 else outs

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
