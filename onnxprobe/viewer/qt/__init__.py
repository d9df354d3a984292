"""Thin PySide6 widgets over the Qt-free viewer state (the only part of onnxprobe that imports Qt)."""
