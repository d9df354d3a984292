"""Start-up: `onnxprobe --help` and the parsing of a command import only what that command needs
(no graph library, runtime, scipy, Qt or Dask before a command starts working), and Ctrl-C at any
moment after launch, the imports included, ends with one line and status 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from onnxprobe.cli import COMMANDS
from tests.conftest import ROOT

# imported only when a command works: the graph library (onnx costs 0.7 s of CPU on its own), the
# runtime, scipy, Dask, Qt, torch
HEAVY = ("onnx", "onnxruntime", "scipy", "dask", "distributed", "PySide6", "torch", "ml_dtypes")
# what the parsers of these commands may add: the viewer's state and the back-map filters draw with cv2
NEEDS_CV2 = ("backprop", "view")


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _imported(*args: str) -> set[str]:
    """The modules `python -m onnxprobe ARGS` imports (python -X importtime names each once)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "onnxprobe", *args], capture_output=True,
                          text=True, env=_env(), cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage: onnxprobe")
    lines = [line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert "onnxprobe.cli" in lines, done.stderr[-2000:]
    return set(lines)


def _top(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_help_imports_no_library():
    top = _top(_imported("--help"))
    assert not top & {*HEAVY, "numpy", "cv2"}, sorted(top & {*HEAVY, "numpy", "cv2"})
    modules = _imported("--help")
    # no command's library either: only the command line's own modules, the errors and where the bundled data is
    ours = {m for m in modules if m.startswith("onnxprobe.")}
    assert ours <= {"onnxprobe.cli", "onnxprobe.errors", "onnxprobe.fsutil", "onnxprobe.resources", "onnxprobe.__main__"} | \
        {f"onnxprobe.cli.{name}" for name in (*COMMANDS, "common", "flags")}, sorted(ours)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_commands_help_imports_only_its_parser(command):
    top = _top(_imported(command, "--help"))
    forbidden = {*HEAVY} | (set() if command in NEEDS_CV2 else {"cv2"})
    assert not top & forbidden, sorted(top & forbidden)
    # and no other command's parser
    others = {m for m in _imported(command, "--help") if m.startswith("onnxprobe.cli.")} - \
        {f"onnxprobe.cli.{name}" for name in (*COMMANDS, "common", "flags")}
    assert not others, sorted(others)


def _interrupt(args: list[str], delay: float, tmp_path) -> tuple[int, list[str]]:
    """Start `python -m onnxprobe ARGS`, wait until the interpreter has begun importing onnxprobe
    (the launch: before that Python itself is starting), then `delay` seconds, then SIGINT."""
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "onnxprobe", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path)
    seen = []
    for line in proc.stderr:  # importtime names a module when its import ends
        seen.append(line)
        if line.rstrip().endswith("| onnxprobe"):
            break
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    lines = [line for line in "".join(seen).splitlines() + err.splitlines()
             if line.strip() and not line.startswith("import time:")]
    return proc.returncode, lines


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.05, 0.15, 0.4, 1.0, 2.0])
def test_ctrl_c_at_any_moment_is_one_line_and_130(tmp_path, delay):
    """From the first imports (0 s) through parsing to the work of an optimization long enough to
    be still running at the last delay; nothing half-written stays."""
    model = ROOT / "models" / "imagenet" / "mobilenet_v2.onnx"
    out = tmp_path / "vis"
    code, lines = _interrupt(["optimize", str(model), "--objective", "logit", "--unit", "1", "--preset", "lucid",
                              "--steps", "100000", "--out", str(out), "--quiet", "--device", "cpu"], delay, tmp_path)
    assert code == 130, lines
    assert len(lines) == 1 and lines[0].startswith("onnxprobe: interrupted"), lines
    assert not out.exists() or not any(out.iterdir())
