"""The seed's whole optimisation step as one ONNX graph: clip -> forward/backward -> update ->
decay -> blur -> clip small norms -> clip small contributions -> best-so-far.

The gradient graph (onnxprobe.autodiff) is wrapped by standard default-domain ops, so a step runs
on any execution provider; on CUDA with IO binding the state (image, best image, best value)
stays on the GPU between steps. Hyperparameters are inputs, so one compiled graph serves every
preset. Its nodes are emitted through autodiff's Tape (unique names, constants shared), like the
backward rules'. The numpy reference of the same step is `priors.seed_update`.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from onnxprobe.objectives import Objective, write_value
from onnxprobe.autodiff.tape import Tape
from onnxprobe.graph.facts import GraphFacts
from onnxprobe.graph.loading import finalize_model

P = "onnxprobe.step:"
# The step's own inputs and outputs are named under IO in the graph, so that a model tensor called
# "q" or "value" cannot clash with them; callers speak the short names and map them with `io`.
IO = "onnxprobe.step."
INT64_MIN = np.iinfo(np.int64).min

OUTPUTS = ("q_next", "best_q_next", "best_value_next", "value")


def io(name: str) -> str:
    """The graph name of the step's input or output `name` ("q" -> "onnxprobe.step.q")."""
    return IO + name


def step_inputs(channels: int, height: int, width: int) -> dict[str, tuple[int, list]]:
    img = ["N", channels, height, width]
    f, i, b = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
    return {
        "q": (f, img), "best_q": (f, img), "best_value": (f, ["N"]),
        "lr": (f, ["N"]), "max_lr": (f, ["N"]), "desired_progress": (f, [1]), "progress": (b, []), "keep": (f, [1]),
        "update": (b, []), "blur_now": (b, []), "blur_v": (f, [channels, 1, None, 1]), "blur_h": (f, [channels, 1, 1, None]),
        "blur_lo_start": (i, [1]), "blur_hi_end": (i, [1]),
        "norm_k": (i, [1]), "norm_i0": (i, [1]), "norm_i1": (i, [1]), "norm_t": (f, [1]),
        "contrib_k": (i, [1]), "contrib_i0": (i, [1]), "contrib_i1": (i, [1]), "contrib_t": (f, [1]),
    }


def _f32(tape: Tape, value) -> str:
    return tape.const(np.asarray(value, np.float32))


def _percentile_mask(t: Tape, values: str, prefix: str) -> str:
    """values (N,1,H,W) -> bool mask values < row percentile (np.percentile's linear rule)."""
    flat = t.op("Reshape", values, t.i64([0, -1]))
    smallest, _ = t.op("TopK", flat, io(prefix + "k"), outputs=2, axis=1, largest=0, sorted=1)
    a = t.op("Gather", smallest, io(prefix + "i0"), axis=1)
    b = t.op("Gather", smallest, io(prefix + "i1"), axis=1)
    weight = io(prefix + "t")
    diff = t.op("Sub", b, a)
    low_side = t.op("Add", a, t.op("Mul", diff, weight))
    high_side = t.op("Sub", b, t.op("Mul", diff, t.op("Sub", _f32(t, [1.0]), weight)))
    threshold = t.op("Where", t.op("GreaterOrEqual", weight, _f32(t, [0.5])), high_side, low_side)
    threshold = t.op("Reshape", threshold, t.i64([-1, 1, 1, 1]))
    return t.op("Less", values, threshold)


def _symmetric_pad(t: Tape, x: str, axis: int) -> str:
    """Mirror-pad including the edge pixel (scipy's "reflect"), by a run-time radius r."""
    axes, back = t.i64([axis]), t.i64([-1])
    low = t.op("Slice", x, io("blur_lo_start"), t.i64([INT64_MIN]), axes, back)
    high = t.op("Slice", x, t.i64([-1]), io("blur_hi_end"), axes, back)
    return t.op("Concat", low, x, high, axis=axis)


def build_step_model(gradient_model: onnx.ModelProto, input_name: str, grad_output: str,
                     objective: Objective, seeds: dict[str, str], slope: np.ndarray, low: np.ndarray, high: np.ndarray,
                     nhwc: bool) -> onnx.ModelProto:
    """Wrap `gradient_model` (inputs: `input_name` and the seeds; outputs: the targets and
    `grad_output`) into the step graph of the linear `objective`. `seeds` maps target -> seed input
    name; `slope`, `low`, `high` are (1, C, 1, 1) (see priors.PixelSpace)."""
    channels = int(slope.shape[1])
    graph = gradient_model.graph
    image_value = next(v for v in graph.input if v.name == input_name)
    dims = [d.dim_value for d in image_value.type.tensor_type.shape.dim]
    height, width = (dims[1], dims[2]) if nhwc else (dims[2], dims[3])
    feeds = step_inputs(channels, height, width)
    # the tape's names avoid the gradient graph's and the step's own inputs and outputs
    b = Tape(GraphFacts(gradient_model, infer_shapes=False), taken={io(n) for n in (*feeds, *OUTPUTS)}, prefix=P)

    q = b.op("Max", b.op("Min", io("q"), _f32(b, high)), _f32(b, low), hint="q_clipped")
    x = b.op("Mul", q, _f32(b, slope))
    if nhwc:
        x = b.op("Transpose", x, perm=[0, 2, 3, 1])
    b.emit("Identity", [x], [input_name])
    prefix_nodes = b.take()  # they compute the gradient graph's input: before its nodes

    # the objective of each row, as the objective computes it (its in-graph form)
    value = write_value(b, objective, seeds)

    g = grad_output
    if nhwc:
        g = b.op("Transpose", g, perm=[0, 3, 1, 2])
    g = b.op("Mul", g, _f32(b, slope), hint="grad_q")
    spatial = b.i64([1, 2, 3])
    squared = b.op("ReduceSumSquare", g, spatial, keepdims=0)
    progress_lr = b.op("Min", io("max_lr"), b.op("Div", io("desired_progress"), squared))
    lr = b.op("Where", io("progress"), progress_lr, b.op("Expand", io("lr"), b.op("Shape", squared)))
    out = b.op("Add", q, b.op("Mul", b.op("Reshape", lr, b.i64([-1, 1, 1, 1])), g))
    out = b.op("Mul", out, io("keep"))

    blurred = b.op("Conv", _symmetric_pad(b, out, 2), io("blur_v"), group=channels)
    blurred = b.op("Conv", _symmetric_pad(b, blurred, 3), io("blur_h"), group=channels)
    out = b.op("Where", io("blur_now"), blurred, out)

    zero = _f32(b, [0.0])
    channel_axis = b.i64([1])
    norms = b.op("Sqrt", b.op("ReduceSumSquare", out, channel_axis, keepdims=1))
    out = b.op("Where", _percentile_mask(b, norms, "norm_"), zero, out)
    contribution = b.op("Abs", b.op("ReduceSum", b.op("Mul", g, b.op("Neg", out)), channel_axis, keepdims=1))
    out = b.op("Where", _percentile_mask(b, contribution, "contrib_"), zero, out)

    moving = b.op("And", b.op("Greater", squared, _f32(b, [0.0])), io("update"))
    moving4 = b.op("Reshape", moving, b.i64([-1, 1, 1, 1]))
    b.emit("Where", [moving4, out, q], [io("q_next")])

    better = b.op("Greater", value, io("best_value"))
    b.emit("Where", [better, value, io("best_value")], [io("best_value_next")])
    better4 = b.op("Reshape", better, b.i64([-1, 1, 1, 1]))
    b.emit("Where", [better4, q, io("best_q")], [io("best_q_next")])
    b.emit("Identity", [value], [io("value")])

    inputs = [helper.make_tensor_value_info(io(n), t, s) for n, (t, s) in feeds.items()]
    inputs += [v for v in graph.input if v.name in seeds.values()]
    img = ["N", channels, height, width]
    outputs = [helper.make_tensor_value_info(io("q_next"), TensorProto.FLOAT, img),
               helper.make_tensor_value_info(io("best_q_next"), TensorProto.FLOAT, img),
               helper.make_tensor_value_info(io("best_value_next"), TensorProto.FLOAT, ["N"]),
               helper.make_tensor_value_info(io("value"), TensorProto.FLOAT, ["N"])]
    step = helper.make_graph(prefix_nodes + list(graph.node) + b.nodes, "onnxprobe_step", inputs, outputs,
                             list(graph.initializer) + b.initializers)
    model = helper.make_model(step, opset_imports=list(gradient_model.opset_import))
    return finalize_model(model)


def blur_feeds(sigma: float, channels: int) -> dict[str, np.ndarray]:
    from onnxprobe.optimize.priors import gaussian_kernel

    taps = gaussian_kernel(sigma) if sigma > 0 else np.array([0.0, 1.0, 0.0], np.float32)
    r = len(taps) // 2
    return {
        "blur_v": np.ascontiguousarray(np.broadcast_to(taps.reshape(1, 1, -1, 1), (channels, 1, len(taps), 1))),
        "blur_h": np.ascontiguousarray(np.broadcast_to(taps.reshape(1, 1, 1, -1), (channels, 1, 1, len(taps)))),
        "blur_lo_start": np.array([r - 1], np.int64),
        "blur_hi_end": np.array([-1 - r], np.int64),
    }


def percentile_feeds(prefix: str, count: int, pct: float) -> dict[str, np.ndarray]:
    from onnxprobe.optimize.priors import percentile_indices

    i0, i1, t = percentile_indices(count, pct)
    return {f"{prefix}k": np.array([i1 + 1], np.int64), f"{prefix}i0": np.array([i0], np.int64),
            f"{prefix}i1": np.array([i1], np.int64), f"{prefix}t": np.array([t], np.float32)}
