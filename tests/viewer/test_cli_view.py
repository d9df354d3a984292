"""`onnxprobe view`: bad input fails with one line and exit 2; a real window under Xvfb, screenshotted."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from onnxprobe.cli import main
from tests.conftest import ROOT
from tests.programs import XVFB, require_program
from tests.viewer.conftest import write_atlas


def run_view(args, env_changes, timeout=120):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(env_changes)
    return subprocess.run([sys.executable, "-m", "onnxprobe", "view", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=ROOT)


BAD = [
    ("no display", lambda d: [d["model"], "--video", d["video"]], {}, "no display"),
    ("missing video", lambda d: [d["model"], "--video", d["dir"] / "nope.avi"], None, "video not found"),
    ("corrupt video", lambda d: [d["model"], "--video", d["junk"]], None, "cannot read video"),
    ("missing folder", lambda d: [d["model"], "--images", d["dir"] / "nope"], None, "image folder not found"),
    ("empty folder", lambda d: [d["model"], "--images", d["empty"]], None, "no images"),
    ("broken image", lambda d: [d["model"], "--image", d["junk"]], None, "cannot read image"),
    ("missing atlas", lambda d: [d["model"], "--video", d["video"], "--atlas", d["dir"] / "nope"], None, "atlas folder not found"),
    ("atlas without manifest", lambda d: [d["model"], "--video", d["video"], "--atlas", d["empty"]], None, "no manifest.json"),
    ("missing model", lambda d: [d["dir"] / "nope.onnx", "--video", d["video"]], None, "nope.onnx"),
    ("two sources", lambda d: [d["model"], "--video", d["video"], "--camera", "1"], None, "not allowed with"),
    ("screenshot without quit", lambda d: [d["model"], "--video", d["video"], "--screenshot", "x.png"], None, "need --quit-after"),
    ("bad device", lambda d: [d["model"], "--device", "tpu"], None, "invalid choice"),
]


@pytest.fixture
def files(tmp_path, viewer_model_path, video_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk.avi").write_bytes(b"junk" * 100)
    return {"model": viewer_model_path, "video": video_path, "dir": tmp_path, "empty": tmp_path / "empty",
            "junk": tmp_path / "junk.avi"}


@pytest.mark.parametrize("why,args,env,needle", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_exit_2(files, why, args, env, needle, monkeypatch, capfd):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    for name, value in ({"QT_QPA_PLATFORM": "offscreen"} if env is None else env).items():
        monkeypatch.setenv(name, value)
    try:
        code = main(["view", *map(str, args(files))])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capfd.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err


def test_offscreen_run_with_keys_and_screenshot(files, tmp_path):
    shot = tmp_path / "shot.png"
    atlas = write_atlas(tmp_path / "atlas", "x", 2)
    result = run_view([files["model"], "--video", files["video"], "--atlas", atlas, "--quit-after", "2",
                       "--keys", "nl", "--screenshot", shot], {"QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, result.stderr
    assert cv2.imread(str(shot)).std() > 5


def _free_display() -> int:
    for number in range(90, 200):
        if not Path(f"/tmp/.X{number}-lock").exists() and not Path(f"/tmp/.X11-unix/X{number}").exists():
            return number
    raise RuntimeError("no free X display number")


def test_real_window_under_xvfb(files, artifacts_dir):
    require_program(XVFB, "apt-get install -y xvfb")
    number = _free_display()
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not Path(f"/tmp/.X11-unix/X{number}").exists():
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Xvfb did not start: {server.stderr.read().decode()[-300:]}")
            time.sleep(0.05)
        shot = artifacts_dir / "viewer-xvfb.png"
        shot.unlink(missing_ok=True)
        result = run_view([files["model"], "--video", files["video"], "--quit-after", "3", "--keys", "lnm",
                           "--screenshot", shot], {"DISPLAY": f":{number}", "QT_QPA_PLATFORM": "xcb"})
        if result.returncode != 0 and "xcb" in result.stderr and "plugin" in result.stderr:
            pytest.skip(f"Qt's xcb platform cannot start (missing X libraries): {result.stderr.strip()[-300:]}")
        assert result.returncode == 0, result.stderr
        image = cv2.imread(str(shot))
        assert image is not None and image.shape[0] >= 400 and image.shape[1] >= 600
        assert image.std() > 10 and len(np.unique(image.reshape(-1, 3), axis=0)) > 50  # panes drawn, not a blank window
    finally:
        server.terminate()
        server.wait(10)
