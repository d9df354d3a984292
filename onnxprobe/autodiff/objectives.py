"""Objectives: what a gradient run maximises, composable as in Lucid/Lucent (`+`, `-`, scalar `*`,
`stack`). The one home for objectives and seeds: optimize, attribution, maxact, the viewer and the
demo all build theirs here.

An objective is one scalar per batch row, a function of some target tensors' activations. It names
its targets, gives its value from fetched activations (`value`), and builds the seeds a gradient
graph takes (`seeds`): the gradient of the objective w.r.t. each target, because the gradient graph's
implicit objective is sum(seed * target) (docs/architecture.md). Linear objectives (neuron, channel,
direction, logit and their sums, multiples and stacks) have seeds that do not depend on the
activations: one gradient run needs no forward first. The others (`diversity`, `own_activation`)
need the activations (`seeds_for` runs the forward); `own_activation` also has an in-graph form
(`self_seed`, see `self_seeded`) that needs no forward at all.

Constructors take the model (anything with `.layer(name)`; `logit` and `pre_relu` also `.facts`,
`logit` `.class_output`) and a layer name or `LayerInfo`. Positions mean what onnxprobe.position says:
`neuron` takes Y,X (None: the centre), `unit_objective` takes any position keyword.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import onnx

from ..errors import ParameterError, UsageError
from ..graph.facts import GraphFacts
from ..graph.layers import LayerInfo
from ..position import Position, centre, check_position, check_unit, resolve

Acts = dict[str, np.ndarray]
SeedFn = Callable[[Acts | None, int], Acts]


@dataclass(frozen=True)
class SelfSeed:
    """The in-graph form of an objective whose seed is `mask * target` (where the target reaches its
    maximum over `peak_axes`, when given): the gradient model built by `self_seeded(model, target,
    peak_axes)` run with the seed `0.5 * mask` (GradientSession does the halving) forms that seed
    inside the run."""

    target: str
    mask: np.ndarray  # (1, *target shape without batch) float32
    peak_axes: tuple[int, ...] = ()


class Objective:
    """`shapes`: target -> activation shape with a batch axis of 1; `seed_fn(acts, batch)` -> {target:
    d value / d target}, arrays with a batch axis of 1 (broadcast) or `batch`; `value_fn(acts)` ->
    (batch,) values (linear objectives: sum(seed * activation) per row, in float64)."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], seed_fn: SeedFn, description: str, linear: bool = True,
                 value_fn: Callable[[Acts], np.ndarray] | None = None, self_seed: SelfSeed | None = None):
        if not linear and value_fn is None:
            raise ValueError("a non-linear objective needs its own value function")
        self.shapes = dict(shapes)
        self.targets = tuple(self.shapes)
        self.seed_fn = seed_fn
        self.description = description
        self.linear = linear
        self._value_fn = value_fn
        self.self_seed = self_seed
        self._constant: dict[int, Acts] = {}  # a linear objective's seeds, per batch size (read-only)
        self._support: dict[int, dict] = {}  # and where they are not zero (value's terms)
        self.anchor: "Anchor | None" = None  # accentuation's closeness to a photo, on the image

    def seeds(self, acts: Acts | None, batch: int) -> Acts:
        """{target: float32 seed} for a batch of `batch` rows; `acts` (the targets' activations) only
        for a non-linear objective. A linear objective's seeds are built once per batch size and
        shared: read-only, contiguous, with the whole batch axis (what a gradient session takes)."""
        if self.linear:
            cached = self._constant.get(batch)
            if cached is None:
                cached = self._constant[batch] = {t: _frozen(np.broadcast_to(s, (batch, *s.shape[1:])))
                                                  for t, s in self._seeds(None, batch).items()}
            return dict(cached)
        if acts is None:
            raise ValueError(f"objective '{self.description}' needs the activations to compute its gradient")
        return self._seeds(acts, batch)

    def _seeds(self, acts: Acts | None, batch: int) -> Acts:
        out = self.seed_fn(acts, batch)
        return {t: np.asarray(out[t], np.float32) for t in self.targets}

    def seeds_for(self, model, x: np.ndarray) -> Acts:
        """The seeds for the input batch `x`: a non-linear objective reads its targets in a forward run first."""
        acts = None if self.linear else model.activations(x, list(self.targets), with_outputs=False)
        return self.seeds(acts, len(x))

    def value(self, acts: Acts) -> np.ndarray:
        """The objective of each batch row, (N,) float64, from the targets' activations."""
        if self._value_fn is not None:
            return np.asarray(self._value_fn(acts), np.float64)
        batch = acts[self.targets[0]].shape[0]
        total = np.zeros(batch, np.float64)
        for t, (rows, where, weights) in self._terms(batch).items():
            if where is None:  # dense seeds: row by row
                total += np.einsum("ij,ij->i", weights, np.asarray(acts[t], np.float64).reshape(batch, -1))
            else:
                act = np.asarray(acts[t]).reshape(-1)[where]
                total += np.bincount(rows, weights=weights * act, minlength=batch)
        return total

    def _terms(self, batch: int) -> dict[str, tuple]:
        """A linear objective's value as sum(seed * activation), per target (row, flat index,
        float64 seed) over the seeds' non-zero elements only (a neuron's seed has one per row), or
        (None, None, float64 seeds as (batch, -1)) when most are non-zero (a direction)."""
        terms = self._support.get(batch)
        if terms is None:
            terms = {}
            for t, seed in self.seeds(None, batch).items():
                flat = seed.reshape(-1)
                where = np.flatnonzero(flat)
                if 4 * where.size > flat.size:
                    terms[t] = (None, None, seed.reshape(batch, -1).astype(np.float64))
                else:
                    terms[t] = (where // (flat.size // batch), where, flat[where].astype(np.float64))
            self._support[batch] = terms
        return terms

    def named(self, description: str) -> "Objective":
        """The same objective under another description."""
        return Objective(self.shapes, self.seed_fn, description, self.linear, self._value_fn, self.self_seed)

    # ---- composition ---------------------------------------------------------------------------
    def __add__(self, other: "Objective") -> "Objective":
        if not isinstance(other, Objective):
            return NotImplemented
        a, b = self, other
        shapes = {**a.shapes, **b.shapes}

        def seed_fn(acts, batch):
            sa, sb = a.seed_fn(acts, batch), b.seed_fn(acts, batch)
            return {t: _add(sa.get(t), sb.get(t)) for t in shapes}

        linear = a.linear and b.linear
        value_fn = None if linear else (lambda acts: a.value(acts) + b.value(acts))
        same = (a.self_seed is not None and b.self_seed is not None and a.self_seed.target == b.self_seed.target
                and a.self_seed.peak_axes == b.self_seed.peak_axes)
        self_seed = replace(a.self_seed, mask=a.self_seed.mask + b.self_seed.mask) if same else None
        return Objective(shapes, seed_fn, f"{a.description} + {b.description}", linear, value_fn, self_seed)

    def __mul__(self, factor: float) -> "Objective":
        if not isinstance(factor, (int, float, np.floating, np.integer)):
            return NotImplemented
        a, k = self, float(factor)
        value_fn = None if a.linear else (lambda acts: k * a.value(acts))
        self_seed = replace(a.self_seed, mask=np.float32(k) * a.self_seed.mask) if a.self_seed else None
        return Objective(a.shapes, lambda acts, batch: {t: k * s for t, s in a.seed_fn(acts, batch).items()},
                         f"{k:g} * ({a.description})", a.linear, value_fn, self_seed)

    __rmul__ = __mul__

    def __truediv__(self, divisor: float) -> "Objective":
        return self * (1.0 / divisor)

    def __neg__(self) -> "Objective":
        return self * -1.0

    def __sub__(self, other: "Objective") -> "Objective":
        if not isinstance(other, Objective):
            return NotImplemented
        return self + (-other)

    def __repr__(self) -> str:
        return f"Objective({self.description})"


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array, np.float32)
    array.flags.writeable = False
    return array


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return np.asarray(a) + np.asarray(b)


def stack(objectives: Sequence[Objective]) -> Objective:
    """Row i of the batch maximises objectives[i] (N units, or N restarts, in one run)."""
    objectives = list(objectives)
    shapes = {t: s for o in objectives for t, s in o.shapes.items()}
    linear = all(o.linear for o in objectives)

    def seed_fn(acts, batch):
        if batch != len(objectives):
            raise ValueError(f"a stack of {len(objectives)} objectives runs on a batch of {len(objectives)}, got {batch}")
        out = {}
        for t in shapes:
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


# ---- layers ------------------------------------------------------------------------------------

def differentiable_layer(model, layer: str | LayerInfo) -> LayerInfo:
    """The layer (a name, or its LayerInfo), refused when no gradient path leads back to the input
    (the one text for it)."""
    info = layer if isinstance(layer, LayerInfo) else model.layer(layer)
    if info.differentiable is False:
        raise UsageError(f"layer '{info.name}' cannot be differentiated back to the input "
                         "(an op without a gradient lies between); run 'onnxprobe layers' to see which can")
    return info


def _shape(info: LayerInfo) -> tuple[int, ...]:
    """The activation shape with a batch axis of 1."""
    return (1, *(int(d) for d in info.shape[1:]))


# Activations that pass no gradient over a half-line of their input (ReLU below 0, ReLU6 = Clip
# below its min and above its max, the hard sigmoid / swish below -3) and whose maximum lies where
# their input is largest: optimized through their input (`pre_relu`).
FLAT_ACTIVATIONS = ("Relu", "Clip", "HardSigmoid", "HardSwish")


def pre_relu(model, layer: str | LayerInfo) -> LayerInfo:
    """The tensor to optimise for `layer`: the input of a ReLU-like activation (FLAT_ACTIVATIONS)
    when `layer` is its output (same shape and axes), else the layer itself.

    relu(v) (relu6(v), ...) and v have the same maximiser wherever the unit fires, but a unit that
    is off at the start (common for a noise or grey start) passes no gradient at all; Lucid
    optimises such layers "pre_relu" for the same reason. Values reported are then the
    pre-activation's."""
    info = differentiable_layer(model, layer)
    node = model.facts.producers.get(info.name)
    if node is not None and node.op_type in FLAT_ACTIVATIONS:
        try:
            pre = model.layer(node.input[0])
        except UsageError:
            return info
        if pre.shape == info.shape and pre.channel_axis == info.channel_axis and pre.differentiable is not False:
            return pre
    return info


_SHAPE_ONLY = ("Identity",)


def pre_softmax_tensor(facts: GraphFacts, tensor: str) -> str:
    """The logits: the input of the Softmax/LogSoftmax that produces `tensor` (through Identity
    nodes), else `tensor` itself. Objectives on class units use the logits, because maximising
    (or explaining) a softmax output mostly minimises the other classes."""
    producers = facts.producers
    name = tensor
    while name in producers and producers[name].op_type in _SHAPE_ONLY:
        name = producers[name].input[0]
    node = producers.get(name)
    if node is not None and node.op_type in ("Softmax", "LogSoftmax") and node.domain in ("", "ai.onnx"):
        return node.input[0]
    return tensor


def logit_layer(model) -> LayerInfo:
    """The class scores before any final softmax (the model's (N, classes) output, through Identity)."""
    if model.class_output is None:
        raise UsageError("the model has no class-score output (N, classes): choose a layer and unit instead of a class")
    return differentiable_layer(model, pre_softmax_tensor(model.facts, model.class_output))


# ---- linear objectives -------------------------------------------------------------------------

def _unit_seed(info: LayerInfo, unit: int, position: Sequence[int] | None, value: float = 1.0) -> np.ndarray:
    """(1, *shape) float32: `value` on channel `unit` at `position` over the spatial axes (None:
    every position; axes that are neither channel nor spatial are taken whole), 0 elsewhere."""
    seed = np.zeros(_shape(info), np.float32)
    index: list = [slice(None)] * seed.ndim
    index[info.channel_axis] = unit
    for axis, p in zip(info.spatial_axes, position or ()):
        index[axis] = p
    seed[tuple(index)] = value
    return seed


def _layers(model, layer: str | LayerInfo, pre_activation: bool) -> tuple[LayerInfo, LayerInfo]:
    """(the layer named, the tensor the objective reads: the ReLU's input with `pre_activation`)."""
    info = differentiable_layer(model, layer)
    return info, (pre_relu(model, info) if pre_activation else info)


def _linear(info: LayerInfo, seed: np.ndarray, description: str) -> Objective:
    return Objective({info.name: seed.shape}, lambda acts, batch: {info.name: seed}, description)


def _where(info: LayerInfo, position: Sequence[int] | None) -> tuple[int, ...]:
    """A Y,X position checked against the layer (None: the centre; a vector layer takes () or None)."""
    if not info.is_spatial:
        if position is not None and tuple(position) != ():
            raise UsageError(f"layer '{info.name}' is not spatial: it takes no position")
        return ()
    return centre(info) if position is None else check_position(info, position)


def neuron(model, layer: str | LayerInfo, unit: int, position: Sequence[int] | None = None, *,
           pre_activation: bool = False) -> Objective:
    """One unit: channel `unit` at `position` (Y,X; the spatial centre by default, as the toolbox
    chose). `pre_activation`: on the input of the ReLU that produces `layer` (`pre_relu`)."""
    info, target = _layers(model, layer, pre_activation)
    unit, where = check_unit(info, unit), _where(info, position)
    at = f" at {','.join(map(str, where))}" if where else ""
    return _linear(target, _unit_seed(target, unit, where), f"neuron {target.name}:{unit}{at}")


def channel(model, layer: str | LayerInfo, unit: int, *, pre_activation: bool = False) -> Objective:
    """The mean of channel `unit` over all its positions."""
    info, target = _layers(model, layer, pre_activation)
    unit = check_unit(info, unit)
    positions = np.prod(_shape(target)) // target.units
    return _linear(target, _unit_seed(target, unit, None, 1.0 / positions), f"channel {target.name}:{unit}")


def direction(model, layer: str | LayerInfo, weights: Sequence[float], *, pre_activation: bool = False) -> Objective:
    """sum_c weights[c] * (the mean of channel c over all positions): a direction in channel space
    (Lucid's `direction`)."""
    info, target = _layers(model, layer, pre_activation)
    weights = np.asarray(weights, np.float64).ravel()
    if weights.size != info.units:
        raise UsageError(f"a direction in layer '{info.name}' needs {info.units} weights, got {weights.size}")
    shape = _shape(target)
    axes = [1] * len(shape)
    axes[target.channel_axis] = weights.size
    count = np.prod(shape) // weights.size
    seed = np.ascontiguousarray(np.broadcast_to((weights / count).reshape(axes), shape), np.float32)
    return _linear(target, seed, f"direction {target.name}")


def logit(model, cls: int) -> Objective:
    """The score of class `cls` before any final softmax."""
    info = logit_layer(model)
    cls = check_unit(info, cls, what="class")
    labels = getattr(getattr(model, "spec", None), "labels", None)
    label = f" ({labels[cls]})" if labels and cls < len(labels) else ""
    return _linear(info, _unit_seed(info, cls, ()), f"class {cls}{label}, logit '{info.name}'")


def unit_objective(model, layer: str | LayerInfo, unit: int, position: Position = None, x: np.ndarray | None = None, *,
                   pre_activation: bool = False) -> Objective:
    """Unit `unit` of `layer` at `position` as onnxprobe.position reads it: Y,X or "centre" (a
    neuron there), "mean" (the channel), "max" (a neuron where the unit fires most on the input
    `x`; refused without one, e.g. for a synthesized image); None is "max" when `x` is given, else
    "centre". `pre_activation`: on the input of the ReLU that produces `layer` (`pre_relu`)."""
    info = differentiable_layer(model, layer)
    unit = check_unit(info, unit)
    where, _ = resolve(model, info, unit, position, x)
    if where is None:
        return channel(model, info, unit, pre_activation=pre_activation)
    return neuron(model, info, unit, where, pre_activation=pre_activation)


KINDS = ("neuron", "channel", "logit")


def objective_layer(model, kind: str, layer: str | LayerInfo | None) -> LayerInfo:
    """The layer an objective of `kind` reads (its units are that layer's): the logits for
    "logit" (`layer` is not needed), else `layer`, which must be given."""
    if kind not in KINDS:
        raise UsageError(f"unknown objective '{kind}' (known: {', '.join(KINDS)})")
    if kind == "logit":
        return logit_layer(model)
    if layer is None:
        raise ParameterError(f"{{objective}} {kind} needs {{layer}}", "objective", "layer")
    return differentiable_layer(model, layer)


def by_kind(model, kind: str, layer: str | LayerInfo | None, unit: int, position: Position = None,
            pre_activation: bool = False, x: np.ndarray | None = None) -> Objective:
    """An objective named by kind: "neuron" (`unit_objective` at `position`: any position of
    onnxprobe.position, the centre when none is given and there is no input `x`), "channel" (the
    mean over positions), "logit" (the class score `unit`; `layer` is not needed). Only a neuron
    takes a position."""
    info = objective_layer(model, kind, layer)
    if kind != "neuron" and position is not None:
        raise ParameterError("{position} applies to {objective} neuron only", "position", "objective")
    if kind == "logit":
        return logit(model, unit)
    if kind == "channel":
        return channel(model, info, unit, pre_activation=pre_activation)
    return unit_objective(model, info, unit, position, x, pre_activation=pre_activation)


# ---- non-linear objectives ---------------------------------------------------------------------

def own_activation(model, layer: str | LayerInfo, unit: int, at_peak: bool = True) -> Objective:
    """Half the sum of squares of channel `unit` (only where it is largest over the spatial axes,
    when `at_peak`): its seed is the unit's own activation there, the Deep Visualization Toolbox's
    back-map seed. Non-linear; `self_seed` gives its in-graph form (one gradient run, no forward
    first). The peak indicator is piecewise constant: it passes no gradient."""
    info = differentiable_layer(model, layer)
    unit = check_unit(info, unit)
    mask = _unit_seed(info, unit, None)
    peak_axes = tuple(info.spatial_axes) if at_peak and info.is_spatial else ()

    def weight(act: np.ndarray) -> np.ndarray:  # mask * (act == its max over the peak axes)
        return mask * (act == act.max(axis=peak_axes, keepdims=True)) if peak_axes else mask

    def seed_fn(acts, batch):
        act = np.asarray(acts[info.name])
        return {info.name: weight(act) * act}

    def value_fn(acts):
        act = np.asarray(acts[info.name], np.float64)
        return 0.5 * (weight(act) * act * act).reshape(act.shape[0], -1).sum(axis=1)

    where = " where it fires most" if peak_axes else ""
    return Objective({info.name: mask.shape}, seed_fn, f"own activation of {info.name}:{unit}{where}", linear=False,
                     value_fn=value_fn, self_seed=SelfSeed(info.name, mask, peak_axes))


def diversity(model, layer: str | LayerInfo) -> Objective:
    """Lucid's diversity term: mean over rows of the summed cosine similarity between this row's
    Gram matrix (channels x channels) and every other row's. Maximise its negative (e.g.
    `objective - 1e2 * diversity(...)`) to make a batch's images differ."""
    info = differentiable_layer(model, layer)  # a style statistic of the layer itself, not a maximiser
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
        shape, flat, g, norms = grams(acts[info.name])
        gn = g / norms[:, None, None]
        n = gn.shape[0]
        # d/dgn_i of sum_i sum_{j!=i} <gn_i, gn_j> / n = 2 / n * sum_{j != i} gn_j
        m = 2.0 / n * (gn.sum(axis=0, keepdims=True) - gn)
        inner = (m * gn).sum(axis=(1, 2))
        dg = (m - inner[:, None, None] * gn) / norms[:, None, None]
        dflat = np.einsum("nsc,ncd->nsd", flat, dg + np.transpose(dg, (0, 2, 1)))
        grad = np.moveaxis(dflat.reshape(shape), -1, axis)
        return {info.name: grad.astype(np.float32)}

    return Objective({info.name: _shape(info)}, seed_fn, f"diversity {info.name}", linear=False, value_fn=value_fn)


# ---- pictures from a photo ---------------------------------------------------------------------

def _photo_activation(info: LayerInfo, photo_activation: np.ndarray) -> tuple[np.ndarray, float]:
    """The photo's activation of the layer as (1, *shape) float32 and its squared norm (> 0)."""
    a0 = np.asarray(photo_activation, np.float32)
    if a0.shape[1:] != _shape(info)[1:] or a0.shape[0] != 1:
        raise ParameterError(f"{{photo_activation}} of layer '{info.name}' must have shape "
                             f"{(1, *_shape(info)[1:])}, got {a0.shape}", "photo_activation")
    norm2 = float((a0.astype(np.float64) ** 2).sum())
    if not np.isfinite(norm2) or norm2 <= 0:
        raise UsageError(f"layer '{info.name}' is all zero (or not finite) on this photo: nothing to "
                         "reconstruct or amplify there; choose another layer")
    return a0, norm2


def caricature(model, layer: str | LayerInfo, photo_activation: np.ndarray) -> Objective:
    """Microscope's caricature: amplify what `layer` already sees in a photo. The dot product of
    the layer's activation with the photo's own (`photo_activation`, (1, *shape), e.g.
    `model.activations(photo_x, [layer])[layer]`), divided by the photo's norm: the activation's
    projection on the photo's direction (the photo itself scores its own norm). Linear."""
    info = differentiable_layer(model, layer)
    a0, norm2 = _photo_activation(info, photo_activation)
    return _linear(info, a0 / np.float32(np.sqrt(norm2)), f"caricature of the photo at {info.name}")


def inversion(model, layer: str | LayerInfo, photo_activation: np.ndarray) -> Objective:
    """Feature inversion (Mahendran and Vedaldi 2015): the image whose activation of `layer` is the
    photo's. Value: -||a(x) - a0||^2 / ||a0||^2 (0 at a perfect reconstruction; the priors of the
    preset are the image regularizers). Non-linear: its seed is -2 (a(x) - a0) / ||a0||^2."""
    info = differentiable_layer(model, layer)
    a0, norm2 = _photo_activation(info, photo_activation)
    target = a0.astype(np.float64)

    def seed_fn(acts, batch):
        return {info.name: (-2.0 / norm2 * (np.asarray(acts[info.name], np.float64) - target)).astype(np.float32)}

    def value_fn(acts):
        diff = np.asarray(acts[info.name], np.float64) - target
        return -(diff * diff).reshape(diff.shape[0], -1).sum(axis=1) / norm2

    return Objective({info.name: a0.shape}, seed_fn, f"inversion of the photo at {info.name}", linear=False,
                     value_fn=value_fn)


@dataclass(frozen=True)
class Anchor:
    """Feature accentuation's closeness term (Hamblin et al. 2024, as Horama writes it): the image
    (display space 0..1, (1, C, H, W)) stays near `photo`: `weight * mean((image - photo)^2)` is
    subtracted from the objective. It lives on the image, not on a layer, so the engine that owns
    the image applies it (optimize's lucid engine)."""

    photo: np.ndarray
    weight: float

    def value(self, images: np.ndarray) -> np.ndarray:
        diff = np.asarray(images, np.float64) - self.photo
        return -self.weight * (diff * diff).reshape(len(diff), -1).mean(axis=1)

    def gradient(self, images: np.ndarray) -> np.ndarray:
        diff = np.asarray(images, np.float32) - self.photo
        return (-2.0 * self.weight / np.prod(diff.shape[1:]) * diff).astype(np.float32)


def accentuation(objective: Objective, photo: np.ndarray, weight: float = 1.0) -> Objective:
    """Feature accentuation (Hamblin et al. 2024): push `objective` (a unit or a class) starting
    from the photo while staying close to it (`Anchor`: `weight` on the mean squared distance in
    display space, 0..1, `photo` (1, C, H, W)). Start the optimization from the photo."""
    if not np.isfinite(weight) or weight < 0:
        raise ParameterError(f"{{weight}} must be a number of at least 0, got {weight}", "weight")
    photo = np.asarray(photo, np.float32)
    if photo.ndim != 4 or photo.shape[0] != 1:
        raise ParameterError(f"{{photo}} must be one display image (1, C, H, W) in 0..1, got {photo.shape}", "photo")
    out = objective.named(f"accentuation of {objective.description} from the photo")
    out.anchor = Anchor(photo, float(weight))
    return out


# ---- in-graph forms ----------------------------------------------------------------------------

def value_nodes(objective: Objective, seeds: dict[str, str], output: str) -> tuple[list[onnx.NodeProto],
                                                                                  list[onnx.TensorProto]]:
    """The in-graph form of a linear objective's `value`: (nodes, initializers) computing into
    `output`, (N,) float32, the sum over its targets of sum(seed * activation) per batch row, from
    the target tensors and the seed inputs `seeds` (target -> the seed's name in the graph, fed
    `objective.seeds`). A non-linear objective has no such form (its value is not its seeds'
    product with the activations)."""
    from onnx import helper, numpy_helper

    if not objective.linear:
        raise ValueError(f"objective '{objective.description}' is not linear: it has no in-graph value")
    nodes, inits, parts = [], [], []
    for i, target in enumerate(objective.targets):
        axes, product, part = (f"{output}/{kind}{i}" for kind in ("axes", "product", "sum"))
        inits.append(numpy_helper.from_array(np.arange(1, len(objective.shapes[target]), dtype=np.int64), axes))
        nodes.append(helper.make_node("Mul", [seeds[target], target], [product], name=product))
        nodes.append(helper.make_node("ReduceSum", [product, axes], [part], name=part, keepdims=0))
        parts.append(part)
    nodes.append(helper.make_node("Sum", parts, [output], name=output))
    return nodes, inits



def self_seeded(model: onnx.ModelProto, target: str, peak_axes: tuple[int, ...] = ()) -> tuple[onnx.ModelProto, str]:
    """A copy of `model` with one more output, target * target, and its name.

    Its gradient under the seed 0.5 * mask (mask of 0/1) equals the gradient of `target` under the
    seed mask * target -- exactly in floating point: the Mul rule hands each factor 0.5 * mask *
    target and the two halves add up. That is "the unit's own activation as the seed" (the Deep
    Visualization Toolbox's back map, `own_activation`) in ONE run, without a forward pass first to
    read the unit.

    `peak_axes` (the spatial axes): the square is also multiplied by where the target reaches its
    maximum over those axes (Equal with ReduceMax, cast to float: no gradient flows through it), so
    the seed is the unit's activation at the position where it fires most (every such position on
    an exact tie), again without a forward pass first.
    """
    from onnx import helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    names = {o for n in out.graph.node for o in n.output} | {i.name for i in out.graph.input}
    square = f"onnxprobe.self_seeded:{target}"
    while square in names:
        square += "_"
    if peak_axes:
        axes, peak, at_peak, weight, product = (f"{square}/{part}" for part in ("axes", "max", "at_max", "weight", "sq"))
        out.graph.node.extend([
            helper.make_node("Constant", [], [axes], value=helper.make_tensor(axes, onnx.TensorProto.INT64,
                                                                                [len(peak_axes)], list(peak_axes))),
            helper.make_node("ReduceMax", [target, axes], [peak], keepdims=1),
            helper.make_node("Equal", [target, peak], [at_peak]),
            helper.make_node("Cast", [at_peak], [weight], to=onnx.TensorProto.FLOAT),  # onnxprobe runs float32
            helper.make_node("Mul", [target, target], [product]),
            helper.make_node("Mul", [product, weight], [square], name=square),
        ])
    else:
        out.graph.node.append(helper.make_node("Mul", [target, target], [square], name=square))
    out.graph.output.append(helper.make_empty_tensor_value_info(square))
    return out, square
