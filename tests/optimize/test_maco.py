"""MACO (onnxprobe/optimize/maco.py): the phase-only parameterization keeps the natural-image
magnitude, its hand-written backward pass and NAdam match a float64 torch reference, and the
preset runs through the same optimize paths as lucid (rows independent of their batch)."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprobe.errors import ParameterError
from onnxprobe.model import ProbeModel
from onnxprobe.optimize import PRESETS, RenderSettings, get_preset, render_units
from onnxprobe.optimize import maco
from onnxprobe.optimize.lucid import COLOR_MATRIX
from tests.conftest import make_conv_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("maco") / "tiny.onnx"
    make_conv_model(path, size=(24, 24), seed=5)
    return ProbeModel.load(path, device="cpu")


def test_shipped_spectrum_is_a_natural_one():
    """Package data, (3, 256, 129), falling with frequency as photographs' spectra do (~1/f)."""
    spectrum = maco.natural_spectrum().astype(np.float64)
    assert spectrum.shape == (3, 256, 129) and np.isfinite(spectrum).all() and (spectrum >= 0).all()
    low, high = spectrum[:, 1:4, 1:4].mean(), spectrum[:, 100:128, 100:128].mean()
    assert low > 20 * high


@pytest.mark.parametrize("size", [16, 15])
def test_phase_only_keeps_the_magnitude(size):
    """Whatever the phase (at the start and after steps), the image's spectrum has the fixed
    magnitude up to one factor per row (the standardization): on every column whose phase irfft2
    keeps (not the real-only first column and, for even sizes, the Nyquist column), except DC."""
    image_fn = maco.MacoImage(3, size)
    rng = np.random.default_rng(0)
    phase = np.stack([image_fn.init(rng), image_fn.init(rng) * 3 + 1])
    for _ in range(2):
        _, cache = image_fn.forward(phase)
        spectrum = np.abs(np.fft.rfft2(cache["t"].astype(np.float64)))
        last = size // 2 if size % 2 == 0 else size // 2 + 1
        ratio = spectrum[..., 1:last] / image_fn.magnitude[None, ..., 1:last]
        for row in ratio:
            assert np.allclose(row, row.mean(), rtol=1e-3), (row.min(), row.max())
        phase = phase + rng.standard_normal(phase.shape).astype(np.float32)  # any step leaves it alone


def _torch_reference(magnitude, phase, grad_image):
    """The same parameterization in float64 torch autograd: the gradient w.r.t. the phase."""
    torch = pytest.importorskip("torch")
    m = torch.tensor(magnitude, dtype=torch.float64)
    p = torch.tensor(phase, dtype=torch.float64, requires_grad=True)

    def standardize(t):
        centred = t - t.mean(dim=(1, 2, 3), keepdim=True)
        return centred / (centred.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt() + maco.EPS)

    ps = standardize(p)
    image = torch.fft.irfft2(torch.complex(m * torch.cos(ps), m * torch.sin(ps)), s=(phase.shape[-2],) * 2)
    image = standardize(image)
    image = torch.einsum("cd,ndhw->nchw", torch.tensor(COLOR_MATRIX, dtype=torch.float64), image)
    image = torch.sigmoid(image)
    (image * torch.tensor(grad_image, dtype=torch.float64)).sum().backward()
    return image.detach().numpy(), p.grad.numpy()


@pytest.mark.parametrize("size", [12, 11])
def test_backward_matches_float64_autograd(size):
    """float32 forward and hand-written backward against torch's float64 autograd of the same
    formula. Tolerance: float32 rounding (eps 6e-8) grown through two FFTs of size^2 terms and two
    standardizations, far below 1e-4 of the gradient's largest element; a wrong sign or a missed
    term (the standardizations' std) is off by more than 1e-1 of it."""
    image_fn = maco.MacoImage(3, size)
    rng = np.random.default_rng(1)
    phase = np.stack([image_fn.init(rng) for _ in range(2)])
    grad_image = rng.standard_normal((2, 3, size, size)).astype(np.float32)
    image, cache = image_fn.forward(phase)
    grad = image_fn.backward(cache, grad_image)
    ref_image, ref_grad = _torch_reference(image_fn.magnitude, phase, grad_image)
    assert np.abs(image - ref_image).max() < 1e-5
    scale = np.abs(ref_grad).max()
    assert np.abs(grad - ref_grad).max() < 1e-4 * scale, np.abs(grad - ref_grad).max() / scale


def test_nadam_matches_torch():
    """NAdam ascending g is torch.optim.NAdam descending -g (float64 reference, 20 steps)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.standard_normal(50).astype(np.float32)
    ours = maco.NAdam(x.shape, lr=1.0)
    ref = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.NAdam([ref], lr=1.0)
    for _ in range(20):
        g = rng.standard_normal(50).astype(np.float32)
        x = ours.ascend(x, g)
        optimizer.zero_grad()
        ref.grad = -torch.tensor(g, dtype=torch.float64)
        optimizer.step()
    assert np.allclose(x, ref.detach().numpy(), atol=1e-4)


def test_whole_canvas_crop_is_a_resize():
    """A crop of side 1 centred on the canvas maps the model's pixel centres onto the canvas as a
    plain resize does (pixel u -> (u + 0.5) * S / h - 0.5)."""
    class Fixed:
        def standard_normal(self, n):
            return np.zeros(n)

    m = maco.crop_matrices(Fixed(), 1, 48, (24, 24), box=1.0)[0]
    u = np.array([0.0, 10.0, 23.0])
    assert np.allclose(m[0, 0] * u + m[0, 2], (u + 0.5) * 2 - 0.5)
    assert m[0, 1] == 0 and m[1, 0] == 0


def test_crops_read_their_own_canvas_without_copies():
    """The crop sampler (row i*K + j reads canvas i) takes the same crops as the plain sampler on
    the canvases repeated K times, and its backward is that one's summed over each canvas's crops
    (within float32 rounding of the sums, bounded by the same sums of absolute values)."""
    from onnxprobe.optimize.lucid import AffineSampler

    rng = np.random.default_rng(3)
    n, k, c, s, out = 2, 3, 3, 20, (8, 8)
    canvas = rng.random((n, c, s, s), dtype=np.float32)
    matrices = np.concatenate([maco.crop_matrices(rng, k, s, out, box=0.6) for _ in range(n)])
    matrices[0, :, 2] -= 9.0  # one crop partly outside the canvas: the fill
    sampler = maco.crops_of(canvas, matrices, out)
    plain = AffineSampler(matrices, (s, s), out, fill=0.5)
    crops = sampler.forward(canvas)
    assert crops.shape == (n * k, c, *out)
    assert np.array_equal(crops, plain.forward(np.repeat(canvas, k, axis=0)))
    grad = rng.standard_normal(crops.shape).astype(np.float32)
    summed = plain.backward(grad).astype(np.float64).reshape(n, k, c, s, s).sum(axis=1)
    bound = plain.backward(np.abs(grad)).astype(np.float64).reshape(n, k, c, s, s).sum(axis=1)
    got = sampler.backward(grad)
    assert got.shape == (n, c, s, s)
    assert np.all(np.abs(got - summed) <= 8 * np.finfo(np.float32).eps * bound + 1e-30)


def test_maco_preset_runs_and_rows_are_independent(tiny):
    """The preset through render_units: the unit rises from its start, images at the model's size,
    and a row's image does not depend on the rows batched with it."""
    preset = get_preset("maco", steps=48)  # at 24 steps unit 1 had not yet risen on the view shown
    both = render_units(tiny, "conv2", [1, 3], RenderSettings(preset, seed=0, batch=2))
    alone = render_units(tiny, "conv2", [3], RenderSettings(preset, seed=0, batch=1))
    assert both[0].images[0].shape == (24, 24, 3)
    assert np.array_equal(both[1].images[0], alone[0].images[0])
    for r in both:
        assert r.best_activation[0] > r.initial_activation[0], r.to_json()
    assert both[0].hyperparameters["param"] == "phase"


def test_maco_refuses_another_parameterization():
    assert "maco" in PRESETS and get_preset("maco").param == "phase"
    with pytest.raises(ParameterError) as caught:
        get_preset("maco", param="fft")
    assert set(caught.value.params) == {"preset", "param"}


def test_view_shows_the_centre_of_the_canvas():
    """view 0.5 shows the centred half of the canvas (here 8 x 8 of 16 x 16, at the model's 8 x 8:
    the pixels themselves); view 1 the whole canvas, area-averaged."""
    canvas = np.arange(2 * 3 * 16 * 16, dtype=np.float32).reshape(2, 3, 16, 16)
    assert np.array_equal(maco.to_model_size(canvas, (8, 8), 0.5), canvas[..., 4:12, 4:12])
    whole = maco.to_model_size(canvas, (8, 8), 1.0)
    assert np.allclose(whole, canvas.reshape(2, 3, 8, 2, 8, 2).mean(axis=(3, 5)), rtol=1e-6)
