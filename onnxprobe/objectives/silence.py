"""Why a map holds no signal: the one diagnosis behind the "no signal" warning of every command.

A gradient, map, attribution or objective that is all zero (or holds NaN or infinities) is not an
answer: `silence` says so in one line, naming what is empty and why it may be -- a layer on the
objective's path with all-zero weights (a zero-initialised head, as torchvision's ViT ships), a unit
that does not fire where the objective reads it (a dead unit, or an input that does not excite
it), or activations on the path that pass no gradient there (a saturated input).
"""

from __future__ import annotations

import numpy as np

from .algebra import Objective

# ops whose weights (a constant input) make the objective's tensor, and ops looked through on the way
_WEIGHTED = ("Gemm", "MatMul", "Conv", "ConvTranspose", "Einsum")
_THROUGH = ("Identity", "Add", "Sub", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Cast", "Mul", "Div")


def is_silent(values) -> str | None:
    """"non-finite" when `values` hold NaN or infinities, "zero" when they are all zero, else None."""
    values = np.asarray(values)
    if values.size and np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
        return "non-finite"
    return "zero" if not np.any(values) else None


def silence(model, objective: Objective, values, what: str, activations: dict | None = None,
            cause: str | None = None) -> str | None:
    """One line when `values` (`what`: "the guided_backprop map", "the gradient", ...) hold no
    signal, naming the objective and the likely cause; None when they do. `activations`: the
    objective's targets' activations for the same input (Gradient.activations), when known: they
    tell a dead unit from a saturated path. `cause`: what the method itself knows of an empty map
    (Grad-CAM's rectification), said unless weights on the path are all zero."""
    kind = is_silent(values)
    if kind is None:
        return None
    subject = f"{what} of the {objective.description}"
    if kind == "non-finite":
        return (f"NaN or infinite values in {subject}: the model overflows on this input, or its weights or the "
                "input hold NaN; it is drawn as 'no signal'")
    return f"{subject} is all zero: {_why_zero(model, objective, activations, cause)}; it is drawn as 'no signal'"


def _why_zero(model, objective: Objective, activations: dict | None, cause: str | None) -> str:
    zeros = _zero_weights(model, objective.targets)
    if zeros:
        return (f"layer '{zeros[0]}' has all-zero weights (a zero-initialised head: train or load its weights); "
                "no gradient passes through it")
    if cause:
        return cause
    if activations is not None and all(t in activations for t in objective.targets):
        acts = {t: np.asarray(activations[t]) for t in objective.targets}
        batch = len(next(iter(acts.values())))
        seeds = objective.seeds(None if objective.linear else acts, batch)
        if objective.linear:
            read = [acts[t][np.broadcast_to(seeds[t], acts[t].shape) != 0] for t in objective.targets]
            dead = all(not np.any(r) for r in read)
        else:
            dead = all(not np.any(s) for s in seeds.values())
        if dead:
            return "the unit reads 0 where the objective reads it (a dead unit, or one this input does not excite)"
    return ("no gradient reaches the input (a saturated input: every activation on the path is off or clipped "
            "at its limit there, passing no gradient)")


def _zero_weights(model, targets) -> list[str]:
    """Nodes with all-zero weights that produce `targets`, looking through a few shape and bias ops."""
    facts = model.facts
    found, seen = [], set()
    frontier = list(targets)
    for _ in range(6):
        following = []
        for name in frontier:
            node = facts.producers.get(name)
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            if node.op_type in _WEIGHTED:
                weights = [_constant(facts, i) for i in node.input[:2]]
                if any(w is not None and w.size and not np.any(w) for w in weights):
                    found.append(node.name or node.output[0])
            elif node.op_type in _THROUGH:
                following.extend(i for i in node.input if i and _constant(facts, i) is None)
        frontier = following
    return found


def _constant(facts, name: str):
    """The value of a constant input, also behind a Transpose, Identity or Cast of one."""
    for _ in range(3):
        value = facts.const(name)
        if value is not None:
            return value
        node = facts.producers.get(name)
        if node is None or node.op_type not in ("Transpose", "Identity", "Cast") or not node.input:
            return None
        name = node.input[0]
    return None
