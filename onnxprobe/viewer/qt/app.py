"""Starting the Qt application around a `Viewer`."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from onnxprobe.render.images import write_png
from onnxprobe.viewer.controller import Viewer
from onnxprobe.viewer.qt.widgets import from_qimage
from onnxprobe.viewer.qt.window import ViewerWindow, grab_window


def run_window(viewer: Viewer, quit_after: float | None = None, screenshot: str | Path | None = None,
               keys: str = "") -> int:
    """Show the window and run the event loop until it is closed (or `quit_after` seconds passed,
    after typing `keys` and saving a `screenshot`: for scripted runs)."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = ViewerWindow(viewer)
    viewer.start()
    window.show()
    if quit_after is not None:
        def finish():
            if screenshot:
                write_png(screenshot, screen_shot(app, window))
            window.close()

        for i, key in enumerate(keys):
            QTimer.singleShot(int(1000 * quit_after * (i + 1) / (len(keys) + 2)), lambda key=key: viewer.handle_key(key))
        QTimer.singleShot(int(quit_after * 1000), finish)
    return app.exec()


def screen_shot(app: QApplication, window) -> "np.ndarray":
    """What the display shows of the window (a real screen grab on X11/Wayland; offscreen there is no
    screen to grab, so the widget renders itself)."""
    if app.platformName() != "offscreen":
        pixmap = window.screen().grabWindow(window.winId())
        if not pixmap.isNull():
            return from_qimage(pixmap.toImage())
    return grab_window(window)
