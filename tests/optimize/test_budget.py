"""Rendering under a memory budget (issue 23): render_units runs no more (unit, restart) rows per step
graph than the budget holds, with the same images; an Optimizer whose rows must run together and do
not fit is refused in one ParameterError naming batch and memory_budget."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprobe.errors import ParameterError
from onnxprobe.model import ProbeModel
from onnxprobe.optimize import Optimizer, RenderSettings, get_preset, objectives, render_units
from onnxprobe.optimize import render as render_mod


def test_render_units_under_a_tiny_budget_makes_the_same_images(tiny, tiny_path, monkeypatch):
    kwargs = dict(preset="set1", steps=12, seed=3, restarts=2, batch=6)
    whole = render_units(tiny, "conv2", [0, 2, 5], RenderSettings.resolve(**kwargs))
    small = ProbeModel.load(tiny_path, device="cpu", memory_budget=2 * tiny.row_bytes("step"))
    rows = []
    optimizer = render_mod.Optimizer
    monkeypatch.setattr(render_mod, "Optimizer", lambda m, o, *a, **k: rows.append(len(k["seed"])) or optimizer(m, o, *a, **k))
    chunked = render_units(small, "conv2", [0, 2, 5], RenderSettings.resolve(**kwargs))
    assert rows == [2, 2, 2]
    for a, b in zip(whole, chunked):
        assert all(np.array_equal(x, y) for x, y in zip(a.images, b.images))


def test_an_optimizer_batch_over_the_budget_is_refused(tiny, tiny_path):
    small = ProbeModel.load(tiny_path, device="cpu", memory_budget=3 * tiny.row_bytes("step"))
    goal = objectives.stack([objectives.neuron(small, "conv2", u) for u in range(4)])
    with pytest.raises(ParameterError) as err:
        Optimizer(small, goal, get_preset("set1", steps=2), seed=0, batch=4)
    assert err.value.params == ("batch", "memory_budget") and "(3 rows)" in str(err.value)
    Optimizer(small, objectives.stack([objectives.neuron(small, "conv2", u) for u in range(3)]),
              get_preset("set1", steps=2), seed=0, batch=3)
