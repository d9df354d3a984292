"""GraphFacts: one shape inference per loaded model, shared by layers, geometry, the gradient graph
and the step graph; its facts against independent references (ONNX shape inference on the whole
model, the graph as written, ONNX Runtime's shapes)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxprobe.graph.batch as batch_module
from onnxprobe.autodiff import build_gradient_model, grad_name, seed_name
from onnxprobe.objectives import neuron, self_seeded
from onnxprobe.autodiff.tape import Tape
from onnxprobe.graph.facts import GraphFacts, attr
from onnxprobe.model import ProbeModel
from onnxprobe.optimize.stepgraph import build_step_model
from onnxprobe.runtime.session import Session
from tests.conftest import ROOT, make_conv_model

MOBILENET = ROOT / "models" / "imagenet" / "mobilenet_v2.onnx"


@pytest.fixture
def inferences(monkeypatch) -> list[int]:
    """Every onnx.shape_inference.infer_shapes call from here on, as the node count of its graph."""
    calls: list[int] = []
    real = onnx.shape_inference.infer_shapes

    def spy(model, *args, **kwargs):
        calls.append(len(model.graph.node))
        return real(model, *args, **kwargs)

    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", spy)
    return calls


def test_one_inference_per_load_with_layers_gradients_and_step_graph(inferences):
    assert MOBILENET.exists(), "the bundled model is missing: models/imagenet/mobilenet_v2.onnx"
    pm = ProbeModel.load(MOBILENET, device="cpu")
    assert pm.batch.kind == "dynamic" and pm.shape_source == "inference"
    layers = pm.layers  # geometry (strict and, where it leaves gaps, approximate)
    assert any(layer.receptive_field is not None for layer in layers)
    target = layers[len(layers) // 2].name
    pm.gradient_session([target])
    pm.gradient_session([target, layers[-1].name], mode="guided")
    gradient = build_gradient_model(pm.proto, [target], wrt=[pm.input_name], facts=pm.facts)
    ones = np.ones((1, 3, 1, 1), np.float32)
    build_step_model(gradient, pm.input_name, grad_name(pm.input_name), neuron(pm, target, 0),
                     {target: seed_name(target)}, ones, -ones, ones, False)
    assert inferences == [len(pm.proto.graph.node)], "shape inference ran again after the load"


def test_a_self_seeded_target_infers_only_the_nodes_it_adds(inferences):
    pm = ProbeModel.load(MOBILENET, device="cpu")
    del inferences[:]
    target = pm.layers[10].name
    pm.gradient_session([target], self_seeded=True, peak_axes=(2, 3))
    assert len(inferences) == 1 and inferences[0] == 5, inferences  # self_seeded adds 5 nodes
    model, square = self_seeded(pm.proto, target, (2, 3))
    facts = pm.facts.extended(model)
    assert facts.shape(square) == list(pm.infos[target].shape)  # Mul(t, t) * mask: t's shape
    assert facts.elem[square] == TensorProto.FLOAT and square not in pm.facts.dims


def test_a_fixed_batch_file_adds_only_the_batch_proofs_inferences(tmp_path, monkeypatch, inferences):
    """The batch proof infers the file's own graph at its own fixed batch, before the rewrite those
    shapes decide (graph/batch.py static_shapes), and, proving from the graph, the rewritten graph
    at batch STATIC_BATCH (_sizes_follow): other graphs or other batches than the loaded model's."""
    path = tmp_path / "fixed.onnx"
    make_conv_model(path, batch_param=1)
    inside = {"static_shapes": [], "_sizes_follow": []}

    def spy_on(name):
        real = getattr(batch_module, name)

        def spy(*args, **kwargs):
            before = len(inferences)
            out = real(*args, **kwargs)
            inside[name].append(len(inferences) - before)
            return out

        monkeypatch.setattr(batch_module, name, spy)

    spy_on("static_shapes")
    spy_on("_sizes_follow")
    pm = ProbeModel.load(path, device="cpu")
    pm.layers
    pm.gradient_session(["relu2"])
    assert pm.batch.kind == "made dynamic" and pm.batch.proof == "graph"
    assert inside == {"static_shapes": [1], "_sizes_follow": [1]} and len(inferences) == 3, (inside, inferences)


def test_shapes_and_types_equal_inference_on_the_whole_model():
    """The facts infer a copy without the large weights: the result must be what ONNX shape
    inference gives on the model as it is."""
    model = onnx.load(str(MOBILENET))
    facts = GraphFacts(model)
    full = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True).graph
    compared = 0
    for value in list(full.value_info) + list(full.output):
        tt = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        assert facts.shape(value.name) == dims, value.name
        assert facts.elem[value.name] == tt.elem_type, value.name
        compared += 1
    assert compared >= len(model.graph.node) - 1  # every node output (the graph output too)
    for init in model.graph.initializer:
        assert facts.shape(init.name) == list(init.dims)
        np.testing.assert_array_equal(facts.const(init.name), numpy_helper.to_array(init))


def test_loaded_shapes_are_what_onnx_runtime_computes():
    """Every probeable tensor's TensorInfo against ONNX Runtime's arrays at batch 2."""
    path = ROOT / "models" / "digits" / "digits-cnn.onnx"
    pm = ProbeModel.load(path, device="cpu")
    names = [layer.name for layer in pm.layers]
    x = np.random.default_rng(0).standard_normal((2, *pm.input_shape[1:])).astype(np.float32)
    values = pm.activations(x, names, with_outputs=False)
    for name in names:
        info = pm.infos[name]
        assert values[name].shape == (2, *info.shape[1:]) and info.shape[0] is None, name
        assert pm.facts.shape(name) == list(info.shape)
        assert onnx.helper.tensor_dtype_to_np_dtype(info.elem_type) == values[name].dtype


def _small_graph() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Constant", [], ["axes"], value_ints=[2, 3], name="axes"),
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("ReduceMean", ["r", "axes"], ["m"], keepdims=1, name="mean"),
        helper.make_node("Add", ["r", "m"], ["y"], name="add"),
        helper.make_node("Resize", ["y", "", "scales"], ["z"], mode="nearest", name="up"),
    ]
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 4, 4])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], [scales])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


def test_producers_consumers_constants_opset_and_attributes():
    model = _small_graph()
    facts = GraphFacts(model)
    by_name = {n.name: n for n in model.graph.node}
    assert facts.producers["m"] is by_name["mean"] and "x" not in facts.producers
    assert [n.name for n in facts.consumers["r"]] == ["mean", "add"]
    assert facts.reachable_from("r") == {"r", "m", "y", "z"}
    assert facts.ancestors_of(["m"]) == {"m", "r", "x", "axes"}
    # the twins agree: b is an ancestor of a exactly when a is reachable from b
    for a in facts.names():
        assert facts.ancestors_of([a]) == {b for b in facts.names() if a in facts.reachable_from(b)}, a
    assert facts.opset == 19
    np.testing.assert_array_equal(facts.const("axes"), [2, 3])
    np.testing.assert_array_equal(facts.const("scales"), [1, 1, 2, 2])
    assert facts.const("scales", max_size=3) is None and facts.const("r") is None
    assert facts.is_const("axes") and facts.is_const("scales") and not facts.is_const("m")
    assert facts.shape("m") == [None, 2, 1, 1] and facts.shape("z") == [None, 2, 8, 8]
    assert attr(by_name["up"], "mode") == "nearest" and attr(by_name["mean"], "keepdims") == 1
    assert attr(by_name["mean"], "noop_with_empty_axes", 0) == 0
    assert facts.names() == {"x", "scales", "axes", "r", "m", "y", "z"}


def test_a_tape_writes_on_a_scratch_view_and_avoids_every_name():
    model = _small_graph()
    model.graph.node[1].output[0] = "onnxprobe.bw/relu_0"  # a name the tape would hand out first
    for node in model.graph.node[2:4]:
        node.input[0] = "onnxprobe.bw/relu_0"
    facts = GraphFacts(model)
    elem, dims = dict(facts.elem), dict(facts.dims)
    tape = Tape(facts)
    out = tape.op("Relu", "x")
    tape.set_shape(out, [None, 2, 4, 4], TensorProto.FLOAT)
    tape.const(np.zeros(3, np.float32))
    assert out != "onnxprobe.bw/relu_0" and tape.info.shape(out) == [None, 2, 4, 4]
    assert facts.elem == elem and facts.dims == dims  # the shared facts are untouched
    assert tape.opset == 19


def test_the_step_graph_runs_and_its_names_are_unique(tmp_path):
    pm = ProbeModel.load(ROOT / "models" / "digits" / "digits-cnn.onnx", device="cpu")
    target = pm.layers[-1].name
    gradient = build_gradient_model(pm.proto, [target], wrt=[pm.input_name], facts=pm.facts)
    c = pm.input_shape[1]
    ones = np.ones((1, c, 1, 1), np.float32)
    step = build_step_model(gradient, pm.input_name, grad_name(pm.input_name), neuron(pm, target, 0),
                            {target: seed_name(target)}, ones, -ones, ones, False)
    outputs = [o for n in step.graph.node for o in n.output if o]
    assert len(outputs) == len(set(outputs))
    names = [n.name for n in step.graph.node]
    assert len(names) == len(set(names))
    Session(step, device="cpu")  # ONNX Runtime accepts it (test_steps.py checks its numbers)
