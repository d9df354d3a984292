"""Weights kept outside the protobuf: a model's external data, never read into a proto.

A model whose file keeps its weights as external data (PyTorch's default exporter writes
`m.onnx.data`) is loaded without reading them (`graph.loading.map_external_data`): every external
initializer of `INLINE_LIMIT` bytes or more stays an external-data reference, its location made
relative to the filesystem's root (`anchor`), so that the reference means the same file in every
graph derived from the proto, wherever that graph goes. Those graphs (the batch rewrite, exposed
tensors, gradient graphs) serialize without their weights; a `Session` of one lets ONNX Runtime read
them from the file as it does for a file it opens itself (`session_options`), and the values a rule
needs (a Conv's kernel for its adjoint) are a read-only memory map of the file (`array`). So no
weight is copied through protobuf, and a model whose weights exceed protobuf's 2 GB limit loads
and runs. Small external tensors (shape constants) are read into the proto at load.

    weights.anchored(tensor, file)       # the loader: a reference to `file` (an absolute path)
    weights.array(tensor)                # its values (None for a tensor stored in the proto)
    weights.session_options(model, opts) # what a session of a graph with references needs
    weights.with_values(model)           # a copy with the values inline (a file, a tool; < 2 GB)
"""

from __future__ import annotations

import os
import threading

import numpy as np
import onnx
from onnx import helper

INLINE_LIMIT = 1024  # bytes: smaller external tensors (shape constants, scalars) are read into the proto
ANCHOR = os.path.abspath(os.sep)  # the root the locations are relative to ("/")
FOLDER_KEY = "session.model_external_initializers_file_folder_path"  # ONNX Runtime's, for a model given as bytes
_MAPS: dict[tuple, tuple[tuple, np.ndarray]] = {}  # (file, offset, dtype, shape) -> (file version, map)
_LOCK = threading.Lock()


# element types stored packed, several to a byte (bits per element): their numpy dtype takes a byte each
PACKED_BITS = {getattr(onnx.TensorProto, name): bits for name, bits in
               (("INT4", 4), ("UINT4", 4), ("FLOAT4E2M1", 4), ("INT2", 2), ("UINT2", 2)) if hasattr(onnx.TensorProto, name)}


def dtype_of(tensor: onnx.TensorProto) -> np.dtype:
    return np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type))


def nbytes(tensor: onnx.TensorProto) -> int:
    """The bytes `tensor`'s values take in raw data or a file (packed types: rounded up to a byte)."""
    count = int(np.prod(tensor.dims, dtype=np.int64))
    bits = PACKED_BITS.get(tensor.data_type)
    return (count * bits + 7) // 8 if bits else count * dtype_of(tensor).itemsize


def reference(tensor: onnx.TensorProto) -> dict[str, str] | None:
    """The external-data entries of `tensor` (location, offset, length ...); None for a tensor
    stored in the proto."""
    if tensor.data_location != onnx.TensorProto.EXTERNAL:
        return None
    return {e.key: e.value for e in tensor.external_data}


def anchored(tensor: onnx.TensorProto, file: str) -> None:
    """Point `tensor`'s external data at `file` (absolute), relative to ANCHOR (in place)."""
    for entry in tensor.external_data:
        if entry.key == "location":
            entry.value = os.path.relpath(file, ANCHOR)


def array(tensor: onnx.TensorProto) -> np.ndarray | None:
    """The values of an external initializer, a read-only memory map of its file (made once per
    tensor and file version, and kept: it holds no memory of its own); None for a tensor stored in
    the proto. A file written again since (a model exported anew over the same path) is mapped anew:
    the values are the file's now, as ONNX Runtime reads them."""
    info = reference(tensor)
    if info is None:
        return None
    file = os.path.join(ANCHOR, info.get("location", ""))
    dtype, shape = dtype_of(tensor), tuple(int(d) for d in tensor.dims)
    key = (file, int(info.get("offset", 0) or 0), dtype.str, shape)
    try:
        stat = os.stat(file)
        version = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    except OSError:  # gone since: a map made before still reads the file it mapped
        version = None
    with _LOCK:
        held = _MAPS.get(key)
    if held is not None and (held[0] == version or version is None):
        return held[1]
    if int(np.prod(shape, dtype=np.int64)) == 0:
        value = np.zeros(shape, dtype)
    elif tensor.data_type in PACKED_BITS:  # unpacked: a copy (such tensors are small: 4 bits or less a value)
        from onnx import numpy_helper

        raw = np.memmap(file, dtype=np.uint8, mode="r", offset=key[1], shape=(nbytes(tensor),))
        value = numpy_helper.to_array(onnx.TensorProto(data_type=tensor.data_type, dims=tensor.dims, raw_data=raw.tobytes()))
        value.setflags(write=False)
    else:
        value = np.memmap(file, dtype=dtype, mode="r", offset=key[1], shape=shape)
    with _LOCK:
        _MAPS[key] = (version, value)
    return value


def all_graphs(graph: onnx.GraphProto):
    """`graph` and every subgraph of its nodes (If, Loop, Scan bodies), depth first."""
    yield graph
    for node in graph.node:
        for a in node.attribute:
            for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else
                        a.graphs if a.type == onnx.AttributeProto.GRAPHS else ()):
                yield from all_graphs(sub)


def external(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    """The initializers of `model` (subgraphs included) whose values are in a file."""
    return [t for g in all_graphs(model.graph) for t in g.initializer if t.data_location == onnx.TensorProto.EXTERNAL]


def session_options(model: onnx.ModelProto, options) -> None:
    """Let a session of `model` (given to ONNX Runtime as bytes) read its external weights: their
    locations are relative to ANCHOR."""
    if external(model):
        options.add_session_config_entry(FOLDER_KEY, ANCHOR)


def with_values(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` with its external weights read back inline (for a file or a tool that
    needs them there; under protobuf's 2 GB limit only)."""
    from onnx import numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    for tensor in external(out):
        tensor.CopyFrom(numpy_helper.from_array(np.array(array(tensor)), tensor.name))
    return out
