"""Receptive fields from the graph against the empirical ones: the bounding box of the support of
the input gradient (torch autograd, independent of onnxprobe) of units at a layer, on torchvision
architectures at random init with different geometry (large strided kernels, pooling with and
without ceil mode, residual adds, concatenated branches, depthwise convs).

The support of one unit's gradient is a subset of its box (a ReLU or a max-pool switch can cut a
path); seeding every channel at one location and taking the union over a few random inputs makes
every path live, so the bounding box equals the analytic box clipped to the image."""

from __future__ import annotations

import numpy as np
import pytest

import torch
import torchvision
from tests.fixtures_torch import export_module, onnx_tensor_for_module, seeded  # noqa: E402

SIZE = 96
CASES = [  # (architecture, path of the submodule whose output is the layer); the layers are all in the
    # convolutional trunk, so networks with a `features` trunk export only that (their adaptive
    # pooling cannot be exported at this input size)
    ("alexnet", "features.4"),  # 11x11 stride 4, max-pool 3/2, 5x5 conv
    ("vgg11", "features.10"),  # 3x3 stacks and 2x2 pools
    ("resnet18", "layer2"),  # 7x7/2, max-pool with padding, residual adds with 1x1/2 shortcuts
    ("googlenet", "inception3a"),  # ceil-mode pools, concat of 1x1 / 3x3 / 5x5(3x3) / pool branches
    ("mobilenet_v2", "features.4"),  # depthwise convs, inverted residuals
    ("squeezenet1_0", "features.4"),  # fire modules: concat of 1x1 and 3x3 expands, ceil-mode pools
]


class _Stop(Exception):
    pass


def _build(name):
    with seeded(0):
        kwargs = {"init_weights": True, "aux_logits": False} if name == "googlenet" else {}
        model = torchvision.models.get_model(name, weights=None, **kwargs).eval()
    return getattr(model, "features", model)


def _layer_output(module, submodule, x):
    captured = {}

    def hook(_, __, output):
        captured["y"] = output
        raise _Stop

    handle = submodule.register_forward_hook(hook)
    try:
        module(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    return captured["y"]


def _support_box(module, submodule, location, inputs):
    x = inputs.clone().requires_grad_(True)
    y = _layer_output(module, submodule, x)
    seed = torch.zeros_like(y)
    seed[:, :, location[0], location[1]] = 1.0
    (grad,) = torch.autograd.grad((y * seed).sum(), x)
    support = grad.abs().sum(dim=(0, 1)).numpy() > 0
    rows, cols = np.nonzero(support)
    return (int(rows.min()), int(rows.max()) + 1), (int(cols.min()), int(cols.max()) + 1)


@pytest.mark.networks
@pytest.mark.parametrize("arch,path", CASES, ids=[c[0] for c in CASES])
def test_receptive_field_matches_gradient_support(arch, path):
    from onnxprobe.model import ProbeModel

    module = _build(arch)
    submodule = module.get_submodule(path.removeprefix("features."))
    example = torch.zeros(1, 3, SIZE, SIZE)
    onnx_path = export_module(module, example, name=f"maxact-rf-{arch}")
    model = ProbeModel.load(onnx_path, device="cpu")
    with seeded(1):
        inputs = torch.randn(4, 3, SIZE, SIZE, dtype=torch.float64)
    module = module.double()
    name = onnx_tensor_for_module(model.proto, module.float(), submodule, inputs[:1].float())
    module = module.double()
    layer = model.layer(name)
    rf = layer.receptive_field
    assert rf is not None, f"{arch} {path} ({name}): no receptive field"
    h, w = layer.spatial_shape
    for location in [(h // 2, w // 2), (0, 0), (1, w // 3)]:  # the box starts inside or is clipped at 0
        empirical = _support_box(module, submodule, location, inputs)
        assert rf.clipped_box(location, (SIZE, SIZE)) == empirical, (arch, name, location, rf)
    # At the far edges the box clipped to the image can reach pixels that no unit of an earlier
    # layer reads (a strided layer whose windows do not tile the image drops its last rows), so
    # there the support is a subset that starts where the box starts.
    location = (h - 1, w - 1)
    (y0, y1), (x0, x1) = _support_box(module, submodule, location, inputs)
    (by0, by1), (bx0, bx1) = rf.clipped_box(location, (SIZE, SIZE))
    assert (y0, x0) == (by0, bx0) and y1 <= by1 and x1 <= bx1, (arch, name, location, rf)
