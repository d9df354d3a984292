"""`onnxprobe attribute`: every method writes its PNG (and .npy); bad input -> one line, exit 2."""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from onnxprobe.attribution import METHODS, attribute
from onnxprobe.cli import main
from onnxprobe.model import ProbeModel
from tests.conftest import make_conv_model

SMALL_OPTIONS = {
    "integrated_gradients": ["--steps", "8", "--rule", "riemann_trapezoid", "--baseline", "black"],
    "smoothgrad": ["--samples", "5", "--noise-level", "0.2", "--seed", "3", "--batch-size", "2"],
    "occlusion": ["--window", "4", "--stride", "3,2"],
    "gradcam": ["--cam-layer", "relu1", "--interpolation", "nearest"],
}


def run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own errors
        return exc.code


@pytest.fixture
def files(tmp_path):
    make_conv_model(tmp_path / "tiny.onnx")
    image = (np.random.default_rng(1).random((40, 60, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "image.png"), image)
    np.save(tmp_path / "x.npy", np.random.default_rng(2).standard_normal((1, 3, 16, 16)).astype(np.float32))
    return tmp_path


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("objective", [[], ["--target", "2"], ["--layer", "relu2", "--unit", "1"]],
                         ids=["predicted", "class", "unit"])
def test_each_method_writes_png_and_npy(files, method, objective, capsys):
    out, npy = files / "map.png", files / "map.npy"
    argv = ["attribute", str(files / "tiny.onnx"), str(files / "image.png"), "--method", method,
            "--out", str(out), "--npy", str(npy), "--overlay", *objective, *SMALL_OPTIONS.get(method, [])]
    assert main(argv) == 0, capsys.readouterr().err
    values = np.load(npy)
    assert values.shape == ((16, 16) if method in ("gradcam", "occlusion") else (3, 16, 16))
    assert np.isfinite(values).all()
    image = cv2.imread(str(out))
    assert image.shape == (224, 224, 3)  # the 16 px map shown at MAP_MIN_SIDE (the raw one: --npy)


def test_input_npy_equals_the_library_call(files):
    out, npy = files / "map.png", files / "map.npy"
    argv = ["attribute", str(files / "tiny.onnx"), "--input-npy", str(files / "x.npy"), "--method",
            "gradient_x_input", "--layer", "conv2", "--unit", "3", "--position", "1,2", "--out", str(out), "--npy", str(npy)]
    assert main(argv) == 0
    model = ProbeModel.load(files / "tiny.onnx", device="cpu")
    x = np.load(files / "x.npy")
    expected = attribute(model, x, "gradient_x_input", layer="conv2", unit=3, position=(1, 2))
    np.testing.assert_array_equal(np.load(npy), expected)
    # conv2 is linear in pool1, so x * grad summed over pixels only depends on the receptive field
    assert np.count_nonzero(np.abs(expected).sum(axis=0)) <= 8 * 8


def test_integrated_gradients_completeness_on_a_small_network(tmp_path):
    """sum(IG) = f(x) - f(baseline) within the quadrature error, f evaluated by ONNX Runtime directly."""
    path = tmp_path / "tiny.onnx"
    proto = make_conv_model(path)
    model = ProbeModel.load(path, device="cpu")
    x = np.random.default_rng(4).standard_normal((1, 3, 16, 16)).astype(np.float32)
    proto.graph.output[0].name = "logits"
    proto.graph.node.pop()  # drop the softmax: f is the logit
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    logit = lambda v: float(session.run(None, {"image": v})[0][0, 1])  # noqa: E731
    gap = logit(x) - logit(np.zeros_like(x))
    errors = [abs(attribute(model, x, "integrated_gradients", target=1, steps=steps, rule="riemann_middle",
                            batch_size=64).sum(dtype=np.float64) - gap) for steps in (3, 400)]
    assert errors[1] <= 0.005 * abs(gap)
    assert errors[1] < errors[0]


def test_nothing_is_written_on_bad_input(files, capsys):
    out = files / "map.png"
    argv = ["attribute", str(files / "tiny.onnx"), str(files / "image.png"), "--method", "saliency",
            "--target", "9", "--out", str(out), "--npy", str(files / "m.npy")]
    assert run_cli(argv) == 2
    assert not out.exists() and not (files / "m.npy").exists()


BAD = [
    # (arguments after MODEL, fragment of the one-line message)
    ("{d}/image.png --method sparkles", "invalid choice: 'sparkles'"),
    ("{d}/image.png --method saliency --target 5", "class 5 out of range for layer 'logits' (5 classes: 0-4)"),
    ("{d}/image.png --method saliency --target -1", "class -1 out of range"),
    ("{d}/missing.png --method saliency", "image not found"),
    ("{d}/broken.png --method saliency", "cannot read image"),
    ("--input-npy {d}/wrong.npy --method saliency", "input tensor has shape (1, 3, 8, 8)"),
    ("--input-npy {d}/text.npy --method saliency", "cannot read --input-npy"),
    ("{d}/image.png --input-npy {d}/x.npy --method saliency", "give either IMAGE or --input-npy"),
    ("--method saliency", "give either IMAGE or --input-npy"),
    ("{d}/image.png --method saliency --layer relu2 --unit 6", "unit 6 out of range for layer 'relu2' (6 units: 0-5)"),
    ("{d}/image.png --method saliency --layer nope --unit 0", "no layer named 'nope'"),
    ("{d}/image.png --method saliency --unit 0", "a unit objective needs both a --layer and a --unit"),
    ("{d}/image.png --method saliency --target 1 --layer relu2 --unit 0", "give either a class --target or a --layer and --unit"),
    ("{d}/image.png --method saliency --layer relu2 --unit 0 --position 9,9", "position 9,9 is outside"),
    ("{d}/image.png --method saliency --layer logits --unit 0 --position 0,0", "is not spatial"),
    ("{d}/image.png --method saliency --steps 5", "--steps do(es) not apply to --method saliency"),
    ("{d}/image.png --method integrated_gradients --steps 0", "--steps must be a positive integer, got 0"),
    ("{d}/image.png --method smoothgrad --samples 0", "--samples must be a positive integer, got 0"),
    ("{d}/image.png --method occlusion --batch-size -2", "--batch-size must be a positive integer, got -2"),
    ("{d}/image.png --method integrated_gradients --steps 1 --rule riemann_left", "--steps must be at least 2 for --rule riemann_left, got 1"),
    ("{d}/image.png --method integrated_gradients --baseline grey", "unknown --baseline 'grey'"),
    ("{d}/image.png --method occlusion --window 20", "occlusion --window 20x20 is larger than the input 16x16"),
    ("{d}/image.png --method occlusion --window 2,x", "--window takes one or two integers"),
    ("{d}/image.png --method gradcam --cam-layer logits", "Grad-CAM needs a spatial layer as --cam-layer"),
    ("{d}/image.png --method smoothgrad --noise-level -1", "--noise-level must be >= 0"),
    ("{d}/image.png --method saliency --npy {d}/map.txt", "--npy needs a .npy file name"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[b[1][:40] for b in BAD])
def test_bad_input_is_one_line_exit_2(files, capsys, args, message):
    np.save(files / "wrong.npy", np.zeros((1, 3, 8, 8), np.float32))
    (files / "text.npy").write_text("not an array")
    (files / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    argv = ["attribute", str(files / "tiny.onnx"), *args.format(d=files).split(), "--out", str(files / "o.png")]
    assert run_cli(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert message in err
    assert not (files / "o.png").exists()
