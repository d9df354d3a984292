"""Objectives written before there is a model, composable as Lucent's: `channel(layer, 5) + 0.5 *
neuron(layer2, 3)`, `stack([...])`, `- 1e2 * diversity(layer)`.

Each constructor returns an `ObjectiveSpec`: a recipe that `Model.render` binds to its model
(`spec.bind(model)`), which calls the library's own constructors (onnxprobe's one objective
module) and composes their `Objective`s with the same operators (one algebra for both:
`onnxprobe.objectives.algebra.Algebra`). Nothing about seeds or values is computed here.

>>> import onnxprobe
>>> goal = onnxprobe.channel("conv2", 5) + 0.5 * onnxprobe.neuron("relu2", 3)
>>> goal
ObjectiveSpec(channel conv2:5 + 0.5 * (neuron relu2:3))
>>> model = onnxprobe.load("models/digits/digits-cnn.onnx", device="cpu")
>>> goal.bind(model).targets
('conv2',)
>>> onnxprobe.stack([onnxprobe.logit(3), onnxprobe.logit(7)]).rows
2
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from onnxprobe.objectives.algebra import Algebra, plus_text, times_text
from onnxprobe.position import Position

__all__ = ["ObjectiveSpec", "channel", "direction", "diversity", "logit", "neuron", "stack"]


def _lib():
    from onnxprobe import objectives

    return objectives


def _probe(model):
    """The library's ProbeModel behind a `Model` (or the ProbeModel itself)."""
    return getattr(model, "probe", model)


class ObjectiveSpec(Algebra):
    """A model-free objective: what to maximise, bound to a model by `bind`. Combine with `+`,
    `-`, scalar `*` and `/` (the operators of `onnxprobe.objectives.algebra.Algebra`, which
    `Objective` has too: `bind` of a combination is the same combination of the bound parts);
    `rows` is the batch a `stack` needs (None: any batch)."""

    def __init__(self, build: Callable[[object], object], text: str, rows: int | None = None):
        self._build = build
        self.text = text
        self.rows = rows

    def bind(self, model):
        """The library `Objective` of this recipe on `model` (a `Model` or a `ProbeModel`); a layer
        or unit that does not fit the model raises its one-line `ProbeError` here."""
        return self._build(_probe(model))

    def _plus(self, other: "ObjectiveSpec") -> "ObjectiveSpec":
        a, b = self, other
        return ObjectiveSpec(lambda m: a.bind(m) + b.bind(m), plus_text(a.text, b.text), a.rows or b.rows)

    def _times(self, k: float) -> "ObjectiveSpec":
        a = self
        return ObjectiveSpec(lambda m: k * a.bind(m), times_text(k, a.text), a.rows)

    def __repr__(self) -> str:
        return f"ObjectiveSpec({self.text})"


ObjectiveSpec._family = ObjectiveSpec


def neuron(layer: str, unit: int, position: Position = None, *, pre_activation: bool = True) -> ObjectiveSpec:
    """Unit `unit` of `layer` at one place: `position` (Y, X), "centre" (None: the same) or "mean"
    (the channel), as onnxprobe.position reads it (a synthesized image has no photo, so no "max").
    `pre_activation`: on the input of the ReLU-like op that makes `layer`, as `Model.render_units`
    does (a unit that is off at the start passes no gradient)."""
    return ObjectiveSpec(lambda m: _lib().unit_objective(m, layer, unit, "centre" if position is None else position,
                                                         pre_activation=pre_activation),
                         f"neuron {layer}:{unit}" + (f" at {position}" if position is not None else ""))


def channel(layer: str, unit: int, *, pre_activation: bool = True) -> ObjectiveSpec:
    """The mean of channel `unit` of `layer` over all its positions."""
    return ObjectiveSpec(lambda m: _lib().channel(m, layer, unit, pre_activation=pre_activation),
                         f"channel {layer}:{unit}")


def direction(layer: str, weights: Sequence[float], *, pre_activation: bool = True) -> ObjectiveSpec:
    """A direction in the channel space of `layer`: sum over c of weights[c] * channel c's mean."""
    weights = list(weights)
    return ObjectiveSpec(lambda m: _lib().direction(m, layer, weights, pre_activation=pre_activation),
                         f"direction {layer}")


def logit(cls: int) -> ObjectiveSpec:
    """The score of class `cls` before any final softmax."""
    return ObjectiveSpec(lambda m: _lib().logit(m, cls), f"class {cls}")


def diversity(layer: str) -> ObjectiveSpec:
    """Lucid's diversity term on `layer` (how alike the batch's images are); subtract a multiple
    of it from an objective rendered with `batch` > 1 to make the images differ."""
    return ObjectiveSpec(lambda m: _lib().diversity(m, layer), f"diversity {layer}")


def stack(objectives: Sequence[ObjectiveSpec]) -> ObjectiveSpec:
    """Row i of the batch maximises objectives[i]: `Model.render` renders one image per row."""
    parts = list(objectives)
    if not parts or not all(isinstance(p, ObjectiveSpec) for p in parts):
        raise TypeError("stack takes a non-empty list of objectives (onnxprobe.channel, neuron, logit, ...)")
    names = ", ".join(p.text for p in parts[:3]) + (", ..." if len(parts) > 3 else "")
    return ObjectiveSpec(lambda m: _lib().stack([p.bind(m) for p in parts]), f"stack[{names}]", len(parts))
