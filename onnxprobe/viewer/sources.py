"""Where frames come from: a webcam (OpenCV), a looping video file, an image folder, one image."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from onnxprobe.errors import InputError
from onnxprobe.preprocess import open_video, read_image
from onnxprobe.resources import IMAGE_SUFFIXES


class SourceError(Exception):
    """A source stopped delivering frames (camera unplugged, file vanished): shown in the status line."""


class FrameSource:
    """`read()` returns the next frame (BGR or gray, as OpenCV reads) or raises SourceError.
    Live sources (camera, video) deliver a stream; static ones (files) the same image until moved."""

    live = True
    blocking = True  # read() waits for the next frame by itself (a camera, a paced video)
    label = ""

    def open(self) -> None:
        """Acquire the device or file (called on the grabber thread: may be slow)."""

    def read(self) -> np.ndarray:
        raise NotImplementedError

    def step(self, delta: int) -> None:
        """Move to the next (+1) or previous (-1) file; live sources ignore it."""

    def close(self) -> None:
        pass


class CameraSource(FrameSource):
    live = True

    def __init__(self, index: int, open_capture: Callable[[int], object] | None = None):
        self.index = index
        self.label = f"camera {index}"
        self._open_capture = open_capture or open_video
        self._capture = None

    def open(self) -> None:
        capture = self._open_capture(self.index)
        if capture is None or not capture.isOpened():
            raise SourceError(f"camera {self.index} cannot be opened")
        self._capture = capture

    def read(self) -> np.ndarray:
        if self._capture is None:
            self.open()
        ok, frame = self._capture.read()
        if not ok or frame is None or getattr(frame, "size", 0) == 0:
            self.close()
            raise SourceError(f"camera {self.index} stopped delivering frames")
        return frame

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class VideoSource(FrameSource):
    """A video file, looping; paced at the file's frame rate unless `pace` is False."""

    live = True

    def __init__(self, path: str | Path, pace: bool = True):
        self.path = Path(path)
        self.label = f"video {self.path.name}"
        self.pace = pace
        self.blocking = pace
        self._capture = None
        self._interval = 0.0
        self._next_at = 0.0

    def open(self) -> None:
        capture = open_video(self.path)
        if not capture.isOpened():
            raise SourceError(f"cannot open video {self.path}")
        fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        self._interval = 1.0 / fps if self.pace and 1.0 <= fps <= 240.0 else 0.0
        self._capture = capture

    def read(self) -> np.ndarray:
        if self._capture is None:
            self.open()
        if self._interval:
            now = time.monotonic()
            if self._next_at > now:
                time.sleep(self._next_at - now)
            self._next_at = max(self._next_at, now) + self._interval  # fallen behind: do not race to catch up
        ok, frame = self._capture.read()
        if not ok:  # the end: loop
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._capture.read()
        if not ok or frame is None:
            self.close()
            raise SourceError(f"video {self.path.name} delivers no frames")
        return frame

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class ImageFilesSource(FrameSource):
    """One image, or every image of a folder (sorted by name); `step` moves between them."""

    live = False

    def __init__(self, paths: list[Path], label: str):
        if not paths:
            raise InputError(f"no images in {label}")
        self.paths = paths
        self.position = 0
        self._label = label

    @classmethod
    def folder(cls, folder: str | Path) -> "ImageFilesSource":
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"image folder not found: {folder}")
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not paths:
            raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {folder}")
        return cls(paths, str(folder))

    @classmethod
    def single(cls, path: str | Path) -> "ImageFilesSource":
        read_image(path)  # fail now, with one line, if it cannot be read
        return cls([Path(path)], str(path))

    @property
    def label(self) -> str:
        name = self.paths[self.position].name
        return name if len(self.paths) == 1 else f"{name} ({self.position + 1}/{len(self.paths)})"

    def read(self) -> np.ndarray:
        try:
            return read_image(self.paths[self.position])
        except InputError as exc:
            raise SourceError(str(exc)) from None

    def step(self, delta: int) -> None:
        self.position = (self.position + delta) % len(self.paths)


def check_video(path: str | Path) -> VideoSource:
    """A VideoSource for a file that exists and opens; one-line InputError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"video not found: {path}")
    capture = open_video(path)  # FFmpeg's own complaint about a bad file stays silent: ours is the one line
    try:
        ok, _ = capture.read() if capture.isOpened() else (False, None)
    finally:
        capture.release()
    if not ok:
        raise InputError(f"cannot read video (unsupported or corrupt file): {path}")
    return VideoSource(path)
