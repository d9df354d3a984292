"""`optimize` resumes: finished units (record written last) are kept, the rest are redone identically."""

from __future__ import annotations

import json

from onnxprobe.cli import main

ARGS = ["--layer", "conv2", "--unit", "0-3", "--steps", "15", "--restarts", "2", "--batch", "4", "--quiet",
        "--device", "cpu"]


def _files(folder):
    return {p.name: p for p in sorted(folder.iterdir())}


def _contents(folder):
    """Every file's bytes; records without their timing."""
    out = {}
    for name, path in _files(folder).items():
        if name.endswith(".json"):
            record = json.loads(path.read_text())
            record.pop("seconds")
            out[name] = record
        else:
            out[name] = path.read_bytes()
    return out


def test_rerun_keeps_finished_units_and_redoes_the_rest_identically(tmp_path, capsys, digits_model_path):
    out = tmp_path / "out"
    assert main(["optimize", str(digits_model_path), *ARGS, "--out", str(out)]) == 0
    folder = out / "conv2"
    first = _contents(folder)
    assert len(first) == 4 * 6  # per unit: 2 restarts (PNG + the raw input .npy), a montage, a record
    stamps = {name: path.stat().st_mtime_ns for name, path in _files(folder).items()}
    # a run killed while writing unit 2 (its record missing) and before unit 3's images
    (folder / "unit_00002.json").unlink()
    for name in ("unit_00003_restart00.png", "unit_00003_restart01.npy", "unit_00003_montage.png"):
        (folder / name).unlink()
    capsys.readouterr()
    assert main(["optimize", str(digits_model_path), *ARGS, "--out", str(out)]) == 0
    assert "resuming: 2 unit(s)" in capsys.readouterr().out
    now = _files(folder)
    assert _contents(folder) == first
    for name, path in now.items():
        if name.startswith(("unit_00000", "unit_00001")):
            assert path.stat().st_mtime_ns == stamps[name], name  # not redone
    assert not [p for p in out.rglob(".onnxprobe-tmp-*")]


def test_the_record_says_which_file_is_which(tmp_path, digits_model_path):
    """A seed preset's PNG is contrast-stretched, its .npy the optimized input (the PNG's source)."""
    import numpy as np

    from onnxprobe.model import ProbeModel
    from onnxprobe.optimize.priors import PixelSpace

    out = tmp_path / "out"
    assert main(["optimize", str(digits_model_path), *ARGS, "--preset", "set3", "--out", str(out)]) == 0
    record = json.loads((out / "conv2" / "unit_00001.json").read_text())
    assert record["display"] == "stretched" and "contrast-stretched" in record["files"]["png"]
    assert "optimized model input" in record["files"]["npy"]
    model = ProbeModel.load(digits_model_path, device="cpu")
    x = np.load(out / "conv2" / "unit_00001_restart00.npy")
    assert x.shape == tuple(model.spec.input_shape()[1:])
    space = PixelSpace.from_spec(model.spec)
    q = space.gradient_to_q(x[None]) / space.slope ** 2  # x = slope * q, so q = x / slope
    png = cv2_read(out / "conv2" / "unit_00001_restart00.png")
    np.testing.assert_array_equal(png, space.to_display_stretched(q[0]))


def cv2_read(path):
    import cv2

    return cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1]


def test_other_settings_do_not_resume(tmp_path, capsys, digits_model_path):
    out = tmp_path / "out"
    assert main(["optimize", str(digits_model_path), *ARGS, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["optimize", str(digits_model_path), *ARGS, "--seed", "1", "--out", str(out)]) == 0
    assert "resuming" not in capsys.readouterr().out
