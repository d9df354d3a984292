"""A model's weights, held once outside its protobuf.

A model whose file keeps its weights as external data (PyTorch's default exporter writes
`m.onnx.data`) is loaded without reading them: every external initializer of `INLINE_LIMIT` bytes
or more stays, in the proto, an external-data reference, now to this store (location
`onnxprobe:weights/<key>`), and its values are a read-only memory map of the file, made once per
file (`WeightStore.of_file`: one store per file identity, kept for the process; the map costs
address space, not memory). Every graph derived from the proto (the batch rewrite, exposed
tensors, gradient graphs) serializes without those weights, and every `Session` of such a graph
is handed the same `OrtValue`s (`SessionOptions.add_external_initializers`): no session copies
them through protobuf, and a model whose weights exceed protobuf's 2 GB limit loads and runs.
Weights stored inline in a file stay inline (such a file is under 2 GB).

    store = WeightStore.of_file(path)
    store.hold(tensor_proto, array)          # the proto becomes a reference; the array is kept
    weights.array(tensor_proto)              # its values (None when it is not held by a store)
    weights.ort_values(model)                # (names, OrtValues) for a session of a graph
"""

from __future__ import annotations

import itertools
import os
import threading

import numpy as np
import onnx
from onnx import helper

INLINE_LIMIT = 1024  # bytes: smaller initializers (shape constants, scalars) stay in the proto
SCHEME = "onnxprobe:weights/"
_STORES: dict[str, "WeightStore"] = {}  # key -> store, for the process (memory maps: no memory held)
_BY_FILE: dict[tuple, "WeightStore"] = {}
_KEYS = itertools.count()
_LOCK = threading.Lock()


class WeightStore:
    """The large external initializers of one model file, by name."""

    def __init__(self):
        with _LOCK:
            self.key = f"{next(_KEYS)}"
            _STORES[self.key] = self
        self.arrays: dict[str, np.ndarray] = {}
        self._ort: dict[str, object] = {}

    @classmethod
    def of_file(cls, path) -> "WeightStore":
        """The store of a model file, one per file identity (device, inode, size, mtime): loading
        the same file again maps nothing again; a file rewritten since gets a new store."""
        st = os.stat(path)
        identity = (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with _LOCK:
            store = _BY_FILE.get(identity)
        if store is None:
            store = cls()
            with _LOCK:
                store = _BY_FILE.setdefault(identity, store)
        return store

    @property
    def location(self) -> str:
        return SCHEME + self.key

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())

    def hold(self, tensor: onnx.TensorProto, array: np.ndarray) -> None:
        """Keep `array` as the value of `tensor` and turn `tensor` into a reference to it (in place)."""
        self.arrays.setdefault(tensor.name, array)
        for field in ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data",
                      "string_data", "external_data"):
            tensor.ClearField(field)
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", self.location), ("offset", "0"), ("length", str(array.nbytes))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value

    def ort_value(self, name: str):
        """The OrtValue of a weight, made once and shared by every session (ONNX Runtime uses its
        memory in place on the CPU)."""
        value = self._ort.get(name)
        if value is None:
            import onnxruntime as ort

            value = self._ort[name] = ort.OrtValue.ortvalue_from_numpy(self.arrays[name])
        return value


def _location(tensor: onnx.TensorProto) -> str | None:
    if tensor.data_location != onnx.TensorProto.EXTERNAL:
        return None
    for entry in tensor.external_data:
        if entry.key == "location":
            return entry.value
    return None


def store_of(tensor: onnx.TensorProto) -> WeightStore | None:
    location = _location(tensor)
    if location is None or not location.startswith(SCHEME):
        return None
    return _STORES.get(location[len(SCHEME):])


def array(tensor: onnx.TensorProto) -> np.ndarray | None:
    """The values of an initializer held by a store (read-only), None for any other tensor."""
    store = store_of(tensor)
    return None if store is None else store.arrays.get(tensor.name)


def held(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    """The initializers of `model` (subgraphs included) whose values a store holds."""
    out = []

    def walk(graph):
        out.extend(t for t in graph.initializer if store_of(t) is not None)
        for node in graph.node:
            for a in node.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    for g in a.graphs:
                        walk(g)

    walk(model.graph)
    return out


def _used(graph: onnx.GraphProto, into: set[str]) -> set[str]:
    into.update(o.name for o in graph.output)
    for node in graph.node:
        into.update(node.input)
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                _used(a.g, into)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for g in a.graphs:
                    _used(g, into)
    return into


def ort_values(model: onnx.ModelProto) -> tuple[list[str], list]:
    """The names and OrtValues a session of `model` needs for its held initializers (those some
    node reads: ONNX Runtime drops the others before it takes these)."""
    names, values = [], []
    used = _used(model.graph, set())
    for tensor in held(model):
        if tensor.name not in used:
            continue
        names.append(tensor.name)
        values.append(store_of(tensor).ort_value(tensor.name))
    return names, values


def with_values(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` with its held weights written back inline (for a file or a tool that needs
    them there; under protobuf's 2 GB limit only)."""
    from onnx import numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    for tensor in held(out):
        value = numpy_helper.from_array(np.asarray(array(tensor)), tensor.name)
        tensor.CopyFrom(value)
    return out


def dtype_of(tensor: onnx.TensorProto) -> np.dtype:
    return np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type))
