"""A table-driven corpus of hostile input over every command (issue #13).

For every case: exit status 2 with exactly one line on stderr (or success), no traceback, nothing
left in the output folder after a failure, nothing written outside it (the inputs, byte for byte
and by modification time, and the folder around them are unchanged), and a wall-clock bound.
CLI cases run in-process (`onnxprobe.cli.main`); the ones that need a real process (named pipes
that would hang, signals, stdout on /dev/full, the viewer) run as subprocesses with a timeout.
All of it on the bundled digits model (28x28 gray), so the file stays fast.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from onnxprobe.cli import main
from tests.conftest import DIGITS_MODEL, ROOT

DIGITS = DIGITS_MODEL.parent
CASE_SECONDS = 60  # an in-process case (one model load, one small run) takes ~1 s; 60 s means a hang
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen",
       "QT_LOGGING_RULES": "default.warning=false"}  # Qt's offscreen plugin warns about size hints


# ---- the inputs ---------------------------------------------------------------------------------

def _digits_copy(folder: Path, name: str, edit=None) -> Path:
    """The digits model (with its sidecar and labels) as folder/name, optionally edited."""
    model = onnx.load(str(DIGITS_MODEL))
    if edit is not None:
        edit(model)
    path = folder / name
    onnx.save(model, str(path))
    sidecar = json.loads((DIGITS / "digits-cnn.onnxprobe.json").read_text())
    (folder / "digits-cnn.labels.txt").write_text((DIGITS / "digits-cnn.labels.txt").read_text())
    (folder / (path.stem + ".onnxprobe.json")).write_text(json.dumps(sidecar))
    return path


def _nan_weights(model):
    for i, tensor in enumerate(model.graph.initializer):
        array = numpy_helper.to_array(tensor)
        if array.ndim == 4:
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(np.full_like(array, np.nan), tensor.name))
            return


def _unzip_unsafe_names(model):
    """conv1 -> '../evil', relu1 -> '/abs', pool1 -> 'nu<NUL>l': names an archive must not use as they are."""
    renames = {"conv1": "../evil", "relu1": "/abs", "pool1": "nu\x00l"}
    for node in model.graph.node:
        node.output[:] = [renames.get(o, o) for o in node.output]
        node.input[:] = [renames.get(i, i) for i in node.input]


def _input_dims(*dims):
    def edit(model):
        shape = model.graph.input[0].type.tensor_type.shape.dim
        for axis, value in dims:
            shape[axis].dim_value = value
    return edit


def _dynamic_hw(model):
    shape = model.graph.input[0].type.tensor_type.shape.dim
    shape[2].dim_param, shape[3].dim_param = "H", "W"


def _control_names(model):
    """conv1 -> 'co<ESC>[31mnv1<BEL>' everywhere it is used."""
    evil = "co\x1b[31mnv1\x07"
    for node in model.graph.node:
        node.output[:] = [evil if o == "conv1" else o for o in node.output]
        node.input[:] = [evil if i == "conv1" else i for i in node.input]


def _png_header(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def _npy_header_only(shape) -> bytes:
    import struct

    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple(shape)!r}, }}"
    header += " " * (63 - len(header) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("hostile-inputs")
    _digits_copy(d, "model.onnx")
    _digits_copy(d, "nan.onnx", _nan_weights)
    _digits_copy(d, "zero.onnx", _input_dims((2, 0)))
    _digits_copy(d, "huge.onnx", _input_dims((2, 100000), (3, 100000)))
    _digits_copy(d, "ctrl.onnx", _control_names)
    _digits_copy(d, "dynamic.onnx", _dynamic_hw)
    _digits_copy(d, "unsafe.onnx", _unzip_unsafe_names)
    shutil.copy(DIGITS / "samples" / "digit-3.png", d / "img.png")
    shutil.copy(DIGITS / "samples" / "digit-7.png", d / "img2.png")
    (d / "empty.png").write_bytes(b"")
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (d / "huge.png").write_bytes(_png_header(100000, 100000))
    tiff = np.zeros((28, 28), np.float32)
    tiff[3, 3] = np.nan
    cv2.imwrite(str(d / "nan.tiff"), tiff)
    x = np.zeros((1, 1, 28, 28), np.float32)
    np.save(d / "x.npy", x)
    np.save(d / "complex.npy", x.astype(np.complex64))
    np.save(d / "bool.npy", x.astype(bool))
    np.save(d / "int.npy", x.astype(np.int32))
    np.savez(d / "x.npz", x=x)
    (d / "empty.npy").write_bytes(b"")
    (d / "huge.npy").write_bytes(_npy_header_only((10 ** 15,)))
    (d / "text.npy").write_text("1 2 3\n")
    nan = x.copy()
    nan[0, 0, 5, 5] = np.inf
    np.save(d / "nan.npy", nan)
    data = d / "data"
    data.mkdir()
    for n in range(6):
        shutil.copy(DIGITS / "samples" / f"digit-{n}.png", data / f"d{n}.png")
    for name in ("fifo.png", "fifo.onnx", "fifo.npy", "fifo.txt", "data/pipe.png"):
        os.mkfifo(d / name)
    (d / "list.txt").write_text("img.png\nfifo.png\n")
    (d / "afile").write_text("not a folder\n")
    return d


def _snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        kind = "dir" if stat.S_ISDIR(st.st_mode) else "fifo" if stat.S_ISFIFO(st.st_mode) else "file"
        out[path.relative_to(root).as_posix()] = (kind, st.st_size, st.st_mtime_ns if kind == "file" else 0)
    return out


def _temporaries(root: Path) -> list[str]:
    return [p.name for p in root.rglob(".onnxprobe-tmp-*")]


# ---- the table: (command line, expected) --------------------------------------------------------
# {i}: the inputs folder; {o}: this case's output folder (absent before the run). "ok": success and
# nothing on stderr; "warn": success and one warning line (a model that yields NaN); any other
# text: exit 2 and one stderr line containing it. Split like a shell line (shlex).

M = "{i}/model.onnx"
CASES = [
    # models (a missing, garbage, truncated or empty model, a folder: tests/core/test_cli_bad_input.py)
    ("layers {i}/zero.onnx", "zero-size dimension"),
    ("layers {i}/huge.onnx", "MAX_INPUT_ELEMENTS"),
    ("layers {i}/dynamic.onnx --input-shape 1,1,100000,100000", "MAX_INPUT_ELEMENTS"),
    ("layers {i}/img.png", "not a readable ONNX model"),
    ("layers /dev/null", "character device"),
    (f"layers {M} --input-shape ''", "--input-shape must be positive integers"),
    ("layers {i}/ctrl.onnx", "ok"),
    (f"layers {M} --labels {{i}}/img.png", "cannot read labels file"),
    (f"layers {M} --labels {{i}}/data", "labels file must be a regular file"),
    ("activations {i}/ctrl.onnx {i}/img.png --layer nope\x1b[2J --out {o}/a.npz", "nope\\x1b[2J"),
    ("activations {i}/nan.onnx {i}/img.png --out {o}/a.npz", "warn"),
    # images
    (f"activations {M} {{i}}/empty.png --out {{o}}/a.npz", "the file is empty"),
    (f"activations {M} {{i}}/broken.png --out {{o}}/a.npz", "cannot read image"),
    (f"activations {M} {{i}}/huge.png --out {{o}}/a.npz", "MAX_IMAGE_PIXELS"),
    (f"activations {M} {{i}}/nan.tiff --out {{o}}/a.npz", "NaN or infinite pixels"),
    (f"activations {M} /dev/zero --out {{o}}/a.npz", "character device"),
    (f"activations {M} {{i}}/{'x' * 300}.png --out {{o}}/a.npz", "cannot read image"),
    (f"activations {M} {{i}}/img.png --std nan --out {{o}}/a.npz", "must be finite"),
    (f"activations {M} {{i}}/img.png --mean inf --out {{o}}/a.npz", "must be finite"),
    # output paths
    (f"activations {M} {{i}}/img.png --out {M}", "is the input model; refusing to overwrite"),
    (f"activations {M} {{i}}/img.png --out {{i}}/img.png", "is the input image"),
    (f"backprop {M} {{i}}/img.png --layer conv2 --unit 0 --out {{i}}/img.png", "is the input image"),
    (f"attribute {M} --input-npy {{i}}/x.npy --method saliency --out {{o}}/m.png --npy {{i}}/x.npy", "input array"),
    (f"activations {M} {{i}}/img.png --out {{o}}", "ok"),  # made as a file named {o}
    (f"activations {M} {{i}}/img.png --out {{i}}", "is a directory"),
    (f"activations {M} {{i}}/img.png --out {{o}}/a.npz --grid {{i}}/afile/g.png", "cannot create folder"),
    (f"attribute {M} {{i}}/img.png --method saliency --out {{o}}/m.png --npy {{i}}/afile/m.npy", "cannot create folder"),
    (f"activations {M} {{i}}/img.png --out {{o}}/{'y' * 300}.npz", "File name too long"),
    (f"optimize {M} --layer conv1 --unit 0 --steps 2 --out {{i}}/afile", "must be a folder"),
    (f"maxact {M} {{i}}/data --layer conv1 --out {{i}}/afile", "not a directory"),
    (f"atlas {M} --layer conv1 --steps 2 --out {{o}}/{'z' * 300}", "File name too long"),
    # .npy
    (f"attribute {M} --input-npy {{i}}/empty.npy --method saliency --out {{o}}/m.png", "the file is empty"),
    (f"attribute {M} --input-npy {{i}}/x.npz --method saliency --out {{o}}/m.png", ".npz archive"),
    (f"attribute {M} --input-npy {{i}}/complex.npy --method saliency --out {{o}}/m.png", "complex"),
    (f"backprop {M} --input-npy {{i}}/bool.npy --layer conv2 --unit 0 --out {{o}}/b.png", "holds booleans"),
    (f"attribute {M} --input-npy {{i}}/int.npy --method saliency --out {{o}}/m.png", "holds int32 values"),
    (f"attribute {M} --input-npy {{i}}/x.npy --method integrated_gradients --baseline {{i}}/bool.npy "
     "--out {o}/m.png", "holds booleans"),
    (f"attribute {M} --input-npy {{i}}/huge.npy --method saliency --out {{o}}/m.png", "MAX_ARRAY_ELEMENTS"),
    (f"attribute {M} --input-npy {{i}}/text.npy --method saliency --out {{o}}/m.png", "not a .npy file"),
    (f"attribute {M} --input-npy {{i}}/nan.npy --method saliency --out {{o}}/m.png", "NaN or infinite"),
    (f"attribute {M} --input-npy {{i}}/x.npy --method integrated_gradients --baseline {{i}}/complex.npy "
     "--out {o}/m.png", "complex"),
    (f"attribute {M} --input-npy {{i}}/x.npy --method saliency --out {{o}}/m.png --npy {{o}}/m.npy", "ok"),
    # flags
    (f"optimize {M} --layer conv1 --unit 5-2 --steps 2 --out {{o}}", "reversed"),
    (f"optimize {M} --layer conv1 --unit 0 --seed=-1 --out {{o}}", "--seed: must be at least 0"),
    (f"optimize {M} --layer relu2 --unit 0 --position 99,99 --steps 2 --out {{o}}", "outside layer 'relu2'"),
    (f"attribute {M} {{i}}/img.png --method smoothgrad --seed -3 --out {{o}}/m.png", "--seed: must be at least 0"),
    (f"maxact {M} {{i}}/data --layer conv1 --threads=-1 --out {{o}}", "--threads: must be at least 1"),
    (f"maxact {M} {{i}}/data --layer conv1 --scheduler not_a_url! --out {{o}}", "not an address"),
    (f"atlas {M} --layer conv1 --steps 2 --scheduler 'not a url' --out {{o}}", "not an address"),
    (f"backprop {M} {{i}}/img.png --layer conv2 --unit 99 --out {{o}}/b.png", "out of range"),
    # datasets
    (f"maxact {M} {{i}}/missing --layer conv1 --out {{o}}", "dataset not found"),
    (f"maxact {M} {{i}}/data --layer conv1 --top 0 --out {{o}}", "--top"),
    (f"maxact {M} {{i}}/data --layer conv1 --out {{o}}", "ok"),  # the pipe inside is not data
    (f"maxact {M} {{i}}/data --layer conv1 --out {{i}}/data", "is the dataset folder"),
    (f"atlas {M} --layer conv1 --units 0 --steps 2 --data {{i}}/data --out {{i}}", "the outputs would become data"),
    (f"maxact {M} {{i}}/list.txt --layer conv1 --out {{o}}", "ok"),  # a listed pipe is skipped
    ("maxact {i}/nan.onnx {i}/data --layer conv2 --crops --out {o}", "warn"),
    (f"atlas {M} --layer conv1 --units 0-1 --steps 2 --data {{i}}/missing --out {{o}}", "dataset not found"),
    ("atlas {i}/nan.onnx --layer conv2 --units 0-1 --steps 2 --quiet --data {i}/data --out {o}", "warn"),
    ("atlas {i}/nan.onnx --layer conv2 --units 0 --steps 2 --quiet --out {o}", "warn"),
    ("backprop {i}/nan.onnx {i}/img.png --layer conv2 --unit 0 --out {o}/b.png", "warn"),
    ("backprop {i}/nan.onnx {i}/img.png --layer logits --unit 3 --mode guided --out {o}/b.png", "warn"),
    ("attribute {i}/nan.onnx {i}/img.png --method integrated_gradients --steps 4 --out {o}/m.png", "warn"),
    ("attribute {i}/nan.onnx {i}/img.png --method gradcam --out {o}/m.png", "warn"),
    ("optimize {i}/nan.onnx --layer conv2 --unit 0 --steps 2 --quiet --out {o}", "warn"),
    # demo
    ("demo --model {i}/model.onnx --images {i}/img.png {i}/empty.png --out {o}", "the file is empty"),
    ("demo --model {i}/model.onnx --images {i}/img.png --out {i}/afile", "not a directory"),
    ("demo --model {i}/nan.onnx --images {i}/img.png --out {o}", "warn"),
    # view (headless: a missing display or a bad source is found before any window)
    (f"view {M} --image {{i}}/missing.png --quit-after 1", "not found"),
    (f"view {M} --image {{i}}/img.png --screenshot {{o}}/s.png", "need --quit-after"),
    (f"view {M} --image {{i}}/img.png --quit-after 1 --screenshot {{i}}/img.png", "is the input image"),
]


def _argv(template: str, inputs: Path, out: Path) -> list[str]:
    import shlex

    return [part.replace("{i}", str(inputs)).replace("{o}", str(out)) for part in shlex.split(template)]


@pytest.mark.parametrize("template, expected", CASES, ids=[f"{n:02d}-{c[0].split()[0]}" for n, c in enumerate(CASES)])
def test_hostile_case(inputs, tmp_path, capsys, monkeypatch, template, expected):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")  # view: its bad flags and paths fail before any window
    monkeypatch.chdir(tmp_path)  # a file written to the working folder shows up below
    out = tmp_path / "out"
    before_inputs, before_here = _snapshot(inputs), _snapshot(tmp_path)
    started = time.monotonic()
    try:
        code = main(_argv(template, inputs, out))
    except SystemExit as exc:  # argparse's own errors (one line, exit 2, like ours)
        code = exc.code
    seconds = time.monotonic() - started
    captured = capsys.readouterr()
    err_lines = [line for line in captured.err.splitlines() if line.strip()]
    assert seconds < CASE_SECONDS
    assert "Traceback" not in captured.err and "Warning:" not in captured.err, captured.err
    assert "\x1b" not in captured.out and "\x1b" not in captured.err  # control characters arrive escaped
    assert _snapshot(inputs) == before_inputs  # no input overwritten, nothing written next to them
    assert not _temporaries(tmp_path)
    if expected in ("ok", "warn"):
        assert code == 0, captured.err
        if expected == "ok":
            assert not err_lines, captured.err
        else:
            assert len(err_lines) == 1 and err_lines[0].startswith("onnxprobe: warning: NaN or infinite"), captured.err
        assert out.exists() or template.startswith("layers")
        assert {p.name for p in tmp_path.iterdir()} <= {"out"}  # nothing written outside the output
        for path in out.rglob("*.json") if out.is_dir() else []:  # strict JSON: what JSON.parse accepts
            json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{path} holds {c}"))
    else:
        assert code == 2, captured.err
        assert len(err_lines) == 1, captured.err
        assert err_lines[0].startswith("onnxprobe: error:") and expected in err_lines[0], err_lines[0]
        assert _snapshot(tmp_path) == before_here  # nothing left behind: no output folder, no partial file


@pytest.mark.parametrize("value", ["abc", "-1", "0"])
def test_bad_thread_count_in_the_environment(inputs, tmp_path, capsys, monkeypatch, value):
    monkeypatch.setenv("ONNXPROBE_THREADS", value)
    assert main(["activations", str(inputs / "model.onnx"), str(inputs / "img.png"), "--out", str(tmp_path / "o" / "a.npz")]) == 2
    assert "ONNXPROBE_THREADS must be a whole number" in _one_line(capsys.readouterr().err, "onnxprobe: error:")
    assert not list(tmp_path.iterdir())


def test_atlas_redoes_its_patches_when_the_images_changed(inputs, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(inputs / "data", data, ignore=lambda d, names: [n for n in names if n.startswith("pipe")])
    argv = ["atlas", str(inputs / "model.onnx"), "--layer", "conv2", "--units", "0-1", "--steps", "2", "--quiet",
            "--top", "2", "--data", str(data), "--out", str(data / "atlas")]  # the atlas inside the data folder
    assert main(argv) == 0
    assert main(argv) == 0
    assert "note:" not in capsys.readouterr().out  # the identical rerun reuses everything
    shutil.copy(inputs / "img2.png", data / "d3.png")
    assert main(argv) == 0
    assert "note: top-k patches: the files of 1 shard(s) changed" in capsys.readouterr().out


FULL_DISK = [
    ["activations", M, "{i}/img.png", "--out", "{o}/a.npz"],
    ["attribute", M, "{i}/img.png", "--method", "saliency", "--out", "{o}/m.png", "--npy", "{o}/m.npy"],
    ["demo", "--model", M, "--images", "{i}/img.png", "--out", "{o}"],
    ["optimize", M, "--layer", "conv1", "--unit", "0", "--steps", "2", "--quiet", "--out", "{o}"],
    ["maxact", M, "{i}/data", "--layer", "conv1", "--crops", "--out", "{o}"],
    ["atlas", M, "--layer", "conv1", "--units", "0", "--steps", "2", "--quiet", "--out", "{o}"],
]


@pytest.mark.parametrize("args", FULL_DISK, ids=[a[0] for a in FULL_DISK])
def test_a_full_disk_is_one_line_and_leaves_nothing(inputs, tmp_path, capsys, monkeypatch, args):
    """Every temporary file is opened on /dev/full, so its first write fails with ENOSPC, as on a
    full file system (the file itself is made, then unlinked by the error path)."""
    from onnxprobe import fsutil

    real = fsutil._open_temp

    def full(tmp):
        os.close(real(tmp))
        return os.open("/dev/full", os.O_WRONLY)

    monkeypatch.setattr(fsutil, "_open_temp", full)
    out = tmp_path / "out"
    assert main([a.replace("{i}", str(inputs)).replace("{o}", str(out)) for a in args]) == 2
    assert "No space left on device" in _one_line(capsys.readouterr().err, "onnxprobe: error: cannot write")
    assert not out.exists()


def test_outputs_are_made_with_the_process_umask(inputs, tmp_path, capsys):
    for mask in (0o022, 0o077):
        previous = os.umask(mask)
        try:
            assert main(["activations", str(inputs / "model.onnx"), str(inputs / "img.png"), "--out",
                         str(tmp_path / f"{mask:o}" / "a.npz"), "--grid", str(tmp_path / f"{mask:o}" / "g.png")]) == 0
        finally:
            os.umask(previous)
        for name in ("a.npz", "g.png"):
            assert stat.S_IMODE((tmp_path / f"{mask:o}" / name).stat().st_mode) == 0o666 & ~mask


def test_maxact_resume_notices_images_changed_in_place(inputs, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(inputs / "data", data, ignore=lambda d, names: [n for n in names if n.startswith("pipe")])
    out = data / "out"  # inside the data folder: its files must not become data on the rerun

    def hits(folder):
        summary = json.loads((folder / "maxact.json").read_text())
        record = json.loads((folder / summary["layers"]["conv2"]).read_text())
        return [[(h["image"], h["score"]) for h in unit["hits"]] for unit in record["unit_records"]]

    argv = ["maxact", str(inputs / "model.onnx"), str(data), "--layer", "conv2", "--top", "2", "--shard-size", "2",
            "--crops", "--out", str(out)]
    assert main(argv) == 0
    assert main(argv) == 0  # the identical rerun resumes
    assert "changed" not in capsys.readouterr().out
    before = hits(out)
    shutil.copy(inputs / "img2.png", data / "d3.png")  # replaced in place, same name
    os.utime(data / "d3.png", ns=(10 ** 18, 10 ** 18))
    assert main(argv) == 0
    said = capsys.readouterr().out
    assert "note: the files of 1 shard(s) changed since the saved state" in said, said

    resumed = hits(out)
    assert resumed != before  # the replaced image was rescanned (the stale state would give `before`)
    assert main(argv + ["--fresh"]) == 0  # the same job from nothing
    assert resumed == hits(out)


def test_nan_predictions_render_in_the_viewer_panes():
    from onnxprobe.model import top_predictions
    from onnxprobe.render.compose import predictions_image

    predictions = top_predictions(np.array([np.nan, 1.0, np.inf, -np.inf]), None)
    assert all(np.isfinite(p.score) for p in predictions)
    assert predictions_image(predictions).dtype == np.uint8


def test_json_is_strict_without_nan():
    from onnxprobe.fsutil import json_text

    text = json_text({"a": float("nan"), "b": [np.float32("inf"), -np.inf, 1.5], "c": np.array([np.nan, 2.0])})
    assert json.loads(text) == {"a": None, "b": [None, None, 1.5], "c": [None, 2.0]}


# ---- as processes: pipes, devices, signals, stdout ------------------------------------------------

def _cli(args: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "onnxprobe", *args], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="backslashreplace", **kwargs)


def _one_line(err: str, start: str = "onnxprobe:") -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(start) and "Traceback" not in err, err
    return lines[0]


PIPES = [
    (["layers", "{i}/fifo.onnx"], "named pipe"),
    (["activations", M, "{i}/fifo.png", "--out", "{o}/a.npz"], "named pipe"),
    (["attribute", M, "--input-npy", "{i}/fifo.npy", "--method", "saliency", "--out", "{o}/m.png"], "named pipe"),
    (["maxact", M, "{i}/fifo.txt", "--layer", "conv1", "--out", "{o}"], "named pipe"),
    (["demo", "--model", M, "--images", "{i}/fifo.png", "--out", "{o}"], "named pipe"),
    (["layers", M, "--labels", "{i}/fifo.txt"], "named pipe"),
]


def test_named_pipes_are_refused_without_waiting(inputs, tmp_path):
    """A FIFO with no writer blocks open() forever: each must be refused from its stat, in time."""
    procs = [(_cli([a.replace("{i}", str(inputs)).replace("{o}", str(tmp_path / f"out{n}")) for a in args]), fragment)
             for n, (args, fragment) in enumerate(PIPES)]
    for proc, fragment in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2 and fragment in _one_line(err, "onnxprobe: error:"), err
    assert not list(tmp_path.iterdir())


def test_stdout_on_a_full_device_is_one_line(inputs, tmp_path):
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "onnxprobe", "activations", str(inputs / "model.onnx"),
                               str(inputs / "img.png"), "--out", str(tmp_path / "o" / "a.npz")],
                              env=ENV, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert proc.returncode == 2
    assert "No space left on device" in _one_line(proc.stderr, "onnxprobe: error: cannot write to standard output")
    assert not list(tmp_path.iterdir())


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def big_data(tmp_path_factory) -> Path:
    """1200 small noise images: a scan that lasts long enough to be interrupted."""
    folder = tmp_path_factory.mktemp("big-data")
    rng = np.random.default_rng(0)
    for n in range(1200):
        cv2.imwrite(str(folder / f"n{n:04d}.png"), (rng.random((28, 28)) * 255).astype(np.uint8))
    return folder


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_maxact_killed_mid_scan_leaves_no_partial_file_and_resumes(inputs, big_data, tmp_path, sig, code):
    out = tmp_path / "out"
    args = ["maxact", str(inputs / "model.onnx"), str(big_data), "--layer", "conv2", "--top", "3",
            "--shard-size", "8", "--batch-size", "2", "--out"]
    proc = _cli(args + [str(out)])
    _wait_for(out / ".maxact" / "job.json", proc)  # committed with the first finished shard
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert ("terminated" if sig == signal.SIGTERM else "interrupted") in _one_line(err)
    assert not _temporaries(out)
    resumed = subprocess.run([sys.executable, "-m", "onnxprobe", *args, str(out)], env=ENV, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    fresh = subprocess.run([sys.executable, "-m", "onnxprobe", *args, str(tmp_path / "fresh")], env=ENV,
                           capture_output=True, text=True, timeout=300)
    assert fresh.returncode == 0, fresh.stderr
    assert (out / "conv2.json").read_bytes() == (tmp_path / "fresh" / "conv2.json").read_bytes()


def test_optimize_interrupted_keeps_finished_units_and_resumes(inputs, tmp_path):
    out = tmp_path / "out"
    args = ["optimize", str(inputs / "model.onnx"), "--layer", "conv2", "--unit", "0-15", "--batch", "1",
            "--steps", "80", "--quiet", "--out", str(out)]
    proc = _cli(args)
    _wait_for(out / "conv2" / "unit_00000.json", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in _one_line(err), err
    assert not _temporaries(out)
    finished = sorted(p.name for p in (out / "conv2").glob("unit*.json"))
    assert finished and len(finished) < 16
    again = subprocess.run([sys.executable, "-m", "onnxprobe", *args], env=ENV, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"resuming: {len(finished)} unit(s)" in again.stdout
    assert len(list((out / "conv2").glob("unit*.json"))) == 16


def test_interrupt_while_waiting_for_an_unreachable_scheduler(inputs, tmp_path):
    """Ctrl-C during Dask's connection attempt: one line, 130, no job files, and no Client.__del__
    traceback (which Dask prints up to 40 s later when the client is not closed)."""
    proc = _cli(["maxact", str(inputs / "model.onnx"), str(inputs / "data"), "--layer", "conv1",
                 "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path / "out")])
    time.sleep(6)
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in _one_line(err), err
    assert time.monotonic() - started < 15
    assert not (tmp_path / "out").exists()


def test_viewer_quits_on_ctrl_c_without_traceback(inputs):
    proc = _cli(["view", str(inputs / "model.onnx"), "--image", str(inputs / "img.png")])
    time.sleep(8)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in _one_line(err), err


def test_atlas_terminated_mid_render_resumes_to_the_same_atlas(inputs, tmp_path):
    out = tmp_path / "out"
    args = ["atlas", str(inputs / "model.onnx"), "--layer", "conv2", "--units", "0-11", "--batch", "1",
            "--steps", "60", "--quiet", "--out", str(out)]
    proc = _cli(args)
    _wait_for(out / "units" / "conv2" / "unit_00000.json", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "terminated" in _one_line(err), err
    assert not _temporaries(out)
    assert not (out / "manifest.json").exists()  # written at the end, with the site
    again = subprocess.run([sys.executable, "-m", "onnxprobe", *args], env=ENV, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    fresh = subprocess.run([sys.executable, "-m", "onnxprobe", *args[:-1], str(tmp_path / "fresh")], env=ENV,
                           capture_output=True, text=True, timeout=300)
    assert fresh.returncode == 0, fresh.stderr

    def units(root):
        return {p.name: p.read_bytes() for p in sorted((root / "units" / "conv2").iterdir())}

    assert len(units(out)) == 12 * 5 and units(out) == units(tmp_path / "fresh")  # json, html, optimized, montage, r00


def test_the_viewer_runs_a_model_that_yields_nan(inputs):
    """Forward and back panes of a NaN model: drawn (black, empty bars), no worker error on the
    status line (it was `forward: ValueError: cannot convert float NaN to integer`)."""
    from onnxprobe.model import ProbeModel
    from onnxprobe.viewer.controller import Viewer
    from onnxprobe.viewer.sources import ImageFilesSource
    from tests.viewer.conftest import poll_until

    viewer = Viewer(ProbeModel.load(inputs / "nan.onnx", device="cpu"), ImageFilesSource.single(inputs / "img.png")).start()
    try:
        poll_until(viewer, lambda: viewer.last_forward is not None)
        viewer.handle_key("n")  # back mode on: the gradient of a NaN model
        poll_until(viewer, lambda: viewer.last_back is not None)
        viewer.poll()
        assert not any("Error" in text for _, text in viewer.state.messages), viewer.state.status_line()
        assert all(np.isfinite(p.score) for p in viewer.last_forward.values["predictions"])
    finally:
        viewer.stop()


# ---- issue 24's residuals --------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["optimize", "{i}/model.onnx", "--layer", "relu2", "--unit", "0", "--steps", "2", "--quiet", "--out", "{o}"],
    ["atlas", "{i}/model.onnx", "--layer", "conv2", "--units", "0", "--steps", "2", "--quiet", "--out", "{o}"],
], ids=["optimize", "atlas"])
def test_a_symlink_in_the_output_folder_that_leads_elsewhere_is_refused(inputs, tmp_path, capsys, argv):
    """--out DIR where DIR/<a folder the command writes> is a link to a folder elsewhere: exit 2,
    one line in the library's words (it was `internal error: ValueError`), nothing written there."""
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "units").mkdir(parents=True)
    (out / "relu2").symlink_to(elsewhere)  # optimize's folder for relu2 (conv2 optimized, relu2's folder)
    (out / "units" / "conv2").symlink_to(elsewhere)  # the atlas's folder for conv2's units
    assert main([a.replace("{i}", str(inputs)).replace("{o}", str(out)) for a in argv]) == 2
    line = _one_line(capsys.readouterr().err, "onnxprobe: error: refusing to use")
    assert "leads outside the folder" in line and "internal error" not in line
    assert not list(elsewhere.iterdir())


def _corrupt_videos(folder: Path) -> list[Path]:
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    (folder / "cut.avi").write_bytes(b"RIFF\x00\x10\x00\x00AVI LIST")  # a header cut short
    return [folder / "empty.mp4", folder / "noise.mp4", folder / "cut.avi"]


def test_a_corrupt_video_is_one_line_without_ffmpegs_own(inputs, tmp_path):
    """FFmpeg prints `moov atom not found` on fd 2 (C code: only a subprocess shows it); with its
    log off (preprocess.open_video) the only line is ours, for maxact's dataset and the viewer."""
    procs = []
    for video in _corrupt_videos(tmp_path):
        procs.append(_cli(["maxact", str(inputs / "model.onnx"), str(video), "--layer", "conv1", "--out",
                           str(tmp_path / f"out-{video.stem}")]))
        procs.append(_cli(["view", str(inputs / "model.onnx"), "--video", str(video), "--quit-after", "1"]))
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, err
        assert "video" in _one_line(err, "onnxprobe: error:") and "moov" not in err and "@ 0x" not in err


def test_ffmpeg_would_speak_without_the_setting(tmp_path):
    """The test above can fail: without OPENCV_FFMPEG_LOGLEVEL, FFmpeg does print its line here."""
    video = _corrupt_videos(tmp_path)[1]
    env = {k: v for k, v in ENV.items() if k not in ("OPENCV_FFMPEG_LOGLEVEL", "OPENCV_LOG_LEVEL")}
    code = f"import cv2; cv2.VideoCapture({str(video)!r})"
    loud = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    quiet = subprocess.run([sys.executable, "-c", f"from onnxprobe.preprocess import open_video; open_video({str(video)!r})"],
                           env=env, capture_output=True, text=True, timeout=60)
    assert "moov atom not found" in loud.stderr
    assert quiet.stderr == ""


def test_layer_names_become_safe_reversible_archive_members(inputs, tmp_path, capsys):
    """'../evil', '/abs' and 'nu<NUL>l' are no member names (a naive unzip writes outside, NUL cuts
    the name short): safe members, the mapping in the archive, every layer read back by its name."""
    import zipfile

    from onnxprobe.fsutil import NPZ_NAMES, load_npz
    from onnxprobe.model import ProbeModel

    out = tmp_path / "a.npz"
    assert main(["activations", str(inputs / "unsafe.onnx"), str(inputs / "img.png"), "--out", str(out)]) == 0
    members = zipfile.ZipFile(out).namelist()
    for member in members:
        assert not member.startswith("/") and ".." not in member.split("/") and "\x00" not in member, member
    assert NPZ_NAMES in members and "relu2.npy" in members  # a harmless name stays as it is
    model = ProbeModel.load(inputs / "unsafe.onnx", device="cpu")
    from onnxprobe.preprocess import read_image

    expected = model.activations(model.preprocess(read_image(inputs / "img.png")), with_outputs=False)
    saved = load_npz(out)
    assert {"../evil", "/abs", "nu\x00l"} <= set(saved)
    assert set(saved) == set(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(saved[name], value[0])
    with zipfile.ZipFile(out) as archive:  # unzipped, nothing lands outside the folder
        archive.extractall(tmp_path / "unzipped")
    assert {p.name for p in tmp_path.iterdir()} == {"a.npz", "unzipped"}


# ---- two writers on one output folder ------------------------------------------------------------

def test_the_output_lock_refuses_a_second_holder_and_dies_with_its_process(tmp_path):
    """fsutil.output_lock: held by a child process, refused here in one line naming it; the child
    killed (SIGKILL: no cleanup), the lock is free at once, though its file is still there."""
    from onnxprobe.errors import OutputError
    from onnxprobe.fsutil import LOCK_NAME, output_lock

    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom onnxprobe.fsutil import output_lock\n"
                               f"with output_lock({str(tmp_path)!r}):\n    print('held', flush=True)\n    time.sleep(120)"],
                              env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputError, match=f"in use by another onnxprobe run \\(process {holder.pid}\\)"):
            with output_lock(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait(30)
    assert (tmp_path / LOCK_NAME).exists()  # left by the killed holder: a file, not a lock
    with output_lock(tmp_path) as path:
        assert path.read_text() == f"{os.getpid()}\n"
    assert not (tmp_path / LOCK_NAME).exists()


WRITERS = {
    "optimize": (["optimize", "{m}", "--layer", "conv2", "--unit", "0-15", "--batch", "1", "--steps", "80", "--quiet",
                  "--out", "{o}"], "conv2/unit_00000.json"),
    "atlas": (["atlas", "{m}", "--layer", "conv2", "--units", "0-31", "--batch", "1", "--steps", "100", "--quiet",
               "--out", "{o}"], "units/conv2/unit_00000.json"),
    "maxact": (["maxact", "{m}", "{data}", "--layer", "conv2", "--top", "3", "--shard-size", "8", "--batch-size", "2",
                "--out", "{o}"], ".maxact/job.json"),
}


def _files(root: Path) -> dict[str, object]:
    """Every file's bytes; JSON without the fields that name the folder or a time."""
    def content(path: Path):
        if path.suffix != ".json":
            return path.read_bytes()
        data = json.loads(path.read_text())
        return {k: v for k, v in data.items() if k not in ("seconds", "seconds_scan", "out_dir", "root")} \
            if isinstance(data, dict) else data

    return {p.relative_to(root).as_posix(): content(p) for p in sorted(root.rglob("*")) if p.is_file()
            and p.name not in ("items.json", "maxact.json", "job.json") and not p.name.startswith(".onnxprobe-tmp-")}


@pytest.mark.parametrize("command", list(WRITERS))
def test_a_second_run_on_the_same_output_is_refused_and_a_killed_one_leaves_no_lock(inputs, big_data, tmp_path, capsys,
                                                                                      command):
    """Two runs on one --out: the second says so in one line (exit 2) while the first runs and
    writes nothing; the first killed with SIGKILL (no cleanup at all), a third run takes the folder
    (no stale lock), resumes, and ends with what one clean run writes."""
    from onnxprobe.fsutil import LOCK_NAME, TEMP_PREFIX

    template, progress = WRITERS[command]
    argv = lambda out: [a.replace("{m}", str(inputs / "model.onnx")).replace("{data}", str(big_data))  # noqa: E731
                        .replace("{o}", str(out)) for a in template]
    out = tmp_path / "out"
    first = _cli(argv(out))
    try:
        _wait_for(out / progress, first)
        assert (out / LOCK_NAME).read_text().strip() == str(first.pid)
        before = _files(out)
        capsys.readouterr()
        assert main(argv(out)) == 2  # in this process: it reaches the lock in a moment, while the first still runs
        line = _one_line(capsys.readouterr().err, "onnxprobe: error:")
        assert f"is in use by another onnxprobe run (process {first.pid})" in line
        assert first.poll() is None  # the first run was still going: the refusal was no accident of timing
        assert set(before) <= set(_files(out))  # the second removed nothing the first had finished
    finally:
        first.kill()
        first.wait(60)
    # what a kill in the middle of a write leaves (whether this kill landed in one is up to timing)
    (out / f"{TEMP_PREFIX}killed-mid-write").write_bytes(b"partial")
    third = subprocess.run([sys.executable, "-m", "onnxprobe", *argv(out)], env=ENV, capture_output=True, text=True,
                           timeout=300)
    assert third.returncode == 0, third.stderr
    fresh = subprocess.run([sys.executable, "-m", "onnxprobe", *argv(tmp_path / "fresh")], env=ENV, capture_output=True,
                           text=True, timeout=300)
    assert fresh.returncode == 0, fresh.stderr
    assert not (out / LOCK_NAME).exists() and not _temporaries(out)
    assert _files(out) == _files(tmp_path / "fresh")
