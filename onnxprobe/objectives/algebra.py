"""The objective algebra: an `Objective` (its targets, value and seeds), composable as in
Lucid/Lucent (`+`, `-`, scalar `*` and `/`, `stack`), and `SelfSeed`, the description of its
in-graph seed (onnxprobe.objectives.ingraph).

An objective is one scalar per batch row, a function of some target tensors' activations. It names
its targets, gives its value from fetched activations (`value`), and builds the seeds a gradient
graph takes (`seeds`): the gradient of the objective w.r.t. each target, because the gradient graph's
implicit objective is sum(seed * target) (docs/architecture.md). Linear objectives (neuron, channel,
direction, logit and their sums, multiples and stacks) have seeds that do not depend on the
activations: one gradient run needs no forward first. The others (`diversity`, `own_activation`)
need the activations (`seeds_for` runs the forward); `own_activation` also has an in-graph form
(`self_seed`, see `ingraph.self_seeded`) that needs no forward at all.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

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


def plus_text(a: str, b: str) -> str:
    return f"{a} + {b}"


def times_text(k: float, a: str) -> str:
    return f"{k:g} * ({a})"


class Algebra:
    """Lucid's operators on objectives, from two primitives a subclass defines: `_plus(other)`
    (another of the same family) and `_times(k)` (a float). `a + b`, `a - b`, `k * a`, `a * k`,
    `a / k`, `-a` and `sum([...])`; anything else is refused (NotImplemented: a TypeError). The one
    home of the algebra: `Objective` (bound to a model) and the API's model-free recipes
    (`onnxprobe.api.objectives.ObjectiveSpec`) both take it from here."""

    _family: type = object  # what `+` and `-` combine with (the subclass's base)

    def _plus(self, other):  # pragma: no cover - every family defines it
        raise NotImplementedError

    def _times(self, k: float):  # pragma: no cover
        raise NotImplementedError

    def __add__(self, other):
        if not isinstance(other, self._family):
            return NotImplemented
        return self._plus(other)

    def __radd__(self, other):  # sum([...]) starts from 0
        return self if isinstance(other, int) and not isinstance(other, bool) and other == 0 else NotImplemented

    def __mul__(self, factor):
        if isinstance(factor, bool) or not isinstance(factor, numbers.Real):  # numpy's scalars are Real too
            return NotImplemented
        return self._times(float(factor))

    __rmul__ = __mul__

    def __truediv__(self, divisor):
        if isinstance(divisor, bool) or not isinstance(divisor, numbers.Real):
            return NotImplemented
        return self * (1.0 / divisor)

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        if not isinstance(other, self._family):
            return NotImplemented
        return self + (-other)


class Objective(Algebra):
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
        self.anchor = None  # accentuation's closeness to a photo, on the image (objectives.photo.Anchor)

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
    def _plus(self, other: "Objective") -> "Objective":
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
        return Objective(shapes, seed_fn, plus_text(a.description, b.description), linear, value_fn, self_seed)

    def _times(self, k: float) -> "Objective":
        a = self
        value_fn = None if a.linear else (lambda acts: k * a.value(acts))
        self_seed = replace(a.self_seed, mask=np.float32(k) * a.self_seed.mask) if a.self_seed else None
        return Objective(a.shapes, lambda acts, batch: {t: k * s for t, s in a.seed_fn(acts, batch).items()},
                         times_text(k, a.description), a.linear, value_fn, self_seed)

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


Objective._family = Objective


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
