"""The README's main job: `onnxprobe demo` on the bundled model."""

from __future__ import annotations

import json

import cv2

from onnxprobe.cli import main


def test_demo_writes_grids_predictions_and_backprop(tmp_path, digits_model_path, capsys):
    out = tmp_path / "out"
    assert main(["demo", "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert str(out.resolve()) in printed
    index = json.loads((out / "demo.json").read_text())
    assert len(index["results"]) == 10  # the ten bundled sample digits
    correct = 0
    for result in index["results"]:
        digit = int(result["image"].rsplit("digit-", 1)[1][0])
        correct += result["top5"][0]["label"] == str(digit)
        assert set(result["grids"]) >= {"conv1", "relu1", "pool1", "conv2", "relu2", "fc1", "logits", "probs"}
        for relative in list(result["grids"].values()) + [result["backprop"]]:
            image = cv2.imread(str(out / relative))
            assert image is not None and image.size > 0
    assert correct >= 9  # a 98.4 %-accurate model on ten held-out digits
