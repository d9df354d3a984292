"""Frame sources and the one-slot mailbox."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from onnxprobe.errors import InputError
from onnxprobe.viewer.mailbox import Closed, LatestSlots, Mailbox
from onnxprobe.viewer.sources import CameraSource, ImageFilesSource, SourceError, VideoSource, check_video
from tests.viewer.conftest import FakeCapture, write_video


def test_mailbox_keeps_only_the_newest():
    box = Mailbox()
    for i in range(5):
        box.put(i)
    assert box.take() == 4 and box.dropped == 4
    assert box.take(timeout=0.01) is None
    box.close()
    with pytest.raises(Closed):
        box.take()


def test_mailbox_wakes_a_waiting_taker():
    box = Mailbox()
    got = []
    thread = threading.Thread(target=lambda: got.append(box.take(timeout=5)))
    thread.start()
    time.sleep(0.05)
    box.put("frame")
    thread.join(5)
    assert got == ["frame"] and box.wait_empty(0.1)


def test_latest_slots_notify_once_per_batch():
    calls = []
    slots = LatestSlots(lambda: calls.append(1))
    slots.post("forward", 1)
    slots.post("forward", 2)
    slots.post("back", 3)
    assert calls == [1] and slots.drain() == {"forward": 2, "back": 3}
    slots.post("forward", 4)
    assert calls == [1, 1]


def test_video_loops_at_the_end(tmp_path):
    path = write_video(tmp_path / "v.avi", frames=4)
    source = VideoSource(path, pace=False)
    frames = [source.read() for _ in range(9)]
    source.close()
    assert all(f.shape == (48, 64, 3) for f in frames)
    assert np.array_equal(frames[0], frames[4]) and np.array_equal(frames[1], frames[5]) and np.array_equal(frames[0], frames[8])
    assert not np.array_equal(frames[0], frames[1])


def test_video_is_paced_at_its_frame_rate(tmp_path):
    source = VideoSource(write_video(tmp_path / "v.avi", frames=4, fps=25.0))
    start = time.monotonic()
    for _ in range(6):
        source.read()
    assert time.monotonic() - start >= 5 / 25.0 * 0.9


@pytest.mark.parametrize("content,needle", [(None, "not found"), (b"not a video at all", "cannot read video")])
def test_check_video_errors(tmp_path, content, needle):
    path = tmp_path / "v.avi"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=needle):
        check_video(path)


def test_image_folder_steps_and_wraps(tmp_path):
    for i, name in enumerate(["b.png", "a.jpg", "c.bmp"]):
        cv2.imwrite(str(tmp_path / name), np.full((8, 8, 3), 50 * (i + 1), np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    source = ImageFilesSource.folder(tmp_path)
    assert [p.name for p in source.paths] == ["a.jpg", "b.png", "c.bmp"] and not source.live
    seen = []
    for delta in (0, 1, 1, 1, -1):
        source.step(delta)
        seen.append(source.label)
    assert seen == ["a.jpg (1/3)", "b.png (2/3)", "c.bmp (3/3)", "a.jpg (1/3)", "c.bmp (3/3)"]
    assert source.read()[0, 0, 0] == 150


@pytest.mark.parametrize("make,needle", [
    (lambda d: ImageFilesSource.folder(d / "missing"), "not found"),
    (lambda d: ImageFilesSource.folder(d), "no images"),
    (lambda d: ImageFilesSource.single(d / "x.png"), "not found"),
])
def test_file_source_errors(tmp_path, make, needle):
    with pytest.raises(InputError, match=needle):
        make(tmp_path)


def test_camera_that_fails_mid_stream():
    capture = FakeCapture(good=2)
    camera = CameraSource(3, open_capture=lambda index: capture)
    camera.open()
    assert camera.read().shape == (48, 64, 3) and camera.read() is not None
    with pytest.raises(SourceError, match="camera 3 stopped"):
        camera.read()
    assert capture.released


def test_camera_that_cannot_open():
    with pytest.raises(SourceError, match="camera 1 cannot be opened"):
        CameraSource(1, open_capture=lambda index: FakeCapture(opened=False)).open()
