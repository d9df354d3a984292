"""The seed's step in ONNX equals the numpy step (scipy blur, np.percentile); the Lucid pieces'
backward passes equal PyTorch autograd or their adjoint identity."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprobe.model import ProbeModel
from onnxprobe.optimize import Optimizer, get_preset, objectives
from onnxprobe.optimize import lucid
from tests.conftest import make_conv_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("opt") / "tiny.onnx"
    make_conv_model(path, size=(16, 16))
    return ProbeModel.load(path, device="cpu")


@pytest.fixture(scope="module")
def tiny_gray_nhwc(tmp_path_factory):
    path = tmp_path_factory.mktemp("opt") / "gray.onnx"
    make_conv_model(path, channels=1, size=(12, 12), nhwc=True)
    return ProbeModel.load(path, device="cpu")


@pytest.mark.parametrize("preset", ["set1", "set2", "set3", "set4"])
@pytest.mark.parametrize("which", ["tiny", "tiny_gray_nhwc"])
def test_graph_step_matches_numpy_step(request, preset, which):
    model = request.getfixturevalue(which)
    obj = objectives.stack([objectives.neuron(model, "conv2", u) for u in range(4)])
    runs = {engine: Optimizer(model, obj, get_preset(preset, steps=25), seed=3, batch=4, engine=engine).run()
            for engine in ("graph", "numpy")}
    graph, ref = runs["graph"], runs["numpy"]
    scale = np.abs(ref.current_input()).max()
    np.testing.assert_allclose(graph.current_input(), ref.current_input(), atol=1e-4 * scale)
    np.testing.assert_allclose(graph.current_input(best=True), ref.current_input(best=True), atol=1e-4 * scale)
    np.testing.assert_allclose(np.array(graph.history), np.array(ref.history), rtol=1e-4, atol=1e-4)


def test_fft_image_backward_matches_torch():
    import torch
    rng = np.random.default_rng(0)
    for h, w in ((8, 8), (7, 9)):
        scale = lucid.spectrum_scale(h, w)
        params = rng.standard_normal((2, 3, h, w // 2 + 1, 2)).astype(np.float32)
        upstream = rng.standard_normal((2, 3, h, w)).astype(np.float32)
        p = torch.tensor(params, dtype=torch.float64, requires_grad=True)
        spectrum = torch.complex(p[..., 0], p[..., 1]) * torch.tensor(scale, dtype=torch.float64)
        image = torch.fft.irfft2(spectrum, s=(h, w)) / 4.0
        (image * torch.tensor(upstream, dtype=torch.float64)).sum().backward()
        np.testing.assert_allclose(lucid.fft_image(params, scale, (h, w)), image.detach().numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(lucid.fft_image_backward(upstream, scale, (h, w)), p.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_affine_sampler_backward_is_its_adjoint():
    rng = np.random.default_rng(1)
    preset = __import__("onnxprobe.optimize.presets", fromlist=["PRESETS"]).PRESETS["lucid"]
    matrices = np.stack([lucid.random_transform(preset, (20, 24), rng) for _ in range(3)])[:, :2]
    sampler = lucid.AffineSampler(matrices, (20, 24), (20, 24), fill=0.0)
    x = rng.standard_normal((3, 2, 20, 24))
    y = rng.standard_normal((3, 2, 20, 24))
    assert np.isclose((sampler.forward(x.astype(np.float32)) * y).sum(), (x * sampler.backward(y.astype(np.float32))).sum(), rtol=1e-4)


def test_identity_transform_reproduces_the_image():
    rng = np.random.default_rng(2)
    x = rng.random((1, 3, 10, 12)).astype(np.float32)
    sampler = lucid.AffineSampler(np.array([[[1.0, 0, 0], [0, 1.0, 0]]]), (10, 12), (10, 12), fill=0.5)
    np.testing.assert_allclose(sampler.forward(x), x, atol=1e-6)


def test_diversity_gradient_matches_torch(tiny):
    import torch
    rng = np.random.default_rng(3)
    act = rng.standard_normal((3, 4, 16, 16)).astype(np.float32)
    obj = objectives.diversity(tiny, "relu1")
    a = torch.tensor(act, dtype=torch.float64, requires_grad=True)
    flat = a.permute(0, 2, 3, 1).reshape(3, -1, 4)
    grams = flat.transpose(1, 2) @ flat
    grams = grams / grams.flatten(1).norm(dim=1).clamp_min(1e-10)[:, None, None]
    value = sum((grams[i] * grams[j]).sum() for i in range(3) for j in range(3) if i != j) / 3
    value.backward()
    assert np.isclose(obj.value({"relu1": act}).sum(), value.item(), rtol=1e-6)
    np.testing.assert_allclose(obj.seeds({"relu1": act}, 3)["relu1"], a.grad.numpy(), rtol=1e-4, atol=1e-7)


def test_objectives_compose_linearly(tiny):
    rng = np.random.default_rng(4)
    acts = {"conv2": rng.standard_normal((2, 6, 6, 6)).astype(np.float32),
            "logits": rng.standard_normal((2, 5)).astype(np.float32)}
    combined = 2.0 * objectives.neuron(tiny, "conv2", 1, (0, 5)) - objectives.channel(tiny, "conv2", 3) + objectives.logit(tiny, 4)
    expected = 2 * acts["conv2"][:, 1, 0, 5] - acts["conv2"][:, 3].mean(axis=(1, 2)) + acts["logits"][:, 4]
    np.testing.assert_allclose(combined.value(acts), expected, rtol=1e-5)


def test_affine_sampler_reads_fill_far_outside_the_source():
    """A map that lands far outside (coordinates beyond int32) reads only `fill`; its adjoint is 0."""
    x = np.random.default_rng(5).random((2, 3, 6, 7)).astype(np.float32)
    far = np.array([[[1.0, 0, 1e12], [0, 1.0, 0]], [[1.0, 0, -3.5], [0, 1.0, -1e11]]])
    sampler = lucid.AffineSampler(far, (6, 7), (6, 7), fill=0.25)
    np.testing.assert_array_equal(sampler.forward(x), np.full_like(x, 0.25))
    np.testing.assert_array_equal(sampler.backward(x), np.zeros_like(x))


def test_affine_sampler_matches_scipy_map_coordinates():
    """Forward against an independent bilinear reference (scipy.ndimage, float64, order 1, grid-constant
    fill outside), on Lucid's random transforms, which reach outside the source. The sampler's
    weights and products are float32 on values in 0..1: its error is a few float32 ulps of 1."""
    from scipy import ndimage

    rng = np.random.default_rng(4)
    preset = __import__("onnxprobe.optimize.presets", fromlist=["PRESETS"]).PRESETS["lucid"]
    size = (40, 36)
    matrices = np.stack([lucid.random_transform(preset, size, rng) for _ in range(3)])
    x = rng.random((3, 2, *size))
    got = lucid.AffineSampler(matrices[:, :2], size, size, fill=0.5).forward(x.astype(np.float32))
    ys, xs = np.meshgrid(np.arange(size[0]), np.arange(size[1]), indexing="ij")
    grid = np.stack([ys.ravel(), xs.ravel(), np.ones(ys.size)])
    for n in range(3):
        src = (matrices[n] @ grid)[:2]
        for c in range(2):
            want = ndimage.map_coordinates(x[n, c], src, order=1, mode="grid-constant", cval=0.5).reshape(size)
            np.testing.assert_allclose(got[n, c], want, atol=8 * np.finfo(np.float32).eps)


def test_step_graph_names_do_not_clash_with_the_model(tmp_path, tiny):
    """A model whose tensors carry the step graph's short names ("q", "lr", "value", ...) optimizes
    exactly like the same model under other names: the step's inputs and outputs live under their
    own prefix (stepgraph.io)."""
    import onnx

    from tests.conftest import make_conv_model

    proto = make_conv_model(size=(16, 16))
    renames = {"image": "q", "conv1": "lr", "relu1": "keep", "pool1": "update", "conv2": "value", "w1": "best_q"}
    for node in proto.graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    proto.graph.input[0].name = "q"
    proto.graph.initializer[0].name = "best_q"
    onnx.save(proto, str(tmp_path / "clash.onnx"))
    clash = ProbeModel.load(tmp_path / "clash.onnx", device="cpu")
    runs = [Optimizer(m, objectives.stack([objectives.neuron(m, layer, u) for u in range(2)]),
                      get_preset("set3", steps=12), seed=1, batch=2, engine="graph").run()
            for m, layer in ((tiny, "conv2"), (clash, "value"))]
    np.testing.assert_array_equal(runs[1].current_input(), runs[0].current_input())
    np.testing.assert_array_equal(np.array(runs[1].history), np.array(runs[0].history))
