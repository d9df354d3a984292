"""The gradient-graph contract: names, inputs/outputs, modes, pruning, unsupported ops, accumulation."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprobe.autodiff import (UnsupportedOpsError, build_gradient_model, differentiable_tensors, grad_name,
                                seed_name)
from onnxprobe.errors import UsageError

from .helpers import check_vjp, finalize, run, session

mk = helper.make_node
rng = np.random.default_rng(0)


def graph_model(nodes, inputs, outputs, inits=(), opset=18, domains=()):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
                          [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits])
    ops = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    m = finalize(helper.make_model(g, opset_imports=ops))
    m = onnx.shape_inference.infer_shapes(m)
    return m


def mlp(act="Relu"):
    w1, w2 = rng.standard_normal((5, 6)), rng.standard_normal((6, 4))
    nodes = [mk("MatMul", ["x", "w1"], ["h1"]), mk(act, ["h1"], ["r1"]),
             mk("MatMul", ["r1", "w2"], ["h2"]), mk(act, ["h2"], ["r2"])]
    return graph_model(nodes, [("x", ["N", 5])], ["r2"], [("w1", w1), ("w2", w2)]), w1, w2


def test_contract_names_types_and_ir_version():
    m, _, _ = mlp()
    gm = build_gradient_model(m, ["h2"])
    onnx.checker.check_model(gm, full_check=True)
    assert seed_name("h2") == "onnxprobe.seed:h2" and grad_name("x") == "onnxprobe.grad:x"
    ins = {i.name: i for i in gm.graph.input}
    assert set(ins) == {"x", "onnxprobe.seed:h2"}
    seed_dims = ins["onnxprobe.seed:h2"].type.tensor_type.shape.dim
    assert len(seed_dims) == 2 and seed_dims[0].dim_param == "N"
    assert [o.name for o in gm.graph.output] == ["h2", "onnxprobe.grad:x"]
    assert gm.ir_version <= 10
    assert all(n.domain in ("", "ai.onnx") for n in gm.graph.node)
    # batch dimension stays dynamic: run with two batch sizes
    s = session(gm)
    for n in (1, 3):
        out = run(s, {"x": np.ones((n, 5), np.float32), "onnxprobe.seed:h2": np.ones((n, 4), np.float32)})
        assert out["onnxprobe.grad:x"].shape == (n, 5)


@pytest.mark.parametrize("mode", ["gradient", "deconv", "guided"])
def test_modes_against_numpy(mode):
    m, w1, w2 = mlp()
    x = rng.standard_normal((3, 5)).astype(np.float32)
    seed = rng.standard_normal((3, 4)).astype(np.float32)
    h1 = x @ w1
    h2 = np.maximum(h1, 0) @ w2
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    if mode == "gradient":
        back = lambda g, h: g * (h > 0)  # noqa: E731
    elif mode == "deconv":
        back = lambda g, h: relu(g)  # noqa: E731
    else:
        back = lambda g, h: relu(g) * (h > 0)  # noqa: E731
    expected = back(back(seed, h2) @ w2.T, h1) @ w1.T
    gm = build_gradient_model(m, ["r2"], mode=mode)
    out = run(session(gm), {"x": x, seed_name("r2"): seed})
    np.testing.assert_allclose(out[grad_name("x")], expected, rtol=1e-4, atol=1e-5)


def test_unknown_mode_and_names():
    m, _, _ = mlp()
    with pytest.raises(UsageError):
        build_gradient_model(m, ["r2"], mode="magic")
    with pytest.raises(UsageError):
        build_gradient_model(m, ["nope"])
    with pytest.raises(UsageError):
        build_gradient_model(m, ["r2"], wrt="w1")


def test_unsupported_ops_on_path_are_all_listed():
    nodes = [mk("Atan", ["x"], ["a"], name="atan1"), mk("Foo", ["a"], ["b"], name="foo1", domain="com.example"),
             mk("Relu", ["b"], ["y"], name="relu1"), mk("Conv", ["x", "x"], ["z"], name="conv_on_weights")]
    m = graph_model(nodes, [("x", [1, 1, 3, 3])], ["y", "z"], domains=["com.example"])
    with pytest.raises(UnsupportedOpsError) as err:
        build_gradient_model(m, ["y", "z"])
    assert set(err.value.ops) == {("Atan", "atan1"), ("com.example::Foo", "foo1"), ("Conv", "conv_on_weights")}
    assert "\n" not in str(err.value)


def test_unsupported_ops_off_the_path_are_fine_and_pruned():
    nodes = [mk("Relu", ["x"], ["y"], name="relu1"),
             mk("Atan", ["x"], ["a"], name="atan1"),  # unrelated branch
             mk("Foo", ["a"], ["b"], name="foo1", domain="com.example"),
             mk("Exp", ["x"], ["e"], name="exp1"),
             mk("Mul", ["e", "y"], ["unused"], name="mul1")]
    m = graph_model(nodes, [("x", ["N", 4])], ["y", "b", "unused"], domains=["com.example"])
    gm = build_gradient_model(m, ["y"])
    names = {n.name for n in gm.graph.node}
    assert not names & {"atan1", "foo1", "exp1", "mul1"}
    x = rng.standard_normal((2, 4)).astype(np.float32)
    out = run(session(gm), {"x": x, seed_name("y"): np.ones_like(x)})
    np.testing.assert_allclose(out[grad_name("x")], (x > 0).astype(np.float32))


def test_forward_nodes_not_needed_are_pruned():
    nodes = [mk("Exp", ["x"], ["e"], name="exp1"), mk("Add", ["e", "x"], ["y"], name="add1"),
             mk("Tanh", ["y"], ["t"], name="tanh_after_target")]
    m = graph_model(nodes, [("x", ["N", 4])], ["t"])
    gm = build_gradient_model(m, ["y"])
    assert "tanh_after_target" not in {n.name for n in gm.graph.node}


def test_tensor_used_twice_sums_gradients_and_multiple_targets():
    nodes = [mk("Mul", ["x", "x"], ["sq"]), mk("Sigmoid", ["x"], ["s"]), mk("Mul", ["sq", "s"], ["y"]),
             mk("Tanh", ["y"], ["t"])]
    m = graph_model(nodes, [("x", ["N", 3, 4])], ["t", "s"])
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    check_vjp(m, {"x": x}, ["t", "s"], ["x"])
    gm = build_gradient_model(m, ["t", "s"])
    assert any(n.op_type == "Sum" for n in gm.graph.node)


def test_intermediate_wrt_and_extra_outputs():
    """Grad-CAM style: the gradient w.r.t. an intermediate activation, plus that activation."""
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    nodes = [mk("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), mk("Relu", ["c"], ["r"]),
             mk("GlobalAveragePool", ["r"], ["p"]), mk("Flatten", ["p"], ["f"])]
    m = graph_model(nodes, [("x", ["N", 3, 5, 5])], ["f"], [("w", w)])
    gm = build_gradient_model(m, ["f"], wrt=["r"], extra_outputs=["c"])
    assert {o.name for o in gm.graph.output} == {"f", grad_name("r"), "c"}
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    seed = rng.standard_normal((2, 4)).astype(np.float32)
    out = run(session(gm), {"x": x, seed_name("f"): seed})
    np.testing.assert_allclose(out[grad_name("r")], np.broadcast_to(seed[:, :, None, None] / 25, (2, 4, 5, 5)),
                               rtol=1e-5)
    assert "x" in differentiable_tensors(m) and "f" in differentiable_tensors(m)
    assert "c" not in differentiable_tensors(m, wrt="r")


def test_target_not_depending_on_wrt_gives_zeros():
    nodes = [mk("Relu", ["x"], ["y"]), mk("Shape", ["x"], ["s"]), mk("Cast", ["s"], ["sf"], to=TensorProto.FLOAT)]
    m = graph_model(nodes, [("x", ["N", 4])], ["y", "sf"])
    gm = build_gradient_model(m, ["sf"])
    out = run(session(gm), {"x": np.ones((2, 4), np.float32), seed_name("sf"): np.ones(2, np.float32)})
    assert not out[grad_name("x")].any() and out[grad_name("x")].shape == (2, 4)


def test_old_opset_model_is_converted():
    nodes = [mk("ReduceMean", ["x"], ["y"], axes=[1], keepdims=0)]
    m = graph_model(nodes, [("x", ["N", 4])], ["y"], opset=13)
    gm = build_gradient_model(m, ["y"])
    onnx.checker.check_model(gm)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    out = run(session(gm), {"x": x, seed_name("y"): np.ones(2, np.float32)})
    np.testing.assert_allclose(out[grad_name("x")], np.full((2, 4), 0.25), rtol=1e-6)


RELU_FAMILY = [
    ("Relu", {}, [], lambda x: x > 0),
    ("LeakyRelu", {"alpha": 0.2}, [], lambda x: x > 0),
    ("PRelu", {}, [("slope", np.array([0.3], np.float32))], lambda x: x > 0),
    ("Elu", {}, [], lambda x: x > 0),
    ("Selu", {}, [], lambda x: x > 0),
    ("Clip", {}, [("lo", np.array(0.0, np.float32)), ("hi", np.array(0.6, np.float32))],
     lambda x: (x > 0) & (x < 0.6)),
]


@pytest.mark.parametrize("op,attrs,extra,mask", RELU_FAMILY, ids=[r[0] for r in RELU_FAMILY])
@pytest.mark.parametrize("mode", ["deconv", "guided"])
def test_relu_family_modes(op, attrs, extra, mask, mode):
    node = mk(op, ["x"] + [n for n, _ in extra], ["y"], **attrs)
    m = graph_model([node], [("x", ["N", 12])], ["y"], extra)
    x = ((np.arange(24).reshape(2, 12) - 11.5) * 0.1).astype(np.float32)
    seed = np.random.default_rng(2).standard_normal((2, 12)).astype(np.float32)
    out = run(session(build_gradient_model(m, ["y"], mode=mode)), {"x": x, seed_name("y"): seed})
    expected = np.maximum(seed, 0) * (mask(x) if mode == "guided" else 1)
    np.testing.assert_allclose(out[grad_name("x")], expected, rtol=1e-6)


def test_clip_that_is_not_relu6_stays_exact_in_guided_mode():
    m = graph_model([mk("Clip", ["x", "lo", "hi"], ["y"])], [("x", ["N", 4])], ["y"],
                    [("lo", np.array(-1.0, np.float32)), ("hi", np.array(1.0, np.float32))])
    x = np.array([[-2, -0.5, 0.5, 2]], np.float32)
    seed = np.array([[1, -1, -1, 1]], np.float32)
    out = run(session(build_gradient_model(m, ["y"], mode="guided")), {"x": x, seed_name("y"): seed})
    np.testing.assert_array_equal(out[grad_name("x")], [[0, -1, -1, 0]])


def test_passes_through_newer_opsets():
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    nodes = [mk("Conv", ["x", "w"], ["c"], auto_pad="SAME_UPPER"), mk("Gelu", ["c"], ["g"]),
             mk("ReduceMean", ["g", "axes"], ["y"], keepdims=0)]
    m = graph_model(nodes, [("x", ["N", 3, 5, 5])], ["y"], [("w", w)], opset=21)
    m.graph.initializer.append(numpy_helper.from_array(np.array([2, 3], np.int64), "axes"))
    gm = build_gradient_model(m, ["y"])
    assert gm.opset_import[0].version == 21 and gm.ir_version == 10
    check_vjp(m, {"x": rng.standard_normal((2, 3, 5, 5)).astype(np.float32)}, ["y"], ["x"])
