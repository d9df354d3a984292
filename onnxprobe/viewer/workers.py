"""Threads that keep the GUI thread free: a frame grabber and job workers fed by one-slot mailboxes."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import numpy as np

from onnxprobe.viewer.mailbox import Closed, Mailbox
from onnxprobe.viewer.sources import FrameSource, SourceError


def inference_threads() -> int:
    """ONNX Runtime threads for the viewer's model: every core but one, left to the GUI thread and
    the grabber (the CLI loads the model with it; the controller leaves the model as it is given)."""
    return max(1, (os.cpu_count() or 2) - 1)


class Worker(threading.Thread):
    """Runs `handle(job)` for the newest submitted job; jobs submitted while busy replace each other."""

    def __init__(self, name: str, handle: Callable[[object], None], on_error: Callable[[str, BaseException], None]):
        super().__init__(name=f"onnxprobe-{name}", daemon=True)
        self.mailbox = Mailbox()
        self._handle = handle
        self._on_error = on_error
        self.busy = False

    def submit(self, job) -> None:
        self.mailbox.put(job)

    def run(self) -> None:
        while True:
            try:
                job = self.mailbox.take()
            except Closed:
                return
            self.busy = True
            try:
                self._handle(job)
            except Exception as exc:  # a worker must survive anything a frame or a model throws at it
                self._on_error(self.name, exc)
            finally:
                self.busy = False

    def stop(self, timeout: float = 5.0) -> None:
        self.mailbox.close()
        if self.is_alive():
            self.join(timeout)


class FrameGrabber(threading.Thread):
    """Reads the current source on its own thread (camera reads block), turns each raw frame into a
    `Frame` with `make_frame`, and hands it on with `on_frame`. A failing source is reported with
    `on_error` and dropped; the grabber keeps running and accepts another source."""

    def __init__(self, make_frame: Callable[[np.ndarray], object], on_frame: Callable[[object], None],
                 on_error: Callable[[str], None], ready_for_more: Callable[[float], bool] | None = None):
        super().__init__(name="onnxprobe-grabber", daemon=True)
        self._make_frame = make_frame
        self._on_frame = on_frame
        self._on_error = on_error
        self._ready_for_more = ready_for_more
        self._cond = threading.Condition()
        self._source: FrameSource | None = None
        self._pending_source: FrameSource | None = None
        self._source_changed = False
        self._refresh = False
        self._paused = False
        self._stopped = False
        self._last_raw: np.ndarray | None = None

    # ---- called from the GUI thread --------------------------------------------------------------
    def set_source(self, source: FrameSource | None) -> None:
        with self._cond:
            self._pending_source = source
            self._source_changed = True
            self._cond.notify()

    def refresh(self) -> None:
        """Deliver the current image again (after moving between files or changing the resize)."""
        with self._cond:
            self._refresh = True
            self._cond.notify()

    def pause(self, paused: bool) -> None:
        with self._cond:
            self._paused = paused
            self._cond.notify()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self.is_alive():
            self.join(timeout)
        if self._source is not None:
            self._source.close()

    @property
    def source(self) -> FrameSource | None:
        return self._source

    # ---- the grabber thread --------------------------------------------------------------------
    def _wanted(self) -> bool:
        live = self._source is not None and self._source.live and not self._paused
        return self._stopped or self._source_changed or self._refresh or live

    def run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(self._wanted, timeout=0.5)
                if self._stopped:
                    return
                changed, self._source_changed = self._source_changed, False
                refresh, self._refresh = self._refresh, False
                new_source = self._pending_source
                paused = self._paused
            if changed:
                if self._source is not None and self._source is not new_source:
                    self._source.close()
                self._source = new_source
                refresh = True
                if new_source is not None and not self._open(new_source):
                    continue
            source = self._source
            if source is None:
                continue
            try:
                if source.live and not paused:
                    if self._ready_for_more is not None and not source.blocking:
                        self._ready_for_more(0.25)  # a file read as fast as possible: do not run ahead of inference
                    raw = source.read()
                elif refresh:
                    raw = self._last_raw if source.live and self._last_raw is not None else source.read()
                else:
                    continue
            except SourceError as exc:
                self._drop(source, str(exc))
                continue
            self._last_raw = raw
            try:
                frame = self._make_frame(raw)
            except Exception as exc:  # an image the model cannot take: say so, keep running
                self._on_error(f"cannot use this frame: {exc}")
                continue
            self._on_frame(frame)

    def _open(self, source: FrameSource) -> bool:
        try:
            source.open()
            return True
        except SourceError as exc:
            self._drop(source, str(exc))
            return False

    def _drop(self, source: FrameSource, why: str) -> None:
        source.close()
        with self._cond:
            if self._source is source:
                self._source = None
        self._on_error(why)
