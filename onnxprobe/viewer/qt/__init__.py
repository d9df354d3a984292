"""Thin PySide6 widgets over the Qt-free viewer state (the only part of onnxprobe that imports Qt).

PySide6 6.12.0 on Python < 3.12 drops a reference to None on every void-returning call
(QLabel.setText, QPainter.drawImage, ...) until the interpreter aborts with "none_dealloc";
pyproject.toml therefore excludes it (tests/viewer/test_qt_refcounts.py guards the pin).
"""
