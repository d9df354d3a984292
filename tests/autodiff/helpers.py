"""Small tools for autodiff tests: one-op models, running gradient models, the inner-product check."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from onnxprobe.autodiff import build_gradient_model, grad_name, seed_name

OPSET = 18


@dataclass
class X:
    """A differentiable graph input (the first axis is dynamic unless it is 1, or all axes with dyn='all')."""
    shape: tuple
    dom: str = "normal"
    dyn: str = "first"


@dataclass
class W:
    """A float initializer (weights: constant)."""
    shape: tuple
    dom: str = "normal"


@dataclass
class C:
    """An initializer with exactly this value (ints, axes, scales ...)."""
    value: object


def sample(rng: np.random.Generator, shape, dom: str) -> np.ndarray:
    shape = tuple(shape)
    n = int(np.prod(shape)) if shape else 1
    if dom == "normal":
        v = rng.standard_normal(shape)
    elif dom == "pos":
        v = rng.uniform(0.5, 2.0, shape)
    elif dom == "unit":
        v = rng.uniform(-0.9, 0.9, shape)
    elif dom == "grid":  # multiples of 0.1 shifted by 0.05: far (>= 0.05) from 0, +-0.5, +-3 ...
        v = (rng.integers(-30, 30, shape) + 0.5) * 0.1
    elif dom == "gridint":
        v = rng.integers(-30, 30, shape) * 0.1
    elif dom == "distinct":  # all different, spaced 0.05 apart, none at 0
        v = ((rng.permutation(n) - n // 2 + 0.5) * 0.05).reshape(shape)
    else:
        raise ValueError(dom)
    return np.asarray(v, dtype=np.float32)


def _dims(shape, dyn: str):
    dims = list(shape)
    if dyn == "all":
        return [f"d{i}" for i in range(len(dims))]
    if dyn == "first" and dims and dims[0] != 1:
        dims[0] = "N"
    return dims


def one_op_model(op, ins, attrs=None, n_out=1, rng=None, opset=OPSET, domain=""):
    """A model with one node; returns (model, feeds for the X inputs)."""
    rng = rng or np.random.default_rng(0)
    inputs, inits, names, feeds = [], [], [], {}
    for i, spec in enumerate(ins):
        if spec is None:
            names.append("")
            continue
        name = f"in{i}"
        names.append(name)
        if isinstance(spec, X):
            inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, _dims(spec.shape, spec.dyn)))
            feeds[name] = sample(rng, spec.shape, spec.dom)
        elif isinstance(spec, W):
            inits.append(numpy_helper.from_array(sample(rng, spec.shape, spec.dom), name))
        else:
            inits.append(numpy_helper.from_array(np.asarray(spec.value), name))
    outs = [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op, names, outs, name="the_node", domain=domain, **(attrs or {}))
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None)
                                                       for o in outs], inits)
    model = finalize(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]))
    model = onnx.shape_inference.infer_shapes(model)
    # graph outputs with their inferred types
    vis = {v.name: v for v in model.graph.value_info}
    for o in model.graph.output:
        if o.name in vis:
            o.CopyFrom(vis[o.name])
    return model, feeds


def finalize(model: onnx.ModelProto) -> onnx.ModelProto:
    model.ir_version = min(helper.find_min_ir_version_for(list(model.opset_import), ignore_unknown=True), 10)
    return model


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def run(sess, feeds):
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds)))


def check_vjp(model, feeds, targets, wrt, *, eps=1e-2, rtol=3e-3, atol=1e-4, seed=1, mode="gradient"):
    """Random-direction inner-product test: <t, vjp(c)> == d/de sum(c * f(x + e t)) (central difference)."""
    rng = np.random.default_rng(seed)
    fwd = session(model)
    base = run(fwd, feeds)
    gm = build_gradient_model(model, targets, wrt=wrt, mode=mode)
    onnx.checker.check_model(gm)
    seeds = {t: rng.standard_normal(base[t].shape).astype(base[t].dtype) for t in targets}
    gs = session(gm)
    out = run(gs, {**feeds, **{seed_name(t): s for t, s in seeds.items()}})
    for t in targets:
        np.testing.assert_allclose(out[t], base[t], rtol=1e-5, atol=1e-6)
    dirs = {w: rng.uniform(-1, 1, feeds[w].shape).astype(np.float32) for w in wrt}

    def f(sign):
        r = run(fwd, {**feeds, **{w: (feeds[w] + sign * eps * d).astype(np.float32) for w, d in dirs.items()}})
        return sum(float(np.sum(seeds[t].astype(np.float64) * r[t])) for t in targets)

    fd = (f(1) - f(-1)) / (2 * eps)
    for w in wrt:
        assert out[grad_name(w)].shape == feeds[w].shape, (w, out[grad_name(w)].shape)
    an = sum(float(np.sum(dirs[w].astype(np.float64) * out[grad_name(w)])) for w in wrt)
    scale = max(abs(fd), abs(an), 1.0)
    assert abs(an - fd) <= rtol * scale + atol, f"vjp {an:.6g} vs finite difference {fd:.6g}"
    return gm, out
