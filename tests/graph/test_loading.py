"""Reading a model file light (graph.loading.read_light) and its external data (runtime.weights):
which file the weights come from."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprobe.model import ProbeModel
from onnxprobe.runtime.session import Session
from tests.conftest import make_conv_model


@pytest.mark.parametrize("decoy", [False, True])
def test_a_linked_model_file_reads_its_weights_from_the_file_linked_to(tmp_path, decoy):
    """A model file reached through a link of another name (the Hugging Face cache's
    snapshots/<rev>/model.onnx -> blobs/<hash>): its inline weights, left out of the proto by
    read_light, are read from the linked-to file, not from a file of the link's name beside it
    (missing: the load failed; a model of the same layout there: its weights were used silently)."""
    blobs, snapshot = tmp_path / "blobs", tmp_path / "snapshot"
    blobs.mkdir()
    snapshot.mkdir()
    make_conv_model(blobs / "0123abcd", seed=0)
    if decoy:
        make_conv_model(blobs / "model.onnx", seed=1)
    (snapshot / "model.onnx").symlink_to(blobs / "0123abcd")
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    reference = Session(make_conv_model(seed=0), device="cpu").run({"image": x})["probs"]
    model = ProbeModel.load(snapshot / "model.onnx", device="cpu")
    np.testing.assert_allclose(model.activations(x, ["probs"])["probs"], reference, rtol=1e-5, atol=1e-6)


def test_external_data_reached_through_links_is_read_where_onnx_runtime_reads_it(tmp_path):
    """The Hugging Face cache's layout for a model with external data: snapshots/<rev>/model.onnx
    and model.onnx.data are links to blobs/<hash>, <hash2>. ONNX and ONNX Runtime look for the data
    beside the name given (the snapshot); looking beside the resolved blob (blobs/model.onnx.data,
    absent) failed the load. A location climbing out of the folder stays refused."""
    source = tmp_path / "export"
    source.mkdir()
    model = make_conv_model(seed=0)
    onnx.save_model(model, str(source / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.onnx.data", size_threshold=0)
    blobs, snapshot = tmp_path / "blobs", tmp_path / "snapshots" / "rev"
    blobs.mkdir()
    snapshot.mkdir(parents=True)
    for name, blob in (("model.onnx", "aa11"), ("model.onnx.data", "bb22")):
        (source / name).rename(blobs / blob)
        (snapshot / name).symlink_to(blobs / blob)
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    reference = Session(make_conv_model(seed=0), device="cpu").run({"image": x})["probs"]
    loaded = ProbeModel.load(snapshot / "model.onnx", device="cpu")
    np.testing.assert_allclose(loaded.activations(x, ["probs"])["probs"], reference, rtol=1e-5, atol=1e-6)

    from onnxprobe.graph.loading import external_data_locations, inside_folder

    assert external_data_locations(snapshot / "model.onnx") == ["model.onnx.data"]
    assert [inside_folder(p) for p in ("model.onnx.data", "sub/w.bin", "a/../w.bin", "../w.bin", "a/../../w.bin",
                                       "/etc/passwd", "")] == [True, True, True, False, False, False, False]


def _wide_conv(path, seed: int) -> None:
    """conv(3 -> 16, 3x3, stride 1): a kernel over the inline limit (kept in the file, read as a
    memory map by the gradient's stride-1 adjoint), then relu."""
    w = np.random.default_rng(seed).standard_normal((16, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["conv"], pads=[1, 1, 1, 1], name="conv"),
         helper.make_node("Relu", ["conv"], ["relu"], name="relu")], "wide",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("relu", TensorProto.FLOAT, ["N", 16, 8, 8])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_a_model_file_replaced_in_the_same_process_gives_its_new_weights(tmp_path):
    """A notebook exports, loads, trains, exports again over the same file (written as a new file
    renamed over the old one, as careful writers do) and loads it again: the gradient reads the new
    kernel, as ONNX Runtime does, not a memory map of the replaced file kept from the first load."""
    from onnxprobe.objectives import channel

    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    path = tmp_path / "m.onnx"
    _wide_conv(path, seed=0)
    first = ProbeModel.load(path, device="cpu")
    first.gradient(x, channel(first, "relu", 1))
    _wide_conv(tmp_path / "new.onnx", seed=1)
    os.replace(tmp_path / "new.onnx", path)
    _wide_conv(tmp_path / "elsewhere.onnx", seed=1)
    again, fresh = ProbeModel.load(path, device="cpu"), ProbeModel.load(tmp_path / "elsewhere.onnx", device="cpu")
    want = fresh.gradient(x, channel(fresh, "relu", 1)).input
    assert np.abs(want).max() > 0
    np.testing.assert_array_equal(again.gradient(x, channel(again, "relu", 1)).input, want)


@pytest.mark.parametrize("location", ["w\0.bin", "folder", "loop"])
def test_external_data_that_is_no_readable_file_is_one_line(tmp_path, capsys, location):
    """A location with a NUL byte, or naming a folder or a loop of links: one line and exit 2, as
    for a missing file (before: 'internal error', exit 1)."""
    from onnx import TensorProto

    from onnxprobe.cli import main

    model = make_conv_model()
    tensor = next(t for t in model.graph.initializer if t.name == "b1")  # small: read into the proto at load
    values = numpy_helper.to_array(tensor)
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(values.nbytes))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    (tmp_path / "folder").mkdir()
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    onnx.save(model, str(tmp_path / "m.onnx"))
    assert main(["layers", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "external data" in err[0] and "b1" in err[0], err


def test_a_model_with_inline_int4_weights_loads_and_runs(tmp_path):
    """INT4 weights (opset 21 quantization) are packed two to a byte: read_light leaves them in the
    file as for any large inline tensor, and the load checks them at their packed size (before: 'the
    external data does not fit its shape', on a file that has none); their values unpack right."""
    from onnxprobe.graph.facts import GraphFacts

    rng = np.random.default_rng(0)
    values = rng.integers(-8, 8, size=(96, 3, 3, 3)).astype(np.int8)  # 2592 values, 1296 bytes packed
    packed = numpy_helper.from_array(values.astype(onnx.helper.tensor_dtype_to_np_dtype(TensorProto.INT4)), "wq")
    nodes = [helper.make_node("DequantizeLinear", ["wq", "scale"], ["w"], name="dq"),
             helper.make_node("Conv", ["image", "w"], ["conv"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["conv"], ["relu"], name="relu")]
    graph = helper.make_graph(nodes, "int4", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("relu", TensorProto.FLOAT, ["N", 96, 8, 8])],
                              [packed, numpy_helper.from_array(np.array(0.05, np.float32), "scale")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.save(model, str(tmp_path / "int4.onnx"))
    loaded = ProbeModel.load(tmp_path / "int4.onnx", device="cpu")
    np.testing.assert_array_equal(GraphFacts(loaded.proto, infer_shapes=False).const("wq").astype(np.int8), values)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    want = Session(model, device="cpu").run({"image": x})["relu"]
    np.testing.assert_allclose(loaded.activations(x, ["relu"])["relu"], want, rtol=1e-5, atol=1e-6)


def _conv_net(path, elem: int, inside: bool) -> None:
    """image (elem) -> [Cast to float32 unless `inside`] -> Conv 3->4 (weights in elem if inside) ->
    Flatten: a linear network, so its input gradient is the weights' and needs no activations."""
    dtype = helper.tensor_dtype_to_np_dtype(elem)
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)) * 0.3
    nodes = ([] if inside else [helper.make_node("Cast", ["image"], ["image32"], to=TensorProto.FLOAT, name="to32")]) + [
        helper.make_node("Conv", ["image" if inside else "image32", "w"], ["conv"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Flatten", ["conv"], ["flat"], name="flat")]
    graph = helper.make_graph(nodes, "typed", [helper.make_tensor_value_info("image", elem, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("flat", elem if inside else TensorProto.FLOAT, ["N", 256])],
                              [numpy_helper.from_array(w.astype(dtype if inside else np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))


@pytest.mark.parametrize("inside", [False, True], ids=["cast-to-float32", "float16-throughout"])
def test_a_float16_input_model_runs_and_differentiates(tmp_path, inside):
    """A float16 image input loaded, and every run failed ('Unexpected input data type': onnxprobe
    feeds float32). Now the input is fed float32 through a Cast to the graph's type, and a graph
    computed in float16 takes its seeds in float16. Reference: the float32 network with the input
    (and weights) rounded to float16, in float64. Tolerance: a float16 graph's dot products of
    length K = 27 round within K * 2**-11 of their scale (twice: two runs), float32's within 1e-6."""
    from onnxprobe.objectives.units import channel

    _conv_net(tmp_path / "half.onnx", TensorProto.FLOAT16, inside)
    model = ProbeModel.load(tmp_path / "half.onnx", device="cpu")
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)) * 0.3
    if inside:
        w = w.astype(np.float16)
    x16 = x.astype(np.float16).astype(np.float64)
    w64 = np.asarray(w, np.float64)
    padded = np.pad(x16, ((0, 0), (0, 0), (1, 1), (1, 1)))
    reference = np.einsum("nchwij,kcij->nkhw", np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3)), w64)
    scale = np.abs(reference).max()
    tol = 2 * 27 * 2.0 ** -11 * scale if inside else 1e-6 * scale
    np.testing.assert_allclose(model.activations(x, ["conv"])["conv"], reference, rtol=0, atol=tol)
    grad = model.gradient(x, channel(model, "conv", 1)).input  # d mean(conv[:, 1]) / d image
    expected = np.zeros((3, 8, 8))
    for y in range(8):
        for x0 in range(8):
            for dy in range(3):
                for dx in range(3):
                    yy, xx = y + dy - 1, x0 + dx - 1
                    if 0 <= yy < 8 and 0 <= xx < 8:
                        expected[:, yy, xx] += w64[1, :, dy, dx]
    expected /= 64
    # the gradient crosses the float16 input tensor, rounded there once (2**-11); computed in float16
    # throughout, its sums of up to 9 terms round within 9 * 2**-11 besides
    g_tol = ((2 * 9 if inside else 1) * 2.0 ** -11 + 1e-6) * np.abs(expected).max()
    np.testing.assert_allclose(grad, np.broadcast_to(expected, grad.shape), rtol=0, atol=g_tol)
