"""Loading, validating and normalising ONNX models: one opset, one IR version, fixed input dims."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
from onnx import helper, version_converter

from onnxprobe.errors import ModelError, ParameterError, UsageError

WORKING_OPSET = 18
MAX_IR_VERSION = 10  # ONNX Runtime 1.31 reads IR <= 13; onnx 1.23 writes 14 unless told otherwise
BATCH_DIM = "N"
# Domains whose ops ONNX Runtime runs without custom kernels (ai.onnx.ml ops never appear in CNNs,
# but harmless preprocessing nodes from converters may use them).
KNOWN_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft"}


def load_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Read a model file (with external data next to it), validate it, and normalise its opset."""
    from onnxprobe.errors import InputError
    from onnxprobe.fsutil import check_input_file

    path = Path(path)
    try:
        check_input_file(path, "model file")  # before opening: a named pipe would block the read
    except InputError as exc:
        raise ModelError(str(exc)) from None
    try:
        model = read_light(path)
    except Exception as exc:  # protobuf raises DecodeError
        raise ModelError(f"not a readable ONNX model: {path} ({_short(exc)})") from None
    if not model.graph.node and not model.graph.input:
        raise ModelError(f"not an ONNX model (empty graph): {path}")
    map_external_data(model, path)
    check_model(model, str(path))
    return normalize_opset(model)


def read_light(path: Path) -> onnx.ModelProto:
    """The model in `path` without reading its large weights into the proto. Weights stored inline
    (raw_data of the graph's initializers) become external-data references to the file itself, at
    the offsets where the file holds them (found by reading protobuf's wire format, which is
    stable): the protobuf parses only the graph, and ONNX Runtime reads the weights from the file
    as for any external data. A file this reader does not follow is read whole (onnx.load)."""
    import mmap

    from onnxprobe.runtime.weights import INLINE_LIMIT

    with open(path, "rb") as f:
        try:
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file
            return onnx.load_model_from_string(b"")
    try:
        try:
            light, moved = _strip_weights(buf, INLINE_LIMIT)
        except (ValueError, IndexError):
            return onnx.load(str(path), load_external_data=False)
        model = onnx.ModelProto.FromString(light)
    finally:
        buf.close()
    if moved:
        # the file read, not a link's name: external data is found in the resolved folder (map_external_data)
        location = Path(path).resolve().name
        by_name = {t.name: t for t in model.graph.initializer}
        for name, offset, length in moved:
            tensor = by_name[name]
            tensor.data_location = onnx.TensorProto.EXTERNAL
            for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
    return model


def _varint(buf, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _strip_weights(buf, limit: int) -> tuple[bytes, list[tuple[str, int, int]]]:
    """ModelProto bytes without the raw_data of the graph's initializers of `limit` bytes or more,
    and (name, offset, length) of each left out. ModelProto.graph = 7, GraphProto.initializer = 5,
    TensorProto.name = 8, raw_data = 9, data_location = 14 (onnx.proto, stable)."""
    moved: list[tuple[str, int, int]] = []
    out = bytearray()
    for number, wire, first, start, end in _walk(buf, 0, len(buf)):
        if number == 7 and wire == 2:
            graph = bytearray()
            for g_number, g_wire, g_first, g_start, g_end in _walk(buf, start, end):
                if g_number == 5 and g_wire == 2:
                    graph += _strip_tensor(buf, g_first, g_start, g_end, limit, moved)
                else:
                    graph += buf[g_first:g_end]
            out += buf[first:_varint(buf, first)[1]] + _encode_varint(len(graph)) + graph
        else:
            out += buf[first:end]
    return bytes(out), moved


def _strip_tensor(buf, first: int, start: int, end: int, limit: int, moved: list) -> bytes:
    name, raw, external = None, None, False
    kept = bytearray()
    for number, wire, f_first, f_start, f_end in _walk(buf, start, end):
        if number == 8 and wire == 2:
            name = bytes(buf[f_start:f_end]).decode("utf-8")
        elif number == 14 and wire == 0:
            external = _varint(buf, f_start)[0] == 1
        if number == 9 and wire == 2 and f_end - f_start >= limit:
            raw = (f_start, f_end - f_start)
            continue
        kept += buf[f_first:f_end]
    if raw is None or name is None or external:
        return bytes(buf[first:end])
    moved.append((name, *raw))
    key = buf[first:_varint(buf, first)[1]]
    return bytes(key) + _encode_varint(len(kept)) + bytes(kept)


def _walk(buf, start: int, end: int):
    """The fields of the message in buf[start:end]: (number, wire type, field start, value start, end)."""
    pos = start
    while pos < end:
        first = pos
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, after = pos, _varint(buf, pos)[1]
        elif wire == 1:
            value, after = pos, pos + 8
        elif wire == 2:
            size, value = _varint(buf, pos)
            after = value + size
        elif wire == 5:
            value, after = pos, pos + 4
        else:
            raise ValueError(f"wire type {wire}")
        if after > end:
            raise ValueError("truncated message")
        yield number, wire, first, value, after
        pos = after


def map_external_data(model: onnx.ModelProto, path: Path) -> None:
    """Resolve the external data of `model` (read from `path`) in place: small tensors (shape
    constants) are read into the proto, large ones stay references to their file, anchored at the
    filesystem's root (`runtime.weights`: never read into a proto). A location outside the model's
    folder, a missing file or one too short is a ModelError."""
    from onnxprobe.errors import InputError
    from onnxprobe.fsutil import check_input_file
    from onnxprobe.runtime.weights import INLINE_LIMIT, anchored, external, nbytes, reference

    own = path.resolve()  # read_light's references to the file itself name the file read, not a link to it
    folder = Path(os.path.abspath(path)).parent
    for tensor in external(model):
        info = reference(tensor)
        location = info.get("location", "")
        if not inside_folder(location):
            raise ModelError(f"{path}: initializer '{tensor.name}' names external data outside the model's folder: "
                             f"'{location}'")
        try:
            file = own if location == own.name and not (folder / location).exists() else (folder / location).resolve()
        except (ValueError, OSError, RuntimeError) as exc:  # a NUL byte, a loop of links
            raise ModelError(f"{path}: cannot read the external data of '{tensor.name}' ({location!r}: {_short(exc)})") from None
        try:
            check_input_file(file, "external data")  # a regular file: a folder or a named pipe is never opened
            needed = nbytes(tensor)
            offset = int(info.get("offset", 0) or 0)
            size = os.stat(file).st_size
            length = int(info.get("length", needed) or 0)
        except (InputError, OSError, ValueError, TypeError) as exc:
            raise ModelError(f"{path}: cannot read the external data of '{tensor.name}' ({_short(exc)})") from None
        if length != needed or offset < 0 or offset + length > size:
            raise ModelError(f"{path}: the external data of '{tensor.name}' does not fit its shape "
                             f"({location}: {length} bytes at {offset} of {size}, the tensor needs {needed})")
        if length < INLINE_LIMIT:
            with open(file, "rb") as f:
                f.seek(offset)
                raw = f.read(length)
            tensor.ClearField("external_data")
            tensor.data_location = onnx.TensorProto.DEFAULT
            tensor.raw_data = raw
        else:
            anchored(tensor, str(file))


def inside_folder(location: str) -> bool:
    """Whether an external-data `location` names a file in the model's folder or below, as ONNX and
    ONNX Runtime read it: relative to the folder the model is named in, lexically (no absolute
    path, no '..' out of it). Links inside the folder are followed, as they do: the Hugging Face
    cache's snapshots/<rev>/ holds model.onnx and model.onnx.data as links into blobs/."""
    if not location or os.path.isabs(location):
        return False
    parts = Path(os.path.normpath(location)).parts
    return bool(parts) and parts[0] != ".."


def external_data_locations(path: str | os.PathLike) -> list[str]:
    """The external-data files the model at `path` references (its `.onnx.data` and the like), as
    the model names them: relative to its folder, sorted, each once; only names inside the folder
    (`load_model` refuses a model with any other). Weights stored in the file itself are not listed."""
    from onnxprobe.runtime.weights import external, reference

    path = Path(path)
    own = path.resolve().name
    locations = set()
    for tensor in external(read_light(path)):
        location = reference(tensor).get("location", "")
        if location not in (path.name, own) and inside_folder(location):
            locations.add(location)
    return sorted(locations)


def check_model(model: onnx.ModelProto, origin: str = "model") -> None:
    custom = sorted({(n.domain, n.op_type, n.name) for n in model.graph.node if n.domain not in KNOWN_DOMAINS})
    if custom:
        listed = ", ".join(f"{d}::{op} (node '{name}')" for d, op, name in custom[:5])
        more = f" and {len(custom) - 5} more" if len(custom) > 5 else ""
        raise ModelError(f"{origin} uses ops from custom domains that ONNX Runtime cannot run: {listed}{more}")
    try:
        # full_check would run strict shape inference, which many real exports fail; we infer later.
        # The graph is checked without its large weights (typed inputs instead): the checker copies
        # what it checks, and the weights' sizes were checked when they were read or mapped.
        onnx.checker.check_model(without_weights(model), full_check=False)
    except Exception as exc:
        raise ModelError(f"{origin} is not a valid ONNX model: {_short(exc)}") from None


def without_weights(model: onnx.ModelProto, limit: int = 1024) -> onnx.ModelProto:
    """A copy of `model` whose initializers of more than `limit` elements, or held outside the
    proto, are typed graph inputs instead (the graph, its types and shapes, without the values)."""
    import numpy as np

    graph = model.graph
    light = onnx.GraphProto(name=graph.name, doc_string=graph.doc_string)
    light.node.extend(graph.node)
    light.input.extend(graph.input)
    light.output.extend(graph.output)
    light.value_info.extend(graph.value_info)
    inputs = {v.name for v in graph.input}
    for init in graph.initializer:
        if init.data_location != onnx.TensorProto.EXTERNAL and int(np.prod(init.dims, dtype=np.int64)) <= limit:
            light.initializer.append(init)
        elif init.name not in inputs:
            light.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    out = onnx.ModelProto(ir_version=model.ir_version, graph=light, producer_name=model.producer_name)
    out.opset_import.extend(model.opset_import)
    out.functions.extend(model.functions)
    out.metadata_props.extend(model.metadata_props)
    return out


def default_opset(model: onnx.ModelProto, missing: int | None = None) -> int:
    """The model's default-domain opset (the one reader of it); `missing` when it imports none,
    else a ModelError."""
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    if missing is not None:
        return missing
    raise ModelError("model imports no default-domain opset")


def normalize_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    """Convert models below WORKING_OPSET up to it (newer ones keep their opset) and finalize."""
    default_opset(model)  # a model that imports no default-domain opset is refused here
    return finalize_model(at_working_opset(model))


def at_working_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` itself when its opset is WORKING_OPSET or newer, else a converted copy (the one
    place models are upgraded)."""
    opset = default_opset(model, WORKING_OPSET)
    if opset >= WORKING_OPSET:
        return model
    try:
        return version_converter.convert_version(model, WORKING_OPSET)
    except Exception as exc:
        raise ModelError(f"cannot convert the model from opset {opset} to {WORKING_OPSET}: {_short(exc)}") from None


def finalize_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """Set an IR version ONNX Runtime accepts (call on every model we build or rewrite)."""
    opsets = [(imp.domain, imp.version) for imp in model.opset_import]
    try:
        needed = helper.find_min_ir_version_for(opsets, ignore_unknown=True)
    except Exception:
        needed = 8
    model.ir_version = max(needed, min(model.ir_version or needed, MAX_IR_VERSION))
    return model


def image_input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    """The one real input of the graph (initializers listed as inputs in old exports don't count)."""
    initializers = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs) or "none"
        raise ModelError(f"onnxprobe needs a model with exactly one image input; this one has {len(inputs)}: {names}")
    return inputs[0]


def input_dims(value: onnx.ValueInfoProto) -> list[int | str | None]:
    dims = []
    for d in value.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(d.dim_value)
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return dims


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(p) for p in text.replace("x", ",").split(",") if p.strip())
    except ValueError:
        raise ParameterError(f"{{input_shape}} must be comma-separated integers like 1,3,224,224, got '{text}'",
                             "input_shape") from None
    if not dims or any(d <= 0 for d in dims):
        raise ParameterError(f"{{input_shape}} must be positive integers like 1,3,224,224, got '{text}'", "input_shape")
    return dims


def _fed_as_float32(model: onnx.ModelProto, value: onnx.ValueInfoProto) -> None:
    """Make a float16 or double image input a float32 one, with a Cast at the front of the graph
    to the type the graph was written for: every onnxprobe path feeds and differentiates float32
    images (the Cast's backward rule carries gradients back to them). Before, such a model loaded
    and every run failed inside ONNX Runtime ("Unexpected input data type")."""
    elem = value.type.tensor_type.elem_type
    taken = {v for n in _nodes(model.graph) for v in (*n.input, *n.output, n.name)}
    inner = f"{value.name}_as_{onnx.TensorProto.DataType.Name(elem).lower()}"
    while inner in taken:
        inner += "_"
    for node in _nodes(model.graph):  # subgraphs read outer names too
        for i, name in enumerate(node.input):
            if name == value.name:
                node.input[i] = inner
    model.graph.node.insert(0, helper.make_node("Cast", [value.name], [inner], to=elem, name=inner))
    value.type.tensor_type.elem_type = onnx.TensorProto.FLOAT


def _nodes(graph: onnx.GraphProto):
    """The nodes of a graph and of its subgraphs."""
    from onnxprobe.runtime.weights import all_graphs

    for g in all_graphs(graph):
        yield from g.node


def fix_input_shape(model: onnx.ModelProto, shape: tuple[int, ...] | None,
                    hints: dict | None = None, *, copy: bool = True) -> tuple[onnx.ModelProto, tuple[int, ...]]:
    """Fix every input dim but the batch axis (made symbolic, named BATCH_DIM, whatever the file
    declares); returns the model and the shape used (with batch 1). Dynamic dims come from `shape`,
    else from `hints` (the preprocessing's "input_size", "layout", "channels", e.g. a sidecar's);
    without either they are an error naming them. The shapes the file records for other tensors
    are dropped (`strip_shapes`): they were written for the file's batch. `copy=False` changes
    `model` itself (the loader's own proto: no copy of weights stored inline)."""
    value = image_input(model)
    # -1 (paddle2onnx) is dynamic anywhere, 0 only on the batch axis; a 0 elsewhere is a zero-size
    # dimension, refused with the other impossible shapes (limits.input_shape_problem)
    dims = [None if isinstance(d, int) and (d < 0 or (d == 0 and axis == 0)) else d
            for axis, d in enumerate(input_dims(value))]
    elem = value.type.tensor_type.elem_type
    if elem not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE):
        raise ModelError(
            f"input '{value.name}' has element type {onnx.TensorProto.DataType.Name(elem)}; "
            "onnxprobe needs a float image input"
        )
    if len(dims) < 3:
        raise ModelError(f"input '{value.name}' has rank {len(dims)}; onnxprobe needs an image input (N,C,H,W or N,H,W,C)")

    if shape is not None:
        if len(shape) != len(dims):
            raise UsageError(
                f"input shape {','.join(map(str, shape))} has {len(shape)} dims but input '{value.name}' "
                f"has {len(dims)} ({_dims_text(dims)})"
            )
        for axis, (want, have) in enumerate(zip(shape, dims)):
            if axis > 0 and isinstance(have, int) and have != want:
                raise UsageError(
                    f"input shape {','.join(map(str, shape))} does not fit input '{value.name}' "
                    f"({_dims_text(dims)}): axis {axis} is fixed at {have}"
                )
        fixed = [1] + list(shape[1:])
    else:
        unknown = [axis for axis, d in enumerate(dims) if axis > 0 and not isinstance(d, int)]
        if unknown:
            filled = _from_hints(dims, hints or {})
            if filled is None:
                raise ParameterError(
                    f"input '{value.name}' has dynamic dims ({_dims_text(dims)}); give {{input_shape}}, e.g. "
                    "1,3,224,224 (or input_size in the preprocessing sidecar)", "input_shape")
            dims = filled
        fixed = [1] + [int(d) for d in dims[1:]]
    if copy:
        model = onnx.ModelProto.FromString(model.SerializeToString())
    if elem != onnx.TensorProto.FLOAT:
        _fed_as_float32(model, image_input(model))
    strip_shapes(model)
    new_value = image_input(model)
    for axis, d in enumerate(new_value.type.tensor_type.shape.dim):
        d.Clear()
        if axis == 0:
            d.dim_param = BATCH_DIM
        else:
            d.dim_value = fixed[axis]
    return model, tuple(fixed)


def _from_hints(dims: list, hints: dict) -> list | None:
    """Fill dynamic H/W (and C) of a rank-4 input from the preprocessing's input_size, layout and
    channels; None when they do not pin every dynamic dim down."""
    size = hints.get("input_size")
    if len(dims) != 4 or size is None:
        return None
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        return None
    layout = str(hints.get("layout") or "").upper()
    if layout not in ("NCHW", "NHWC"):
        if dims[1] in (1, 3) or (not isinstance(dims[3], int) and not isinstance(dims[1], int) and hints.get("channels")):
            layout = "NCHW"
        elif dims[3] in (1, 3):
            layout = "NHWC"
        else:
            return None
    c_axis, h_axis, w_axis = (1, 2, 3) if layout == "NCHW" else (3, 1, 2)
    out = list(dims)
    for axis, want in ((h_axis, h), (w_axis, w), (c_axis, hints.get("channels"))):
        if isinstance(out[axis], int):
            if want is not None and int(want) != out[axis]:
                return None
        elif want is None:
            return None
        else:
            out[axis] = int(want)
    return out


def strip_shapes(model: onnx.ModelProto) -> None:
    """Drop the shapes a file records for intermediate tensors and outputs (in place; element types
    of outputs stay): exporters and the opset converter write them for the file's own batch (often
    1, or -1 as a dim value), and shape inference would keep them."""
    del model.graph.value_info[:]
    for value in model.graph.output:
        if value.type.HasField("tensor_type"):
            value.type.tensor_type.ClearField("shape")


def _dims_text(dims) -> str:
    return "x".join("?" if d is None else str(d) for d in dims)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) < 300 else text[:297] + "..."
