"""Starting the Qt application around a `Viewer`."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from onnxprobe.render.images import write_png
from onnxprobe.viewer.controller import Viewer
from onnxprobe.viewer.qt.widgets import from_qimage
from onnxprobe.viewer.qt.window import ViewerWindow, grab_window

if TYPE_CHECKING:
    import numpy as np


def run_window(viewer: Viewer, quit_after: float | None = None, screenshot: str | Path | None = None,
               keys: str = "") -> int:
    """Show the window and run the event loop until it is closed (or `quit_after` seconds passed,
    after typing `keys` and saving a `screenshot`: for scripted runs)."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = ViewerWindow(viewer)
    viewer.start()
    window.show()
    stop = _quit_on_signals(window)
    if quit_after is not None:
        def finish():
            if screenshot:
                write_png(screenshot, screen_shot(app, window))
            window.close()

        for i, key in enumerate(keys):
            QTimer.singleShot(int(1000 * quit_after * (i + 1) / (len(keys) + 2)), lambda key=key: viewer.handle_key(key))
        QTimer.singleShot(int(quit_after * 1000), finish)
    try:
        code = app.exec()
    finally:
        caught = stop()
    if caught == signal.SIGINT:
        raise KeyboardInterrupt
    if caught == signal.SIGTERM:
        from onnxprobe.errors import Terminated

        raise Terminated
    return code


def _quit_on_signals(window):
    """Ctrl-C and SIGTERM close the window (the CLI then says so in one line and exits 130 / 143)
    instead of raising inside a Qt callback. Qt's loop does not run Python's signal handlers, so a
    timer gives Python a moment every 200 ms. Returns a function that restores the handlers and
    tells which signal came (or None)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    caught = []

    def handler(signum, frame):
        caught.append(signum)
        window.close()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    timer = QTimer()
    timer.timeout.connect(lambda: None)
    timer.start(200)

    def stop():
        timer.stop()
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        return caught[0] if caught else None

    return stop


def screen_shot(app: QApplication, window) -> "np.ndarray":
    """What the display shows of the window (a real screen grab on X11/Wayland; offscreen there is no
    screen to grab, so the widget renders itself)."""
    if app.platformName() != "offscreen":
        pixmap = window.screen().grabWindow(window.winId())
        if not pixmap.isNull():
            return from_qimage(pixmap.toImage())
    return grab_window(window)
