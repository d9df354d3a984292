"""The comparison helper and the decision replay themselves (fast, no network)."""

from __future__ import annotations

import numpy as np
import pytest

import torch
from tests.fixtures_torch import FLOOR, K, ReplayDecisions, judge  # noqa: E402


def test_all_zero_reference_asserts_nothing_and_fails():
    c = judge("zeros", np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(AssertionError, match="all zeros"):
        c.check()


def test_error_beyond_the_tolerance_fails_and_says_why():
    ref = np.linspace(-1, 1, 11)
    c = judge("off", ref + 3 * FLOOR, ref, ref)  # torch float32 exact: the floor applies
    assert c.tolerance == FLOOR
    with pytest.raises(AssertionError, match="relative error 3.00e-04"):
        c.check()
    noisy = judge("noisy", ref + 3 * FLOOR, ref, ref + FLOOR)  # an ill-conditioned reference earns K x its error
    assert noisy.tolerance == pytest.approx(K * FLOOR) and noisy.check()


def _replayed(func, x64, given, op):
    replay = ReplayDecisions({op: [given]})
    with replay:
        xx = x64.clone().requires_grad_(True)
        y = func(xx)
        (g,) = torch.autograd.grad(y.sum(), xx)
    replay.verify_complete()
    return y.detach(), g, replay


@pytest.mark.parametrize("op, func, x32, expect_grad", [
    # float64 input just above the kink, float32 run saw it below (and vice versa): the replay
    # takes the float32 branch and counts one tie
    ("Relu", torch.relu, np.float32(0.0), 0.0),  # given is Relu's output: 0 -> off
    ("Clip", lambda v: torch.nn.functional.hardtanh(v, 0.0, 6.0), np.float32(-1e-9), 0.0),
    ("LeakyRelu", lambda v: torch.nn.functional.leaky_relu(v, 0.1), np.float32(-1e-9), 0.1),
    ("HardSwish", torch.nn.functional.hardswish, np.float32(-3.0000002), 0.0),
    ("HardSigmoid", torch.nn.functional.hardsigmoid, np.float32(-3.0000002), 0.0),
])
def test_each_decision_op_replays_the_float32_branch(op, func, x32, expect_grad):
    # a second element of ordinary size gives the input check its scale
    x64 = torch.tensor([1e-12 if op in ("Relu", "Clip", "LeakyRelu") else -2.99999, 1.0], dtype=torch.float64)
    _, g, replay = _replayed(func, x64, np.array([x32, func(torch.tensor(1.0)) if op == "Relu" else 1.0], np.float32), op)
    assert float(g[0]) == pytest.approx(expect_grad)
    assert replay.ties == 1 and replay.changed[op] == 1


def test_replay_catches_a_call_order_that_does_not_match_the_graph():
    with pytest.raises(AssertionError, match="does not match"):
        _replayed(torch.relu, torch.tensor([5.0, 1.0], dtype=torch.float64), np.array([1.0, 1.0], np.float32), "Relu")
