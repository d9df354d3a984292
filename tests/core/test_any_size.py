"""Any size: a model whose weights exceed protobuf's 2 GB limit (external data, as PyTorch's
default exporter writes big models) loads, lists its layers, and runs `activations` and
`backprop`, with the results of a small twin that holds only the weights the graph reads.

The big file is built cheaply: two huge weight tables whose first rows the layers read (Gather with
constant rows, then MatMul), written to disk in chunks, the rest one constant value: no 2 GB array
is ever held by the test or by onnxprobe (the proto stays under 1 MB). ONNX Runtime reads the
external data of each session it makes into memory (a bare InferenceSession of the file peaks at
2.4 GB), so this test peaks at about 2.5 GB: one such session at a time."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprobe.cli import main

FEATURES = 3 * 6 * 6  # the flattened conv output
HIDDEN = 10
TABLE_ROWS = {"table1": 30_000_000, "table2": 50_000_000}  # 1.2 GB and 1.0 GB: together over 2 GiB
CHUNK = 1 << 26  # bytes per write


def _graph(tables: dict[str, np.ndarray], rng) -> tuple[list, list]:
    w = numpy_helper.from_array((rng.standard_normal((3, 3, 3, 3)) * 0.4).astype(np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["conv"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
        helper.make_node("Flatten", ["relu"], ["flat"], name="flat"),
        helper.make_node("Gather", ["table1", "rows1"], ["m1"], axis=0, name="rows_of_table1"),
        helper.make_node("MatMul", ["flat", "m1"], ["hidden"], name="hidden"),
        helper.make_node("Relu", ["hidden"], ["hidden_relu"], name="hidden_relu"),
        helper.make_node("Gather", ["table2", "rows2"], ["m2"], axis=0, name="rows_of_table2"),
        helper.make_node("MatMul", ["hidden_relu", "m2"], ["logits"], name="logits"),
    ]
    inits = [w, numpy_helper.from_array(np.arange(FEATURES, dtype=np.int64), "rows1"),
             numpy_helper.from_array(np.arange(HIDDEN, dtype=np.int64), "rows2")]
    return nodes, inits


def _model(nodes, inits) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 6, 6])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    return model


@pytest.fixture(scope="module")
def big_and_twin(tmp_path_factory):
    """(the model over 2 GB, its small twin): the twin's tables are the rows the layers read."""
    folder = tmp_path_factory.mktemp("any-size")
    rng = np.random.default_rng(0)
    heads = {"table1": (rng.standard_normal((FEATURES, HIDDEN)) * 0.2).astype(np.float32),
             "table2": (rng.standard_normal((HIDDEN, 5)) * 0.3).astype(np.float32)}
    widths = {"table1": HIDDEN, "table2": 5}
    nodes, inits = _graph(heads, rng)
    offset = 0
    big_inits = list(inits)
    with open(folder / "big.onnx.data", "wb") as data:
        for name, head in heads.items():
            rows = TABLE_ROWS[name]
            tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=[rows, widths[name]])
            tensor.data_location = TensorProto.EXTERNAL
            data.write(b"\0" * (-offset % 65536))  # each table on a page boundary
            offset += -offset % 65536
            start = offset
            data.write(head.tobytes())
            rest = rows * widths[name] * 4 - head.nbytes
            filler = np.full(CHUNK // 4, 0.5, np.float32).tobytes()
            while rest > 0:
                data.write(filler[:min(rest, CHUNK)])
                rest -= min(rest, CHUNK)
            offset = data.tell()
            for key, value in (("location", "big.onnx.data"), ("offset", str(start)), ("length", str(offset - start))):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
            big_inits.append(tensor)
        total = data.tell()
    assert total > (1 << 31), total
    onnx.save(_model(nodes, big_inits), str(folder / "big.onnx"))
    twin_inits = list(inits) + [numpy_helper.from_array(head, name) for name, head in heads.items()]
    onnx.save(_model(nodes, twin_inits), str(folder / "twin.onnx"))
    return folder / "big.onnx", folder / "twin.onnx"


@pytest.mark.slow
def test_a_model_over_2gb_loads_lists_layers_and_runs(big_and_twin, tmp_path, capsys):
    from onnxprobe.model import ProbeModel

    big, twin = big_and_twin
    model = ProbeModel.load(big, device="cpu")
    assert model.proto.ByteSize() < (1 << 20), "the weights were read into the proto"
    small = ProbeModel.load(twin, device="cpu")
    assert [layer.name for layer in model.layers] == [layer.name for layer in small.layers]
    assert "hidden_relu" in {layer.name for layer in model.layers}

    assert main(["layers", str(big)]) == 0
    assert "hidden_relu" in capsys.readouterr().out

    import cv2

    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.random.default_rng(1).integers(0, 256, (6, 6, 3), dtype=np.uint8))
    for path, out in ((big, tmp_path / "big.npz"), (twin, tmp_path / "twin.npz")):
        assert main(["activations", str(path), str(image), "--out", str(out)]) == 0, capsys.readouterr().err
    saved, wanted = np.load(tmp_path / "big.npz"), np.load(tmp_path / "twin.npz")
    assert sorted(saved.files) == sorted(wanted.files) and "hidden_relu" in saved.files
    for name in saved.files:  # the same graph and weights in both: the same arithmetic
        np.testing.assert_array_equal(saved[name], wanted[name])
    x = np.random.default_rng(2).standard_normal((2, 3, 6, 6)).astype(np.float32)
    acts = model.activations(x, ["hidden_relu", "logits"])
    want = small.activations(x, ["hidden_relu", "logits"])
    for name in ("hidden_relu", "logits"):  # the same graph and weights in both: the same arithmetic
        np.testing.assert_array_equal(acts[name], want[name])

    unit = int(np.argmax(saved["hidden_relu"]))  # a unit that fires on the image
    assert saved["hidden_relu"].reshape(-1)[unit] > 0
    for path, out in ((big, tmp_path / "big.png"), (twin, tmp_path / "twin.png")):
        assert main(["backprop", str(path), str(image), "--layer", "hidden_relu", "--unit", str(unit),
                     "--out", str(out), "--npy", str(out.with_suffix(".npy"))]) == 0, capsys.readouterr().err
    np.testing.assert_array_equal(np.load(tmp_path / "big.npy"), np.load(tmp_path / "twin.npy"))
    assert np.abs(np.load(tmp_path / "big.npy")).max() > 0



@pytest.mark.parametrize("location,size,why", [("../outside.bin", 4000, "outside the model's folder"),
                                               ("w.bin", 100, "does not fit its shape"),
                                               ("missing.bin", None, "cannot read the external data")])
def test_external_data_outside_short_or_missing_is_one_line(tmp_path, capsys, location, size, why):
    """External data is checked when the file is read: a location outside the model's folder, a
    file shorter than the tensor and a missing file are each one line and exit 2."""
    rng = np.random.default_rng(0)
    nodes, inits = _graph({}, rng)
    tensor = TensorProto(name="table1", data_type=TensorProto.FLOAT, dims=[FEATURES, HIDDEN])
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(FEATURES * HIDDEN * 4))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    table2 = numpy_helper.from_array(np.ones((HIDDEN, 5), np.float32), "table2")
    folder = tmp_path / "model"
    folder.mkdir()
    if size is not None:
        (folder / location).resolve().write_bytes(b"\0" * size)
    onnx.save(_model(nodes, [*inits, tensor, table2]), str(folder / "m.onnx"))
    assert main(["layers", str(folder / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and why in err[0], err
