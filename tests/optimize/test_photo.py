"""Pictures from a photo: the objectives (caricature, inversion, accentuation's closeness) against
float64 references, the lucid parameterization started from a photo, and picture_from_photo and
`optimize --from` on a tiny network."""

from __future__ import annotations

import json

import numpy as np
import pytest

from onnxprobe import objectives
from onnxprobe.cli import main
from onnxprobe.errors import ParameterError
from onnxprobe.optimize.lucid import LucidImage
from onnxprobe.optimize.photo import invert_photos, photo_display, picture_from_photo
from onnxprobe.render.images import write_png


@pytest.fixture(scope="module")
def photo():
    """A smooth colour picture (BGR uint8, as OpenCV reads) with an edge, 40 x 32."""
    y, x = np.mgrid[0:40, 0:32]
    image = np.stack([x * 7 % 256, y * 5 % 256, np.where(x > 15, 200, 40)], axis=-1)
    return image.astype(np.uint8)


def test_caricature_scores_the_photo_by_its_norm(tiny, photo):
    x, _ = photo_display(tiny, photo)
    a0 = tiny.activations(x, ["conv2"], with_outputs=False)["conv2"]
    goal = objectives.caricature(tiny, "conv2", a0)
    assert goal.linear
    value = goal.value({"conv2": a0})[0]
    assert value == pytest.approx(np.sqrt((a0.astype(np.float64) ** 2).sum()), rel=1e-5)


def test_inversion_value_and_seed(tiny, photo):
    """0 at the photo's own activation; the seed is the value's gradient (central differences in
    float64 on a few elements: the value is quadratic, so they are exact up to rounding)."""
    x, _ = photo_display(tiny, photo)
    a0 = tiny.activations(x, ["conv2"], with_outputs=False)["conv2"]
    goal = objectives.inversion(tiny, "conv2", a0)
    assert not goal.linear and goal.value({"conv2": a0})[0] == 0.0
    rng = np.random.default_rng(0)
    a = (a0 + rng.standard_normal(a0.shape)).astype(np.float64)
    seed = goal.seeds({"conv2": a.astype(np.float32)}, 1)["conv2"].astype(np.float64)
    for flat in rng.choice(a.size, 5, replace=False):
        e = np.zeros(a.size)
        e[flat] = 1e-3
        e = e.reshape(a.shape)
        numeric = (goal.value({"conv2": a + e})[0] - goal.value({"conv2": a - e})[0]) / 2e-3
        assert numeric == pytest.approx(seed.reshape(-1)[flat], rel=1e-3, abs=1e-6)
    with pytest.raises(ParameterError):
        objectives.inversion(tiny, "conv2", a0[0])


def test_anchor_gradient_is_the_closeness_gradient():
    rng = np.random.default_rng(1)
    photo = rng.random((1, 3, 5, 4)).astype(np.float32)
    anchor = objectives.accentuation(objectives.Objective({}, lambda a, b: {}, "none"), photo, 2.0).anchor
    image = rng.random((1, 3, 5, 4))
    grad = anchor.gradient(image.astype(np.float32)).astype(np.float64)
    e = np.zeros_like(image)
    e[0, 1, 2, 3] = 1e-4
    numeric = (anchor.value(image + e)[0] - anchor.value(image - e)[0]) / 2e-4
    assert numeric == pytest.approx(grad[0, 1, 2, 3], rel=1e-3)
    with pytest.raises(ParameterError):
        objectives.accentuation(objectives.Objective({}, lambda a, b: {}, "none"), photo, -1.0)


@pytest.mark.parametrize("param", ["fft", "pixel"])
def test_lucid_parameters_from_a_photo_give_the_photo(param):
    """The photo's parameters reproduce it (within the sigmoid's clip to 0.001..0.999 and float32)."""
    rng = np.random.default_rng(2)
    image = rng.uniform(0.01, 0.99, (2, 3, 12, 10)).astype(np.float32)
    fn = LucidImage(3, (12, 10), param, True)
    assert np.abs(fn.forward(fn.from_display(image)) - image).max() < 1e-4


def test_inversion_reconstructs_the_activation(tiny, photo):
    """From noise the reconstruction's activation approaches the photo's: the relative squared error
    falls from the start (measured: from about 1 to well below it in 48 steps)."""
    pic = picture_from_photo(tiny, photo, "invert", layer="conv2", steps=48)
    assert pic.curve[-1][1] > pic.curve[0][1] and pic.value > -0.5, pic.to_json()
    assert pic.image.shape == (24, 24, 3) and pic.photo.shape == (24, 24, 3)


def test_accentuation_rises_and_the_closeness_holds_it_near_the_photo(tiny, photo):
    """The unit rises from the photo's value; a heavier closeness weight ends nearer the photo."""
    free = picture_from_photo(tiny, photo, "accentuate", layer="conv2", unit=2, position="max", steps=24, weight=0.0)
    held = picture_from_photo(tiny, photo, "accentuate", layer="conv2", unit=2, position="max", steps=24, weight=500.0)
    assert free.value > free.photo_value and held.value > held.photo_value
    assert held.distance < free.distance
    assert [s for s, _, _ in free.curve][-1] == 24


def test_optimize_from_photo_command(tiny_path, photo, tmp_path, capsys):
    image = tmp_path / "photo.png"
    write_png(image, photo[:, :, ::-1])
    out = tmp_path / "out"
    assert main(["optimize", str(tiny_path), "--from", str(image), "--picture", "invert", "--layer", "conv2",
                 "--steps", "8", "--out", str(out)]) == 0
    record = json.loads((out / "invert-photo.json").read_text())
    assert record["picture"] == "invert" and (out / "invert-photo.png").exists()
    assert main(["optimize", str(tiny_path), "--from", str(image), "--picture", "accentuate", "--layer", "conv2",
                 "--unit", "1", "--steps", "8", "--out", str(out)]) == 0
    assert "distance" in capsys.readouterr().out
    assert main(["optimize", str(tiny_path), "--from", str(image), "--picture", "invert", "--steps", "8",
                 "--out", str(out)]) == 2  # a reconstruction needs --layer: one line, exit 2


def test_batched_inversion_rows_are_the_single_photo_runs(tiny, photo):
    """invert_photos runs many photos as the rows of one batch: every row's relative error falls
    from about 1 (the random start) to below 0.5."""
    pics = invert_photos(tiny, [photo, photo[::-1].copy()], "conv2", steps=48)
    assert len(pics) == 2 and all(p.value > -0.5 for p in pics), [p.value for p in pics]
    assert pics[0].image.shape == (24, 24, 3)
