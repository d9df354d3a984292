"""Objectives: what a gradient run maximises or explains, composable as in Lucid/Lucent. The one
home of objectives and seeds: optimize, attribution, maxact, the viewer and the demo all build
theirs here.

    from onnxprobe import objectives
    objective = objectives.neuron(model, "relu1", 3) - 1e2 * objectives.diversity(model, "relu1")

- `algebra`: `Objective` (targets, value, seeds; `+`, `-`, scalar `*` and `/`), `stack`, `SelfSeed`;
- `layers`: which tensor an objective reads (`differentiable_layer`, `pre_relu`,
  `pre_softmax_tensor`, `logit_layer`, `objective_layer`);
- `units`: objectives on units (`neuron`, `channel`, `direction`, `logit`, `unit_objective`,
  `by_kind`, `own_activation`, `diversity`);
- `silence`: why a map of an objective holds no signal (the one "no signal" diagnosis);
- `ingraph`: their forms inside an ONNX graph (`write_value`, `self_seeded`), written on autodiff's Tape;
- `photo`: pictures from a photo (`caricature`, `inversion`, `accentuation` with its `Anchor`).

See docs/architecture.md "Objectives".
"""

from .algebra import Objective, SelfSeed, stack
from .ingraph import self_seeded, write_value
from .layers import (FLAT_ACTIVATIONS, KINDS, differentiable_layer, logit_layer, objective_layer, pre_relu,
                     pre_softmax_tensor)
from .photo import Anchor, accentuation, caricature, inversion
from .silence import is_silent, silence
from .units import by_kind, channel, direction, diversity, logit, neuron, own_activation, unit_objective

__all__ = [
    "FLAT_ACTIVATIONS", "KINDS", "Anchor", "Objective", "SelfSeed", "accentuation", "by_kind", "caricature", "channel",
    "differentiable_layer", "direction", "inversion",
    "diversity", "logit", "logit_layer", "neuron", "objective_layer", "own_activation", "pre_relu",
    "pre_softmax_tensor", "is_silent", "self_seeded", "silence", "stack", "unit_objective", "write_value",
]
