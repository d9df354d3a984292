"""The README's main job: `onnxprobe demo` on the bundled ImageNet network (the default) and on the
digits CNN (the fast example)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2

from onnxprobe.cli import main

IMAGENET_MODEL = Path(__file__).resolve().parents[2] / "models" / "imagenet" / "mobilenet_v2.onnx"


def _check_written(out: Path, index: dict) -> None:
    """Every picture the index names is a readable image, and index.html links each of them."""
    page = (out / "index.html").read_text()
    linked = set(re.findall(r'src="([^"]+)"', page))
    named = [v["image"] for v in index["class_visualizations"]]
    for result in index["results"]:
        named += list(result["grids"].values()) + [result["input"], result["backprop"], result["gradcam"]]
    for relative in named:
        image = cv2.imread(str(out / relative))
        assert image is not None and image.size > 0, relative
        assert relative in linked, relative
    assert cv2.imread(str(out / "summary.png")) is not None


def test_demo_on_digits_writes_grids_predictions_maps_and_class_images(tmp_path, digits_model_path, capsys):
    out = tmp_path / "out"
    assert main(["demo", "--model", str(digits_model_path), "--out", str(out), "--device", "cpu", "--steps", "4"]) == 0
    printed = capsys.readouterr().out
    for name in ("index.html", "summary.png", "demo.json"):
        assert str(out.resolve() / name) in printed
    index = json.loads((out / "demo.json").read_text())
    assert len(index["results"]) == 10  # the ten bundled sample digits
    correct = 0
    for result in index["results"]:
        digit = int(result["image"].rsplit("digit-", 1)[1][0])
        correct += result["top5"][0]["label"] == str(digit)
        # a small model: every layer's grid
        assert set(result["grids"]) >= {"conv1", "relu1", "pool1", "conv2", "relu2", "fc1", "logits", "probs"}
    assert correct >= 9  # a 98.4 %-accurate model on ten held-out digits
    # the first four distinct predicted classes (the samples are digit-0 ... digit-9 in order)
    assert [v["class"] for v in index["class_visualizations"]] == [0, 1, 2, 3]
    _check_written(out, index)


def test_demo_defaults_to_the_imagenet_network(tmp_path, capsys):
    """No --model: the bundled MobileNetV2 on its four sample photos (few steps to stay fast)."""
    out = tmp_path / "out"
    assert main(["demo", "--out", str(out), "--device", "cpu", "--steps", "2", "--classes", "2"]) == 0
    printed = capsys.readouterr().out
    assert "mobilenet_v2.onnx" in printed and str(out.resolve() / "index.html") in printed
    index = json.loads((out / "demo.json").read_text())
    top1 = {Path(r["image"]).stem: r["top5"][0]["label"] for r in index["results"]}
    assert set(top1) == {"astronaut", "chelsea", "coffee", "rocket"}
    # the unambiguous photos (models/README.md: espresso 0.990, cat classes 0.99 together)
    assert top1["coffee"] == "espresso"
    assert top1["chelsea"] in {"Egyptian cat", "tabby", "tiger cat"}
    # a large model: one grid per spatial stage (112, 56, 28, 14, 7 px), not all 100 layers
    assert len(index["grid_layers"]) == 5
    assert len(index["class_visualizations"]) == 2
    for visual in index["class_visualizations"]:
        assert cv2.imread(str(out / visual["image"])).shape == (224, 224, 3)
    _check_written(out, index)


def test_demo_bad_steps_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["demo", "--out", str(out), "--steps", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--steps" in err
    assert not out.exists()


def test_demo_keeps_images_of_the_same_name_apart(tmp_path, digits_model_path):
    samples = digits_model_path.parent / "samples"
    twin = tmp_path / "other" / "digit-3.png"
    twin.parent.mkdir()
    twin.write_bytes((samples / "digit-7.png").read_bytes())
    out = tmp_path / "out"
    assert main(["demo", "--model", str(digits_model_path), "--images", str(samples / "digit-3.png"), str(twin),
                 "--out", str(out), "--device", "cpu", "--steps", "0"]) == 0
    index = json.loads((out / "demo.json").read_text())
    folders = {Path(r["input"]).parent.name for r in index["results"]}
    assert folders == {"digit-3", "digit-3-2"}
    assert [r["top5"][0]["label"] for r in index["results"]] == ["3", "7"]
    assert index["class_visualizations"] == []
