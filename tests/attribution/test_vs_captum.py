"""Attribution maps against Captum on torchvision architectures exported at random init.

The reference is Captum on a float64 copy of the torch module, replaying the branches (ReLU masks,
max-pool switches, ...) that onnxprobe's own ONNX Runtime runs took (``fixtures_torch.
capture_decisions``): a path point or pixel within float32 rounding of a kink is a tie, not an
error. Every map must agree to max(1e-4, 4 x Captum's own float32 error with the same branches)
(``fixtures_torch.FLOOR`` and ``K`` say why), and the reference must not be all zeros.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pytest

import torch
import captum.attr as captum_attr
import torchvision
from onnxprobe.attribution import attribute  # noqa: E402
from onnxprobe.model import ProbeModel  # noqa: E402
from tests.fixtures_torch import (  # noqa: E402
    ReplayDecisions, calibrate_batchnorm, capture_decisions, export_module, judge, merge_runs, onnx_tensor_for_module,
    randomize_norm_affine, reference_gradient, seeded,
)

pytestmark = pytest.mark.networks
SIZE = 64


@dataclass
class Net:
    name: str
    module: torch.nn.Module  # the reference, ReLUs not in place (Captum's hooks need that)
    cam_module: torch.nn.Module  # the Grad-CAM layer inside `module`
    model: ProbeModel
    cam_tensor: str
    x: np.ndarray
    cam_path: str  # where cam_module sits in module


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
    return Net(name, reference, reference.get_submodule(path_to_cam), model, cam_tensor, x, path_to_cam)


def _target(net: Net) -> int:
    with torch.no_grad():
        return int(net.module(torch.from_numpy(net.x)).argmax())


def _captum(net: Net, method: str, target: int, dtype=torch.float32, replay: ReplayDecisions | None = None) -> np.ndarray:
    module = net.module if dtype == torch.float32 and replay is None else copy.deepcopy(net.module).to(dtype)
    if replay is not None:
        with replay, replay.only_inside(module):
            return _captum_on(module, net, method, target, dtype)
    return _captum_on(module, net, method, target, dtype)


def _captum_on(module, net: Net, method: str, target: int, dtype) -> np.ndarray:
    cam_module = module.get_submodule(net.cam_path)
    x = torch.from_numpy(net.x).to(dtype).requires_grad_(True)
    a = captum_attr
    if method == "saliency":
        out = a.Saliency(module).attribute(x, target=target, abs=True)
    elif method == "gradient_x_input":
        out = a.InputXGradient(module).attribute(x, target=target)
    elif method == "guided_backprop":
        out = a.GuidedBackprop(module).attribute(x, target=target)
    elif method == "deconvnet":
        out = a.Deconvolution(module).attribute(x, target=target)
    elif method == "gradcam_layer":
        out = a.LayerGradCam(module, cam_module).attribute(x, target=target, relu_attributions=True)[0, 0]
    elif method == "gradcam":
        cam = a.LayerGradCam(module, cam_module).attribute(x, target=target, relu_attributions=True)
        out = a.LayerAttribution.interpolate(cam, (SIZE, SIZE), interpolate_mode="bilinear")[0, 0]
    elif method == "guided_gradcam":
        out = a.GuidedGradCam(module, cam_module).attribute(x, target=target)
    elif method.startswith("ig_"):
        rule, steps = method[3:].rsplit("_", 1)
        out = a.IntegratedGradients(module).attribute(x, baselines=0.0, target=target, n_steps=int(steps), method=rule)
    else:
        raise AssertionError(method)
    out = out.detach().numpy()
    return out[0] if out.ndim == 4 else out


def compare_with_captum(net: Net, case: str, method: str, target: int, **options):
    """Ours (its decisions captured) against float64 Captum replaying them; returns the record."""
    with capture_decisions(net.model) as runs:
        ours = attribute(net.model, net.x, method, **options)
    assert runs, f"{method} made no gradient run to read decisions from"
    # integrated gradients: onnxprobe runs the path in chunks, Captum in one forward pass
    decisions = merge_runs(net.model.proto, runs, along_batch=case.startswith("ig_"))
    refs = {}
    for dtype in (torch.float64, torch.float32):
        replay = ReplayDecisions(decisions)
        refs[dtype] = _captum(net, case, target, dtype, replay)
        replay.verify_complete()
        if dtype == torch.float64:
            replay64 = replay
    return judge(f"{net.name} {case}", ours, refs[torch.float64], refs[torch.float32], replay64)


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
    # default target of `attribute`: the predicted class, which is `target`
    compare_with_captum(net, case, method, target, **options).check()


@pytest.mark.parametrize("net", ["resnet18"], indirect=True)  # its last spatial layer is layer4
def test_default_cam_layer_is_the_last_spatial_layer(net):
    compare_with_captum(net, "gradcam", "gradcam", _target(net)).check()


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


def _occlusion_reference(net: Net, target: int, window, stride, dtype) -> np.ndarray:
    """Each pixel: the mean drop of the logit over the windows (zeroed, all channels) covering it."""
    module = copy.deepcopy(net.module).to(dtype)
    with torch.no_grad():
        reference = float(module(torch.from_numpy(net.x).to(dtype))[0, target])
    total = np.zeros((SIZE, SIZE))
    count = np.zeros((SIZE, SIZE))
    ys = sorted(set(range(0, SIZE - window[0] + 1, stride[0])) | {SIZE - window[0]})
    xs = sorted(set(range(0, SIZE - window[1] + 1, stride[1])) | {SIZE - window[1]})
    boxes = [(y, x) for y in ys for x in xs]
    occluded = np.repeat(net.x, len(boxes), axis=0)
    for i, (y, x) in enumerate(boxes):
        occluded[i, :, y:y + window[0], x:x + window[1]] = 0
    with torch.no_grad(), ReplayDecisions():  # float64 grouped convolutions the fast way
        drops = reference - module(torch.from_numpy(occluded).to(dtype))[:, target].numpy()
    for (y, x), drop in zip(boxes, drops):
        total[y:y + window[0], x:x + window[1]] += drop
        count[y:y + window[0], x:x + window[1]] += 1
    assert count.min() >= 1
    return total / count


@pytest.mark.parametrize("net", ["resnet18"], indirect=True)  # one suffices for a forward-only method
def test_occlusion_against_brute_force(net):
    target = _target(net)
    window, stride = (12, 20), (8, 10)
    ours = attribute(net.model, net.x, "occlusion", window=window, stride=stride, batch_size=7)
    ref64, ref32 = (_occlusion_reference(net, target, window, stride, dt) for dt in (torch.float64, torch.float32))
    judge("occlusion", ours, ref64, ref32).check()


@pytest.mark.parametrize("net", ["resnet18"], indirect=True)  # the gradients themselves are checked above
def test_smoothgrad_is_the_mean_gradient_over_the_documented_noise(net):
    target = _target(net)
    samples, level = 6, 0.1
    with capture_decisions(net.model) as runs:
        ours = attribute(net.model, net.x, "smoothgrad", samples=samples, noise_level=level, seed=5, batch_size=4)
    decisions = merge_runs(net.model.proto, runs, along_batch=True)
    sigma = level * float(net.x.max() - net.x.min())
    noise = np.random.default_rng(5).normal(0.0, sigma, (samples, *net.x.shape[1:])).astype(np.float32)
    seed = torch.zeros(samples, 1000)
    seed[:, target] = 1.0 / samples  # the mean over the samples
    refs = {}
    for dtype in (torch.float64, torch.float32):
        _, g, replay = reference_gradient(net.module, torch.from_numpy(net.x + noise), seed, decisions=decisions, dtype=dtype)
        refs[dtype] = (g.sum(0), replay)
    judge("smoothgrad", ours, refs[torch.float64][0], refs[torch.float32][0], refs[torch.float64][1]).check()
