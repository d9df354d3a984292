"""`onnxprobe backprop`: the .npy gradient against torch autograd (and Captum's neuron guided
backprop / deconvolution), a PNG for every mode and filter, bad input -> one line, exit 2."""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from onnxprobe.cli import main
from onnxprobe.render.backmaps import FILTERS
from onnxprobe.render.compose import NO_SIGNAL_GREY
from tests.conftest import make_conv_model

MODES = ("gradient", "deconv", "guided")


def run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own errors
        return exc.code


@pytest.fixture(scope="module")
def small_net():
    """A small torch CNN and its ONNX export: (module, path, name of the second ReLU's tensor)."""
    import torch
    from torch import nn

    from tests.fixtures_torch import export_module, onnx_tensor_for_module, seeded

    with seeded(0):
        module = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5),
        ).eval()
    example = torch.zeros(1, 3, 12, 12)
    path = export_module(module, example, name="backprop-small")
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, 12, 12)).astype(np.float32))
    relu2 = onnx_tensor_for_module(onnx.load(str(path)), module, module[4], x)
    return module, path, relu2, x.numpy()


@pytest.mark.parametrize("mode", MODES)
def test_npy_gradient_matches_torch(small_net, tmp_path, mode):
    import torch
    from captum.attr import NeuronDeconvolution, NeuronGuidedBackprop

    from tests.fixtures_torch import relative_error, torch_input_gradient

    module, path, relu2, x = small_net
    np.save(tmp_path / "x.npy", x)
    unit = 5
    with torch.no_grad():
        y, x0 = divmod(int(module[:5](torch.from_numpy(x))[0, unit].argmax()), 6)  # a live unit
    argv = ["backprop", str(path), "--input-npy", str(tmp_path / "x.npy"), "--layer", relu2, "--unit", str(unit),
            "--position", f"{y},{x0}", "--mode", mode, "--out", str(tmp_path / "b.png"), "--npy", str(tmp_path / "g.npy")]
    assert run_cli(argv) == 0
    ours = np.load(tmp_path / "g.npy")
    assert ours.shape == x.shape
    if mode == "gradient":
        seed = torch.zeros(1, 8, 6, 6)
        seed[0, unit, y, x0] = 1
        _, ref = torch_input_gradient(module, torch.from_numpy(x), seed, output=lambda m, v: m[:5](v))
    else:
        method = NeuronGuidedBackprop if mode == "guided" else NeuronDeconvolution
        ref = method(module.double(), module[4]).attribute(torch.from_numpy(x).double(), (unit, y, x0)).numpy()
        module.float()
    assert np.abs(ref).max() > 0
    assert relative_error(ours, ref) <= 1e-5


def test_default_position_is_where_the_unit_fires_most(small_net, tmp_path, capsys):
    """No --position: the position where the unit is largest on this image (torch's activation
    decides), and the command says which; --position centre is the old default."""
    import torch

    module, path, relu2, x = small_net
    np.save(tmp_path / "x.npy", x)
    with torch.no_grad():
        act = module[:5](torch.from_numpy(x))[0, 2].numpy()
    y, x0 = np.unravel_index(int(np.argmax(act)), act.shape)
    assert (y, x0) != (3, 3)  # differs from the centre, so the test can tell them apart
    base = ["backprop", str(path), "--input-npy", str(tmp_path / "x.npy"), "--layer", relu2, "--unit", "2",
            "--out", str(tmp_path / "b.png")]
    assert run_cli([*base, "--npy", str(tmp_path / "a.npy")]) == 0
    assert f"position {y},{x0} of '{relu2}': where the unit fires most" in capsys.readouterr().out
    assert run_cli([*base, "--position", f"{y},{x0}", "--npy", str(tmp_path / "b.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    assert run_cli([*base, "--position", "centre", "--npy", str(tmp_path / "c.npy")]) == 0
    assert run_cli([*base, "--position", "3,3", "--npy", str(tmp_path / "d.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), np.load(tmp_path / "d.npy"))


def test_an_all_zero_map_is_said(small_net, tmp_path, capsys):
    """A unit that does not fire anywhere on the image passes no gradient: the command says so
    (unit 0 of the second ReLU switched off everywhere by a bias of -1e6 on its convolution)."""
    from onnx import numpy_helper

    _, path, relu2, x = small_net
    model = onnx.load(str(path))
    relu = next(n for n in model.graph.node if n.op_type == "Relu" and n.output[0] == relu2)
    conv = next(n for n in model.graph.node if n.output[0] == relu.input[0])
    bias = next(t for t in model.graph.initializer if t.name == conv.input[2])
    values = numpy_helper.to_array(bias).copy()
    values[0] = -1e6
    bias.CopyFrom(numpy_helper.from_array(values, bias.name))
    onnx.save(model, str(tmp_path / "dead.onnx"))
    np.save(tmp_path / "x.npy", x)
    argv = ["backprop", str(tmp_path / "dead.onnx"), "--input-npy", str(tmp_path / "x.npy"), "--layer", relu2,
            "--unit", "0", "--out", str(tmp_path / "b.png")]
    assert run_cli(argv) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("onnxprobe: warning: the gradient map of the neuron"), err
    assert "is all zero" in err[0] and "dead unit" in err[0] and "no signal" in err[0], err
    drawn = cv2.imread(str(tmp_path / "b.png"))
    assert drawn.min() < drawn.max() and (drawn == NO_SIGNAL_GREY).mean() > 0.9  # the one no-signal picture


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("filter_name", FILTERS)
def test_each_mode_and_filter_writes_a_png(tmp_path, sample_image_path, mode, filter_name):
    from onnxprobe.model import ProbeModel
    from onnxprobe.preprocess import read_image

    make_conv_model(tmp_path / "tiny.onnx")
    model = ProbeModel.load(tmp_path / "tiny.onnx", device="cpu")
    act = model.activations(model.preprocess(read_image(sample_image_path)), ["relu2"])["relu2"][0, 1]
    y, x = np.unravel_index(int(act.argmax()), act.shape)  # a live unit: its map is not blank
    out = tmp_path / "sub" / "map.png"
    argv = ["backprop", str(tmp_path / "tiny.onnx"), str(sample_image_path), "--layer", "relu2", "--unit", "1",
            "--position", f"{y},{x}", "--mode", mode, "--filter", filter_name, "--out", str(out)]
    assert run_cli(argv) == 0
    image = cv2.imread(str(out))
    assert image.shape == (224, 224, 3)  # the 16 px map shown at MAP_MIN_SIDE (the raw one: --npy)
    assert image.std() > 0  # not a blank map


def _with_argmax_layer(path):
    """The tiny model plus a float layer computed from an ArgMax: no gradient reaches the input."""
    model = make_conv_model()
    model.graph.node.extend([
        helper.make_node("ArgMax", ["logits"], ["top"], axis=1, keepdims=1, name="argmax"),
        helper.make_node("Cast", ["top"], ["top_float"], to=TensorProto.FLOAT, name="cast"),
    ])
    model.graph.output.append(helper.make_tensor_value_info("top_float", TensorProto.FLOAT, ["N", 1]))
    onnx.save(model, str(path))


BAD = [
    ("--layer logits --unit 0 --position 0,0", "is not spatial"),
    ("--layer relu2 --unit 0 --position 6,0", "position 6,0 is outside layer 'relu2'"),
    ("--layer relu2 --unit 0 --position=-1,0", "position -1,0 is outside"),
    ("--layer relu2 --unit 0 --position 1", "position 1 is outside"),
    ("--layer relu2 --unit 0 --position a,b", "--position takes Y,X integers, max, centre or mean"),
    ("--layer relu2 --unit 6", "unit 6 out of range for layer 'relu2' (6 units: 0-5)"),
    ("--layer top_float --unit 0", "cannot be differentiated back to the input"),
    ("--layer nope --unit 0", "no layer named 'nope'"),
    ("--layer relu2 --unit 0 --mode sideways", "invalid choice: 'sideways'"),
    ("--layer relu2 --unit 0 --filter sepia", "invalid choice: 'sepia'"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[b[1][:40] for b in BAD])
def test_bad_input_is_one_line_exit_2(tmp_path, sample_image_path, capsys, args, message):
    _with_argmax_layer(tmp_path / "m.onnx")
    out = tmp_path / "b.png"
    argv = ["backprop", str(tmp_path / "m.onnx"), str(sample_image_path), *args.split(), "--out", str(out),
            "--npy", str(tmp_path / "g.npy")]
    assert run_cli(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert message in err
    assert not out.exists() and not (tmp_path / "g.npy").exists()
