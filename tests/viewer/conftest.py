"""Viewer test helpers: a model, a generated video, a tiny atlas, a camera that fails, polling."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest


def write_video(path: Path, frames: int = 30, size=(64, 48), fps: float = 30.0, seed: int = 0) -> Path:
    """An MJPG .avi of a bright square moving over noise (so activations change frame to frame)."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened(), "OpenCV cannot write MJPG .avi here"
    rng = np.random.default_rng(seed)
    for i in range(frames):
        frame = (rng.random((h, w, 3)) * 60).astype(np.uint8)
        x = (i * 3) % (w - 16)
        frame[16:32, x:x + 16] = (40, 200, 255)
        writer.write(frame)
    writer.release()
    return path


def write_atlas(root: Path, layer: str, units: int, model_name: str = "m") -> Path:
    """A tiny atlas in the manifest format the viewer reads; unit u's optimized image is a solid
    colour derived from u (so tests can check which image landed where); unit 1 has no images."""
    root.mkdir(parents=True, exist_ok=True)
    entries = {}
    for unit in range(units):
        if unit == 1:
            continue
        names = {}
        for k, kind in enumerate(("optimized", "top9", "top9_deconv")):
            rel = f"{layer}/unit{unit}-{kind}.png"
            (root / layer).mkdir(exist_ok=True)
            image = np.zeros((20, 20, 3), np.uint8)
            image[:] = atlas_color(unit, k)[::-1]  # written as BGR
            cv2.imwrite(str(root / rel), image)
            names[kind] = rel
        entries[str(unit)] = {**names, "stats": {"max": float(unit)}}
    (root / "manifest.json").write_text(json.dumps({"model": model_name, "layers": {layer: {"units": entries}}}))
    return root


def atlas_color(unit: int, kind: int = 0) -> tuple[int, int, int]:
    return (20 + 37 * unit % 200, 50 + 60 * kind, 250 - 23 * unit % 200)


class FakeCapture:
    """Stands in for cv2.VideoCapture: `good` frames, then read() fails (a camera unplugged)."""

    def __init__(self, good: int = 5, size=(48, 64), opened: bool = True):
        self.good = good
        self.size = size
        self.opened = opened
        self.reads = 0
        self.released = False

    def isOpened(self):
        return self.opened

    def read(self):
        self.reads += 1
        if self.reads > self.good:
            return False, None
        time.sleep(0.01)
        frame = np.full((*self.size, 3), 10 * self.reads % 255, np.uint8)
        return True, frame

    def release(self):
        self.released = True


def poll_until(viewer, predicate, timeout: float = 20.0) -> None:
    """Drive a Qt-free viewer's GUI side by hand until `predicate()` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        viewer.poll()
        if predicate():
            return
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting; status: {viewer.state.status_line()}")


@pytest.fixture
def viewer_model_path(digits_model_path) -> Path:
    """The bundled model (the tests fail with one line when it is missing)."""
    return digits_model_path


@pytest.fixture
def video_path(tmp_path) -> Path:
    return write_video(tmp_path / "clip.avi")
