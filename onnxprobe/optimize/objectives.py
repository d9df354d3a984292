"""Objectives to maximise, composable with `+`, `-` and scalar `*` as in Lucid.

An objective names its target tensors and gives, for a batch of activations, one value per batch
row and the gradient of those values w.r.t. each target (the "seed" the gradient graph takes, see
docs/architecture.md). Linear objectives (neuron, channel, logit, direction and their sums) have
seeds that do not depend on the activations, so one gradient-graph run per step serves them and
the whole step can run inside ONNX Runtime; `diversity` is not linear and needs the activations
first (a forward run, then the gradient run).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from onnxprobe.errors import ParameterError, UsageError

SeedFn = Callable[[dict[str, np.ndarray] | None, int], dict[str, np.ndarray]]


class Objective:
    """`targets`: layer names; `seed_fn(acts, batch)` -> {target: d value / d target}, arrays with
    a batch axis of 1 (broadcast) or `batch`; `value_fn(acts)` -> (batch,) values (linear
    objectives compute theirs as sum(seed * activation) per row)."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], seed_fn: SeedFn, description: str, linear: bool = True,
                 value_fn: Callable[[dict[str, np.ndarray]], np.ndarray] | None = None):
        self.shapes = dict(shapes)  # target -> activation shape with a batch axis of 1
        self.targets = tuple(self.shapes)
        self.seed_fn = seed_fn
        self.description = description
        self.linear = linear
        self._value_fn = value_fn
        if not linear and value_fn is None:
            raise ValueError("a non-linear objective needs its own value function")

    def seeds(self, acts: dict[str, np.ndarray] | None, batch: int) -> dict[str, np.ndarray]:
        if not self.linear and acts is None:
            raise ValueError(f"objective '{self.description}' needs the activations to compute its gradient")
        out = self.seed_fn(acts, batch)
        return {t: np.asarray(out[t], np.float32) for t in self.targets}

    def value(self, acts: dict[str, np.ndarray]) -> np.ndarray:
        if self._value_fn is not None:
            return np.asarray(self._value_fn(acts), np.float64)
        batch = next(iter(acts[t] for t in self.targets)).shape[0]
        seeds = self.seeds(None, batch)
        total = np.zeros(batch, np.float64)
        for t in self.targets:
            product = np.broadcast_to(seeds[t], acts[t].shape) * acts[t]
            total += product.reshape(batch, -1).sum(axis=1, dtype=np.float64)
        return total

    # ---- composition ---------------------------------------------------------------------------
    def __add__(self, other: "Objective") -> "Objective":
        if not isinstance(other, Objective):
            return NotImplemented
        a, b = self, other
        shapes = {**a.shapes, **b.shapes}
        targets = tuple(shapes)

        def seed_fn(acts, batch):
            sa, sb = a.seed_fn(acts, batch), b.seed_fn(acts, batch)
            return {t: _add(sa.get(t), sb.get(t)) for t in targets}

        linear = a.linear and b.linear
        value_fn = None if linear else (lambda acts: a.value(acts) + b.value(acts))
        return Objective(shapes, seed_fn, f"{a.description} + {b.description}", linear, value_fn)

    def __mul__(self, factor: float) -> "Objective":
        if not isinstance(factor, (int, float, np.floating, np.integer)):
            return NotImplemented
        a, k = self, float(factor)
        value_fn = None if a.linear else (lambda acts: k * a.value(acts))
        return Objective(a.shapes, lambda acts, batch: {t: k * s for t, s in a.seed_fn(acts, batch).items()},
                         f"{k:g} * ({a.description})", a.linear, value_fn)

    __rmul__ = __mul__

    def __neg__(self) -> "Objective":
        return self * -1.0

    def __sub__(self, other: "Objective") -> "Objective":
        return self + (-other)

    def __repr__(self) -> str:
        return f"Objective({self.description})"


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return np.asarray(a) + np.asarray(b)


# ---- building blocks ---------------------------------------------------------------------------

# Activations that pass no gradient over a half-line of their input (ReLU below 0, ReLU6 = Clip
# below its min and above its max, the hard sigmoid / swish below -3, ThresholdedRelu below alpha)
# and whose maximum lies where their input is largest: optimized through their input.
FLAT_ACTIVATIONS = ("Relu", "Clip", "HardSigmoid", "HardSwish", "ThresholdedRelu")


def target_layer(model, layer: str):
    """The tensor to optimise for `layer`: the input of a ReLU-like activation (FLAT_ACTIVATIONS)
    when `layer` is its output.

    relu(v) (relu6(v), ...) and v have the same maximiser wherever the unit fires, but a unit that
    is off at the start (common for a noise or grey start) passes no gradient at all; Lucid
    optimises such layers "pre_relu" for the same reason. Values reported are then the
    pre-activation's."""
    info = model.layer(layer)
    for node in model.proto.graph.node:
        if node.op_type in FLAT_ACTIVATIONS and info.name in node.output:
            try:
                pre = model.layer(node.input[0])
            except UsageError:
                return info
            if pre.shape == info.shape and pre.channel_axis == info.channel_axis and pre.differentiable is not False:
                return pre
    return info


_layer = target_layer


def _check_unit(info, unit: int) -> int:
    unit = int(unit)
    if not 0 <= unit < info.units:
        raise UsageError(f"unit {unit} is out of range: layer '{info.name}' has {info.units} units (0-{info.units - 1})")
    return unit


def default_position(info) -> tuple[int, ...]:
    """The spatial centre of a conv layer (the toolbox's choice), () for vector layers."""
    from onnxprobe.position import centre

    return centre(info)


def _zeros(info) -> np.ndarray:
    return np.zeros((1, *[int(d) for d in info.shape[1:]]), np.float32)


def neuron(model, layer: str, unit: int, position: Sequence[int] | None = None) -> Objective:
    """One unit: channel `unit` at `position` (y, x); the spatial centre by default."""
    info = _layer(model, layer)
    unit = _check_unit(info, unit)
    position = tuple(int(p) for p in position) if position is not None else default_position(info)
    shown = model.layer(layer).name  # the layer the user named (info may be the ReLU's input)
    if len(position) != len(info.spatial_axes):
        raise ParameterError(f"layer '{shown}' has {len(info.spatial_axes)} spatial axes; {{position}} gave "
                             f"{len(position)} values", "position")
    for p, axis in zip(position, info.spatial_axes):
        if not 0 <= p < int(info.shape[axis]):
            raise UsageError(f"position {position} is outside layer '{shown}' of spatial size {info.spatial_shape}")
    seed = _zeros(info)
    index = [0] * seed.ndim
    index[info.channel_axis] = unit
    for p, axis in zip(position, info.spatial_axes):
        index[axis] = p
    seed[tuple(index)] = 1.0
    where = f" at {','.join(map(str, position))}" if position else ""
    return Objective({info.name: seed.shape}, lambda acts, batch: {info.name: seed}, f"neuron {info.name}:{unit}{where}")


def channel(model, layer: str, unit: int) -> Objective:
    """The mean of channel `unit` over all positions."""
    info = _layer(model, layer)
    unit = _check_unit(info, unit)
    seed = _zeros(info)
    index = [slice(None)] * seed.ndim
    index[0] = 0
    index[info.channel_axis] = unit
    seed[tuple(index)] = 1.0 / max(1, int(np.prod(info.spatial_shape)) if info.spatial_axes else 1)
    return Objective({info.name: seed.shape}, lambda acts, batch: {info.name: seed}, f"channel {info.name}:{unit}")


def direction(model, layer: str, weights: Sequence[float]) -> Objective:
    """sum_c weights[c] * channel c, averaged over positions (Lucid's `direction`)."""
    info = _layer(model, layer)
    weights = np.asarray(weights, np.float32).ravel()
    if weights.size != info.units:
        raise UsageError(f"a direction in layer '{info.name}' needs {info.units} weights, got {weights.size}")
    shape = [1] * len(info.shape)
    shape[info.channel_axis] = info.units
    area = max(1, int(np.prod(info.spatial_shape))) if info.spatial_axes else 1
    seed = np.broadcast_to(weights.reshape(shape) / area, _zeros(info).shape).astype(np.float32)
    return Objective({info.name: seed.shape}, lambda acts, batch: {info.name: seed}, f"direction {info.name}")


def logit_layer(model) -> str:
    """The pre-softmax class scores: the input of a final Softmax/LogSoftmax, else the class output."""
    output = model.class_output
    if output is None:
        raise ParameterError("the model has no (N, classes) output: use {objective} neuron or channel with {layer}",
                             "objective", "layer")
    for node in model.proto.graph.node:
        if output in node.output and node.op_type in ("Softmax", "LogSoftmax"):
            return node.input[0]
    return output


def logit(model, unit: int) -> Objective:
    """The pre-softmax score of class `unit`."""
    return neuron(model, logit_layer(model), unit)


def stack(objectives: Sequence[Objective]) -> Objective:
    """Row i of the batch maximises objectives[i] (N units or N restarts in one run)."""
    objectives = list(objectives)
    shapes = {t: s for o in objectives for t, s in o.shapes.items()}
    targets = tuple(shapes)
    linear = all(o.linear for o in objectives)

    def seed_fn(acts, batch):
        if batch != len(objectives):
            raise ValueError(f"a stack of {len(objectives)} objectives runs on a batch of {len(objectives)}, got {batch}")
        out = {}
        for t in targets:
            rows = []
            for i, o in enumerate(objectives):
                row_acts = None if acts is None else {k: v[i:i + 1] for k, v in acts.items()}
                seed = o.seed_fn(row_acts, 1).get(t) if t in o.targets else None
                if seed is None:
                    seed = np.zeros(shapes[t], np.float32)
                rows.append(np.broadcast_to(seed, (1, *np.shape(seed)[1:])))
            out[t] = np.concatenate(rows, axis=0)
        return out

    def value_fn(acts):
        return np.concatenate([o.value({k: v[i:i + 1] for k, v in acts.items()}) for i, o in enumerate(objectives)])

    names = ", ".join(o.description for o in objectives[:3]) + (", ..." if len(objectives) > 3 else "")
    return Objective(shapes, seed_fn, f"stack[{names}]", linear, None if linear else value_fn)


def diversity(model, layer: str) -> Objective:
    """Lucid's diversity term: mean over rows of the summed cosine similarity between this row's
    Gram matrix (channels x channels) and every other row's. Maximise its negative (e.g.
    `objective - 1e2 * diversity(...)`) to make a batch's images differ."""
    info = model.layer(layer)  # a style statistic of the layer itself, not a maximiser
    axis = info.channel_axis

    def grams(act):
        a = np.moveaxis(np.asarray(act, np.float64), axis, -1)
        flat = a.reshape(a.shape[0], -1, a.shape[-1])  # (N, S, C)
        g = np.einsum("nsc,nsd->ncd", flat, flat)
        norms = np.sqrt((g ** 2).sum(axis=(1, 2)))
        return a.shape, flat, g, np.maximum(norms, 1e-10)

    def value_fn(acts):
        _, _, g, norms = grams(acts[info.name])
        gn = g / norms[:, None, None]
        n = gn.shape[0]
        total = np.einsum("icd,jcd->ij", gn, gn)
        per_row = total.sum(axis=1) - np.diagonal(total)
        return per_row / n  # row i's share; their sum is Lucid's value

    def seed_fn(acts, batch):
        act = acts[info.name]
        shape, flat, g, norms = grams(act)
        gn = g / norms[:, None, None]
        n = gn.shape[0]
        # d/dgn_i of sum_i sum_{j!=i} <gn_i, gn_j> / n = 2 / n * sum_{j != i} gn_j
        m = 2.0 / n * (gn.sum(axis=0, keepdims=True) - gn)
        inner = (m * gn).sum(axis=(1, 2))
        dg = (m - inner[:, None, None] * gn) / norms[:, None, None]
        dflat = np.einsum("nsc,ncd->nsd", flat, dg + np.transpose(dg, (0, 2, 1)))
        grad = np.moveaxis(dflat.reshape(shape), -1, axis)
        return {info.name: grad.astype(np.float32)}

    return Objective({info.name: _zeros(info).shape}, seed_fn, f"diversity {info.name}", linear=False, value_fn=value_fn)


def make_objective(model, kind: str, layer: str | None, unit: int, position: Sequence[int] | None = None) -> Objective:
    """The command line's objectives: neuron | channel | logit."""
    if kind == "logit":
        return logit(model, unit)
    if layer is None:
        raise ParameterError(f"{{objective}} {kind} needs {{layer}}", "objective", "layer")
    if kind == "neuron":
        return neuron(model, layer, unit, position)
    if kind == "channel":
        if position is not None:
            raise ParameterError("{position} applies to {objective} neuron only", "position", "objective")
        return channel(model, layer, unit)
    raise UsageError(f"unknown objective '{kind}' (known: neuron, channel, logit)")
