"""Loading, normalising, shapes (inference and execution fallback) and the expose pass."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprobe.graph.expose import expose_tensors
from onnxprobe.graph.loading import WORKING_OPSET, load_model
from onnxprobe.model import ProbeModel
from onnxprobe.runtime.session import Session
from tests.conftest import make_conv_model


def _numpy_conv(x, w, b, pad):
    """Direct NCHW cross-correlation, an independent reference for ONNX Runtime's Conv."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    out = np.zeros((n, o, h - kh + 1, wd - kw + 1), np.float64)
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nchw,oc->nohw", x[:, :, i:i + out.shape[2], j:j + out.shape[3]], w[:, :, i, j])
    return out + b.reshape(1, -1, 1, 1)


def test_activations_of_every_layer_in_one_run(tiny_model_path):
    model = ProbeModel.load(tiny_model_path, device="cpu")
    names = [layer.name for layer in model.layers]
    assert names == ["conv1", "relu1", "pool1", "conv2", "relu2", "flat", "logits", "probs"]
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    acts = model.activations(x)
    proto = onnx.load(str(tiny_model_path))
    weights = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    conv1 = _numpy_conv(x.astype(np.float64), weights["w1"], weights["b1"], 1)
    np.testing.assert_allclose(acts["conv1"], conv1, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(acts["relu1"], np.maximum(conv1, 0), rtol=1e-4, atol=1e-4)
    pool = np.maximum(conv1, 0).reshape(2, 4, 8, 2, 8, 2).max(axis=(3, 5))
    np.testing.assert_allclose(acts["pool1"], pool, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(acts["probs"].sum(axis=1), 1.0, rtol=1e-5)
    plain = Session(proto, device="cpu").run({"image": x})["probs"]
    np.testing.assert_allclose(acts["probs"], plain, rtol=1e-6)


def test_layers_report_units_and_receptive_fields(tiny_model_path):
    model = ProbeModel.load(tiny_model_path, device="cpu")
    by_name = {layer.name: layer for layer in model.layers}
    assert by_name["conv1"].units == 4 and by_name["conv2"].units == 6 and by_name["logits"].units == 5
    assert by_name["conv2"].receptive_field.to_json() == {"size": [8, 8], "stride": [2, 2], "offset": [-1, -1]}
    assert by_name["flat"].receptive_field is None
    assert by_name["conv1"].shape == (None, 4, 16, 16)


def test_old_opset_is_converted_up(tmp_path):
    path = tmp_path / "old.onnx"
    make_conv_model(path, opset=11)
    model = load_model(path)
    assert [i.version for i in model.opset_import if i.domain == ""] == [WORKING_OPSET]
    assert model.ir_version <= 10


def test_dynamic_spatial_dims_fixed_from_flag(tmp_path):
    path = tmp_path / "dyn.onnx"
    make_conv_model(path)
    proto = onnx.load(str(path))
    for axis in (2, 3):
        proto.graph.input[0].type.tensor_type.shape.dim[axis].dim_param = "HW"[axis - 2]
    onnx.save(proto, str(path))
    model = ProbeModel.load(path, input_shape=(1, 3, 16, 16), device="cpu")
    assert model.input_shape == (1, 3, 16, 16)
    assert model.layer("pool1").shape == (None, 4, 8, 8)


def test_shapes_fall_back_to_execution_when_inference_cannot(tmp_path):
    """Resize with scales computed at run time: ONNX shape inference cannot know the output size."""
    nodes = [
        helper.make_node("Add", ["half", "half"], ["scales"], name="scales"),
        helper.make_node("Resize", ["image", "", "scales"], ["up"], mode="nearest", name="up"),
        helper.make_node("Relu", ["up"], ["act"], name="act"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 4, 6])],
                              [helper.make_tensor_value_info("act", TensorProto.FLOAT, ["N", 1, "H2", "W2"])],
                              [numpy_helper.from_array(np.array([0.5, 0.5, 1.0, 1.0], np.float32), "half")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    proto.ir_version = 8
    onnx.save(proto, str(tmp_path / "resize.onnx"))
    model = ProbeModel.load(tmp_path / "resize.onnx", device="cpu")
    assert model.shape_source == "execution"
    assert model.layer("act").shape == (None, 1, 8, 12)


def test_external_data_model_loads(tmp_path):
    proto = make_conv_model()
    onnx.save(proto, str(tmp_path / "ext.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.weights", size_threshold=0)
    assert (tmp_path / "ext.weights").exists()
    model = ProbeModel.load(tmp_path / "ext.onnx", device="cpu")
    x = np.zeros((1, 3, 16, 16), np.float32)
    reference = Session(make_conv_model(), device="cpu").run({"image": x})["probs"]
    np.testing.assert_allclose(model.activations(x, ["probs"])["probs"], reference, rtol=1e-6)


def test_nhwc_model_layout_and_channels(tmp_path):
    path = tmp_path / "nhwc.onnx"
    make_conv_model(path, nhwc=True)
    model = ProbeModel.load(path, device="cpu")
    assert model.spec.layout == "NHWC"
    x = model.preprocess(np.zeros((30, 30, 3), np.uint8))
    assert x.shape == (1, 16, 16, 3)
    assert model.layer("conv1").units == 4


def test_expose_keeps_original_outputs():
    proto = make_conv_model()
    exposed = expose_tensors(proto, ["relu1", "pool1", "probs"])
    assert [o.name for o in exposed.graph.output] == ["probs", "relu1", "pool1"]
    only = expose_tensors(proto, ["relu1"], keep_outputs=False)
    assert [o.name for o in only.graph.output] == ["relu1"]


def test_wrong_input_shape_is_an_input_error(tiny_model_path):
    from onnxprobe.errors import InputError

    model = ProbeModel.load(tiny_model_path, device="cpu")
    with pytest.raises(InputError):
        model.activations(np.zeros((1, 3, 15, 16), np.float32))
