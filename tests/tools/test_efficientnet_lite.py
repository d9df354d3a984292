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


@pytest.fixture(scope="module")
def lite0(tmp_path_factory):
    """The export (its padding is PyTorch's F.pad, amounts computed in the graph) and the photos."""
    from tools.efficientnet_lite import export
    from tools.wheels import WheelUnavailable, members

    try:
        files = members("foolbox_imagenet")
        path = export(tmp_path_factory.mktemp("lite0") / "efficientnet_lite0.onnx")
    except WheelUnavailable as exc:
        pytest.fail(f"wheel unavailable: {exc}", pytrace=False)
    return ProbeModel.load(path, device="cpu"), files


def test_efficientnet_lite0_judge_classifies_foolbox_photos(lite0):
    judge, files = lite0
    labels = [int(f.stem.split("_")[-1]) for f in files]
    x = np.concatenate([judge.preprocess(read_image(str(f))) for f in files])  # read_image: BGR, as preprocess takes
    probs = judge.activations(x, [judge.class_output], with_outputs=False)[judge.class_output]
    top = np.argsort(-probs, axis=1)[:, :5]
    top1 = int((top[:, 0] == labels).sum())
    top5 = sum(label in row for label, row in zip(labels, top))
    assert len(files) == 20
    assert top1 >= 15 and top5 >= 17, f"top-1 {top1}/20, top-5 {top5}/20"


def test_receptive_fields_and_gradcam_default_layer_through_computed_padding(lite0):
    """Every conv's input is padded by a Pad whose amounts the graph computes (Constant ->
    ConstantOfShape -> Concat -> Reshape -> Slice -> Transpose -> Cast): folded with the known
    input shape, the receptive fields are known (before: none of 112 layers had one), and
    Grad-CAM's default layer is the last 7x7 stage (before: "no spatial layer lies before")."""
    from onnxprobe.attribution import attribute

    model, files = lite0
    spatial = [layer for layer in model.layers if layer.is_spatial]
    assert spatial and all(layer.receptive_field is not None for layer in spatial)
    stem = model.layer("net._conv_stem/Conv")  # TF SAME, stride 2 on 224: pad 0 before, 1 after
    assert stem.receptive_field.size == (3.0, 3.0) and stem.receptive_field.offset == (0.0, 0.0)
    x = model.preprocess(read_image(str(files[0])))
    cam = attribute(model, x, "gradcam")
    assert cam.shape[-2:] == tuple(model.spec.input_size) and np.isfinite(cam).all() and cam.max() > 0
