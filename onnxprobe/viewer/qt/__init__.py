"""Thin PySide6 widgets over the Qt-free viewer state (the only part of onnxprobe that imports Qt)."""

from __future__ import annotations

import ctypes
import sys


def _keep_singletons_alive() -> None:
    """PySide6 6.12's void-returning methods (QPainter.drawImage, QLabel.setText, QWidget.update, ...)
    return None (and some return True / False) without a new reference, which is harmless where None is immortal (Python >= 3.12)
    but on 3.11 lowers None's refcount by one per call until the interpreter aborts with
    "none_dealloc" after a few minutes of painting. A huge head start on None's refcount makes it
    unreachable for any real session (these singletons are never freed anyway)."""
    if sys.version_info < (3, 12):
        for singleton in (None, True, False):
            ctypes.c_ssize_t.from_address(id(singleton)).value += 1 << 40


_keep_singletons_alive()
