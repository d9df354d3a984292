"""Torch -> ONNX export helpers shared by the tests that compare onnxprobe with PyTorch.

Everything here works offline: models are built at random init (``weights=None``) with a fixed
``torch.manual_seed``, and exports are cached under ``tests/.cache/onnx/`` (gitignored), keyed by
name, input shape, export options and a fingerprint of the module's parameters and buffers, so a
second test run skips the (slow) exporter but a changed module never reuses a stale file.

Exports use the TorchScript-based exporter (``dynamo=False``): in torch 2.14 the default dynamo
exporter needs ``onnxscript``, which the project does not install, and the legacy one is faster
and names tensors after module scopes ("/layer1/layer1.0/relu/Relu_output_0"), which the tests
use to find intermediate layers. It is deprecated upstream; switch when onnxscript is a dependency.

Import this module only from tests that need torch; callers use ``pytest.importorskip("torch")``
first so that the rest of the suite runs without it.
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
) -> Path:
    """Export ``module`` (in eval mode) to ONNX and return the file path.

    - ``path=None`` puts the file in the cache, named ``<name>-<shape>-<key>.onnx`` where the key
      hashes the module fingerprint and the export options; an existing file is reused.
      With an explicit ``path`` the file is (re)written there unless ``cache`` and it exists.
    - ``dynamic_batch``: axis 0 of every input and output is the dim_param ``"N"``.
    - ``keep_batchnorm``: keep BatchNormalization nodes (inference mode) instead of letting the
      exporter fold them into the preceding Conv, like MXNet-era exports do.
    - The written model has ``ir_version <= 10`` so ONNX Runtime 1.31 can read it.
    """
    module = module.eval()
    input_names, output_names = list(input_names), list(output_names)
    shape = "x".join(str(d) for d in example_input.shape)
    options = f"{EXPORT_FORMAT}|{torch.__version__}|{opset}|{dynamic_batch}|{keep_batchnorm}|{input_names}|{output_names}"
    key = hashlib.blake2b(f"{fingerprint(module)}|{shape}|{options}".encode(), digest_size=6).hexdigest()
    if path is None:
        label = name or type(module).__name__.lower()
        path = CACHE_DIR / f"{label}-{shape}-{key}.onnx"
    path = Path(path)
    if cache and path.exists():
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


def torch_input_gradient(
    module: nn.Module,
    x: torch.Tensor,
    seed: torch.Tensor,
    *,
    output: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[np.ndarray, np.ndarray]:
    """d sum(seed * output) / d x with PyTorch autograd, parameters frozen, in ``dtype``.

    ``output(module, x)`` picks the tensor the seed applies to (default: ``module(x)``).
    Returns (output activations, input gradient) as numpy arrays. A float64 copy of the module is
    the reference because ONNX Runtime's float32 result is what is under test.
    """
    ref = copy.deepcopy(module).to(dtype).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    xx = x.detach().to(dtype).clone().requires_grad_(True)
    y = output(ref, xx) if output is not None else ref(xx)
    (grad,) = torch.autograd.grad((y * seed.to(dtype)).sum(), xx)
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

    m = onnx.ModelProto()
    m.CopyFrom(model)
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
# A float32 result and a float64 reference disagree wherever a ReLU input lies within rounding
# noise of 0 or two max-pool candidates are within rounding noise of each other: the decision
# flips, and a flipped unit deep in the network moves the input gradient by up to a few percent
# of its maximum (measured: ResNet-50 at 64x64 2.8e-3, VGG-11 at 224x224 4e-2 for PyTorch
# float32 vs float64 alone). That is not a gradient error, so the reference replays the float32
# decisions that ONNX Runtime took (ReLU masks and MaxPool argmax indices, read from an
# instrumented copy of the model) and computes everything else in float64.

_RELU_FUNCS = None


def _relu_funcs():
    global _RELU_FUNCS
    if _RELU_FUNCS is None:
        F = torch.nn.functional
        _RELU_FUNCS = {F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_}
    return _RELU_FUNCS


class _MaskedRelu(torch.autograd.Function):
    """y = x * mask, with the backward pass of the requested mode."""

    @staticmethod
    def forward(ctx, x, mask, mode):
        ctx.save_for_backward(mask)
        ctx.mode = mode
        return x * mask

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        if ctx.mode == "gradient":
            return g * mask, None, None
        if ctx.mode == "deconv":  # Zeiler & Fergus: ignore the forward mask
            return g.clamp_min(0), None, None
        if ctx.mode == "guided":  # Springenberg et al.
            return g.clamp_min(0) * mask, None, None
        raise ValueError(ctx.mode)


def mode_relu(x: "torch.Tensor", mode: str) -> "torch.Tensor":
    """relu(x) whose backward pass follows `mode` (gradient, deconv, guided): the reference for
    onnxprobe's backward modes."""
    return _MaskedRelu.apply(x, (x > 0).to(x.dtype), mode)


def ort_decisions(model: onnx.ModelProto, x: np.ndarray) -> dict[str, list[np.ndarray]]:
    """Run ``model`` in ONNX Runtime (CPU, float32) and return, in graph order, the input of every
    Relu node ("relu") and the flat argmax indices of every MaxPool node ("pool", as returned by
    the MaxPool Indices output: offsets into the whole N*C*H*W tensor)."""
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    relu_inputs = [n.input[0] for n in m.graph.node if n.op_type == "Relu" and n.domain in ("", "ai.onnx")]
    pool_indices = []
    for i, n in enumerate(m.graph.node):
        if n.op_type == "MaxPool" and n.domain in ("", "ai.onnx"):
            if len(n.output) < 2 or not n.output[1]:
                del n.output[1:]
                n.output.append(f"onnxprobe.test.maxpool_indices.{i}")
            pool_indices.append(n.output[1])
    known = {o.name for o in m.graph.output}
    for name in [*relu_inputs, *pool_indices]:
        if name not in known:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
            known.add(name)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    values = dict(zip(names, sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(x)})))
    return {"relu": [values[n] for n in relu_inputs], "pool": [values[n] for n in pool_indices]}


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


class ReplayDecisions(torch.overrides.TorchFunctionMode):
    """Inside this mode every ReLU call (module or functional) and every ``F.max_pool2d`` call
    uses the decision given for it (the i-th call gets the i-th entry), and ReLU backward passes
    follow ``mode`` ("gradient", "deconv", "guided"). Without decisions the mode still swaps in the
    mode-specific ReLU backward, with the masks computed from the values themselves.

    Every replayed ReLU input is checked against the given one (``check`` relative tolerance),
    which catches a call order that does not match the ONNX graph order.
    """

    def __init__(self, decisions: dict[str, list[np.ndarray]] | None = None, mode: str = "gradient", check: float = 1e-3):
        super().__init__()
        self.relu = list((decisions or {}).get("relu", [])) if decisions else None
        self.pool = list((decisions or {}).get("pool", [])) if decisions else None
        self.mode = mode
        self.check = check
        self.relu_calls = 0
        self.pool_calls = 0
        self.switches_changed = 0
        self.masks_changed = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _relu_funcs():
            return self._relu(args[0])
        if func is torch.nn.functional.max_pool2d and not kwargs.get("return_indices", False):
            return self._max_pool(*args, **kwargs)
        if func is torch.conv2d:
            return _conv2d_float64(func, *args, **kwargs)
        return func(*args, **kwargs)

    def _relu(self, x):
        i = self.relu_calls
        self.relu_calls += 1
        own = (x > 0).to(x.dtype)
        if self.relu is None:
            mask = own
        else:
            if i >= len(self.relu):
                raise AssertionError(f"PyTorch made more ReLU calls than the ONNX graph has Relu nodes ({len(self.relu)})")
            ref = torch.from_numpy(self.relu[i])
            if tuple(ref.shape) != tuple(x.shape):
                raise AssertionError(f"ReLU call {i}: shape {tuple(x.shape)} but ONNX Relu #{i} has {tuple(ref.shape)}")
            scale = max(float(ref.abs().max()), 1e-30)
            off = float((x.detach() - ref.to(x.dtype)).abs().max()) / scale
            if off > self.check:
                raise AssertionError(f"ReLU call {i} does not match ONNX Relu #{i} (relative difference {off:.2e})")
            mask = (ref > 0).to(x.dtype)
            self.masks_changed += int((mask != own).sum())
        return _MaskedRelu.apply(x, mask, self.mode)

    def _max_pool(self, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
        i = self.pool_calls
        self.pool_calls += 1
        out, idx = torch.nn.functional.max_pool2d_with_indices(
            x, kernel_size, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode
        )
        if self.pool is not None:
            if i >= len(self.pool):
                raise AssertionError(f"PyTorch made more max-pool calls than the ONNX graph has MaxPool nodes ({len(self.pool)})")
            flat = torch.from_numpy(self.pool[i].astype(np.int64))
            if tuple(flat.shape) != tuple(idx.shape):
                raise AssertionError(f"max-pool call {i}: output {tuple(idx.shape)} but ONNX MaxPool #{i} gives {tuple(flat.shape)}")
            plane = x.shape[-2] * x.shape[-1]
            ort_idx = flat % plane  # ONNX indices count over N*C*H*W, PyTorch's within one H*W plane
            self.switches_changed += int((ort_idx != idx).sum())
            idx = ort_idx
        n, c = x.shape[:2]
        return x.reshape(n, c, -1).gather(2, idx.reshape(n, c, -1)).reshape(out.shape)

    def verify_complete(self) -> None:
        if self.relu is not None and self.relu_calls != len(self.relu):
            raise AssertionError(f"PyTorch made {self.relu_calls} ReLU calls, the ONNX graph has {len(self.relu)} Relu nodes")
        if self.pool is not None and self.pool_calls != len(self.pool):
            raise AssertionError(f"PyTorch made {self.pool_calls} max-pool calls, the ONNX graph has {len(self.pool)} MaxPool nodes")


def reference_gradient(
    module: nn.Module,
    x: torch.Tensor,
    seed: torch.Tensor | np.ndarray,
    *,
    model: onnx.ModelProto | None = None,
    mode: str = "gradient",
    output: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[np.ndarray, np.ndarray, ReplayDecisions]:
    """The PyTorch reference for d sum(seed * output) / d x in ``mode``: float64 autograd with the
    ReLU / max-pool decisions that ONNX Runtime takes on ``model`` (when given) replayed.
    Returns (output, gradient, the replay object with its statistics)."""
    decisions = ort_decisions(model, x.numpy()) if model is not None else None
    replay = ReplayDecisions(decisions, mode=mode)
    seed_t = torch.as_tensor(np.asarray(seed)) if isinstance(seed, np.ndarray) else seed
    with replay:
        y, g = torch_input_gradient(module, x, seed_t, output=output, dtype=dtype)
    replay.verify_complete()
    return y, g, replay
