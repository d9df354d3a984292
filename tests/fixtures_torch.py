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
            bn.running_mean.add_(0.05 * torch.randn_like(bn.running_mean) * bn.running_var.sqrt())
            bn.running_var.mul_(torch.empty_like(bn.running_var).uniform_(0.7, 1.3))
    return module.eval()


@torch.no_grad()
def randomize_norm_affine(module: nn.Module, seed: int = 2) -> nn.Module:
    """Random (not 1 / 0) scale and shift for BatchNorm, LayerNorm and GroupNorm layers."""
    with seeded(seed):
        for m in module.modules():
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)):
                if getattr(m, "weight", None) is not None:
                    m.weight.copy_(torch.empty_like(m.weight).uniform_(0.6, 1.4))
                if getattr(m, "bias", None) is not None:
                    m.bias.copy_(0.1 * torch.randn_like(m.bias))
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
    handle = submodule.register_forward_hook(lambda m, i, o: captured.__setitem__("y", o.detach()))
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
