"""Torch -> ONNX export helpers shared by the tests that compare onnxprobe with PyTorch.

Everything here works offline: models are built at random init (``weights=None``) with a fixed
``torch.manual_seed``, and exports are cached under ``tests/.cache/onnx/`` (gitignored), keyed by
name, input shape, export options and a fingerprint of the module's parameters and buffers, so a
second test run skips the (slow) exporter but a changed module never reuses a stale file.

Exports use the TorchScript-based exporter (``dynamo=False``) unless ``exporter="dynamo"``: the
legacy one is faster and names tensors after module scopes ("/layer1/layer1.0/relu/Relu_output_0"),
which the tests use to find intermediate layers. PyTorch's default exporter (``dynamo=True``, with
``onnxscript``, a test dependency) writes what users get from ``torch.onnx.export(model, (x,), f)``:
opset 20, the batch fixed at the example's, weights in ``f.data``; the tests that compare with
PyTorch export with both (tests/networks/test_torchvision_gradients.py).

Import this module only from tests that need torch, so that the rest of the suite runs without it.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

CACHE_DIR = Path(__file__).resolve().parent / ".cache" / "onnx"
MAX_IR_VERSION = 10  # ONNX Runtime 1.31 reads IR <= 13; onnx 1.23 writes 14 by default
EXPORT_FORMAT = 3  # bump when the export recipe changes, so cached files are rebuilt

__all__ = [
    "CACHE_DIR",
    "export_module",
    "calibrate_batchnorm",
    "randomize_norm_affine",
    "seeded",
    "fingerprint",
    "torch_input_gradient",
    "relative_error",
    "onnx_tensor_for_module",
    "ort_decisions",
    "ReplayDecisions",
    "reference_gradient",
    "decision_tensors",
    "collect_decisions",
    "Comparison",
    "judge",
    "GradientReference",
    "same_decisions",
]


@contextlib.contextmanager
def seeded(seed: int = 0):
    """Deterministic torch (and numpy) random state inside the block; restores the outer state."""
    cpu_state = torch.random.get_rng_state()
    np_state = np.random.get_state()
    torch.manual_seed(seed)
    np.random.seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(cpu_state)
        np.random.set_state(np_state)


def fingerprint(module: nn.Module) -> str:
    """A short hash of the module's class names, parameter/buffer names, shapes and values."""
    h = hashlib.blake2b(digest_size=8)
    h.update(type(module).__qualname__.encode())
    for name, sub in module.named_modules():
        h.update(f"{name}:{type(sub).__name__};".encode())
    for name, t in module.state_dict().items():
        h.update(f"{name}{tuple(t.shape)}{t.dtype};".encode())
        if t.is_floating_point() or t.dtype in (torch.int64, torch.int32, torch.uint8, torch.bool):
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _norm_layers(module: nn.Module):
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def calibrate_batchnorm(module: nn.Module, example_input: torch.Tensor, batches: int = 2, seed: int = 1) -> nn.Module:
    """Give every BatchNorm non-trivial running statistics, then switch the module to eval mode.

    Running statistics are estimated in train mode on random inputs shaped like ``example_input``
    (cumulative average, so two batches suffice), which keeps activations well scaled in deep
    networks, and then perturbed so that no BatchNorm is close to identity or exactly normalising.
    """
    bns = _norm_layers(module)
    if not bns:
        return module.eval()
    with seeded(seed):
        momenta = [bn.momentum for bn in bns]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative moving average
        module.train()
        n = max(4, example_input.shape[0])
        for _ in range(batches):
            module(torch.randn((n, *example_input.shape[1:]), dtype=example_input.dtype))
        for bn, m in zip(bns, momenta):
            bn.momentum = m
            # small on purpose: larger perturbations compound through residual stacks and leave
            # EfficientNet / RegNet so ill-conditioned that float32 itself is off by 1e-2
            bn.running_mean.add_(0.02 * torch.randn_like(bn.running_mean) * bn.running_var.sqrt())
            bn.running_var.mul_(torch.empty_like(bn.running_var).uniform_(0.9, 1.1))
    return module.eval()


@torch.no_grad()
def randomize_norm_affine(module: nn.Module, seed: int = 2) -> nn.Module:
    """Random (not 1 / 0) scale and shift for BatchNorm, LayerNorm and GroupNorm layers."""
    with seeded(seed):
        for m in module.modules():
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)):
                if getattr(m, "weight", None) is not None:
                    m.weight.copy_(torch.empty_like(m.weight).uniform_(0.8, 1.2))
                if getattr(m, "bias", None) is not None:
                    m.bias.copy_(0.05 * torch.randn_like(m.bias))
    return module


def _finalize(model: onnx.ModelProto) -> onnx.ModelProto:
    model.ir_version = min(model.ir_version or MAX_IR_VERSION, MAX_IR_VERSION)
    return model


def _atomic_save(model: onnx.ModelProto, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(model.SerializeToString())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def export_module(
    module: nn.Module,
    example_input: torch.Tensor,
    path: str | os.PathLike | None = None,
    input_names: Sequence[str] = ("input",),
    output_names: Sequence[str] = ("logits",),
    opset: int = 18,
    dynamic_batch: bool = True,
    *,
    name: str | None = None,
    keep_batchnorm: bool = False,
    cache: bool = True,
    exporter: str = "legacy",
) -> Path:
    """Export ``module`` (in eval mode) to ONNX and return the file path.

    - ``path=None`` puts the file in the cache, named ``<name>-<shape>-<key>.onnx`` where the key
      hashes the module fingerprint and the export options; an existing file is reused.
      With an explicit ``path`` the file is (re)written there unless ``cache`` and it exists.
    - ``dynamic_batch``: axis 0 of every input and output is the dim_param ``"N"``.
    - ``keep_batchnorm``: keep BatchNormalization nodes (inference mode) instead of letting the
      exporter fold them into the preceding Conv, like MXNet-era exports do.
    - The written model has ``ir_version <= 10`` so ONNX Runtime 1.31 can read it.
    - ``exporter="dynamo"``: PyTorch's default exporter as a user calls it, ``torch.onnx.export(
      module, (example_input,), path)``: the batch is fixed at the example's (``dynamic_batch``,
      ``opset``, ``keep_batchnorm`` and the names do not apply), the weights go to ``path.data``.
    """
    module = module.eval()
    input_names, output_names = list(input_names), list(output_names)
    shape = "x".join(str(d) for d in example_input.shape)
    options = f"{EXPORT_FORMAT}|{torch.__version__}|{opset}|{dynamic_batch}|{keep_batchnorm}|{input_names}|{output_names}"
    if exporter != "legacy":
        options = f"{EXPORT_FORMAT}|{torch.__version__}|{exporter}"
    key = hashlib.blake2b(f"{fingerprint(module)}|{shape}|{options}".encode(), digest_size=6).hexdigest()
    if path is None:
        label = name or type(module).__name__.lower()
        path = CACHE_DIR / f"{label}-{shape}-{key}{'' if exporter == 'legacy' else '-' + exporter}.onnx"
    path = Path(path)
    if cache and path.exists():
        return path
    if exporter == "dynamo":
        _export_default(module, example_input, path)
        return path

    dynamic_axes = None
    if dynamic_batch:
        dynamic_axes = {n: {0: "N"} for n in [*input_names, *output_names]}
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # deprecation of the legacy exporter, tracer warnings
        torch.onnx.export(
            module,
            (example_input,),
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
            training=torch.onnx.TrainingMode.PRESERVE if keep_batchnorm else torch.onnx.TrainingMode.EVAL,
        )
    model = _finalize(onnx.load_from_string(buf.getvalue()))
    if keep_batchnorm:
        for node in model.graph.node:
            if node.op_type == "BatchNormalization":
                for attr in node.attribute:
                    if attr.name == "training_mode":
                        assert attr.i == 0, "BatchNormalization exported in training mode"
    onnx.checker.check_model(model)
    _atomic_save(model, path)
    return path


def _export_default(module: nn.Module, example_input: torch.Tensor, path: Path) -> None:
    """torch.onnx.export(module, (x,), path) as a user writes it (the dynamo exporter), into a
    folder of its own first, then moved into place: the weights file, then the model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp, warnings.catch_warnings(), torch.no_grad(), \
            contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        staged = Path(tmp) / path.name
        torch.onnx.export(module, (example_input,), str(staged))
        model = onnx.load(str(staged), load_external_data=False)
        assert all(i.data_location == onnx.TensorProto.EXTERNAL or len(i.raw_data) < 1 << 20
                   for i in model.graph.initializer), "the default exporter kept large weights inline"
        data = staged.with_name(staged.name + ".data")
        if data.exists():
            os.replace(data, path.with_name(path.name + ".data"))
        os.replace(staged, path)


def torch_input_gradient(
    module: nn.Module,
    x: torch.Tensor,
    seed: torch.Tensor,
    *,
    output: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
    dtype: torch.dtype = torch.float64,
    wrt_module: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """d sum(seed * output) / d x with PyTorch autograd, parameters frozen, in ``dtype``.

    ``output(module, x)`` picks the tensor the seed applies to (default: ``module(x)``);
    ``wrt_module`` (a submodule path) differentiates with respect to that submodule's output
    instead of x. Returns (output activations, gradient) as numpy arrays. A float64 copy of the
    module is the reference because ONNX Runtime's float32 result is what is under test.
    """
    ref = copy.deepcopy(module).to(dtype).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    captured = {}
    handle = None
    if wrt_module is not None:
        handle = ref.get_submodule(wrt_module).register_forward_hook(lambda m, i, o: captured.__setitem__("a", o))
    xx = x.detach().to(dtype).clone().requires_grad_(True)
    try:
        y = output(ref, xx) if output is not None else ref(xx)
    finally:
        if handle is not None:
            handle.remove()
    (grad,) = torch.autograd.grad((y * seed.to(dtype)).sum(), captured["a"] if wrt_module is not None else xx)
    return y.detach().numpy(), grad.numpy()


def relative_error(ours: np.ndarray, ref: np.ndarray) -> float:
    """max |ours - ref| / max |ref| (inf when ref is all zeros but ours is not)."""
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, f"shape mismatch: ours {ours.shape} vs reference {ref.shape}"
    scale = float(np.max(np.abs(ref)))
    diff = float(np.max(np.abs(ours - ref))) if ours.size else 0.0
    if scale == 0.0:
        return 0.0 if diff == 0.0 else float("inf")
    return diff / scale


def onnx_tensor_for_module(
    model: onnx.ModelProto,
    module: nn.Module,
    submodule: nn.Module,
    x: torch.Tensor,
    *,
    candidates: Sequence[str] | None = None,
    atol: float = 1e-4,
) -> str:
    """The name of the ONNX tensor that holds ``submodule``'s forward output for input ``x``.

    Runs the torch module with a forward hook on ``submodule`` and the ONNX model with every
    float intermediate tensor exposed as an output (or only ``candidates``), and returns the first
    tensor (in graph order) whose value matches the hooked activation.
    """
    import onnxruntime as ort

    captured = {}
    # clone: a later in-place op (F.relu(x, inplace=True) in Inception's BasicConv2d) would
    # otherwise change the captured activation after the hook ran
    handle = submodule.register_forward_hook(lambda m, i, o: captured.__setitem__("y", o.detach().clone()))
    try:
        with torch.no_grad():
            module.eval()(x)
    finally:
        handle.remove()
    want = captured["y"].numpy()

    from onnxprobe.runtime.weights import with_values

    m = with_values(model)  # a loaded model's weights stay in its file (onnxprobe.runtime.weights)
    names = list(candidates) if candidates is not None else [o for n in m.graph.node for o in n.output if o]
    known = {o.name for o in m.graph.output}
    for n in names:
        if n not in known:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(n))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    out_names = [o.name for o in sess.get_outputs()]
    values = dict(zip(out_names, sess.run(None, {sess.get_inputs()[0].name: x.numpy()})))
    scale = max(1.0, float(np.abs(want).max()))
    for n in names:
        v = values.get(n)
        if v is not None and v.shape == want.shape and v.dtype == np.float32:
            if float(np.abs(v - want).max()) <= atol * scale:
                return n
    raise LookupError(f"no ONNX tensor matches the output of {type(submodule).__name__}")


# ---- sharing ONNX Runtime's decisions with the PyTorch reference ---------------------------------
#
# A float32 result and a float64 reference disagree wherever the input of a piecewise op lies
# within rounding noise of a kink (a ReLU or Clip input near 0 or 6, a HardSwish input near +-3)
# or two max-pool candidates are within rounding noise of each other: the branch flips, and one
# flipped unit deep in a network moves the input gradient by up to a few percent of its maximum
# (measured on this machine: DenseNet-121 at 64 px 3.6e-3 from two flipped ReLUs whose inputs were
# 4e-7 and 1.7e-6 from 0; MobileNet-v2 4.5e-2 between PyTorch's own float32 and float64 from
# flipped ReLU6s). That is not a gradient error, so the reference replays the branches that the
# run under test took and computes everything else in float64.
#
# "The run under test" matters: two ONNX Runtime sessions of the same model (the plain model with
# extra outputs, and the gradient graph whose forward half ORT fuses differently) round
# differently, so the decisions are read from the gradient graph's own run (`decision_tensors`
# names the tensors to add as extra outputs; they are tensors the backward rules read anyway, so
# exposing them changes no fusion): the output of Relu (Y > 0 iff X > 0), the input of the other
# decision-making ops. MaxPool switches are recomputed from the exposed input by a one-node
# MaxPool, which is what the backward graph does too.

# ONNX op -> the tensor whose float32 value carries the decision ("input" or "output")
DECISION_OPS = {"Relu": "output", "Clip": "input", "LeakyRelu": "input", "PRelu": "input",
                "HardSwish": "input", "HardSigmoid": "input", "MaxPool": "input"}
RELU_FAMILY = ("Relu", "Clip", "LeakyRelu", "PRelu")  # deconv / guided rules apply (Clip: with min 0)

_FUNCS = None


def _torch_funcs() -> dict:
    """torch callables -> the ONNX op they export to."""
    global _FUNCS
    if _FUNCS is None:
        F = torch.nn.functional
        _FUNCS = {f: "Relu" for f in (F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_)}
        _FUNCS.update({F.hardtanh: "Clip", F.hardtanh_: "Clip", F.leaky_relu: "LeakyRelu",
                       F.leaky_relu_: "LeakyRelu", F.prelu: "PRelu", torch.prelu: "PRelu",
                       F.hardswish: "HardSwish", F.hardsigmoid: "HardSigmoid", F.max_pool2d: "MaxPool"})
    return _FUNCS


class _ModeLinear(torch.autograd.Function):
    """y = x * slope + offset (slope and offset fixed by the replayed branch); backward per mode:
    gradient g * slope, deconv relu(g), guided relu(g) * (x > 0) -- onnxprobe's ReLU-family rules."""

    @staticmethod
    def forward(ctx, x, slope, offset, positive, mode):
        ctx.save_for_backward(slope, positive)
        ctx.mode = mode
        return x * slope + offset

    @staticmethod
    def backward(ctx, g):
        slope, positive = ctx.saved_tensors
        if ctx.mode == "gradient":
            return g * slope, None, None, None, None
        if ctx.mode == "deconv":  # Zeiler & Fergus: ignore the forward mask
            return g.clamp_min(0), None, None, None, None
        if ctx.mode == "guided":  # Springenberg et al.
            return g.clamp_min(0) * positive, None, None, None, None
        raise ValueError(ctx.mode)


class _MaskedRelu:
    @staticmethod
    def apply(x, mask, mode):
        return _ModeLinear.apply(x, mask, torch.zeros((), dtype=x.dtype), mask, mode)


def mode_relu(x: "torch.Tensor", mode: str) -> "torch.Tensor":
    """relu(x) whose backward pass follows `mode` (gradient, deconv, guided): the reference for
    onnxprobe's backward modes."""
    return _MaskedRelu.apply(x, (x > 0).to(x.dtype), mode)


def decision_tensors(model: onnx.ModelProto) -> list[tuple[onnx.NodeProto, str]]:
    """(node, tensor) for every decision-making node in graph order: add the tensors as extra
    outputs of the run under test and pass the values to `collect_decisions`."""
    out = []
    for n in model.graph.node:
        where = DECISION_OPS.get(n.op_type) if n.domain in ("", "ai.onnx") else None
        if where:
            out.append((n, n.output[0] if where == "output" else n.input[0]))
    return out


def _max_pool_indices(node: onnx.NodeProto, x: np.ndarray) -> np.ndarray:
    """ONNX Runtime's MaxPool Indices (flat offsets into N*C*H*W) for `node` applied to `x`."""
    import onnxruntime as ort

    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    one = onnx.helper.make_node("MaxPool", ["x"], ["y", "i"], **attrs)
    rank = x.ndim
    graph = onnx.helper.make_graph(
        [one], "pool", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None] * rank)],
        [onnx.helper.make_empty_tensor_value_info("y"), onnx.helper.make_empty_tensor_value_info("i")])
    m = _finalize(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(["i"], {"x": np.ascontiguousarray(x, np.float32)})[0]


class Decisions(dict):
    """Op type -> decision tensors (graph order); ``kinks[op][i]``: where node i's branches change
    (its input values), so that two runs can be told apart by branch, not by value."""

    kinks: dict


def _kinks(model: onnx.ModelProto, node: onnx.NodeProto) -> list[float]:
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "Clip":
        consts = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
        for n in model.graph.node:
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value":
                        consts[n.output[0]] = onnx.numpy_helper.to_array(a.t)
        bounds = [float(consts[i]) for i in node.input[1:3] if i and i in consts]
        return bounds + [float(attrs[k]) for k in ("min", "max") if k in attrs]
    if node.op_type == "HardSwish":
        return [-3.0, 3.0]
    if node.op_type == "HardSigmoid":
        alpha, beta = attrs.get("alpha", 0.2), attrs.get("beta", 0.5)
        return [-beta / alpha, (1 - beta) / alpha]
    return [0.0]  # Relu (its output), LeakyRelu, PRelu; unused for MaxPool (indices)


def collect_decisions(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> Decisions:
    """Op type -> the float32 decision tensors of its nodes in graph order, from `values` (a run
    with the `decision_tensors` as extra outputs); MaxPool entries are switch indices."""
    out = Decisions({op: [] for op in DECISION_OPS})
    out.kinks = {op: [] for op in DECISION_OPS}
    for node, name in decision_tensors(model):
        v = values[name]
        out[node.op_type].append(_max_pool_indices(node, v) if node.op_type == "MaxPool" else v)
        out.kinks[node.op_type].append(_kinks(model, node))
    return out


def ort_decisions(model: onnx.ModelProto, x: np.ndarray) -> dict[str, list[np.ndarray]]:
    """Decisions of a run of the plain ``model`` (CPU, float32), for callers that cannot read them
    from the run under test (another session may round a near-tie the other way)."""
    import onnxruntime as ort

    from onnxprobe.runtime.weights import with_values

    m = with_values(model)  # a loaded model's weights stay in its file (onnxprobe.runtime.weights)
    known = {o.name for o in m.graph.output}
    for _, name in decision_tensors(m):
        if name not in known:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
            known.add(name)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    values = dict(zip(names, sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(x)})))
    return collect_decisions(model, values)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _conv2d_float64(func, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Grouped float64 convolution as unfold + batched matmul: PyTorch's CPU kernels for grouped
    and depthwise float64 conv are several times slower (MobileNet-v2 reference: 44 s -> ~10 s).
    Same function and autograd; everything else goes to ``func``."""
    if groups == 1 or x.dtype != torch.float64 or isinstance(padding, str) or x.dim() != 4:
        return func(x, weight, bias, stride, padding, dilation, groups)
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    n, _, h, w = x.shape
    cout, cg, kh, kw = weight.shape
    cols = torch.nn.functional.unfold(x, (kh, kw), dilation=dilation, padding=padding, stride=stride)
    cols = cols.view(n, groups, cg * kh * kw, cols.shape[-1])
    y = torch.einsum("gok,ngkl->ngol", weight.reshape(groups, cout // groups, cg * kh * kw), cols)
    ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    y = y.reshape(n, cout, ho, wo)
    return y if bias is None else y + bias.view(1, -1, 1, 1)


def _batch_norm_eval(func, x, running_mean, running_var, weight=None, bias=None, training=False,
                     momentum=0.1, eps=1e-5):
    """Inference BatchNorm as plain elementwise ops. PyTorch 2.14's CPU batch_norm backward is
    wrong (relative error ~1.5, float32 and float64 alike) when the incoming gradient has an
    ambiguous memory format, e.g. batch 1 and BatchNorm2d followed by flatten(2).transpose(1, 2),
    the token-making step of conv/attention hybrids: tests/networks/test_hybrids.py shows it."""
    if training or running_mean is None:
        return func(x, running_mean, running_var, weight, bias, training, momentum, eps)
    shape = [1, -1] + [1] * (x.dim() - 2)
    scale = (running_var + eps).rsqrt()
    if weight is not None:
        scale = scale * weight
    y = (x - running_mean.view(shape)) * scale.view(shape)
    return y if bias is None else y + bias.view(shape)


class ReplayDecisions(torch.overrides.TorchFunctionMode):
    """Inside this mode every call of a decision-making function (ReLU in any spelling, hardtanh
    / ReLU6, leaky ReLU, PReLU, hardswish, hardsigmoid, max_pool2d) takes the branch given for it
    by ``decisions`` (the i-th call of a kind gets the i-th ONNX node of that op type, graph order)
    and the ReLU family's backward passes follow ``mode`` ("gradient", "deconv", "guided").
    Without decisions the branches come from the values themselves (the mode still applies).

    Every replayed input is checked against the float32 one (``check``, relative to its maximum),
    which catches a call order that does not match the ONNX graph order. ``changed`` counts, per op
    type, the decisions that differ from the ones the reference's own values would take.
    """

    def __init__(self, decisions: dict[str, list[np.ndarray]] | None = None, mode: str = "gradient", check: float = 1e-3):
        super().__init__()
        self.decisions = {op: list(v) for op, v in decisions.items()} if decisions is not None else None
        self.mode = mode
        self.check = check
        self.calls = {op: 0 for op in DECISION_OPS}
        self.changed = {op: 0 for op in DECISION_OPS}
        self.active = True

    @contextlib.contextmanager
    def only_inside(self, module: nn.Module):
        """Replay only the calls made inside ``module``'s forward passes (a caller such as Captum
        makes decision-like calls of its own, e.g. the ReLU on a Grad-CAM map)."""
        self.active = False
        pre = module.register_forward_pre_hook(lambda m, i: setattr(self, "active", True))
        post = module.register_forward_hook(lambda m, i, o: setattr(self, "active", False))
        try:
            yield self
        finally:
            pre.remove()
            post.remove()
            self.active = True

    @property
    def ties(self) -> int:
        return sum(self.changed.values())

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not self.active:
            return func(*args, **kwargs)
        if func is torch.nn.functional.relu6:
            return self._clip(args[0], 0.0, 6.0)
        op = _torch_funcs().get(func)
        if op == "MaxPool" and kwargs.get("return_indices", False):
            op = None
        if op is not None:
            return getattr(self, "_" + op.lower())(*args, **kwargs)
        if func is torch.conv2d:
            return _conv2d_float64(func, *args, **kwargs)
        if func is torch.nn.functional.batch_norm:
            return _batch_norm_eval(func, *args, **kwargs)
        return func(*args, **kwargs)

    def _given(self, op: str, x) -> np.ndarray | None:
        """The float32 decision tensor for the next call of `op` (None without decisions)."""
        i = self.calls[op]
        self.calls[op] += 1
        if self.decisions is None:
            return None
        given = self.decisions.get(op, [])
        if i >= len(given):
            raise AssertionError(f"PyTorch made more {op} calls than the ONNX graph has {op} nodes ({len(given)})")
        ref = given[i]
        if op == "MaxPool":
            return ref
        if tuple(ref.shape) != tuple(x.shape):
            raise AssertionError(f"{op} call {i}: shape {tuple(x.shape)} but ONNX {op} #{i} has {tuple(ref.shape)}")
        mine = x.detach().clamp_min(0) if op == "Relu" else x.detach()  # Relu: its output is given
        scale = max(float(np.abs(ref).max()), 1e-30)
        off = float((mine - torch.from_numpy(ref).to(x.dtype)).abs().max()) / scale
        if off > self.check:
            raise AssertionError(f"{op} call {i} does not match ONNX {op} #{i} (relative difference {off:.2e})")
        return ref

    def _branches(self, op: str, x, given, tests) -> list:
        """Boolean masks, one per test(values), from the float32 decision tensor when given
        (counting those that differ from the reference's own), else from x itself."""
        own = [t(x.detach()) for t in tests]
        if given is None:
            return own
        g = torch.from_numpy(np.ascontiguousarray(given))
        theirs = [t(g) for t in tests]
        differs = torch.zeros_like(own[0])
        for a, b in zip(own, theirs):
            differs |= a != b
        self.changed[op] += int(differs.sum())
        return theirs

    def _relu(self, x, inplace=False):
        (pos,) = self._branches("Relu", x, self._given("Relu", x), [lambda v: v > 0])
        return _MaskedRelu.apply(x, pos.to(x.dtype), self.mode)

    def _clip(self, x, min_val=-1.0, max_val=1.0, inplace=False):
        given = self._given("Clip", x)
        lo, hi = np.float32(min_val), np.float32(max_val)
        low, inside, high = self._branches("Clip", x, given, [lambda v: v <= float(lo), lambda v: (v > float(lo)) & (v < float(hi)),
                                                              lambda v: v >= float(hi)])
        d = x.dtype
        offset = low.to(d) * float(min_val) + high.to(d) * float(max_val)
        mode = self.mode if float(min_val) == 0.0 else "gradient"  # ReLU6 belongs to the ReLU family
        return _ModeLinear.apply(x, inside.to(d), offset, inside.to(d), mode)

    def _leakyrelu(self, x, negative_slope=0.01, inplace=False):
        (pos,) = self._branches("LeakyRelu", x, self._given("LeakyRelu", x), [lambda v: v > 0])
        p = pos.to(x.dtype)
        return _ModeLinear.apply(x, p + negative_slope * (1 - p), torch.zeros((), dtype=x.dtype), p, self.mode)

    def _prelu(self, x, weight):
        (pos,) = self._branches("PRelu", x, self._given("PRelu", x), [lambda v: v > 0])
        p = pos.to(x.dtype)
        w = weight.detach().to(x.dtype).view([1, -1] + [1] * (x.dim() - 2)) if weight.numel() > 1 else weight.detach().to(x.dtype)
        return _ModeLinear.apply(x, p + w * (1 - p), torch.zeros((), dtype=x.dtype), p, self.mode)

    def _hardswish(self, x, inplace=False):
        mid, high = self._branches("HardSwish", x, self._given("HardSwish", x),
                                   [lambda v: (v > -3) & (v < 3), lambda v: v >= 3])
        return x * (x + 3) / 6 * mid.to(x.dtype) + x * high.to(x.dtype)

    def _hardsigmoid(self, x, inplace=False):
        # onnxprobe's rule tests z = x * alpha + beta (float32 for the given values) against (0, 1)
        alpha, beta = float(np.float32(1 / 6)), 0.5
        mid, high = self._branches("HardSigmoid", x, self._given("HardSigmoid", x),
                                   [lambda v: ((v * alpha + beta) > 0) & ((v * alpha + beta) < 1), lambda v: (v * alpha + beta) >= 1])
        return (x / 6 + 0.5) * mid.to(x.dtype) + high.to(x.dtype)

    def _maxpool(self, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
        given = self._given("MaxPool", x)
        out, idx = torch.nn.functional.max_pool2d_with_indices(
            x, kernel_size, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode
        )
        if given is not None:
            flat = torch.from_numpy(given.astype(np.int64))
            if tuple(flat.shape) != tuple(idx.shape):
                raise AssertionError(f"max-pool call {self.calls['MaxPool'] - 1}: output {tuple(idx.shape)} "
                                     f"but ONNX MaxPool gives {tuple(flat.shape)}")
            plane = x.shape[-2] * x.shape[-1]
            ort_idx = flat % plane  # ONNX indices count over N*C*H*W, PyTorch's within one H*W plane
            self.changed["MaxPool"] += int((ort_idx != idx).sum())
            idx = ort_idx
        n, c = x.shape[:2]
        return x.reshape(n, c, -1).gather(2, idx.reshape(n, c, -1)).reshape(out.shape)

    def verify_complete(self) -> None:
        if self.decisions is None:
            return
        for op, given in self.decisions.items():
            if self.calls.get(op, 0) != len(given):
                raise AssertionError(f"PyTorch made {self.calls.get(op, 0)} {op} calls, the ONNX graph has {len(given)} {op} nodes")


def reference_gradient(
    module: nn.Module,
    x: torch.Tensor,
    seed: torch.Tensor | np.ndarray,
    *,
    model: onnx.ModelProto | None = None,
    decisions: dict[str, list[np.ndarray]] | None = None,
    mode: str = "gradient",
    output: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
    dtype: torch.dtype = torch.float64,
    wrt_module: str | None = None,
) -> tuple[np.ndarray, np.ndarray, ReplayDecisions]:
    """The PyTorch reference for d sum(seed * output) / d x in ``mode``: autograd in ``dtype``
    (float64 by default) with the branches of the run under test replayed: ``decisions`` (from
    `collect_decisions`), or, given only ``model``, those of a plain ONNX Runtime run of it.
    Returns (output, gradient, the replay object with its statistics)."""
    if decisions is None and model is not None:
        decisions = ort_decisions(model, x.numpy())
    replay = ReplayDecisions(decisions, mode=mode)
    seed_t = torch.as_tensor(np.asarray(seed)) if isinstance(seed, np.ndarray) else seed
    with replay:
        y, g = torch_input_gradient(module, x, seed_t, output=output, dtype=dtype, wrt_module=wrt_module)
    replay.verify_complete()
    return y, g, replay


# ---- judging a comparison ------------------------------------------------------------------------
#
# Criterion: max|ours - ref64| / max|ref64| <= max(FLOOR, K * the same measure for PyTorch's own
# float32 result, with the same branches replayed).
# - FLOOR 1e-4: the probabilistic rounding bound for float32 (Higham & Mary 2019): a length-n dot
#   product is off by about sqrt(n) * u relative, u = 2^-24 = 6e-8; these networks' longest dot
#   products have n = 3 * 3 * 512 = 4608 (4e-6 per layer) and a gradient runs through up to ~2 x
#   150 such layers (forward and backward), which add in quadrature: 4e-6 * sqrt(300) = 7e-5,
#   i.e. 1e-4 to one significant digit. A network whose errors are smaller than that bound is held
#   to the bound, not to PyTorch's luck.
# - K 4: PyTorch's float32 error is one sample of the rounding error of the same function; ONNX
#   Runtime sums in other orders and blockings (MLAS panels of up to 256 terms vs oneDNN's), which
#   changes the constant in front of sqrt(n) u by up to about 2 either way, so 2 x 2 = 4. An
#   ill-conditioned network (large torch float32 error) gets proportionally more room; a wrong
#   rule is off by far more than 4x the rounding error (0.1 to 1 relative).
FLOOR = 1e-4
K = 4.0


@dataclass
class Comparison:
    """One comparison of ours against the float64 reference; `check()` asserts it."""

    what: str
    error: float  # max|ours - ref64| / max|ref64|
    torch32: float  # the same for PyTorch's float32 result (same branches)
    scale: float  # max|ref64|
    ties: int  # branches replayed that float64 would have taken differently
    ties_by_op: dict = field(default_factory=dict)

    @property
    def tolerance(self) -> float:
        return max(FLOOR, K * self.torch32)

    def describe(self) -> str:
        ops = ", ".join(f"{op} {n}" for op, n in self.ties_by_op.items() if n) or "none"
        return (f"{self.what}: relative error {self.error:.2e} vs float64, tolerance {self.tolerance:.1e} "
                f"(PyTorch float32 {self.torch32:.1e}); {self.ties} near-tie decisions replayed ({ops})")

    def check(self) -> "Comparison":
        assert np.isfinite(self.scale) and self.scale > 0, f"{self.what}: the reference is all zeros, the comparison asserts nothing"
        assert self.error <= self.tolerance, self.describe()
        return self


def judge(what: str, ours: np.ndarray, ref64: np.ndarray, ref32: np.ndarray, replay: ReplayDecisions | None = None) -> Comparison:
    """The record of one comparison (call `.check()` on it)."""
    ref64 = np.asarray(ref64, np.float64)
    return Comparison(what, relative_error(ours, ref64), relative_error(ref32, ref64), float(np.abs(ref64).max()) if ref64.size else 0.0,
                      replay.ties if replay is not None else 0, dict(replay.changed) if replay is not None else {})


def same_decisions(a: dict | None, b: dict | None) -> bool:
    """True when two decision sets take every branch the same way (so one reference serves both):
    equal switches, and every value on the same side of each of its node's kinks."""
    if a is None or b is None:
        return a is b
    kinks = getattr(a, "kinks", None)
    for op in DECISION_OPS:
        for i, (u, v) in enumerate(zip(a.get(op, []), b.get(op, []))):
            if op == "MaxPool" or kinks is None:
                if not np.array_equal(u, v):
                    return False
                continue
            for k in kinks[op][i]:
                if not (np.array_equal(u > k, v > k) and np.array_equal(u < k, v < k)):
                    return False
    return True


class GradientReference:
    """The float64 PyTorch reference for one (module, x, seed, mode, output), computed lazily for
    each distinct decision set (runs in two ONNX Runtime configurations often take the same
    branches and then share one), and PyTorch's float32 error, measured once with the first
    decision set: it measures the network's conditioning, which the branch of a tie or two does
    not change."""

    def __init__(self, module: nn.Module, x: torch.Tensor, seed, *, mode: str = "gradient",
                 output: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None, wrt_module: str | None = None):
        self.module, self.x, self.seed, self.mode, self.output = module, x, seed, mode, output
        self.wrt_module = wrt_module
        self._done: list[tuple[dict | None, tuple]] = []
        self.torch32: float | None = None

    def get(self, decisions: dict | None) -> tuple[np.ndarray, np.ndarray, ReplayDecisions]:
        """(float64 output, float64 gradient, the float64 replay)."""
        for d, refs in self._done:
            if same_decisions(d, decisions):
                return refs
        kw = dict(decisions=decisions, mode=self.mode, output=self.output, wrt_module=self.wrt_module)
        refs = reference_gradient(self.module, self.x, self.seed, **kw)
        if self.torch32 is None:
            _, g32, _ = reference_gradient(self.module, self.x, self.seed, dtype=torch.float32, **kw)
            self.torch32 = relative_error(g32, refs[1])
        self._done.append((decisions, refs))
        return refs

    def compare(self, what: str, ours: np.ndarray, decisions: dict | None) -> Comparison:
        _, g64, replay = self.get(decisions)
        return Comparison(what, relative_error(ours, g64), self.torch32, float(np.abs(g64).max()) if g64.size else 0.0,
                          replay.ties, dict(replay.changed))


# ---- decisions of onnxprobe's own runs (attribution methods) --------------------------------------

@contextlib.contextmanager
def capture_decisions(model):
    """Inside the block, every gradient run of the ProbeModel ``model`` also returns the tensors
    that carry its decisions (`decision_tensors`); yields the list of runs, each {tensor: value}.
    The model's session cache is swapped for an empty one for the block, so that every gradient
    graph is built with those extra outputs (a cached session would lack them)."""
    import onnxprobe.autodiff as autodiff
    from onnxprobe.model import GradientSession
    from onnxprobe.runtime.session import SessionCache

    names = list(dict.fromkeys(name for _, name in decision_tensors(model.proto)))
    runs: list[dict[str, np.ndarray]] = []
    build, run = autodiff.build_gradient_model, GradientSession.run

    def build_exposed(*args, **kwargs):
        kwargs["extra_outputs"] = list(dict.fromkeys([*kwargs.get("extra_outputs", ()), *names]))
        return build(*args, **kwargs)

    def run_exposed(self, x, seeds, extra_outputs=()):
        extra = [n for n in dict.fromkeys([*extra_outputs, *names]) if n not in self.targets]
        out = run(self, x, seeds, extra)
        runs.append({n: out[n] for n in names if n in out})
        runs[-1].update({n: out[n] for n in names if n in self.targets})
        return out

    sessions = model._sessions  # noqa: SLF001 -- test-only: fresh sessions for the block
    model._sessions = SessionCache()
    autodiff.build_gradient_model, GradientSession.run = build_exposed, run_exposed
    try:
        yield runs
    finally:
        autodiff.build_gradient_model, GradientSession.run = build, run
        model._sessions = sessions


def merge_runs(model: onnx.ModelProto, runs: list[dict[str, np.ndarray]], *, along_batch: bool) -> dict[str, list[np.ndarray]]:
    """Decisions for a reference that makes one forward pass per run (``along_batch=False``: the
    lists are concatenated, run after run) or one forward pass over all runs' rows at once
    (``along_batch=True``: chunks of one batch, e.g. integrated-gradient path points)."""
    if along_batch:
        merged = {n: np.concatenate([r[n] for r in runs], axis=0) for n in runs[0]}
        return collect_decisions(model, merged)
    out: dict[str, list[np.ndarray]] = {op: [] for op in DECISION_OPS}
    for r in runs:
        for op, values in collect_decisions(model, r).items():
            out[op] += values
    return out
