"""Attribution maps against Captum on torchvision architectures exported at random init.

The reference is Captum on the float32 torch module (float64 convolutions on the CPU are ~100x
slower); onnxprobe runs the float32 ONNX export in ONNX Runtime. Every map must agree to a
relative error (max |diff| / max |ref|) of 1e-4.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pytest

torch = pytest.importorskip("torch")
captum_attr = pytest.importorskip("captum.attr")
torchvision = pytest.importorskip("torchvision")

from onnxprobe.attribution import attribute  # noqa: E402
from onnxprobe.model import ProbeModel  # noqa: E402
from tests.fixtures_torch import (  # noqa: E402
    calibrate_batchnorm, export_module, onnx_tensor_for_module, randomize_norm_affine, relative_error, seeded,
)

pytestmark = pytest.mark.networks
SIZE = 64
TOLERANCE = 1e-4


@dataclass
class Net:
    name: str
    module: torch.nn.Module  # the reference, ReLUs not in place (Captum's hooks need that)
    cam_module: torch.nn.Module  # the Grad-CAM layer inside `module`
    model: ProbeModel
    cam_tensor: str
    x: np.ndarray


def _build(name: str):
    with seeded(0):
        module = torchvision.models.get_model(name, weights=None)
    module = calibrate_batchnorm(randomize_norm_affine(module), torch.zeros(1, 3, SIZE, SIZE))
    cam_module = {"resnet18": lambda m: m.layer4, "squeezenet1_1": lambda m: m.features,
                  "mnasnet0_5": lambda m: m.layers}[name](module)
    return module, cam_module


NETS = ("resnet18", "squeezenet1_1", "mnasnet0_5")


@pytest.fixture(scope="module", params=NETS)
def net(request) -> Net:
    name = request.param
    module, cam_module = _build(name)
    x = np.random.default_rng(3).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    path = export_module(module, torch.zeros(1, 3, SIZE, SIZE), name=name)
    model = ProbeModel.load(path, device="cpu")
    cam_tensor = onnx_tensor_for_module(model.proto, module, cam_module, torch.from_numpy(x))
    reference = copy.deepcopy(module).eval()
    for m in reference.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = False
        for p in m.parameters(recurse=False):
            p.requires_grad_(False)
    path_to_cam = {n for n, m in module.named_modules() if m is cam_module}.pop()
    return Net(name, reference, reference.get_submodule(path_to_cam), model, cam_tensor, x)


def _target(net: Net) -> int:
    with torch.no_grad():
        return int(net.module(torch.from_numpy(net.x)).argmax())


def _captum(net: Net, method: str, target: int) -> np.ndarray:
    x = torch.from_numpy(net.x).requires_grad_(True)
    a = captum_attr
    if method == "saliency":
        out = a.Saliency(net.module).attribute(x, target=target, abs=True)
    elif method == "gradient_x_input":
        out = a.InputXGradient(net.module).attribute(x, target=target)
    elif method == "guided_backprop":
        out = a.GuidedBackprop(net.module).attribute(x, target=target)
    elif method == "deconvnet":
        out = a.Deconvolution(net.module).attribute(x, target=target)
    elif method == "gradcam_layer":
        out = a.LayerGradCam(net.module, net.cam_module).attribute(x, target=target, relu_attributions=True)[0, 0]
    elif method == "gradcam":
        cam = a.LayerGradCam(net.module, net.cam_module).attribute(x, target=target, relu_attributions=True)
        out = a.LayerAttribution.interpolate(cam, (SIZE, SIZE), interpolate_mode="bilinear")[0, 0]
    elif method == "guided_gradcam":
        out = a.GuidedGradCam(net.module, net.cam_module).attribute(x, target=target)
    elif method.startswith("ig_"):
        rule, steps = method[3:].rsplit("_", 1)
        out = a.IntegratedGradients(net.module).attribute(x, baselines=0.0, target=target, n_steps=int(steps), method=rule)
    else:
        raise AssertionError(method)
    out = out.detach().numpy()
    return out[0] if out.ndim == 4 else out


CASES = [
    # (name in this table, onnxprobe method, its options)
    ("saliency", "saliency", {}),
    ("gradient_x_input", "gradient_x_input", {}),
    ("guided_backprop", "guided_backprop", {}),
    ("deconvnet", "deconvnet", {}),
    ("gradcam_layer", "gradcam", {"interpolation": None}),
    ("gradcam", "gradcam", {}),
    ("guided_gradcam", "guided_gradcam", {}),
    # The input gradient of a ReLU network is piecewise constant: at a path point within float32
    # rounding of a kink, two correct float32 implementations differ by a finite jump. With this
    # input, 64x64 and these step counts no point of any of the three paths is that close (the
    # counts 6, 8, 12 and 13 of Gauss-Legendre each hit one on ResNet-18 or MNASNet).
    ("ig_gausslegendre_11", "integrated_gradients", {"steps": 11, "rule": "gausslegendre", "batch_size": 5}),
    ("ig_riemann_trapezoid_9", "integrated_gradients", {"steps": 9, "rule": "riemann_trapezoid"}),
]


@pytest.mark.parametrize("case,method,options", CASES, ids=[c[0] for c in CASES])
def test_matches_captum(net, case, method, options):
    target = _target(net)
    if method in ("gradcam", "guided_gradcam"):
        options = {**options, "cam_layer": net.cam_tensor}
    ours = attribute(net.model, net.x, method, **options)  # default target: the predicted class
    ref = _captum(net, case, target)
    assert np.abs(ref).max() > 0, "degenerate reference"
    assert relative_error(ours, ref) <= TOLERANCE


@pytest.mark.parametrize("net", ["resnet18"], indirect=True)  # its last spatial layer is layer4
def test_default_cam_layer_is_the_last_spatial_layer(net):
    ours = attribute(net.model, net.x, "gradcam")
    assert relative_error(ours, _captum(net, "gradcam", _target(net))) <= TOLERANCE


def _objective_value(net: Net, x: np.ndarray, target: int) -> float:
    with torch.no_grad():
        return float(net.module(torch.from_numpy(x))[0, target])


# Checked on SqueezeNet (and on a small network in test_cli.py): the path integrands of the
# BatchNorm networks at random init are spiky near the baseline, MNASNet is still 40% off at 256
# steps (Captum's convergence delta says the same).
@pytest.mark.parametrize("net", ["squeezenet1_1"], indirect=True)
@pytest.mark.parametrize("baseline", ["zero", "black"])
def test_integrated_gradients_completeness(net, baseline):
    """Attributions sum to f(x) - f(baseline) up to the quadrature error, which shrinks with the steps."""
    from onnxprobe.attribution.methods import ig_baseline

    target = _target(net)
    base = ig_baseline(net.model, net.x, baseline)
    gap = _objective_value(net, net.x, target) - _objective_value(net, base, target)
    errors = []
    for steps in (2, 64):
        total = attribute(net.model, net.x, "integrated_gradients", target=target, steps=steps,
                          rule="riemann_middle", baseline=baseline, batch_size=32).sum(dtype=np.float64)
        errors.append(abs(total - gap))
    assert errors[1] <= 0.01 * abs(gap)
    assert errors[1] <= errors[0]


@pytest.mark.parametrize("net", ["resnet18"], indirect=True)  # one suffices for a forward-only method
def test_occlusion_against_brute_force(net):
    """Each pixel: the mean drop of the logit over the windows (zeroed, all channels) covering it."""
    target = _target(net)
    window, stride = (12, 20), (8, 10)
    ours = attribute(net.model, net.x, "occlusion", window=window, stride=stride, batch_size=7)
    reference = _objective_value(net, net.x, target)
    total = np.zeros((SIZE, SIZE))
    count = np.zeros((SIZE, SIZE))
    ys = sorted(set(range(0, SIZE - window[0] + 1, stride[0])) | {SIZE - window[0]})
    xs = sorted(set(range(0, SIZE - window[1] + 1, stride[1])) | {SIZE - window[1]})
    boxes = [(y, x) for y in ys for x in xs]
    occluded = np.repeat(net.x, len(boxes), axis=0)
    for i, (y, x) in enumerate(boxes):
        occluded[i, :, y:y + window[0], x:x + window[1]] = 0
    with torch.no_grad():
        drops = reference - net.module(torch.from_numpy(occluded))[:, target].numpy()
    for (y, x), drop in zip(boxes, drops):
        total[y:y + window[0], x:x + window[1]] += drop
        count[y:y + window[0], x:x + window[1]] += 1
    assert count.min() >= 1
    assert relative_error(ours, total / count) <= TOLERANCE


@pytest.mark.parametrize("net", ["resnet18"], indirect=True)  # the gradients themselves are checked above
def test_smoothgrad_is_the_mean_gradient_over_the_documented_noise(net):
    target = _target(net)
    samples, level = 6, 0.1
    ours = attribute(net.model, net.x, "smoothgrad", samples=samples, noise_level=level, seed=5, batch_size=4)
    sigma = level * float(net.x.max() - net.x.min())
    noise = np.random.default_rng(5).normal(0.0, sigma, (samples, *net.x.shape[1:])).astype(np.float32)
    noisy = torch.from_numpy(net.x + noise).requires_grad_(True)
    (grad,) = torch.autograd.grad(net.module(noisy)[:, target].sum(), noisy)
    assert relative_error(ours, grad.mean(0).numpy()) <= TOLERANCE
