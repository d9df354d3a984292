"""The memory budget cuts batched attribution into runs of 1-2 rows with the same results (issue 23):
integrated gradients, SmoothGrad (fixed seed) and occlusion under a tiny budget equal the same request
in one run, within the float32 rounding of the per-row values; and a large step count with a huge
batch asked for runs in the memory the budget allows (peak RSS of a subprocess)."""

from __future__ import annotations

import resource
import subprocess
import sys

import numpy as np
import pytest

from onnxprobe import model as model_mod
from onnxprobe.attribution.methods import integrated_gradients, occlusion, smoothgrad
from onnxprobe.model import ProbeModel
from onnxprobe.objectives import logit
from tests.conftest import DIGITS_MODEL, ROOT

EPS = float(np.finfo(np.float32).eps)


@pytest.fixture(scope="module")
def big():
    return ProbeModel.load(DIGITS_MODEL, device="cpu", memory_budget="8G")


def _tiny(big, rows: int, kind: str = "gradient") -> ProbeModel:
    return ProbeModel.load(DIGITS_MODEL, device="cpu", memory_budget=rows * big.row_bytes(kind))


@pytest.fixture(scope="module")
def x(big):
    import cv2

    image = cv2.imread(str(sorted((DIGITS_MODEL.parent / "samples").iterdir())[0]), cv2.IMREAD_UNCHANGED)
    return big.preprocess(image)


@pytest.fixture
def run_rows(monkeypatch):
    """The rows of every gradient run and forward run (the budget's chunks)."""
    seen = []
    gradient_run, activations = model_mod.GradientSession.run, model_mod.ProbeModel.activations

    def spy_gradient(self, x, *args, **kwargs):
        seen.append(len(x))
        return gradient_run(self, x, *args, **kwargs)

    def spy_forward(self, x, *args, **kwargs):
        seen.append(len(x))
        return activations(self, x, *args, **kwargs)

    monkeypatch.setattr(model_mod.GradientSession, "run", spy_gradient)
    monkeypatch.setattr(model_mod.ProbeModel, "activations", spy_forward)
    return seen


def _gradients(model, points, objective) -> np.ndarray:
    return model.gradient(points, objective).input.astype(np.float64)


@pytest.mark.parametrize("rows", [1, 2])
def test_integrated_gradients_chunked_equals_one_run(big, x, rows, run_rows):
    objective = logit(big, 3)
    steps = 9
    whole = integrated_gradients(big, x, objective, steps=steps, rule="riemann_trapezoid", batch_size=steps)
    assert max(run_rows) == steps
    run_rows.clear()
    tiny = _tiny(big, rows)
    chunked = integrated_gradients(tiny, x, logit(tiny, 3), steps=steps, rule="riemann_trapezoid", batch_size=steps)
    assert max(run_rows) == rows and sum(run_rows) == steps
    # bound: each point's gradient rounded in float32 (a run of other rows may round differently), weighted
    alphas = np.linspace(0, 1, steps, dtype=np.float32).reshape(-1, 1, 1, 1)
    weights = np.full(steps, 1 / steps)
    weights[[0, -1]] /= 2
    grads = _gradients(big, alphas * x, objective)
    bound = 4 * EPS * np.tensordot(weights, np.abs(grads), axes=1)[0] * np.abs(x[0]) + 1e-30
    assert np.all(np.abs(chunked.astype(np.float64) - whole) <= bound + 2 * EPS * np.abs(whole))


def test_smoothgrad_chunked_equals_one_run(big, x, run_rows):
    samples = 7
    whole = smoothgrad(big, x, logit(big, 3), samples=samples, seed=5, batch_size=samples)
    run_rows.clear()
    tiny = _tiny(big, 2)
    chunked = smoothgrad(tiny, x, logit(tiny, 3), samples=samples, seed=5, batch_size=samples)
    assert max(run_rows) == 2 and sum(run_rows) == samples
    sigma = 0.15 * float(x.max() - x.min())
    noisy = x + np.random.default_rng(5).normal(0.0, sigma, (samples, *x.shape[1:])).astype(np.float32)
    bound = 4 * EPS * np.abs(_gradients(big, noisy, logit(big, 3))).mean(axis=0)
    assert np.all(np.abs(chunked.astype(np.float64) - whole) <= bound + 2 * EPS * np.abs(whole))


def test_occlusion_chunked_equals_one_run(big, x, run_rows):
    whole = occlusion(big, x, logit(big, 3), window=8, stride=4, batch_size=1000)
    windows = max(run_rows)
    assert windows > 2
    run_rows.clear()
    tiny = _tiny(big, 2, "forward")
    chunked = occlusion(tiny, x, logit(tiny, 3), window=8, stride=4, batch_size=1000)
    assert max(run_rows) == 2
    values = big.activations(x, ["logits"], with_outputs=False)["logits"]
    # each window's objective rounded in float32 twice (reference and occluded value)
    bound = 8 * EPS * float(np.abs(values).max())
    assert np.abs(chunked - whole).max() <= bound


PEAK = """
import resource, sys
from onnxprobe.cli import main
code = main(sys.argv[1:])
print(code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def _peak(*args: str) -> int:
    done = subprocess.run([sys.executable, "-c", PEAK, *args], capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={"PYTHONPATH": str(ROOT), "ONNXPROBE_THREADS": "1", "PATH": "/usr/bin:/bin"})
    code, peak = done.stdout.split()[-2:]
    assert code == "0", done.stderr[-2000:]
    return int(peak)


def test_many_steps_and_a_huge_batch_run_in_the_budget(tmp_path):
    """`--steps 20000 --batch-size 1000000` (within the stated limit of 2**20 points) under a 32 MiB
    budget: the peak RSS exceeds that of the same command at 2 steps by no more than the budget.
    Before the budget it asked for a million-row batch (20000 rows of every tensor: gigabytes)."""
    budget = 32 * 1024 ** 2
    image = sorted((DIGITS_MODEL.parent / "samples").iterdir())[0]
    common = [str(DIGITS_MODEL), str(image), "--method", "integrated_gradients", "--rule", "riemann_middle",
              "--batch-size", "1000000", "--memory-budget", str(budget), "--device", "cpu"]
    small = _peak("attribute", *common, "--steps", "2", "--out", str(tmp_path / "a.png"))
    large = _peak("attribute", *common, "--steps", "20000", "--out", str(tmp_path / "b.png"))
    assert large - small <= budget, (small, large)
