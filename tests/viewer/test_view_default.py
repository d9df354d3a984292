"""`onnxprobe view` without a model opens the bundled ImageNet network on its sample photos."""

from __future__ import annotations

import cv2

from onnxprobe.cli import main
from tests.conftest import ROOT
from tests.viewer.test_cli_view import run_view

IMAGENET = ROOT / "models" / "imagenet"


def _opened(monkeypatch, argv):
    """(model path, source paths) that `onnxprobe view ARGV` hands to the window."""
    import onnxprobe.viewer.controller as controller
    import onnxprobe.viewer.qt.app as app

    seen = {}

    def fake_viewer(model, source, **_):
        seen["model"] = model.path.resolve()
        seen["paths"] = [p.resolve() for p in getattr(source, "paths", [])]

    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.setattr(controller, "Viewer", fake_viewer)
    monkeypatch.setattr(app, "run_window", lambda viewer, **_: 0)
    assert main(["view", *argv]) == 0
    return seen


def test_no_model_means_the_imagenet_network_on_its_samples(monkeypatch):
    seen = _opened(monkeypatch, [])
    assert seen["model"] == (IMAGENET / "mobilenet_v2.onnx").resolve()
    assert [p.name for p in seen["paths"]] == ["astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg"]


def test_no_model_with_a_source_keeps_the_source(monkeypatch, digits_model_path):
    image = ROOT / "models" / "digits" / "samples" / "digit-3.png"
    seen = _opened(monkeypatch, ["--image", str(image)])
    assert seen["model"] == (IMAGENET / "mobilenet_v2.onnx").resolve()
    assert seen["paths"] == [image.resolve()]


def test_view_without_a_model_draws_a_window(tmp_path):
    shot = tmp_path / "shot.png"
    result = run_view(["--quit-after", "3", "--screenshot", shot], {"QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, result.stderr
    image = cv2.imread(str(shot))
    assert image is not None and image.std() > 10  # panes drawn, not a blank window
