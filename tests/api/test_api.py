"""The notebook API (onnxprobe/__init__.py, onnxprobe/api/): its doctests, what it accepts, what its
results show, and that it composes the library (same numbers as the library's own calls)."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import onnxprobe

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "models" / "digits"
THREE = DIGITS / "samples" / "digit-3.png"
API_MODULES = ["onnxprobe", "onnxprobe.api.model", "onnxprobe.api.objectives", "onnxprobe.api.results",
               "onnxprobe.api.inputs"]


@pytest.fixture(scope="module")
def model():
    return onnxprobe.load(DIGITS / "digits-cnn.onnx", device="cpu")


@pytest.mark.parametrize("name", API_MODULES)
def test_docstring_examples_run(name, monkeypatch):
    monkeypatch.chdir(ROOT)  # the examples name the bundled files from the repository's root
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
    assert result.attempted > 0 or name in ("onnxprobe.api.results", "onnxprobe.api.inputs")


def test_import_is_cheap():
    """`import onnxprobe` loads no submodule (and so no numpy, onnx or ONNX Runtime): the public
    names are imported on first use."""
    code = ("import sys, onnxprobe; print(sorted(m for m in sys.modules if m.startswith('onnxprobe') "
            "or m in ('numpy', 'onnx', 'onnxruntime', 'cv2')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT)}).stdout
    assert out.strip() == "['onnxprobe']"


def test_public_names_resolve():
    for name in onnxprobe.__all__:
        assert getattr(onnxprobe, name) is not None
    assert set(onnxprobe.__all__) <= set(dir(onnxprobe))
    with pytest.raises(AttributeError):
        onnxprobe.no_such_name  # noqa: B018


def test_a_model_from_a_path_bytes_or_a_proto_is_the_same(model):
    import onnx

    path = DIGITS / "digits-cnn.onnx"
    expected = model.predict(THREE).numpy()
    labels = list(model.labels)
    for given in (path.read_bytes(), onnx.load(str(path))):
        other = onnxprobe.load(given, device="cpu", labels=labels, mean=[0.1307], std=[0.3081], value_range=[0, 1])
        np.testing.assert_array_equal(other.predict(THREE).numpy(), expected)
        assert other.labels == model.labels


def test_sidecar_keys_override_and_unknown_keys_are_refused(model):
    inverted = onnxprobe.load(DIGITS / "digits-cnn.onnx", device="cpu", invert=True)
    assert not np.array_equal(inverted.tensor(THREE), model.tensor(THREE))
    with pytest.raises(onnxprobe.ProbeError, match="unknown preprocessing key.*colour"):
        onnxprobe.load(DIGITS / "digits-cnn.onnx", colour="RGB")
    with pytest.raises(onnxprobe.ProbeError, match="a model is a file path"):
        onnxprobe.load(3)


def test_images_as_paths_arrays_and_pil_images_are_one_input():
    from PIL import Image

    model = onnxprobe.load(device="cpu")  # the bundled network: 3 channels, so the order matters
    cat = model.samples[1]
    assert cat.name == "chelsea.jpg"
    rgb = np.asarray(Image.open(cat).convert("RGB"))
    x = model.tensor(cat)
    np.testing.assert_array_equal(model.tensor(rgb), x)
    np.testing.assert_array_equal(model.tensor(Image.open(cat)), x)
    np.testing.assert_array_equal(model.tensor(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])), x)
    np.testing.assert_array_equal(model.tensor(x), x)  # a 4-D array is a ready batch
    assert model.tensor([cat, rgb]).shape == (2, *x.shape[1:])
    # and not the BGR reading: a swapped array gives another input
    assert not np.array_equal(model.tensor(rgb[:, :, ::-1]), x)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_results_show_themselves_and_save(model, tmp_path):
    preds = model.predict(THREE)
    acts = model.activations(THREE, ["conv1", "relu2"])
    back = model.backprop(THREE, "relu2", 5, mode="deconv")
    attr = model.attribute(THREE, "gradcam", overlay=True)
    for result in (preds, acts, back, attr):
        width, height = _png_size(result._repr_png_())
        assert width >= 224 and height >= 40
        png = result.save(tmp_path / f"{type(result).__name__}.png")
        assert _png_size(png.read_bytes()) == (width, height) or isinstance(result, onnxprobe.Map)
        if result is acts:
            saved = np.load(result.save(tmp_path / "acts.npz"))
            assert sorted(saved.files) == ["conv1", "relu2"] and saved["relu2"].shape == (32, 14, 14)
            continue
        npy = result.save(tmp_path / f"{type(result).__name__}.npy")
        assert np.load(npy).shape == np.asarray(result.numpy()).shape
    assert "<table>" in preds._repr_html_() and ">3<" in preds._repr_html_()
    assert "relu2" in model.layers._repr_html_()
    assert back.save(tmp_path / "map.png") and _png_size((tmp_path / "map.png").read_bytes()) == (224, 224)  # upscaled as the command writes it
    with pytest.raises(onnxprobe.ProbeError, match="name one"):
        acts.numpy()


def test_maps_are_the_library_maps(model):
    """backprop and attribute compose the library: the same numbers as its own calls."""
    from onnxprobe.attribution import attribute
    from onnxprobe.objectives import unit_objective

    probe = model.probe
    x = model.tensor(THREE)
    back = model.backprop(THREE, "relu2", 5, position=(3, 4), mode="guided")
    objective = unit_objective(probe, "relu2", 5, (3, 4))
    expected = probe.gradient_session(objective.targets, mode="guided").run(x, objective.seeds(None, 1))["grad"][0]
    np.testing.assert_array_equal(back.numpy(), expected)
    for method in onnxprobe.METHODS:
        options = {"steps": 4} if method == "integrated_gradients" else {"samples": 3} if method == "smoothgrad" else {}
        np.testing.assert_array_equal(model.attribute(THREE, method, target=3, **options).numpy(),
                                      attribute(probe, x, method, target=3, **options))


def test_objectives_compose_as_the_library_objectives(model):
    from onnxprobe import objectives as lib

    probe = model.probe
    spec = onnxprobe.channel("conv2", 5) + 0.5 * onnxprobe.neuron("relu2", 3, (2, 2)) - onnxprobe.logit(3) / 4
    expected = (lib.channel(probe, "conv2", 5, pre_activation=True)
                + 0.5 * lib.neuron(probe, "relu2", 3, (2, 2), pre_activation=True) - lib.logit(probe, 3) / 4)
    bound = spec.bind(model)
    assert bound.targets == expected.targets
    for target, seed in expected.seeds(None, 2).items():
        np.testing.assert_array_equal(bound.seeds(None, 2)[target], seed)
    assert sum([onnxprobe.logit(1), onnxprobe.logit(2)]).bind(model).targets == ("logits",)
    with pytest.raises(onnxprobe.ProbeError):
        onnxprobe.channel("conv2", 99).bind(model)  # a unit the layer lacks: when bound, in one line
    with pytest.raises(TypeError):
        onnxprobe.channel("conv2", 1) * onnxprobe.channel("conv2", 2)


def test_render_batches_stacks_and_diversity(model):
    stacked = model.render([onnxprobe.logit(3), onnxprobe.logit(7)], preset="lucid", steps=64, progress=False)
    assert stacked.captions == ["class 3", "class 7"] and stacked.numpy().shape == (2, 28, 28, 3)
    assert model.predict(list(stacked.numpy())).labels == ["3", "7"]
    diverse = model.render(onnxprobe.channel("relu2", 1) - 1e2 * onnxprobe.diversity("relu2"), batch=3, steps=4,
                           seed=2, progress=False)
    assert len(diverse) == 3 and not np.array_equal(diverse.images[0], diverse.images[1])
    again = model.render(onnxprobe.channel("relu2", 1) - 1e2 * onnxprobe.diversity("relu2"), batch=3, steps=4,
                         seed=2, progress=False)
    np.testing.assert_array_equal(again.numpy(), diverse.numpy())  # the seed decides the images
    with pytest.raises(onnxprobe.ParameterError, match="leave out batch"):
        model.render(onnxprobe.stack([onnxprobe.logit(1), onnxprobe.logit(2)]), batch=3)
    with pytest.raises(onnxprobe.ParameterError, match="^steps must be at least 1"):
        model.render(onnxprobe.logit(1), steps=0)


def test_render_units_is_render_units(model):
    from onnxprobe.optimize import render_units

    pics = model.render_classes([3, 5], steps=6, restarts=2, batch=3, progress=False)
    expected = render_units(model.probe, None, [3, 5], _settings(steps=6, restarts=2, batch=2), objective="logit")
    assert pics.captions == ["3 3 r0", "3 3 r1", "5 5 r0", "5 5 r1"]
    np.testing.assert_array_equal(pics.numpy(), np.stack([im for r in expected for im in r.images]))
    with pytest.raises(onnxprobe.ParameterError, match="units"):
        model.render_units("relu2", "some", steps=1)


def test_resumable_render_keeps_finished_units_after_an_interrupt(model, tmp_path):
    settings = dict(preset="lucid", steps=3, batch=1)  # one unit per chunk
    steps = []

    def interrupt_in_the_second_unit(rows):
        steps.append(rows)
        if len(steps) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.render_into(tmp_path / "vis", "relu2", [0, 1], **settings, on_step=interrupt_in_the_second_unit)
    folder = tmp_path / "vis" / "relu2"
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".json") == ["unit_00000.json"]
    assert not [p for p in folder.rglob("*") if p.name.startswith(".onnxprobe-tmp-")]
    done, _, kept = model.render_into(tmp_path / "vis", "relu2", [0, 1], **settings)
    assert kept == 1 and [r.unit for r in done] == [1]
    pics = model.render_units("relu2", [0, 1], steps=3, batch=1, out=tmp_path / "vis", progress=False)
    assert pics.captions == ["relu2:0", "relu2:1"] and pics.folder == folder  # both read back, none rendered
    fresh = model.render_units("relu2", [0, 1], steps=3, batch=1, progress=False)
    np.testing.assert_array_equal(pics.numpy(), fresh.numpy())
    np.testing.assert_array_equal(np.stack(pics.inputs), np.stack(fresh.inputs))
    assert pics.values == fresh.values


def test_top_k_and_atlas(model, tmp_path):
    data = DIGITS / "samples"
    top = model.top_k(data, "relu2", top=3, units=range(4), out=tmp_path / "topk", progress=False)
    scores = top.numpy()
    assert scores.shape == (32, 3) and np.all(np.diff(scores, axis=1) <= 0)
    assert top.patches(0).ndim == 3 and _png_size(top._repr_png_())[0] >= 4 * 160
    assert top.unit(2).hits[0]["score"] == pytest.approx(scores[2, 0])
    atlas = model.atlas("relu2", tmp_path / "atlas", units=[0, 1], steps=2, data=data, top=3, progress=False)
    assert atlas.index.is_file() and atlas.numpy().shape[0] == 2
    assert "index.html" in atlas._repr_html_() and "data:image/png;base64," in atlas._repr_html_()
    again = model.atlas("relu2", tmp_path / "atlas", units=[0, 1], steps=2, data=data, top=3, progress=False)
    assert again.result.units_rendered == 0  # resumed: both units were finished


def test_an_interrupted_top_k_resumes_from_its_finished_shards(model, tmp_path, monkeypatch):
    import onnxprobe.progress

    seen = []

    class Bar:
        def __init__(self, total, label, unit):
            self.done = 0
            self.label = label

        def update(self, n=1):
            seen.append((self.label, n))
            self.done += n
            if interrupt and self.label.startswith("scan") and self.done >= 6:  # inside the second shard
                raise KeyboardInterrupt

        def close(self):
            pass

    monkeypatch.setattr(onnxprobe.progress, "progress_bar", Bar)
    interrupt = True
    with pytest.raises(KeyboardInterrupt):
        model.top_k(DIGITS / "samples", "relu2", top=2, out=tmp_path / "topk", batch_size=2, shard_size=4)
    assert not [p for p in (tmp_path / "topk").rglob("*") if p.name.startswith(".onnxprobe-tmp-")]
    interrupt, seen[:] = False, []
    top = model.top_k(DIGITS / "samples", "relu2", top=2, out=tmp_path / "topk", batch_size=2, shard_size=4)
    assert seen[0] == ("scan ", 4)  # the first shard was kept: the scan starts at its 4 images
    fresh = model.top_k(DIGITS / "samples", "relu2", top=2, out=tmp_path / "again", progress=False)
    np.testing.assert_array_equal(top.numpy(), fresh.numpy())


def test_progress_bars_outside_a_notebook(capsys):
    from onnxprobe.progress import Progress, in_notebook, progress_bar

    assert not in_notebook()
    bar = progress_bar(10, "scan ", "img")
    assert isinstance(bar, Progress) and bar.enabled is False  # stderr is not a terminal here
    bar.update(10)
    bar.close()
    assert capsys.readouterr().err == ""


def test_view_needs_a_display(model, monkeypatch):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(onnxprobe.ProbeError, match="no display"):
        model.view()


def test_view_opens_the_window(model, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    shot = tmp_path / "window.png"
    assert model.view(quit_after=1.5, screenshot=shot, save_dir=tmp_path) == 0
    assert _png_size(shot.read_bytes())[0] > 200


def _settings(**given):
    from onnxprobe.optimize import RenderSettings

    return RenderSettings.resolve(**given)


def test_a_render_into_a_folder_resumes_what_the_command_wrote(model, tmp_path):
    """`Model.render_units(out=...)` and `onnxprobe optimize --out` share one store and job key:
    units the command finished are kept by the API."""
    from onnxprobe.cli import main

    assert main(["optimize", str(DIGITS / "digits-cnn.onnx"), "--layer", "relu2", "--unit", "0", "--objective",
                 "channel", "--steps", "3", "--device", "cpu", "--quiet", "--out", str(tmp_path)]) == 0
    rendered, _, kept = model.render_into(tmp_path, "relu2", [0, 1], steps=3, objective="channel")
    assert kept == 1 and [r.unit for r in rendered] == [1]  # unit 0 was the command's


def test_a_map_without_signal_says_why_and_is_drawn_as_no_signal(model):
    from onnxprobe.render.compose import no_signal

    quiet = model.backprop(THREE, "relu2", 24, position=(0, 0))  # off there on this digit: no gradient
    assert not np.any(quiet.numpy()) and "all zero" in quiet.silent and "does not excite" in quiet.silent
    np.testing.assert_array_equal(quiet.image, no_signal(224, 224))
    assert quiet.silent in repr(quiet)
    assert model.backprop(THREE, "relu2", 24).silent is None  # where it fires most, it has a map
