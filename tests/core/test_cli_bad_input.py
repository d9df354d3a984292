"""Bad input: one clear line on stderr, exit status 2, no traceback (table-driven)."""

from __future__ import annotations

import subprocess
import sys

import onnx
import pytest
from onnx import TensorProto, helper

from onnxprobe.cli import main
from tests.conftest import make_conv_model


def _custom_domain_model(path):
    model = make_conv_model()
    model.graph.node.insert(1, helper.make_node("FancyAct", ["conv1"], ["fancy"], domain="com.example", name="fancy_node"))
    model.graph.node[2].input[0] = "fancy"
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    onnx.save(model, str(path))


def _dynamic_model(path):
    make_conv_model(path)
    model = onnx.load(str(path))
    for axis in (2, 3):
        model.graph.input[0].type.tensor_type.shape.dim[axis].dim_param = "HW"[axis - 2]
    onnx.save(model, str(path))


def _case_files(tmp_path):
    good = tmp_path / "good.onnx"
    make_conv_model(good)
    (tmp_path / "garbage.onnx").write_bytes(b"this is not a protobuf \x00\xff\xfe" * 10)
    data = good.read_bytes()
    (tmp_path / "truncated.onnx").write_bytes(data[: len(data) // 2])
    _custom_domain_model(tmp_path / "custom.onnx")
    _dynamic_model(tmp_path / "dynamic.onnx")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (tmp_path / "empty.onnx").write_bytes(b"")
    return good


CASES = [
    # (argv with {d} for the tmp dir, expected fragment of the message)
    ("layers {d}/missing.onnx", "model file not found"),
    ("layers {d}/garbage.onnx", "not a readable ONNX model"),
    ("layers {d}/truncated.onnx", "ONNX model"),
    ("layers {d}/empty.onnx", "ONNX model"),
    ("layers {d}", "directory"),
    ("layers {d}/custom.onnx", "com.example::FancyAct (node 'fancy_node')"),
    ("layers {d}/dynamic.onnx", "give --input-shape"),
    ("layers {d}/good.onnx --input-shape 1,3,16", "has 3 dims"),
    ("layers {d}/good.onnx --input-shape 1,1,16,16", "axis 1 is fixed at 3"),
    ("layers {d}/good.onnx --input-shape a,b", "comma-separated integers"),
    ("activations {d}/good.onnx {d}/broken.png --out {d}/a.npz", "cannot read image"),
    ("activations {d}/good.onnx {d}/nothere.png --out {d}/a.npz", "image not found"),
    ("activations {d}/good.onnx {d}/broken.png --layer relu --out {d}/a.npz", "cannot read image"),
    ("layers {d}/good.onnx --mean 1,2", "mean"),
    ("activations {d}/good.onnx {d}/broken.png --out {d}/a.npz --device tpu", "invalid choice"),
]


@pytest.mark.parametrize("argv, fragment", CASES, ids=[c[0].split()[0] + ":" + c[1] for c in CASES])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, fragment):
    _case_files(tmp_path)
    args = argv.format(d=tmp_path).split()
    with pytest.raises(SystemExit) if "--device tpu" in argv else _no_raise():
        code = main(args)
        assert code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("onnxprobe: error:")
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in err


def test_unknown_layer_suggests_close_names(tmp_path, capsys, sample_image_path):
    good = _case_files(tmp_path)
    code = main(["activations", str(good), str(sample_image_path), "--layer", "relu_1", "--out", str(tmp_path / "a.npz")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "no layer named 'relu_1'" in err and "'relu1'" in err
    assert not (tmp_path / "a.npz").exists()  # nothing half-written


def test_console_script_exits_2_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "onnxprobe", "layers", str(tmp_path / "missing.onnx")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "Traceback" not in result.stderr


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
