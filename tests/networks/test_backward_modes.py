"""Deconvnet and guided-backprop graphs against PyTorch with the ReLU backward pass overridden.

The reference swaps a custom autograd Function in for every ReLU call (module or functional, via
``fixtures_torch.ReplayDecisions``, so in-place ReLUs cannot bite):
    gradient: G * (X > 0)    deconv: relu(G)    guided: relu(G) * (X > 0)
and max pooling keeps its switches in every mode, replayed from ONNX Runtime's MaxPool indices
(in deconv mode the ReLU mask no longer hides which zero of an all-zero window got the switch,
so tie-breaking must match, not only near-ties).

A deconv or guided map of a logit on a random-init network is far from smooth, which is what
makes it a strict test: a rule that applies the mode to a non-ReLU op, or forgets the switches,
changes many pixels.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import torch
import torchvision
import onnxruntime  # noqa: F401  (a test dependency: missing means fail, never skip)
from torch import nn  # noqa: E402

from tests.fixtures_torch import GradientReference, export_module, reference_gradient, relative_error, seeded  # noqa: E402
from tests.networks.test_torchvision_gradients import (  # noqa: E402
    ARCHS,
    BATCH,
    Arch,
    build,
    compare_in_all_configs,
    logit_seed,
)

pytestmark = pytest.mark.networks

BY_NAME = {a.name: a for a in ARCHS}
MODE_ARCHS = [BY_NAME["alexnet"], BY_NAME["vgg11"], BY_NAME["resnet18"], BY_NAME["googlenet"]]


@pytest.fixture(scope="module", params=MODE_ARCHS, ids=str)
def network(request):
    arch: Arch = request.param
    module, x = build(arch)
    path = export_module(module, x, name=f"grad-{arch.name}", keep_batchnorm=arch.keep_batchnorm)
    return arch, module, x, onnx.load(str(path))


@pytest.mark.parametrize("mode", ["deconv", "guided"])
def test_mode_matches_pytorch_with_overridden_relu(network, mode, error_table):
    arch, module, x, model = network
    with torch.no_grad():
        seed = logit_seed(module(x[:1]).shape[-1])
    reference = GradientReference(module, x, torch.from_numpy(seed), mode=mode)
    compare_in_all_configs(f"{mode} map", model, x, {"logits": seed}, reference, error_table, mode=mode)


def test_modes_differ_from_gradient():
    """Sanity check of the reference itself: the three modes give three different maps."""
    module, x = build(BY_NAME["resnet18"])
    model = onnx.load(str(export_module(module, x, name="grad-resnet18", keep_batchnorm=True)))
    with torch.no_grad():
        seed = torch.from_numpy(logit_seed(module(x[:1]).shape[-1]))
    maps = {m: reference_gradient(module, x, seed, model=model, mode=m)[1] for m in ("gradient", "deconv", "guided")}
    assert relative_error(maps["deconv"], maps["gradient"]) > 1e-2
    assert relative_error(maps["guided"], maps["gradient"]) > 1e-2
    assert relative_error(maps["guided"], maps["deconv"]) > 1e-2


class TinyTies(nn.Module):
    """ReLU then max pool with many all-zero windows (negative bias): in deconv mode the switch
    of an all-zero window decides where relu(G) lands, so tie-breaking is visible."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2)  # overlapping windows
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
        with torch.no_grad():
            self.conv.bias.fill_(-0.8)

    def forward(self, x):
        return self.head(self.conv2(self.pool(torch.relu(self.conv(x)))))


@pytest.mark.parametrize("mode", ["gradient", "deconv", "guided"])
def test_max_pool_ties_in_all_modes(mode, error_table):
    with seeded(4):
        module = TinyTies().eval()
        x = torch.randn(BATCH, 3, 17, 19)
    path = export_module(module, x, name="modes-tiny-ties")
    model = onnx.load(str(path))
    seed = logit_seed(10)
    reference = GradientReference(module, x, torch.from_numpy(seed), mode=mode)
    compare_in_all_configs(f"{mode} (ties)", model, x, {"logits": seed}, reference, error_table, mode=mode)
