#!/usr/bin/env python
"""The backward formulations the rules use, one op at a time, against the alternatives that were
measured and rejected (ResNet-18's shapes, batch 8), so that a new ONNX Runtime (or another
provider) can be re-judged in a minute instead of by rewriting rules:

    python bench/bench_adjoints.py                  # CPU, 2 threads
    python bench/bench_adjoints.py --threads 1 --reps 15 --only maxpool

"rule" is what onnxprobe's backward rule emits (build_gradient_model of a one-node model), each
alternative is built by hand below and must agree with it (max difference printed, relative to the
largest value; the MaxPool input is tie-heavy on purpose). Rule and alternatives run alternating,
run by run; printed: best wall time and median process CPU time of each, and alternative / rule
(> 1: the rule's formulation is the faster one). bench/profile_ops.py says where the whole gradient
step's time goes, bench/bench_gradient.py measures it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from onnxprobe.autodiff import build_gradient_model, grad_name, seed_name  # noqa: E402
from onnxprobe.graph.loading import finalize_model  # noqa: E402

from common import interleaved_times  # noqa: E402  (bench/ is on the path when a bench runs)

OPSET = 17
BATCH = 8


def _model(nodes, inputs: dict, inits: dict, output: str = "y") -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v)) for k, v in inputs.items()],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return finalize_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]))


def _rule(node: onnx.NodeProto, x_shape, inits: dict) -> onnx.ModelProto:
    """onnxprobe's gradient graph of a one-node model y = node(x), cut down to what dL/dx needs (the
    forward node stays only where the rule reads its output)."""
    model = build_gradient_model(_model([node], {"x": x_shape}, inits), targets=["y"], wrt=["x"], mode="gradient")
    graph = model.graph
    out = next(o for o in graph.output if o.name == grad_name("x"))
    needed, keep = {out.name}, []
    for n in reversed(graph.node):
        if needed & set(n.output):
            keep.append(n)
            needed |= set(n.input)
    del graph.node[:]
    graph.node.extend(reversed(keep))
    del graph.output[:]
    graph.output.append(out)
    feeds = [i for i in graph.input if i.name in needed]
    del graph.input[:]
    graph.input.extend(feeds)
    return model


def _session(model: onnx.ModelProto, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # CPU time = work done
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


# ---- alternatives ----------------------------------------------------------------------------------

def maxpool_masks(x_shape, k: int, s: int, p: int) -> onnx.ModelProto:
    """MaxPool's gradient without Indices: the window values at each kernel offset (strided Slices of
    the NaN-padded input), equality with the pooled output, first match in row-major order (the
    switch rule of ORT's Indices), the masked G stacked per offset and put back by a depthwise
    ConvTranspose with one-hot kernels."""
    n, c, h, w = x_shape
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    nodes = [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[k, k], strides=[s, s], pads=[p] * 4),
             helper.make_node("Pad", ["x", "pads", "nan"], ["xp"])]
    inits = {"pads": np.array([0, 0, p, p, 0, 0, p + s, p + s]), "nan": np.array(np.nan, np.float32),
             "ax": np.array([2, 3]), "st": np.array([s, s]), "u2": np.array([2]),
             "shp": np.array([n, c * k * k, ho, wo])}
    seen, stack = None, []
    for ky in range(k):
        for kx in range(k):
            j = ky * k + kx
            inits[f"b{j}"], inits[f"e{j}"] = np.array([ky, kx]), np.array([ky + s * (ho - 1) + 1, kx + s * (wo - 1) + 1])
            nodes += [helper.make_node("Slice", ["xp", f"b{j}", f"e{j}", "ax", "st"], [f"s{j}"]),
                      helper.make_node("Equal", [f"s{j}", "y"], [f"eq{j}"])]
            first = f"eq{j}"
            if seen is not None:
                nodes += [helper.make_node("Not", [seen], [f"not{j}"]),
                          helper.make_node("And", [f"eq{j}", f"not{j}"], [f"first{j}"])]
                first = f"first{j}"
            if j < k * k - 1:
                if seen is not None:
                    nodes.append(helper.make_node("Or", [seen, f"eq{j}"], [f"seen{j}"]))
                seen = f"seen{j}" if seen is not None else f"eq{j}"
            nodes.append(helper.make_node("Unsqueeze", [first, "u2"], [f"uq{j}"]))
            stack.append(f"uq{j}")
    onehot = np.zeros((c * k * k, 1, k, k), np.float32)
    for ch in range(c):
        for j in range(k * k):
            onehot[ch * k * k + j, 0, j // k, j % k] = 1
    inits["onehot"] = onehot
    out_pad = h - (s * (ho - 1) + k - 2 * p)
    nodes += [helper.make_node("Concat", stack, ["stack"], axis=2),
              helper.make_node("Cast", ["stack"], ["mask"], to=TensorProto.FLOAT),
              helper.make_node("Unsqueeze", ["g", "u2"], ["gu"]),
              helper.make_node("Mul", ["mask", "gu"], ["masked"]),
              helper.make_node("Reshape", ["masked", "shp"], ["cols"]),
              helper.make_node("ConvTranspose", ["cols", "onehot"], ["dx"], group=c, strides=[s, s], pads=[p] * 4,
                               output_padding=[out_pad] * 2 if out_pad else None)]
    return _model(nodes, {"x": x_shape, "g": (n, c, ho, wo)}, inits, output="dx")


def conv_polyphase(weights: np.ndarray, s: int, p: int, h_in: int) -> onnx.ModelProto:
    """A stride-s Conv's input gradient as ONE stride-1 Conv whose s*s*Cin output channels are the
    output phases (each phase's taps of the flipped kernel, zero-padded to a common size), then
    DepthToSpace (DCR) and a crop."""
    cout, cin, k, _ = weights.shape
    lg = (h_in + 2 * p - k) // s + 1
    phases = []
    for r in range(s):
        rho, c0 = (r + p) % s, (r + p) // s
        q = max(0, -(-(k - rho) // s))
        phases.append((rho, q, q - 1 - c0))
    pad = max(pb for _, _, pb in phases)
    kc = max(pad - pb + q for _, q, pb in phases)
    m = -(-h_in // s)
    pe = m - lg - pad + kc - 1
    v = np.zeros((s, s, cin, cout, kc, kc), weights.dtype)
    for ry, (rhoy, qy, py) in enumerate(phases):
        for rx, (rhox, qx, px) in enumerate(phases):
            for jy in range(qy):
                for jx in range(qx):
                    v[ry, rx, :, :, jy + pad - py, jx + pad - px] = weights[:, :, s * (qy - 1 - jy) + rhoy,
                                                                             s * (qx - 1 - jx) + rhox].T
    inits = {"v": v.reshape(s * s * cin, cout, kc, kc), "z": np.array([0, 0]), "hw": np.array([h_in, h_in]),
             "m": np.array([m, m]), "ax": np.array([2, 3])}
    nodes = [helper.make_node("Conv", ["g", "v"], ["ph0"], pads=[pad, pad, max(pe, 0), max(pe, 0)])]
    ph = "ph0"
    if pe < 0:
        nodes.append(helper.make_node("Slice", ["ph0", "z", "m", "ax"], ["ph"]))
        ph = "ph"
    nodes += [helper.make_node("DepthToSpace", [ph], ["full"], blocksize=s, mode="DCR"),
              helper.make_node("Slice", ["full", "z", "hw", "ax"], ["dx"])]
    return _model(nodes, {"g": (BATCH, cout, lg, lg)}, inits, output="dx")


def conv1x1_zero_insert(weights: np.ndarray, s: int, h_in: int) -> onnx.ModelProto:
    """A 1x1 stride-s Conv's input gradient as a 1x1 Conv (flipped = transposed weights) and
    zero-insertion: [N, C, H, 1, W, 1] padded to [N, C, H, s, W, s], reshaped, cropped."""
    cout, cin = weights.shape[:2]
    lg = (h_in - 1) // s + 1
    inits = {"wt": np.ascontiguousarray(weights.transpose(1, 0, 2, 3)), "ax": np.array([3, 5]),
             "pads": np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, s - 1, 0, s - 1]),
             "s6": np.array([BATCH, cin, lg, 1, lg, 1]), "s4": np.array([BATCH, cin, lg * s, lg * s]),
             "z": np.array([0, 0]), "hw": np.array([h_in, h_in]), "ax2": np.array([2, 3])}
    nodes = [helper.make_node("Conv", ["g", "wt"], ["c"]),
             helper.make_node("Reshape", ["c", "s6"], ["c6"]),
             helper.make_node("Pad", ["c6", "pads"], ["p6"]),
             helper.make_node("Reshape", ["p6", "s4"], ["full"]),
             helper.make_node("Slice", ["full", "z", "hw", "ax2"], ["dx"])]
    return _model(nodes, {"g": (BATCH, cout, lg, lg)}, inits, output="dx")


def conv_transpose(weights: np.ndarray, p: int, h_in: int) -> onnx.ModelProto:
    """A stride-1 Conv's input gradient as ConvTranspose (what the rule did before the flipped Conv)."""
    cout, _, k, _ = weights.shape
    lg = h_in + 2 * p - k + 1
    node = helper.make_node("ConvTranspose", ["g", "w"], ["dx"], pads=[p] * 4)
    return _model([node], {"g": (BATCH, cout, lg, lg)}, {"w": weights}, output="dx")


def relu_where(shape) -> onnx.ModelProto:
    """ReLU's backward as Where(Y > 0, G, 0) (the rule before) instead of G * cast(Y > 0)."""
    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Greater", ["y", "zero"], ["pos"]),
             helper.make_node("Where", ["pos", "g", "zero"], ["dx"])]
    return _model(nodes, {"x": shape, "g": shape}, {"zero": np.array(0, np.float32)}, output="dx")


def depth_to_space(shape) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """DepthToSpace against one elementwise pass (Neg) over the same tensor: the interleave every
    phase-splitting formulation needs."""
    d2s = _model([helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode="DCR")], {"x": shape}, {})
    neg = _model([helper.make_node("Neg", ["x"], ["y"])], {"x": shape}, {})
    return neg, d2s


# ---- cases -------------------------------------------------------------------------------------------

def _feeds_rule(x: np.ndarray, g: np.ndarray) -> dict:
    return {"x": x, seed_name("y"): g}


def cases(rng: np.random.Generator):
    """(name, rule model, rule feeds, [(alternative name, model, feeds)], output names to compare)."""
    # MaxPool 3x3/2 pad 1 after conv1: tie-heavy input (ReLU zeros and few distinct values)
    xs = (BATCH, 64, 112, 112)
    x = np.maximum(np.round(rng.standard_normal(xs) * 2) / 2, 0).astype(np.float32)
    g = rng.standard_normal((BATCH, 64, 56, 56)).astype(np.float32)
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    yield ("maxpool 3x3/2 8x64x112x112", _rule(node, xs, {}), _feeds_rule(x, g),
           [("equality masks + depthwise ConvTranspose", maxpool_masks(xs, 3, 2, 1), {"x": x, "g": g})])
    # stride-2 convolutions: conv1 7x7/2, a 3x3/2 and a 1x1/2 downsample
    for name, cout, cin, k, p, h in [("conv 7x7/2 3->64 224", 64, 3, 7, 3, 224), ("conv 3x3/2 64->128 56", 128, 64, 3, 1, 56),
                                     ("conv 1x1/2 64->128 56", 128, 64, 1, 0, 56)]:
        w = (rng.standard_normal((cout, cin, k, k)) / np.sqrt(cin * k * k)).astype(np.float32)
        xs = (BATCH, cin, h, h)
        node = helper.make_node("Conv", ["x", "w"], ["y"], strides=[2, 2], pads=[p] * 4, kernel_shape=[k, k])
        lg = (h + 2 * p - k) // 2 + 1
        x = rng.standard_normal(xs).astype(np.float32)
        g = rng.standard_normal((BATCH, cout, lg, lg)).astype(np.float32)
        alts = [("polyphase Conv + DepthToSpace", conv_polyphase(w, 2, p, h), {"g": g})]
        if k == 1:
            alts.append(("1x1 Conv + zero-insertion (Pad, Reshape)", conv1x1_zero_insert(w, 2, h), {"g": g}))
        yield (name, _rule(node, xs, {"w": w}), _feeds_rule(x, g), alts)
    # a stride-1 3x3 convolution of layer1 (the rule: a Conv with flipped, in/out-swapped weights)
    w = (rng.standard_normal((64, 64, 3, 3)) / 24).astype(np.float32)
    xs = (BATCH, 64, 56, 56)
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1] * 4, kernel_shape=[3, 3])
    x, g = rng.standard_normal(xs).astype(np.float32), rng.standard_normal(xs).astype(np.float32)
    yield ("conv 3x3/1 64->64 56", _rule(node, xs, {"w": w}), _feeds_rule(x, g),
           [("ConvTranspose", conv_transpose(w, 1, 56), {"g": g})])
    # ReLU at conv1's size
    xs = (BATCH, 64, 112, 112)
    x, g = rng.standard_normal(xs).astype(np.float32), rng.standard_normal(xs).astype(np.float32)
    yield ("relu 8x64x112x112", _rule(helper.make_node("Relu", ["x"], ["y"]), xs, {}), _feeds_rule(x, g),
           [("Where(Y > 0, G, 0)", relu_where(xs), {"x": x, "g": g})])
    # DepthToSpace: the interleave of phase-split formulations, against one elementwise pass
    for shape in [(BATCH, 256, 56, 56), (BATCH, 12, 112, 112)]:
        x = rng.standard_normal(shape).astype(np.float32)
        neg, d2s = depth_to_space(shape)
        yield (f"DepthToSpace {'x'.join(map(str, shape))} (rule = one Neg)", neg, {"x": x},
               [("DepthToSpace blocksize 2", d2s, {"x": x})])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--only", help="run the cases whose name contains this")
    args = ap.parse_args(argv)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    print(f"batch {BATCH}, {args.threads} thread(s), best wall / median CPU of {args.reps} alternating runs; "
          f"load average {load:.1f} on {os.cpu_count()} CPUs")
    for name, rule, feeds, alts in cases(np.random.default_rng(0)):
        if args.only and args.only not in name:
            continue
        sessions = {"rule": (_session(rule, args.threads), feeds)}
        for alt_name, model, alt_feeds in alts:
            sessions[alt_name] = (_session(model, args.threads), alt_feeds)
        for label, (sess, f) in list(sessions.items()):  # each session gets only the inputs it has
            names = {i.name for i in sess.get_inputs()}
            sessions[label] = (sess, {k: v for k, v in f.items() if k in names})
        outs = {label: sess.run(None, f)[0] for label, (sess, f) in sessions.items()}
        ref = outs["rule"]
        fns = {label: (lambda s=sess, f=f: s.run(None, f)) for label, (sess, f) in sessions.items()}
        wall, cpu = interleaved_times(fns, reps=args.reps, warmup=args.warmup)
        print(f"\n{name}")
        for label in sessions:
            agree = ""
            if label != "rule" and not name.startswith("DepthToSpace"):
                d = float(np.abs(outs[label] - ref).max() / max(float(np.abs(ref).max()), 1e-30))
                agree = f"  differs from the rule by {d:.1e}"
            ratio = "" if label == "rule" else (f"  / rule: best {min(wall[label]) / min(wall['rule']):5.2f}, "
                                                 f"CPU {statistics.median(cpu[label]) / statistics.median(cpu['rule']):5.2f}")
            print(f"  {label:<44} best {1000 * min(wall[label]):7.1f} ms  CPU {1000 * statistics.median(cpu[label]):7.1f} ms"
                  f"{ratio}{agree}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
