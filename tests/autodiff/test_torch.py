"""Independent references from torch autograd (float64): conv/pool variants, edge values
(ties in max pooling, zeros at ReLU, padding), deconv/guided modes, and export patterns of
torchvision-style networks (torch.onnx.export at opset 18)."""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprobe.autodiff import build_gradient_model, grad_name, seed_name
from tests.fixtures_torch import mode_relu

from .helpers import finalize, run, session

import torch

F = torch.nn.functional
mk = helper.make_node


def _grad_onnx(op, attrs, x, w=None, mode="gradient", seed=None, extra_nodes=()):
    ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *x.shape[1:]])]
    inits = [] if w is None else [numpy_helper.from_array(w.astype(np.float32), "w")]
    nodes = [mk(op, ["x"] + (["w"] if w is not None else []), ["y"], **attrs), *extra_nodes]
    out = extra_nodes[-1].output[0] if extra_nodes else "y"
    g = helper.make_graph(nodes, "g", ins, [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], inits)
    m = onnx.shape_inference.infer_shapes(finalize(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])))
    y = run(session(m), {"x": x})[out]
    seed = np.random.default_rng(3).standard_normal(y.shape).astype(np.float32) if seed is None else seed
    gm = build_gradient_model(m, [out], mode=mode)
    res = run(session(gm), {"x": x, seed_name(out): seed})
    return res[out], res[grad_name("x")], seed


def _grad_torch(fn, x, seed, w=None):
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    args = (xt,) if w is None else (xt, torch.tensor(w, dtype=torch.float64))
    y = fn(*args)
    (y * torch.tensor(seed, dtype=torch.float64)).sum().backward()
    return y.detach().numpy(), xt.grad.numpy()


CONV = [
    ({}, {}),
    ({"pads": [1, 1, 1, 1]}, {"padding": 1}),
    ({"strides": [2, 2], "pads": [1, 1, 1, 1]}, {"stride": 2, "padding": 1}),
    ({"strides": [3, 2], "pads": [2, 0, 2, 0], "dilations": [2, 1]}, {"stride": (3, 2), "padding": (2, 0), "dilation": (2, 1)}),
    ({"group": 2, "strides": [2, 2]}, {"groups": 2, "stride": 2}),
    ({"group": 4, "pads": [1, 1, 1, 1], "strides": [2, 2]}, {"groups": 4, "padding": 1, "stride": 2}),
]


@pytest.mark.parametrize("i", range(len(CONV)))
def test_conv_against_torch(i):
    attrs, targs = CONV[i]
    group = attrs.get("group", 1)
    rng = np.random.default_rng(i)
    x = rng.standard_normal((2, 4, 11, 10)).astype(np.float32)
    w = rng.standard_normal((4, 4 // group, 3, 3)).astype(np.float32)
    y, gx, seed = _grad_onnx("Conv", attrs, x, w)
    yt, gt = _grad_torch(lambda a, b: F.conv2d(a, b, **targs), x, seed, w)
    np.testing.assert_allclose(y, yt, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gx, gt, rtol=1e-4, atol=1e-4)


POOL = [
    ({"kernel_shape": [3, 3], "strides": [2, 2]}, {"kernel_size": 3, "stride": 2}),
    ({"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}, {"kernel_size": 3, "stride": 2, "ceil_mode": True}),
    ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, {"kernel_size": 3, "stride": 2, "padding": 1}),
    ({"kernel_shape": [2, 2], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1},
     {"kernel_size": 2, "stride": 2, "padding": 1, "ceil_mode": True}),
]


@pytest.mark.parametrize("i", range(len(POOL)))
@pytest.mark.parametrize("kind", ["max", "avg", "avg_incl"])
def test_pool_against_torch(i, kind):
    attrs, targs = POOL[i]
    x = np.random.default_rng(i).standard_normal((2, 3, 11, 10)).astype(np.float32)
    if kind == "max":
        op, fn = "MaxPool", lambda a: F.max_pool2d(a, **targs)
    else:
        incl = kind == "avg_incl"
        op, attrs = "AveragePool", {**attrs, "count_include_pad": int(incl)}
        fn = lambda a: F.avg_pool2d(a, count_include_pad=incl, **targs)  # noqa: E731
    y, gx, seed = _grad_onnx(op, attrs, x)
    yt, gt = _grad_torch(fn, x, seed)
    np.testing.assert_allclose(y, yt, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gx, gt, rtol=1e-4, atol=1e-5)


def test_max_pool_ties_overlapping_windows():
    """All-equal input with overlapping windows: every window's gradient goes to one switch (the
    first maximum, as in torch) and overlapping contributions add up."""
    x = np.ones((1, 2, 7, 7), np.float32)
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    y, gx, seed = _grad_onnx("MaxPool", attrs, x)
    _, gt = _grad_torch(lambda a: F.max_pool2d(a, 3, 2, 1), x, seed)
    np.testing.assert_allclose(gx, gt, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gx.sum(), seed.sum(), rtol=1e-5)


def test_relu_and_relu6_at_zero_match_torch():
    x = np.array([[-1.0, 0.0, 0.5, 6.0, 7.0, 0.0]], np.float32)
    _, gx, seed = _grad_onnx("Relu", {}, x, seed=np.ones_like(x))
    np.testing.assert_array_equal(gx, [[0, 0, 1, 1, 1, 0]])
    _, gt = _grad_torch(F.relu, x, np.ones_like(x))
    np.testing.assert_array_equal(gx, gt)
    clip = [mk("Clip", ["x", "lo", "hi"], ["y2"])]
    lo = helper.make_tensor("lo", TensorProto.FLOAT, [], [0.0])
    hi = helper.make_tensor("hi", TensorProto.FLOAT, [], [6.0])
    g = helper.make_graph(clip, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
                          [helper.make_tensor_value_info("y2", TensorProto.FLOAT, ["N", 6])], [lo, hi])
    m = finalize(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]))
    out = run(session(build_gradient_model(m, ["y2"])), {"x": x, seed_name("y2"): np.ones_like(x)})
    _, gt6 = _grad_torch(F.relu6, x, np.ones_like(x))
    np.testing.assert_array_equal(out[grad_name("x")], gt6)


@pytest.mark.parametrize("mode", ["gradient", "deconv", "guided"])
def test_modes_on_a_conv_net_against_torch(mode):
    rng = np.random.default_rng(7)
    w1 = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    w2 = rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
    nodes = [mk("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]), mk("Relu", ["c1"], ["r1"]),
             mk("MaxPool", ["r1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2]),
             mk("Conv", ["p1", "w2"], ["c2"]), mk("Relu", ["c2"], ["r2"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 9, 9])],
                          [helper.make_tensor_value_info("r2", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    m = onnx.shape_inference.infer_shapes(finalize(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])))
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    seed = rng.standard_normal((2, 5, 2, 2)).astype(np.float32)
    out = run(session(build_gradient_model(m, ["r2"], mode=mode)), {"x": x, seed_name("r2"): seed})
    t1, t2 = torch.tensor(w1, dtype=torch.float64), torch.tensor(w2, dtype=torch.float64)
    relu = lambda v: mode_relu(v, mode)  # noqa: E731
    _, gt = _grad_torch(lambda a: relu(F.conv2d(F.max_pool2d(relu(F.conv2d(a, t1, padding=1)), 3, 2), t2)), x, seed)
    np.testing.assert_allclose(out[grad_name("x")], gt, rtol=1e-4, atol=1e-4)


class _Patterns(torch.nn.Module):
    """The export patterns of torchvision classifiers in one small net."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        nn = torch.nn
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(8, 4, 1), nn.SiLU(), nn.Conv2d(4, 8, 1),
                                nn.Hardsigmoid())
        self.ln = nn.LayerNorm(8)
        self.lin = nn.Linear(8, 8)
        self.cls = nn.Parameter(torch.randn(1, 1, 8))
        self.attn = nn.Linear(8, 24)
        self.head = nn.Linear(8 * 2, 5)
        self.bn.eval()

    def forward(self, x):
        # inception_v3 transform_input: Gather/Slice on the image, Unsqueeze, Concat
        ch0 = torch.unsqueeze(x[:, 0], 1) * 0.5 + 0.1
        x = torch.cat([ch0, x[:, 1:2], x[:, 2:3] * 2.0], 1)
        x = F.hardswish(self.bn(self.stem(x)))
        x = F.relu6(self.dw(x)) * self.se(x)
        # channel shuffle
        n, c, h, w = x.shape
        x = x.reshape(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        x = F.max_pool2d(x, 2, ceil_mode=True)
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        # ConvNeXt permute + LayerNorm + GELU
        t = x.permute(0, 2, 3, 1)
        t = F.gelu(self.lin(self.ln(t))).permute(0, 3, 1, 2)
        x = x + t
        # ViT: tokens, class token via Expand + Concat, attention, Gather of the class token
        tok = x.flatten(2).transpose(1, 2)
        tok = torch.cat([self.cls.expand(tok.shape[0], -1, -1), tok], 1)
        q, k, v = self.attn(tok).split(8, dim=-1)
        a = torch.softmax(q @ k.transpose(-2, -1) / 8 ** 0.5, dim=-1)
        tok = tok + a @ v
        pooled = torch.cat([tok[:, 0], F.adaptive_avg_pool2d(x, 1).flatten(1)], 1)
        return self.head(pooled)


def test_export_patterns_against_torch():
    net = _Patterns().eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    buf = io.BytesIO()
    try:
        torch.onnx.export(net, torch.tensor(x), buf, opset_version=18, input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}}, dynamo=False)
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"torch.onnx.export unavailable: {exc}")
    m = onnx.load_from_string(buf.getvalue())
    m.ir_version = min(m.ir_version, 10)
    m = onnx.shape_inference.infer_shapes(m)
    gm = build_gradient_model(m, ["logits"])
    onnx.checker.check_model(gm)
    seed = np.random.default_rng(1).standard_normal((2, 5)).astype(np.float32)
    out = run(session(gm), {"image": x, seed_name("logits"): seed})
    xt = torch.tensor(x, requires_grad=True)
    y = net(xt)
    (y * torch.tensor(seed)).sum().backward()
    np.testing.assert_allclose(out["logits"], y.detach().numpy(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(out[grad_name("image")], xt.grad.numpy(), rtol=1e-3, atol=1e-4)
