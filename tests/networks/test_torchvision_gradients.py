"""Input gradients of whole networks: onnxprobe's gradient graph in ONNX Runtime vs PyTorch autograd.

Every architecture is built at random init (nothing is downloaded), exported with
``tests.fixtures_torch.export_module`` and differentiated with ``build_gradient_model``. The
objective is one logit per batch row (a batch of 2, a different class in each row), so one graph
run checks two seeds and that batch rows do not leak into each other.

The reference is float64 PyTorch autograd that replays the branches (ReLU, Clip, LeakyReLU,
PReLU, HardSwish, HardSigmoid, max-pool switches) that the ONNX Runtime run under test took in
float32 (``fixtures_torch``: the section on decisions says why). Error measure: max|ours - ref| /
max|ref| <= max(1e-4, 4 x PyTorch's own float32 error), derived in ``fixtures_torch`` (FLOOR, K);
every comparison runs in two ONNX Runtime configurations (ORT_CONFIGS).

Input sizes are the smallest each architecture accepts sensibly: AlexNet and VGG need 224
(their AdaptiveAvgPool2d to 6x6 / 7x7 exports only when the feature map is a multiple of that),
Inception-v3 needs >= 75, the rest run at 64.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import pytest

import torch
import torchvision
import onnxruntime as ort
from torch import nn  # noqa: E402
from torchvision import models as tvm  # noqa: E402

from onnxprobe.autodiff import build_gradient_model, grad_name, seed_name  # noqa: E402
from onnxprobe.runtime.weights import session_options  # noqa: E402
from tests.fixtures_torch import (  # noqa: E402
    Comparison,
    GradientReference,
    capture_decisions,
    calibrate_batchnorm,
    collect_decisions,
    decision_tensors,
    export_module,
    merge_runs,
    onnx_tensor_for_module,
    randomize_norm_affine,
    relative_error,
    seeded,
)

pytestmark = pytest.mark.networks

BATCH = 2
CLASSES = (17, 503)  # one logit per batch row


# ---- the table of architectures ----------------------------------------------------------------

def _vit() -> nn.Module:
    # ViT-B/16 topology (patch 16, class token, pre-norm encoder blocks, GELU MLP) shrunk to stay
    # fast: 2 layers, hidden 64, 4 heads, 32x32 images (4 patches + class token). torchvision's
    # vit_b_16 itself does not export with the TorchScript exporter in eval mode
    # (aten::_native_multi_head_attention has no symbolic); see _no_fastpath below.
    from torchvision.models.vision_transformer import VisionTransformer

    vit = VisionTransformer(image_size=32, patch_size=16, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128)
    with torch.no_grad():  # torchvision zero-initialises the head and the class token
        nn.init.normal_(vit.heads.head.weight, std=0.2)
        nn.init.normal_(vit.class_token, std=0.5)
    return vit


@dataclass(frozen=True)
class Arch:
    name: str
    build: Callable[[], nn.Module]
    size: int = 64
    keep_batchnorm: bool = False  # keep BatchNormalization nodes instead of folding them into Conv

    def __str__(self) -> str:
        return self.name


ARCHS = [
    Arch("alexnet", lambda: tvm.alexnet(weights=None), size=224),
    Arch("vgg11", lambda: tvm.vgg11(weights=None), size=224),
    Arch("resnet18", lambda: tvm.resnet18(weights=None), keep_batchnorm=True),
    Arch("resnet50", lambda: tvm.resnet50(weights=None)),
    Arch("googlenet", lambda: tvm.googlenet(weights=None, aux_logits=False, init_weights=True)),
    # transform_input=True re-normalises the image channel by channel: Gather on the input itself
    Arch("inception_v3", lambda: tvm.inception_v3(weights=None, aux_logits=False, init_weights=True,
                                                  transform_input=True), size=75),
    Arch("squeezenet1_1", lambda: tvm.squeezenet1_1(weights=None)),
    Arch("densenet121", lambda: tvm.densenet121(weights=None)),  # pre-activation BN stays unfolded
    Arch("mobilenet_v2", lambda: tvm.mobilenet_v2(weights=None), keep_batchnorm=True),
    Arch("mobilenet_v3_small", lambda: tvm.mobilenet_v3_small(weights=None)),
    Arch("shufflenet_v2_x1_0", lambda: tvm.shufflenet_v2_x1_0(weights=None)),
    Arch("mnasnet0_5", lambda: tvm.mnasnet0_5(weights=None)),
    Arch("efficientnet_b0", lambda: tvm.efficientnet_b0(weights=None), keep_batchnorm=True),
    Arch("regnet_y_400mf", lambda: tvm.regnet_y_400mf(weights=None)),
    Arch("convnext_tiny", lambda: tvm.convnext_tiny(weights=None)),
    Arch("vit_tiny_patch16", _vit, size=32),
]


@pytest.fixture(autouse=True)
def _no_fastpath():
    """nn.MultiheadAttention's inference fast path (aten::_native_multi_head_attention) neither
    exports nor is differentiable by the replay; the slow path computes the same function."""
    old = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    yield
    torch.backends.mha.set_fastpath_enabled(old)


def build(arch: Arch, seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    with seeded(seed):
        module = arch.build()
        x = torch.randn(BATCH, 3, arch.size, arch.size)
    randomize_norm_affine(module)
    calibrate_batchnorm(module, x)
    for m in module.modules():  # the reference differentiates a deep copy; in-place ReLU is fine
        if isinstance(m, nn.ReLU):
            m.inplace = False
    return module.eval(), x


# ---- running ours ------------------------------------------------------------------------------

def input_name(model: onnx.ModelProto) -> str:
    inits = {i.name for i in model.graph.initializer}
    (name,) = [i.name for i in model.graph.input if i.name not in inits]
    return name


# Two ONNX Runtime configurations: the library's own (every graph optimization: fused and NCHWc
# kernels; 2 threads) and a plain one (basic optimizations, 1 thread). They round differently and
# take near-ties differently, so a verdict that holds in one only by the luck of one machine's
# kernels fails in the other; each is compared with the reference that replays its own decisions.
ORT_CONFIGS = {
    "ort-all-2t": (ort.GraphOptimizationLevel.ORT_ENABLE_ALL, 2),
    "ort-basic-1t": (ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, 1),
}


def ours(model: onnx.ModelProto, x: np.ndarray, seeds: dict[str, np.ndarray], mode: str = "gradient",
         wrt: list[str] | None = None, config: str = "ort-all-2t") -> dict[str, np.ndarray]:
    """Build the gradient graph, run it on the CPU provider; returns every output by name, and
    the decisions that run took under "decisions" (see fixtures_torch.decision_tensors)."""
    extra = list(dict.fromkeys(name for _, name in decision_tensors(model)))
    gm = build_gradient_model(model, targets=list(seeds), wrt=wrt, mode=mode, extra_outputs=extra)
    assert gm.ir_version <= 13, f"gradient model has IR version {gm.ir_version}; ONNX Runtime 1.31 reads <= 13"
    level, threads = ORT_CONFIGS[config]
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    options.intra_op_num_threads = threads
    session_options(gm, options)  # a loaded model's weights stay in its file (onnxprobe.runtime.weights)
    sess = ort.InferenceSession(gm.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feeds = {input_name(model): np.ascontiguousarray(x, dtype=np.float32)}
    feeds.update({seed_name(t): np.ascontiguousarray(s, dtype=np.float32) for t, s in seeds.items()})
    names = [o.name for o in sess.get_outputs()]
    out = dict(zip(names, sess.run(None, feeds)))
    out["decisions"] = collect_decisions(model, out)
    return out


def compare_in_all_configs(what: str, model: onnx.ModelProto, x: torch.Tensor, seeds: dict[str, np.ndarray],
                           reference: GradientReference, error_table, *, wrt: str | None = None,
                           mode: str = "gradient", forward: str | None = None) -> list[Comparison]:
    """Run ours in every ORT configuration, compare each with the float64 reference replaying that
    run's decisions, record and check. `forward`: also check that target's activation (1e-3)."""
    key = grad_name(wrt or input_name(model))
    records = []
    for config in ORT_CONFIGS:
        out = ours(model, x.numpy(), seeds, mode=mode, wrt=[wrt] if wrt else None, config=config)
        if forward is not None:
            y64 = reference.get(out["decisions"])[0]
            fwd = relative_error(out[forward], y64)
            error_table(f"forward [{config}]", fwd, 1e-3)
            assert fwd <= 1e-3, f"forward pass differs from PyTorch already: {fwd:.2e}"
        c = reference.compare(f"{what} [{config}]", out[key], out["decisions"])
        error_table(c)
        records.append(c)
    for c in records:
        c.check()
    return records


def logit_seed(n_classes: int) -> np.ndarray:
    seed = np.zeros((BATCH, n_classes), np.float32)
    for row, cls in enumerate(CLASSES):
        seed[row, cls % n_classes] = 1.0
    return seed


def check_logit_gradient(module: nn.Module, x: torch.Tensor, path, error_table, output_name: str = "logits") -> list[Comparison]:
    model = onnx.load(str(path))
    with torch.no_grad():
        n_classes = module(x[:1]).shape[-1]
    seed = logit_seed(n_classes)[:x.shape[0]]
    reference = GradientReference(module, x, torch.from_numpy(seed))
    return compare_in_all_configs("input gradient", model, x, {output_name: seed}, reference, error_table,
                                  forward=output_name)


# ---- torchvision architectures -----------------------------------------------------------------

@pytest.mark.parametrize("arch", ARCHS, ids=str)
def test_logit_gradient_matches_pytorch(arch: Arch, error_table):
    module, x = build(arch)
    path = export_module(module, x, name=f"grad-{arch.name}", keep_batchnorm=arch.keep_batchnorm)
    check_logit_gradient(module, x, path, error_table)


# PyTorch's default exporter (torch.onnx.export(model, (x,), f): opset 20, the batch fixed at 1,
# weights in f.data), one network of each family: onnxprobe makes the batch dynamic and proves it
# at load, and the gradient of a batch of 2 is PyTorch's
DEFAULT_EXPORTER_FAMILIES = ["resnet18", "mobilenet_v3_small", "efficientnet_b0", "regnet_y_400mf", "convnext_tiny",
                             "vit_tiny_patch16"]


@pytest.mark.parametrize("arch", [a for a in ARCHS if a.name in DEFAULT_EXPORTER_FAMILIES], ids=str)
def test_default_exporter_batch_and_gradient_match_pytorch(arch: Arch, error_table):
    from onnxprobe.model import ProbeModel

    module, x = build(arch)
    path = export_module(module, x[:1], name=f"grad-{arch.name}", exporter="dynamo")
    model = ProbeModel.load(path, device="cpu")
    assert model.batch.kind == "made dynamic", model.batch.describe()
    (output,) = model.output_names
    with torch.no_grad():
        n_classes = module(x[:1]).shape[-1]
    seed = logit_seed(n_classes)
    reference = GradientReference(module, x, torch.from_numpy(seed))
    compare_in_all_configs("input gradient", model.proto, x, {output: seed}, reference, error_table, forward=output)
    # the model's own gradient graph, built on its load-time facts as every command builds it, at the
    # same batch of 2: a tensor whose batch the rewrite moved off axis 0 (ViT's [tokens, N, C]) must not
    # keep its batch-1 dim as a static 1 there (unbroadcast summed the batch away: IG and the atlas failed)
    with capture_decisions(model) as runs:
        own = model.gradient_session([output]).run(x.numpy(), {output: seed})
    c = reference.compare("input gradient, the model's own graph", own["grad"],
                          merge_runs(model.proto, runs, along_batch=False))
    error_table(c)
    c.check()


# ---- Caffe-era and converter-style models ------------------------------------------------------

class _LRNExport(torch.autograd.Function):
    """Exports as one ONNX LRN node (the TorchScript exporter otherwise decomposes
    nn.LocalResponseNorm into Pow / Pad / AveragePool ops); only used while exporting."""

    @staticmethod
    def forward(ctx, x, size, alpha, beta, k):
        return nn.functional.local_response_norm(x, size, alpha, beta, k)

    @staticmethod
    def symbolic(g, x, size, alpha, beta, k):
        return g.op("LRN", x, size_i=size, alpha_f=alpha, beta_f=beta, bias_f=k)


class LRN(nn.LocalResponseNorm):
    def forward(self, x):
        if torch.onnx.is_in_onnx_export():
            return _LRNExport.apply(x, self.size, self.alpha, self.beta, self.k)
        return super().forward(x)


class CaffeAlexNet(nn.Module):
    """The original (Caffe / BVLC) AlexNet layout: LRN after conv1 and conv2, grouped conv2/4/5,
    max pool k3 s2 with overlapping windows, no padding on conv1. Narrower fully connected layers
    and a 99x99 input keep it fast; the op mix is the point."""

    def __init__(self, alpha: float = 1e-4, classes: int = 1000):
        super().__init__()
        lrn = dict(size=5, alpha=alpha, beta=0.75, k=1.0)
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), LRN(**lrn), nn.MaxPool2d(3, 2),
            nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(), LRN(**lrn), nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(256 * 2 * 2, 512), nn.ReLU(), nn.Dropout(),
            nn.Linear(512, 512), nn.ReLU(), nn.Dropout(), nn.Linear(512, classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


# alpha 1e-4 is Caffe's value (LRN is then almost a scaling); 0.05 makes the cross-channel term of
# the LRN backward rule carry weight in the result.
@pytest.mark.parametrize("alpha", [1e-4, 0.05], ids=["caffe_alpha", "strong_alpha"])
def test_caffe_alexnet_with_lrn(alpha, error_table):
    with seeded(1):
        module = CaffeAlexNet(alpha).eval()
        x = 4 * torch.randn(BATCH, 3, 99, 99)  # larger activations, so LRN is not close to identity
    path = export_module(module, x, name=f"grad-caffe-alexnet-{alpha:g}")
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "LRN" in ops
    check_logit_gradient(module, x, path, error_table)


class NHWCNet(nn.Module):
    """A TF-style model: NHWC image in, transposed to NCHW inside the graph."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
        )

    def forward(self, x):
        return self.body(x.permute(0, 3, 1, 2))


def test_nhwc_input(error_table):
    with seeded(2):
        module = NHWCNet()
        x = torch.randn(BATCH, 33, 35, 3)  # odd, non-square sizes
    randomize_norm_affine(module)
    calibrate_batchnorm(module, x)
    path = export_module(module, x, name="grad-nhwc", keep_batchnorm=True)
    model = onnx.load(str(path))
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1:] == [33, 35, 3], "the ONNX input should be NHWC"
    check_logit_gradient(module, x, path, error_table)


class WithSoftmax(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x):
        return self.softmax(self.body(x))


@pytest.fixture(scope="module")
def softmax_net():
    module, x = build(Arch("squeezenet1_1", lambda: tvm.squeezenet1_1(weights=None, num_classes=20)))
    net = WithSoftmax(module).eval()
    path = export_module(net, x, name="grad-squeezenet-softmax", output_names=["prob"])
    return net, x, onnx.load(str(path))


def test_objective_on_pre_softmax_logits(softmax_net, error_table):
    from onnxprobe.objectives import pre_softmax_tensor
    from onnxprobe.graph.facts import GraphFacts

    net, x, model = softmax_net
    logits = pre_softmax_tensor(GraphFacts(model, infer_shapes=False), "prob")
    assert logits != "prob", "pre_softmax_tensor did not find the Softmax"
    seed = logit_seed(20)
    reference = GradientReference(net.body, x, torch.from_numpy(seed))
    compare_in_all_configs("pre-softmax gradient", model, x, {logits: seed}, reference, error_table, forward=logits)


def test_gradient_through_softmax(softmax_net, error_table):
    net, x, model = softmax_net
    # a seed on every class: a one-hot seed through Softmax is dominated by the other classes
    seed = np.random.default_rng(3).standard_normal((BATCH, 20)).astype(np.float32)
    reference = GradientReference(net, x, torch.from_numpy(seed))
    compare_in_all_configs("softmax gradient", model, x, {"prob": seed}, reference, error_table)


# ---- intermediate targets: one channel unit of an inner conv layer -----------------------------

INNER = [
    # (arch, path of the torch submodule whose output is the target, units per row)
    (ARCHS[0], "features.6", [(37, (4, 5)), (201, (8, 2))]),  # alexnet conv3 (13x13 map), no ReLU after it yet
    (ARCHS[2], "layer2.1.conv1", [(5, (3, 3)), (100, (0, 7))]),  # resnet18, BN kept so the conv output exists
    (ARCHS[5], "Mixed_5b.branch3x3dbl_2.bn", [(11, (2, 2)), (50, (4, 1))]),  # inception_v3 branch conv (BN folded into it)
]


@pytest.mark.parametrize("arch,where,units", INNER, ids=[f"{a.name}:{w}" for a, w, _ in INNER])
def test_inner_unit_gradient(arch: Arch, where: str, units, error_table):
    module, x = build(arch)
    path = export_module(module, x, name=f"grad-{arch.name}", keep_batchnorm=arch.keep_batchnorm)
    model = onnx.load(str(path))
    sub = module.get_submodule(where)
    target = onnx_tensor_for_module(model, module, sub, x)

    captured = {}
    handle = sub.register_forward_hook(lambda m, i, o: captured.__setitem__("y", o))

    def inner_output(mod, xx):
        captured.clear()
        mod(xx)
        return captured["y"]

    try:
        with torch.no_grad():
            shape = tuple(inner_output(module, x).shape)
        seed = np.zeros(shape, np.float32)
        for row, (channel, (i, j)) in enumerate(units):
            seed[row, channel, i, j] = 1.0
        # the deep copy inside the reference keeps the hook (hooks are copied with the module),
        # but writes to the same `captured` dict, which inner_output reads back right away
        reference = GradientReference(module, x, torch.from_numpy(seed), output=inner_output)
        compare_in_all_configs(f"unit of {where}", model, x, {target: seed}, reference, error_table, forward=target)
    finally:
        handle.remove()


# ---- ops that torchvision classifiers rarely use but converters emit -----------------------------

class Zoo(nn.Module):
    """stem conv -> block -> conv -> global pool -> linear: one op family per test case."""

    def __init__(self, block: nn.Module, channels: int = 8):
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.block = block
        self.head = nn.Sequential(nn.Conv2d(channels, 16, 3, stride=2, padding=1), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(16, 10))

    def forward(self, x):
        return self.head(self.block(self.stem(x)))


class ChannelMax(nn.Module):
    def forward(self, x):  # ReduceMax over channels, broadcast back
        return x * torch.amax(x, dim=1, keepdim=True)


class Shrink(nn.Module):  # strided slicing and a constant pad (Slice, Pad)
    def forward(self, x):
        return nn.functional.pad(x[:, :, 1::2, ::2], (1, 2, 0, 1), value=0.5)


ZOO = {
    "reflect_pad_instancenorm": lambda: nn.Sequential(nn.ReflectionPad2d(2), nn.Conv2d(8, 8, 5),
                                                      nn.InstanceNorm2d(8, affine=True), nn.PReLU(8)),
    "edge_pad_leaky": lambda: nn.Sequential(nn.ReplicationPad2d((1, 0, 2, 1)), nn.LeakyReLU(0.1), nn.Conv2d(8, 8, (4, 2))),
    "upsample_nearest": lambda: nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(8, 8, 3, stride=2)),
    "upsample_bilinear": lambda: nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), nn.Tanh()),
    "avgpool_exclusive_ceil": lambda: nn.Sequential(nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True,
                                                                 count_include_pad=False), nn.Sigmoid()),
    "relu6_hardtanh": lambda: nn.Sequential(nn.ReLU6(), nn.Conv2d(8, 8, 3, padding=2, dilation=2), nn.Hardtanh(-0.5, 0.5)),
    "transposed_conv": lambda: nn.Sequential(nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1), nn.ReLU()),
    "channel_max": lambda: nn.Sequential(ChannelMax(), nn.GroupNorm(2, 8)),
    "slice_pad": lambda: nn.Sequential(Shrink(), nn.Softplus()),
}


@pytest.mark.parametrize("name", list(ZOO))
def test_converter_ops(name, error_table):
    with seeded(5):
        module = Zoo(ZOO[name]()).eval()
        x = torch.randn(BATCH, 3, 19, 22)
    randomize_norm_affine(module)
    path = export_module(module, x, name=f"grad-zoo-{name}")
    check_logit_gradient(module, x, path, error_table)


# ---- gradient w.r.t. an intermediate tensor (what Grad-CAM needs) -------------------------------

@pytest.mark.parametrize("arch,where", [(ARCHS[2], "layer4"), (ARCHS[7], "features.denseblock3")],
                         ids=["resnet18:layer4", "densenet121:denseblock3"])
def test_gradient_wrt_intermediate_tensor(arch: Arch, where: str, error_table):
    module, x = build(arch)
    path = export_module(module, x, name=f"grad-{arch.name}", keep_batchnorm=arch.keep_batchnorm)
    model = onnx.load(str(path))
    tensor = onnx_tensor_for_module(model, module, module.get_submodule(where), x)
    seed = logit_seed(1000)
    reference = GradientReference(module, x, torch.from_numpy(seed), wrt_module=where)
    compare_in_all_configs(f"d logit / d {where}", model, x, {"logits": seed}, reference, error_table, wrt=tensor)
