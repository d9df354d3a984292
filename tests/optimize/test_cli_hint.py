"""`optimize` says so when one of the paper's fixed-learning-rate presets barely moved the images."""

from __future__ import annotations

import pytest

from onnxprobe.cli import main


@pytest.mark.parametrize("preset, expect_note", [("set3", True), ("set4", False)])
def test_weak_preset_note(tmp_path, capsys, digits_model_path, preset, expect_note):
    argv = ["optimize", str(digits_model_path), "--objective", "logit", "--unit", "0-2", "--steps", "60",
            "--preset", preset, "--out", str(tmp_path), "--quiet", "--device", "cpu"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert ("barely moved the images" in err) == expect_note
