"""tools/efficientnet_lite.py: the second ImageNet judge of bench/bench_quality.py classifies real
labelled photos through its ONNX export and sidecar (a wrong channel order or normalization shows
here: fed BGR it got 15/20, a wrong judge would make every quality figure of the bench wrong).

Measured: 17/20 top-1 and 19/20 top-5 on foolbox's 20 labelled ImageNet photos (tools.wheels
"foolbox_imagenet"; the label is the last field of the file name). Floors are the measurement less
2 (one photo's class can flip between float32 backends); chance is 0.02 of 20."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprobe.model import ProbeModel
from onnxprobe.preprocess import read_image


def test_efficientnet_lite0_judge_classifies_foolbox_photos(tmp_path):
    from tools.efficientnet_lite import export
    from tools.wheels import WheelUnavailable, members

    try:
        files = members("foolbox_imagenet")
        path = export(tmp_path / "efficientnet_lite0.onnx")
    except WheelUnavailable as exc:
        pytest.fail(f"wheel unavailable: {exc}", pytrace=False)
    judge = ProbeModel.load(path, device="cpu")
    labels = [int(f.stem.split("_")[-1]) for f in files]
    x = np.concatenate([judge.preprocess(read_image(str(f))) for f in files])  # read_image: BGR, as preprocess takes
    probs = judge.activations(x, [judge.class_output], with_outputs=False)[judge.class_output]
    top = np.argsort(-probs, axis=1)[:, :5]
    top1 = int((top[:, 0] == labels).sum())
    top5 = sum(label in row for label, row in zip(labels, top))
    assert len(files) == 20
    assert top1 >= 15 and top5 >= 17, f"top-1 {top1}/20, top-5 {top5}/20"
